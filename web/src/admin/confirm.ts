import { byId } from '../dom.js';

export interface ConfirmOptions {
  title: string;
  text: string;
  /** The confirming button's words ("Disable account"). */
  confirm: string;
  /** A red confirming button (the default); false for a harmless one. */
  danger?: boolean;
}

/**
 * Asks in the page's modal <dialog> (admin.html #confirm-dialog): resolves true when the
 * confirming button was pressed, false for Cancel or Escape (the dialog's own `cancel`).
 * Focus starts on Cancel (the safe answer) and goes back to what had it before.
 */
export function confirmAction(options: ConfirmOptions): Promise<boolean> {
  const dialog = byId('confirm-dialog', HTMLDialogElement);
  const ok = byId('confirm-ok', HTMLButtonElement);
  const cancel = byId('confirm-cancel', HTMLButtonElement);
  const previous = document.activeElement instanceof HTMLElement ? document.activeElement : null;
  byId('confirm-title').textContent = options.title;
  byId('confirm-text').textContent = options.text;
  ok.textContent = options.confirm;
  ok.className = options.danger === false ? '' : 'danger';

  return new Promise((resolve) => {
    let answer = false;
    const onOk = () => {
      answer = true;
      dialog.close();
    };
    const onCancel = () => dialog.close();
    const onClose = () => {
      ok.removeEventListener('click', onOk);
      cancel.removeEventListener('click', onCancel);
      dialog.removeEventListener('close', onClose);
      if (previous?.isConnected) previous.focus();
      resolve(answer);
    };
    ok.addEventListener('click', onOk);
    cancel.addEventListener('click', onCancel);
    dialog.addEventListener('close', onClose);
    if (dialog.open) dialog.close();
    dialog.showModal();
    cancel.focus();
  });
}
