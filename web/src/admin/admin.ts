/**
 * The admin console (/admin, web/admin.html): its own page, signed in with the session of the
 * main page (the same refresh cookie, restored on load through GatehouseClient). Signed out,
 * it says so and links to the main page; signed in without the admin role (the access token's
 * `roles`), it shows only "This page is for administrators". What it shows follows the token,
 * but the server checks every call: the page holds no power of its own.
 *
 * Its screens (Users, Machine clients, Tenants, Audit log) are chosen by the address's
 * fragment: #users, #clients, #tenants, #audit?userId=…&type=… (the filters of the log).
 * Following a link there moves focus to the screen's heading.
 */
import { byId } from '../dom.js';
import { describeError } from '../form-errors.js';
import { GatehouseClient, type SignedOutDetail, type SignedOutReason } from '../gatehouse-client.js';
import { guardedBy } from '../views/signed-in.js';
import { createAuditScreen } from './audit-screen.js';
import { createClientsScreen } from './clients-screen.js';
import type { AdminScreen } from './screen.js';
import { createTenantsScreen } from './tenants-screen.js';
import { createUsersScreen } from './users-screen.js';

type ScreenName = 'users' | 'clients' | 'tenants' | 'audit';

const SCREENS: Record<ScreenName, { section: string; heading: string; nav: string; title: string }> = {
  users: { section: 'users-screen', heading: 'users-title', nav: 'nav-users', title: 'Users' },
  clients: { section: 'clients-screen', heading: 'clients-title', nav: 'nav-clients', title: 'Machine clients' },
  tenants: { section: 'tenants-screen', heading: 'tenants-title', nav: 'nav-tenants', title: 'Tenants' },
  audit: { section: 'audit-screen', heading: 'audit-title', nav: 'nav-audit', title: 'Audit log' },
};

type View = 'loading' | 'signed-out' | 'forbidden' | 'console';

const VIEWS: Record<View, string> = {
  loading: 'loading-view',
  'signed-out': 'signed-out-view',
  forbidden: 'forbidden-view',
  console: 'console-view',
};

const SIGNED_OUT_TEXT: Record<SignedOutReason | 'none', string> = {
  none: 'You are not signed in.',
  logout: 'You have signed out.',
  deleted: 'Your account has been deleted.',
  expired: 'Your session has ended.',
  'other-tab': 'You were signed out in another tab.',
};

const isScreen = (name: string): name is ScreenName => Object.hasOwn(SCREENS, name);

function main(): void {
  const client = new GatehouseClient();
  const deps = { client, guarded: guardedBy(client) };
  const screens: Record<ScreenName, AdminScreen> = {
    users: createUsersScreen(deps),
    clients: createClientsScreen(deps),
    tenants: createTenantsScreen(deps),
    audit: createAuditScreen(deps),
  };
  let view: View = 'loading';
  let current: ScreenName | null = null;
  /** The account the console is shown for. */
  let shownFor: string | null = null;
  /** Focus follows view changes the user caused, not the first render of the page. */
  let started = false;

  function show(next: View): void {
    for (const [name, id] of Object.entries(VIEWS)) byId(id).hidden = name !== next;
    byId('account-bar').hidden = next !== 'console';
    const changed = view !== next;
    view = next;
    if (next === 'signed-out') document.title = 'Sign in · Admin console · Gatehouse';
    if (next === 'forbidden') document.title = 'Administrators only · Gatehouse';
    if (changed && started && next !== 'console') byId(VIEWS[next]).querySelector<HTMLElement>('h1')?.focus();
  }

  function forget(): void {
    for (const screen of Object.values(screens)) screen.clear();
    current = null;
    shownFor = null;
    byId('whoami').textContent = '';
  }

  /** Shows the screen the address names (#users by default). */
  function route(focus: boolean): void {
    const [name = '', query = ''] = location.hash.slice(1).split('?', 2);
    const screen: ScreenName = isScreen(name) ? name : 'users';
    for (const [key, s] of Object.entries(SCREENS)) {
      byId(s.section).hidden = key !== screen;
      const link = byId(s.nav);
      if (key === screen) link.setAttribute('aria-current', 'page');
      else link.removeAttribute('aria-current');
    }
    document.title = `${SCREENS[screen].title} · Admin console · Gatehouse`;
    const changed = current !== screen;
    current = screen;
    if (focus && changed) byId(SCREENS[screen].heading).focus();
    screens[screen].enter(new URLSearchParams(query));
  }

  /** Which view the session allows: the console for a token with the admin role. */
  function decide(): void {
    if (!client.signedIn) return;
    if (!client.roles.includes('admin')) {
      if (view !== 'forbidden') forget();
      show('forbidden');
      return;
    }
    if (view === 'console' && shownFor === client.userId) return;
    // Another account signed in (in another tab): nothing of the previous one stays.
    if (view === 'console') forget();
    shownFor = client.userId;
    show('console');
    route(started);
    void deps.guarded(
      async () => {
        byId('whoami').textContent = (await client.me()).username;
      },
      () => undefined,
    );
  }

  function signedOut(reason: SignedOutReason | 'none', error?: unknown): void {
    forget();
    byId('signed-out-text').textContent = SIGNED_OUT_TEXT[reason];
    const errorBox = byId('signed-out-error');
    errorBox.textContent = error === undefined ? '' : describeError(error);
    errorBox.hidden = error === undefined;
    show('signed-out');
  }

  client.addEventListener('signedin', decide);
  // A new token may carry other roles (demoted meanwhile, here or elsewhere).
  client.addEventListener('tokenchanged', decide);
  client.addEventListener('signedout', (event) => signedOut((event as CustomEvent<SignedOutDetail>).detail.reason));

  window.addEventListener('hashchange', () => {
    if (view === 'console') route(true);
  });

  byId('logout-button').addEventListener('click', () => {
    void client.logout().catch(() => undefined);
  });

  void client
    .start()
    .then(
      (signedIn) => {
        if (!signedIn) signedOut('none');
      },
      (error: unknown) => signedOut('none', error),
    )
    .finally(() => {
      started = true;
    });
}

main();
