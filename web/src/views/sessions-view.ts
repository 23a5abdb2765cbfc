import { announce, byId, h, time } from '../dom.js';
import { describeError } from '../form-errors.js';
import { ApiError, type Session } from '../gatehouse-client.js';
import type { SignedInDeps, SignedInPart } from './signed-in.js';

/** The sessions card: where the user is signed in, sign out one device, sign out everywhere. */
export function createSessionsView({ client, guarded }: SignedInDeps): SignedInPart {
  const list = byId('session-list', HTMLUListElement);
  const errorBox = byId('sessions-error');
  const logoutAll = byId('logout-all', HTMLButtonElement);

  function showError(error: unknown): void {
    errorBox.textContent = describeError(error);
    errorBox.hidden = false;
  }

  async function load(): Promise<void> {
    await guarded(async () => {
      const sessions = await client.sessions();
      errorBox.hidden = true;
      sessions.sort((a, b) => Number(b.current) - Number(a.current) || b.lastUsedAt.localeCompare(a.lastUsedAt));
      list.replaceChildren(...sessions.map(sessionItem));
    }, showError);
  }

  function sessionItem(session: Session): HTMLLIElement {
    const device = describeAgent(session.userAgent);
    const button = h(
      'button',
      { type: 'button', class: 'secondary' },
      'Sign out this device',
      h(
        'span',
        { class: 'visually-hidden' },
        session.current
          ? ' (this browser)'
          : ` (${device}, last active ${new Date(session.lastUsedAt).toLocaleString()})`,
      ),
    );
    const li = h(
      'li',
      { class: `item session${session.current ? ' current' : ''}`, 'data-session-id': session.id },
      h(
        'div',
        { class: 'item-head' },
        h('h3', { title: session.userAgent ?? '' }, device),
        session.current ? h('span', { class: 'badge current' }, 'This browser') : null,
      ),
      h(
        'p',
        { class: 'meta' },
        session.ip ? `${session.ip} · ` : '',
        'signed in ',
        time(session.createdAt),
        ' · last active ',
        time(session.lastUsedAt),
      ),
      h('div', { class: 'actions' }, button),
    );
    button.addEventListener('click', () => {
      button.disabled = true;
      if (session.current) {
        // The client signs this page out whatever the server says.
        void client.logout().catch(() => undefined);
        return;
      }
      void guarded(
        async () => {
          try {
            await client.revokeSession(session.id);
          } catch (error) {
            if (!(error instanceof ApiError && error.status === 404)) throw error; // already gone
          }
          li.remove();
          byId('sessions-title').focus();
          announce(`Signed out ${device}.`);
        },
        (error) => {
          button.disabled = false;
          showError(error);
        },
      );
    });
    return li;
  }

  byId('sessions-reload').addEventListener('click', () => {
    void load().then(() => announce('Session list updated.'));
  });

  logoutAll.addEventListener('click', () => {
    logoutAll.disabled = true;
    void guarded(() => client.logoutAll(), showError).finally(() => {
      logoutAll.disabled = false;
    });
  });

  return {
    load,
    clear() {
      list.replaceChildren();
    },
  };
}

/** "Firefox on Linux" from a User-Agent header, else what can be told, else its start. */
export function describeAgent(userAgent: string | null): string {
  if (!userAgent) return 'Unknown device';
  const browser = /Edg\//.test(userAgent)
    ? 'Edge'
    : /Firefox\//.test(userAgent)
      ? 'Firefox'
      : /Chrom(e|ium)\//.test(userAgent)
        ? 'Chrome'
        : /Safari\//.test(userAgent)
          ? 'Safari'
          : null;
  const os = /Android/.test(userAgent)
    ? 'Android'
    : /iPhone|iPad/.test(userAgent)
      ? 'iOS'
      : /Windows/.test(userAgent)
        ? 'Windows'
        : /Macintosh|Mac OS X/.test(userAgent)
          ? 'macOS'
          : /CrOS/.test(userAgent)
            ? 'ChromeOS'
            : /Linux/.test(userAgent)
              ? 'Linux'
              : null;
  if (browser && os) return `${browser} on ${os}`;
  return browser ?? os ?? userAgent.slice(0, 60);
}
