import { byId, h, time } from '../dom.js';
import type { GatehouseClient } from '../gatehouse-client.js';
import type { LiveConnection, LiveEventMap, LiveStatus } from '../realtime.js';
import type { ResourcesPart } from './resources-view.js';
import { describeAgent } from './sessions-view.js';

/** Why live updates stopped, by close reason (else by code). */
const STOPPED: Record<string, string> = {
  TOO_MANY_CONNECTIONS: 'too many windows are open on your account',
  TOO_MANY_MESSAGES: 'this page sent too many messages',
  INSUFFICIENT_SCOPE: 'this sign-in may not receive them',
  IDENTITY_CHANGED: 'the account changed',
  BAD_MESSAGE: 'the server did not understand this page, which may be out of date',
};

/** At most this many "new device" notices are kept (the newest). */
const MAX_DEVICE_NOTICES = 3;

export interface LivePart {
  /** Forgets the notices, on sign-out. */
  clear(): void;
}

/**
 * What the live connection shows on the signed-in page: a notice for each sign-in on another
 * device (`session.created`), the resource list kept current (`resource.*`), and a notice when
 * the server stopped live updates for good (after a reconnection, the list catches up with
 * what changed while there was no connection). The notices sit in a polite live region
 * (#live-notices), so that screen readers read them as they come; each can be dismissed. The
 * connection's state is on #app-view as `data-live` ('off', 'connecting', 'live',
 * 'reconnecting', 'stopped').
 */
export function createLiveView({
  live,
  client,
  resources,
}: {
  live: LiveConnection;
  client: GatehouseClient;
  resources: ResourcesPart;
}): LivePart {
  const region = byId('live-notices');
  const app = byId('app-view');

  function on<K extends keyof LiveEventMap>(name: K, handle: (data: LiveEventMap[K]) => void): void {
    live.addEventListener(name, (event) => {
      const data = (event as CustomEvent<unknown>).detail;
      if (data !== null && typeof data === 'object') handle(data as LiveEventMap[K]);
    });
  }

  function notice(kind: string, ...content: Array<Node | string>): HTMLElement {
    const text = h('p', {}, ...content);
    const dismiss = h(
      'button',
      { type: 'button', class: 'secondary' },
      'Dismiss',
      h('span', { class: 'visually-hidden' }, ' this notice'),
    );
    const item = h('div', { class: `notice live-notice ${kind}` }, text, dismiss);
    dismiss.addEventListener('click', () => {
      item.remove();
      byId('app-title').focus();
    });
    region.append(item);
    return item;
  }

  on('session.created', (session) => {
    if (typeof session.id !== 'string' || session.id === client.sessionId) return;
    if (region.querySelector(`[data-session-id="${CSS.escape(session.id)}"]`)) return;
    const details: Array<Node | string> = [];
    if (session.userAgent) details.push(h('span', { title: session.userAgent }, describeAgent(session.userAgent)));
    if (session.ip) details.push(`${details.length ? ', ' : ''}from ${session.ip}`);
    const at = typeof session.createdAt === 'string' ? [', at ', time(session.createdAt)] : [];
    const item = notice(
      'device',
      'Signed in on a new device',
      ...(details.length ? [': ', ...details] : []),
      ...at,
      '. If this was not you, sign out everywhere below and change your password.',
    );
    item.dataset.sessionId = session.id;
    const devices = region.querySelectorAll('.live-notice.device');
    for (let i = 0; i < devices.length - MAX_DEVICE_NOTICES; i++) devices[i]?.remove();
  });

  on('resource.created', (resource) => resources.liveCreated(resource));
  on('resource.updated', (resource) => resources.liveUpdated(resource));
  on('resource.deleted', ({ id }) => {
    if (typeof id === 'string') resources.liveDeleted(id);
  });

  live.addEventListener('status', (event) => {
    const { state, code, reason, reconnected } = (event as CustomEvent<LiveStatus>).detail;
    app.dataset.live = state;
    if (state === 'live' && reconnected) void resources.catchUp();
    region.querySelector('.live-notice.stopped')?.remove();
    if (state === 'stopped') {
      const why =
        (reason ? STOPPED[reason] : undefined) ??
        (code === 0
          ? 'this browser refused the connection'
          : `the server closed the connection (${code ?? 'no code'})`);
      notice('stopped', `Live updates are off: ${why}. Reload the page to turn them back on.`);
    }
  });

  return {
    clear() {
      region.replaceChildren();
    },
  };
}
