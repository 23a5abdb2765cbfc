/**
 * Gatehouse browser client: the reference way to call Gatehouse from a web page.
 *
 * - The access token lives in this object's memory only: never in localStorage,
 *   sessionStorage or a readable cookie. The refresh token is the server's HttpOnly
 *   cookie (`Path=/auth`), which scripts cannot read; only the /auth calls send it.
 * - On page load (`start()`) and on any 401 the client calls `POST /auth/refresh` once,
 *   with `credentials: 'include'`, then retries the request once with the new token.
 * - Concurrent 401s share one refresh (single flight).
 * - Tabs of the same origin coordinate: a refresh runs under the Web Lock
 *   `gatehouse-refresh`, and its new access token is shared over the BroadcastChannel
 *   `gatehouse-auth`, so a tab that was waiting for the lock takes that token instead of
 *   refreshing again. Because a channel message may arrive after the lock is handed on,
 *   the refreshing tab also leaves a note "refreshed at <time>" (no token) in IndexedDB
 *   before it releases the lock; the next holder reads it and, when it is newer than its
 *   own token, waits (at most 1 s) for the message instead of refreshing. Sign-out in one
 *   tab signs the other tabs out too. (The server also accepts a just-rotated refresh
 *   token for a short grace window, so even uncoordinated tabs are not logged out;
 *   coordination only saves requests.)
 * - A refresh that fails with 401/403 ends the session: the client emits `signedout`
 *   and the page shows its login form. Any other 403 (`STEP_UP_REQUIRED`, `INVALID_MFA_CODE`
 *   ...) is only the call's error: it never signs out.
 * - Two-step sign-in: `login()` resolves `{ status: 'mfa-required', challenge }` for an
 *   account with an authenticator; `loginMfa()` then opens the session with a code.
 * - Federation: `federatedSignIn()` turns a token from an organisation's OpenID provider (handed
 *   to the page at `/federated-signin#subject_token=…`) into a session, like `login()`. Each such
 *   token works once.
 * - Tenants: `selectTenant()` (`POST /auth/tenant`) answers a new access token for the same
 *   session, with the claim `tid`; the client holds it (and shares it with the other tabs), so
 *   that every later call, `/resources` included, is in that tenant. The server keeps the
 *   choice on the session: refreshes keep `tid` while the user is a member. `tenantId` reads it
 *   from the held token, and the event `tenantchanged` says when it changed.
 * - Live events (web/src/realtime.ts): a WebSocket authenticated with `accessToken`, kept
 *   authenticated through `refresh()` (the same single-flight, tab-coordinated refresh) and the
 *   event `tokenchanged`; a close that says the session is over ends it here (`sessionEnded()`).
 */

export type Role = 'user' | 'admin';
export type Visibility = 'private' | 'public';

export interface User {
  id: string;
  username: string;
  email: string | null;
  displayName: string | null;
  roles: Role[];
  createdAt: string;
  /** Whether `email` was confirmed through a mailed link (false without an email). */
  emailVerified: boolean;
  /** Whether sign-in asks for a second step (servers before two-step sign-in omit it). */
  mfaEnabled?: boolean;
}

/** `GET /users/me`: the user, with the state of the email address. */
export interface Me extends User {
  /** An address waiting for its confirmation link(s) (`POST /users/me/email`), else null. */
  pendingEmail: string | null;
  /**
   * False for an account that signs in only through an organisation's provider (made on its
   * first federated sign-in): the calls that want the password do not apply to it. Servers
   * before federation omit it (every account had a password).
   */
  hasPassword?: boolean;
  /** The external identities linked to the account (servers before federation omit it). */
  identities?: LinkedIdentity[];
}

/**
 * An account at an organisation's OpenID provider linked to the user: signing in there
 * (`federatedSignIn`) opens this Gatehouse account.
 */
export interface LinkedIdentity {
  id: string;
  /** The provider's exact `iss` URL. */
  issuer: string;
  /** The provider's name in the server's configuration (`FEDERATION_ISSUERS[].name`). */
  issuerName: string;
  /** The user's id at the provider (`sub`), verbatim: often opaque. */
  subject: string;
  linkedAt: string;
  /** The last sign-in through it; null before the first. */
  lastSeenAt: string | null;
}

/** `deleteAccount()`: the password, or for an account without one its username typed again. */
export type AccountDeletionProof = { password: string } | { confirm: string };

/** `POST /users/me/email`: which mailed links must be opened before the address changes. */
export interface PendingEmailChange {
  pendingEmail: string;
  /** 'new': the link sent to the new address; 'current': the one sent to the (verified) current address. */
  confirmationsRequired: Array<'new' | 'current'>;
}

/** `POST /auth/email/verify`: what the confirmed link did. */
export type VerifyEmailStatus = 'verified' | 'email_changed' | 'awaiting_other_confirmation';

/** The answer of the mail-sending calls (202): a sentence that says nothing about the account. */
export interface Accepted {
  message: string;
}

export interface TokenResponse {
  accessToken: string;
  tokenType: 'Bearer';
  expiresIn: number;
}

export interface AuthResponse extends TokenResponse {
  user: User;
}

/** The second steps `POST /auth/login` offers for an account with two-step sign-in. */
export type MfaMethod = 'totp' | 'recovery_code';

/** A password accepted, a second step wanted (`403 MFA_REQUIRED`): the ticket for `loginMfa()`. */
export interface MfaChallenge {
  mfaToken: string;
  methods: MfaMethod[];
  /** Local clock, ms: when the server stops taking `mfaToken` (`mfaTokenExpiresIn`, 300 s by default). */
  expiresAt: number;
}

/** `login()`: signed in, or the password was right and a second step is needed. */
export type LoginResult = { status: 'signed-in'; user: User } | { status: 'mfa-required'; challenge: MfaChallenge };

/** `loginMfa()`: exactly one of the two. */
export type MfaProof = { code: string } | { recoveryCode: string };

export interface MfaLoginResult {
  user: User;
  /** Set when a recovery code was used: how many unused ones are left. */
  recoveryCodesRemaining: number | null;
}

/** `GET /auth/mfa`. */
export interface MfaStatus {
  enabled: boolean;
  /** Null unless an authenticator is confirmed (a pending enrolment is not shown). */
  totp: { confirmedAt: string; lastUsedAt: string | null } | null;
  recoveryCodesRemaining: number;
}

/** `POST /auth/mfa/totp`: a pending authenticator, to be confirmed with a code within 10 minutes. */
export interface TotpEnrolment {
  /** RFC 4648 base32, no padding. */
  secret: string;
  /** `otpauth://totp/...`: what the QR code carries. */
  otpauthUri: string;
  algorithm: string;
  digits: number;
  period: number;
  expiresAt: string;
}

export interface Session {
  id: string;
  createdAt: string;
  lastUsedAt: string;
  expiresAt: string;
  userAgent: string | null;
  ip: string | null;
  current: boolean;
}

export interface Resource {
  id: string;
  /** Null for a tenant resource whose author's account was deleted. */
  ownerId: string | null;
  /** The tenant the resource belongs to; null for a personal one. */
  tenantId?: string | null;
  title: string;
  body: string;
  visibility: Visibility;
  createdAt: string;
  updatedAt: string;
}

/** The built-in tenant roles; a tenant may define custom ones (any other name). */
export type BuiltInTenantRole = 'owner' | 'admin' | 'member';

/** A tenant (organisation) as the caller sees it. */
export interface Tenant {
  id: string;
  /** Unique and immutable: 3–40 lower-case letters, digits and inner hyphens. */
  slug: string;
  name: string;
  createdAt: string;
  /** The caller's roles there (may be empty: the tenant is visible, nothing more). */
  myRoles: string[];
}

export interface TenantInput {
  name: string;
  slug: string;
}

export interface TenantMember {
  userId: string;
  username: string;
  displayName: string | null;
  roles: string[];
  joinedAt: string;
}

/** A pending invitation (its token is only in the mail). */
export interface TenantInvitation {
  id: string;
  tenantId: string;
  email: string;
  roles: string[];
  invitedBy: string;
  createdAt: string;
  expiresAt: string;
}

/** `GET /tenants/:id/roles`: the built-in roles and the tenant's custom ones. */
export interface TenantRoleDefinition {
  name: string;
  builtIn: boolean;
  permissions: string[];
}

/** `POST /tenants/invitations/accept`: the tenant joined, and the roles held there. */
export interface AcceptedInvitation {
  tenant: Tenant;
  roles: string[];
}

export interface TenantChangedDetail {
  /** The tenant now selected in this session; null for none (personal). */
  tenantId: string | null;
}

export interface Page<T> {
  items: T[];
  nextCursor: string | null;
}

export interface SignupInput {
  username: string;
  password: string;
  email?: string;
  displayName?: string;
}

export interface ProfilePatch {
  displayName?: string | null;
  email?: string | null;
}

export interface ResourceInput {
  title?: string;
  body?: string;
  visibility?: Visibility;
}

// ---- administration (the admin console, /admin) and the account's own activity --------

/** A user as the admin calls (`GET /users`, `PATCH /users/:id`) return it. */
export interface AdminUser extends User {
  /** 'service': the service user of a machine client (no password, no sign-in). */
  kind?: 'person' | 'service';
  /** Whether the account is disabled: only GET /users/:id says (the list keeps the User shape). */
  disabled?: boolean;
}

/** `PATCH /users/:id`: `roles` is `['user']` or `['user', 'admin']`. */
export interface AdminUserPatch {
  roles?: Role[];
  disabled?: boolean;
}

/** A live session of a user, as an admin sees it (`GET /users/:id/sessions`). */
export interface AdminSession {
  id: string;
  createdAt: string;
  lastUsedAt: string;
  expiresAt: string;
  userAgent: string | null;
  ip: string | null;
}

/** One security event of the audit log (`GET /audit-events`). */
export interface AuditEvent {
  id: string;
  /** `login.succeeded`, `account.disabled`, `client.secret_revoked` ... */
  type: string;
  createdAt: string;
  /** The account the event is about, and its username (null once the account is deleted). */
  userId: string | null;
  username: string | null;
  /** The signed-in caller whose request made it (an admin acting on someone), null for none. */
  actorId: string | null;
  actorUsername: string | null;
  sessionId: string | null;
  ip: string | null;
  userAgent: string | null;
  requestId: string | null;
  details: Record<string, unknown> | null;
}

/** `GET /audit-events` filters; `type` is a list of exact types or families (`login.*`). */
export interface AuditFilter {
  userId?: string;
  actorId?: string;
  type?: string[];
  /** ISO 8601 instants: `from` inclusive, `to` exclusive. */
  from?: string;
  to?: string;
  cursor?: string | null;
  limit?: number;
}

/** One of the signed-in user's own security events (`GET /users/me/activity`). */
export interface Activity {
  id: string;
  type: string;
  createdAt: string;
  ip: string | null;
  userAgent: string | null;
  sessionId: string | null;
  /** Whether it happened in the session this page is signed in with. */
  currentSession: boolean;
  /** Whether an administrator did it (disabled the account, reset two-step sign-in ...). */
  byAdministrator: boolean;
}

/** A machine client's secret as listed: never its value. */
export interface ClientSecret {
  id: string;
  label: string | null;
  /** The first characters (`gcs_` and 4), to recognise it. */
  prefix: string;
  createdAt: string;
  expiresAt: string | null;
  lastUsedAt: string | null;
  revokedAt: string | null;
}

/** A machine client (OAuth 2.0 client credentials). */
export interface OAuthClient {
  id: string;
  /** The public `client_id`. */
  clientId: string;
  name: string;
  description: string | null;
  allowedScopes: string[];
  accessTokenTtl: number | null;
  tokenExchange: boolean;
  disabled: boolean;
  serviceUserId: string;
  secrets: ClientSecret[];
  createdAt: string;
}

/** A new secret: `value` is in this answer and nowhere else, ever. */
export interface IssuedSecret {
  id: string;
  value: string;
  expiresAt: string | null;
}

export interface NewClientInput {
  name: string;
  description?: string | null;
  allowedScopes: string[];
  accessTokenTtl?: number | null;
  secretExpiresAt?: string | null;
}

export interface ClientPatch {
  name?: string;
  description?: string | null;
  allowedScopes?: string[];
  accessTokenTtl?: number | null;
  disabled?: boolean;
}

/** The part of `/.well-known/oauth-authorization-server` the console reads. */
export interface AuthorizationServerMetadata {
  scopes_supported: string[];
}

/** An error answer from Gatehouse (or `status 0` / `NETWORK_ERROR` when it could not be reached). */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    /** The contract's machine code (`INVALID_CREDENTIALS`, `VALIDATION_FAILED`, ...). */
    readonly code: string,
    /** The body's `message`, always as an array (validation errors carry several). */
    readonly messages: string[],
    /** Seconds from `Retry-After` on a 429, else null. */
    readonly retryAfter: number | null = null,
    readonly requestId: string | null = null,
    options?: { cause?: unknown },
  ) {
    super(messages.join('; ') || `HTTP ${status}`, options);
    this.name = 'ApiError';
  }

  static async fromResponse(res: Response): Promise<ApiError> {
    return ApiError.fromBody(res, await readJson(res));
  }

  /** From an error answer whose body was already read (`null` when it was not JSON). */
  static fromBody(res: Response, body: unknown): ApiError {
    const { code, message } = (body ?? {}) as { code?: unknown; message?: unknown };
    const messages = Array.isArray(message)
      ? message.filter((m): m is string => typeof m === 'string')
      : typeof message === 'string'
        ? [message]
        : [];
    const retryAfter = res.headers.get('Retry-After');
    return new ApiError(
      res.status,
      typeof code === 'string' ? code : `HTTP_${res.status}`,
      messages,
      retryAfter !== null && /^\d+$/.test(retryAfter) ? Number(retryAfter) : null,
      res.headers.get('X-Request-Id'),
    );
  }
}

export type SignedOutReason =
  /** This tab signed out (logout, logout-all, or this device's session removed). */
  | 'logout'
  /** This tab deleted the account (`deleteAccount()`). */
  | 'deleted'
  /** The session ended on the server: a refresh failed with 401/403. */
  | 'expired'
  /** Another tab of this origin signed out. */
  | 'other-tab';

export interface SignedInDetail {
  /** 'this-tab' after start/login/signup here; 'other-tab' when a token came from another tab. */
  source: 'this-tab' | 'other-tab';
}

export interface SignedOutDetail {
  reason: SignedOutReason;
}

export interface GatehouseClientOptions {
  /** Where Gatehouse is, e.g. `https://auth.example.com`; '' (default) = this page's origin. */
  baseUrl?: string;
  /** Web Lock name shared by the tabs; default `gatehouse-refresh`. */
  lockName?: string;
  /** BroadcastChannel name shared by the tabs; default `gatehouse-auth`. */
  channelName?: string;
  /** How long a refresh may take before it counts as a network failure; default 15 s. */
  refreshTimeoutMs?: number;
  /** The `fetch` to call Gatehouse with; default `globalThis.fetch` (tests pass a fake). */
  fetch?: typeof fetch;
}

/** 401 codes about a token the call carries in its body, not about the bearer: never refreshed. */
const NOT_ABOUT_THE_SESSION: ReadonlySet<string> = new Set(['FEDERATED_TOKEN_INVALID', 'FEDERATED_TOKEN_REUSED']);

type TabMessage =
  | { type: 'token'; accessToken: string; expiresAt: number }
  | { type: 'signed-out' }
  /** This tab is signing the session out (or deleting the account): the server's word follows. */
  | { type: 'signing-out' };

/** How long another tab's `signing-out` explains this session's end (ms). */
const OTHER_TAB_SIGN_OUT_MS = 10_000;

interface HeldToken {
  value: string;
  /** Local clock, ms; informative (the client reacts to 401s, it does not guess). */
  expiresAt: number;
  /** Local clock, ms: when this tab got the token (from the server or another tab). */
  obtainedAt: number;
  sessionId: string | null;
  subject: string | null;
  /** The `tid` claim: the tenant selected in the session. */
  tenantId: string | null;
}

/**
 * Events: `signedin` (CustomEvent<SignedInDetail>) when this tab goes from signed out to
 * signed in, or to another session; `signedout` (CustomEvent<SignedOutDetail>);
 * `tenantchanged` (CustomEvent<TenantChangedDetail>) when a new token of the same session
 * names another tenant (`selectTenant()` here or in another tab, or a refresh that dropped it);
 * `tokenchanged` (Event) after each of those, and whenever another access token is held
 * (a refresh, here or in another tab).
 */
export class GatehouseClient extends EventTarget {
  readonly #base: string;
  readonly #fetch: typeof fetch;
  readonly #lockName: string;
  readonly #refreshTimeoutMs: number;
  readonly #channel: BroadcastChannel | null;
  readonly #note = new RefreshNote();
  /** Called whenever the held token changes. */
  readonly #tokenWaiters = new Set<() => void>();

  #token: HeldToken | null = null;
  /** Bumped whenever the held token changes (new, adopted or dropped). */
  #generation = 0;
  /**
   * Bumped by every sign-out (#drop), whatever ended the session: a refresh answered after it
   * renewed the session that ended, and its token is not taken.
   */
  #signOuts = 0;
  /** The session (`sid`) this tab last saw end: another tab's late token for it is not taken. */
  #endedSession: string | null = null;
  #refreshing: Promise<boolean> | null = null;
  /** A sign-out (or deletion) this tab has asked the server for and not yet heard back about. */
  #ending: SignedOutReason | null = null;
  /** When another tab said it was signing out (Date.now() ms; 0: never). */
  #otherTabEndingAt = 0;

  constructor(options: GatehouseClientOptions = {}) {
    super();
    this.#base = (options.baseUrl ?? '').replace(/\/+$/, '');
    this.#fetch = options.fetch ?? globalThis.fetch.bind(globalThis);
    this.#lockName = options.lockName ?? 'gatehouse-refresh';
    this.#refreshTimeoutMs = options.refreshTimeoutMs ?? 15_000;
    this.#channel =
      typeof BroadcastChannel === 'function' ? new BroadcastChannel(options.channelName ?? 'gatehouse-auth') : null;
    this.#channel?.addEventListener('message', (event: MessageEvent<TabMessage>) => this.#onTabMessage(event.data));
  }

  get signedIn(): boolean {
    return this.#token !== null;
  }

  /** The signed-in user's id (the token's `sub`), null when signed out. */
  get userId(): string | null {
    return this.#token?.subject ?? null;
  }

  /** The tenant selected in this session (the token's `tid`); null for none (personal) or signed out. */
  get tenantId(): string | null {
    return this.#token?.tenantId ?? null;
  }

  /**
   * The roles the held access token carries (its `roles` claim, as they were when it was
   * signed); [] when signed out. What pages show follows it; the server checks every call.
   */
  get roles(): Role[] {
    return this.#token ? readRoles(this.#token.value) : [];
  }

  /** The session this tab is signed in to (the token's `sid`), null when signed out. */
  get sessionId(): string | null {
    return this.#token?.sessionId ?? null;
  }

  /**
   * The access token held now, for what cannot send it as a bearer: the first message of a
   * WebSocket (web/src/realtime.ts). Still in memory only; null when signed out.
   */
  get accessToken(): string | null {
    return this.#token?.value ?? null;
  }

  /** When the held access token was obtained and when it expires (local clock, ms); null when signed out. */
  get tokenLifetime(): { obtainedAt: number; expiresAt: number } | null {
    return this.#token ? { obtainedAt: this.#token.obtainedAt, expiresAt: this.#token.expiresAt } : null;
  }

  /**
   * A new access token now, through the refresh cookie: the same refresh as a 401's (single
   * flight, coordinated with the other tabs), for a caller that must not wait for a 401 (a live
   * connection before its token expires). Resolves true once a new token is held
   * (`tokenchanged`), false when signed out or the session is over (then `signedout`,
   * 'expired'). Rejects with an ApiError on a passing failure (network, 429, 5xx).
   */
  async refresh(): Promise<boolean> {
    if (!this.#token) return false;
    const refreshed = await this.#refreshOnce(this.#generation);
    if (!refreshed) this.#drop('expired', false);
    return refreshed;
  }

  /**
   * The server said this session is over (a live connection closed with 4410
   * SESSION_REVOKED): the token is forgotten here without a request, and `signedout` says
   * why: the sign-out this tab (or another tab) asked for, else 'expired'. The other tabs are
   * not told: each hears it from the server itself, or at its next call.
   */
  sessionEnded(): void {
    const otherTab = Date.now() - this.#otherTabEndingAt < OTHER_TAB_SIGN_OUT_MS;
    this.#drop(this.#ending ?? (otherTab ? 'other-tab' : 'expired'), false);
  }

  /**
   * Page load: restore the session through the refresh cookie (one `POST /auth/refresh`).
   * Resolves true when signed in, false when there is no live session. Rejects with an
   * ApiError only for a passing failure (network, 429, 5xx): the session may still be alive.
   */
  async start(): Promise<boolean> {
    if (this.#token) return true;
    return this.#refreshOnce(this.#generation);
  }

  async signup(input: SignupInput): Promise<User> {
    return (await this.#signIn('/auth/signup', input)).user;
  }

  /**
   * `username` may also be the account's email. For an account with two-step sign-in the right
   * password opens no session yet: the result is `mfa-required` with the challenge to pass to
   * `loginMfa()`. Every other refusal rejects with an ApiError (401 INVALID_CREDENTIALS ...).
   */
  async login(username: string, password: string): Promise<LoginResult> {
    const res = await this.#send('POST', '/auth/login', { username, password }, null);
    if (res.status === 403) {
      const body = await readJson(res);
      const challenge = mfaChallengeOf(body);
      if (challenge) return { status: 'mfa-required', challenge };
      throw ApiError.fromBody(res, body);
    }
    return { status: 'signed-in', user: (await this.#adopt(res)).user };
  }

  /**
   * The second step of a sign-in: the authenticator's current code, or one of the recovery
   * codes. Opens the session like `login()` (refresh cookie, `signedin`). A wrong code rejects
   * with 401 INVALID_MFA_CODE (the challenge lives on, for a few tries); a dead challenge
   * (expired, used, too many wrong codes) with 401 MFA_TOKEN_INVALID: back to the password;
   * 429 TOO_MANY_ATTEMPTS carries `retryAfter`. These 401s are not about a session: nothing
   * is refreshed or signed out.
   */
  async loginMfa(challenge: MfaChallenge | string, proof: MfaProof): Promise<MfaLoginResult> {
    const mfaToken = typeof challenge === 'string' ? challenge : challenge.mfaToken;
    const result = await this.#signIn<AuthResponse & { recoveryCodesRemaining?: number }>('/auth/login/mfa', {
      mfaToken,
      ...proof,
    });
    return {
      user: result.user,
      recoveryCodesRemaining: typeof result.recoveryCodesRemaining === 'number' ? result.recoveryCodesRemaining : null,
    };
  }

  /**
   * Signs in with a token from an organisation's OpenID provider (its id token or access token,
   * at most 5 minutes old): opens a session like `login()` (access token held here, refresh
   * cookie set by the server, `signedin`). A token works once: 401 FEDERATED_TOKEN_REUSED the
   * second time; 401 FEDERATED_TOKEN_INVALID (bad, expired or too old), 403 ACCOUNT_DISABLED /
   * FEDERATED_USER_NOT_PROVISIONED, 503 FEDERATION_UNAVAILABLE (the provider's keys cannot be
   * fetched: the token is not used up, it may be tried again), 429. These 401s are not about a
   * session: nothing is refreshed or signed out.
   */
  async federatedSignIn(subjectToken: string): Promise<User> {
    return (await this.#signIn('/auth/federated/session', { subjectToken })).user;
  }

  /** Ends this browser's session (cookie and bearer) here and in the other tabs. */
  async logout(): Promise<void> {
    const token = this.#token?.value ?? null;
    try {
      const res = await this.#ends('logout', () => this.#send('POST', '/auth/logout', undefined, token));
      if (!res.ok) throw await ApiError.fromResponse(res);
    } finally {
      this.#drop('logout', true);
    }
  }

  /** Ends every session of the user, on every device. */
  async logoutAll(): Promise<void> {
    await this.#ends('logout', () => this.request<void>('POST', '/auth/logout-all'));
    this.#drop('logout', true);
  }

  /**
   * An authenticated call. A 401 triggers one (shared) refresh and one retry; when the
   * refresh fails the client signs out (event `signedout`, reason 'expired') and the call
   * rejects with the 401. Any other error status rejects with an ApiError, and so does a 401
   * about a provider's token sent in the body (FEDERATED_TOKEN_INVALID / _REUSED): no refresh.
   */
  async request<T>(method: string, path: string, body?: unknown): Promise<T> {
    if (!this.#token && !(await this.#refreshOnce(this.#generation))) {
      throw new ApiError(401, 'UNAUTHORIZED', ['Not signed in']);
    }
    const generation = this.#generation;
    let res = await this.#send(method, path, body, this.#token?.value ?? null);
    if (res.status === 401) {
      const refused = await ApiError.fromResponse(res);
      // About a token in the body (a provider's, being linked): the bearer was fine.
      if (NOT_ABOUT_THE_SESSION.has(refused.code)) throw refused;
      // Rejects on a passing failure (network, 429, 5xx): the session is kept, the error reported.
      const refreshed = await this.#refreshOnce(generation);
      if (!refreshed) {
        this.#drop('expired', false);
        throw refused;
      }
      res = await this.#send(method, path, body, this.#token?.value ?? null);
      if (res.status === 401) {
        const error = await ApiError.fromResponse(res);
        if (NOT_ABOUT_THE_SESSION.has(error.code)) throw error;
        // A brand-new token refused: the session was revoked meanwhile.
        this.#drop('expired', false);
        throw error;
      }
    }
    if (!res.ok) throw await ApiError.fromResponse(res);
    if (res.status === 204) return undefined as T;
    return (await res.json()) as T;
  }

  me(): Promise<Me> {
    return this.request('GET', '/users/me');
  }

  /**
   * Display name (and, with EMAIL_CHANGE_MODE=immediate only, email: the default server answers
   * 400 EMAIL_CHANGE_REQUIRES_VERIFICATION; use `changeEmail`).
   */
  updateMe(patch: ProfilePatch): Promise<User> {
    return this.request('PATCH', '/users/me', patch);
  }

  /**
   * Deletes the account, with its sessions and personal resources; this tab and the others are
   * signed out (`signedout`, reason 'deleted' here). An account with a password gives it (403
   * INVALID_PASSWORD); one without (`Me.hasPassword` false) types its username as `confirm` (400
   * CONFIRMATION_MISMATCH), from a sign-in at its provider less than 5 minutes old (else 403
   * STEP_UP_REQUIRED). 409 LAST_ADMIN / LAST_OWNER, 429.
   */
  async deleteAccount(proof: AccountDeletionProof): Promise<void> {
    await this.#ends('deleted', () => this.request<void>('DELETE', '/users/me', proof));
    this.#drop('deleted', true);
  }

  // ---- external identities (federation) -------------------------------------

  /** The external identities linked to the user. */
  identities(): Promise<LinkedIdentity[]> {
    return this.request('GET', '/users/me/identities');
  }

  /**
   * Links the identity a provider's token proves (at most 5 minutes old; it is used up) to this
   * account, whose password proves it too. 403 INVALID_PASSWORD / NO_LOCAL_PASSWORD; 401
   * FEDERATED_TOKEN_INVALID / FEDERATED_TOKEN_REUSED (about that token, not the session: no
   * refresh, no sign-out); 409 IDENTITY_ALREADY_LINKED; 503 FEDERATION_UNAVAILABLE; 429.
   */
  linkIdentity(subjectToken: string, password: string): Promise<LinkedIdentity> {
    return this.request('POST', '/users/me/identities', { subjectToken, password });
  }

  /** Unlinks an external identity. 409 LAST_LOGIN_METHOD (no password, no other identity), 404. */
  unlinkIdentity(identityId: string): Promise<void> {
    return this.request('DELETE', `/users/me/identities/${encodeURIComponent(identityId)}`);
  }

  // ---- account recovery and email verification ----------------------------
  // The calls that carry a mailed token, or that anyone may make, are public: they send no
  // bearer and never trigger the refresh-and-retry (a 401 there is just an error).

  /**
   * A verification link by mail. Signed in, without `email`: for the user's own address
   * (bearer; 400 NO_EMAIL, 409 EMAIL_ALREADY_VERIFIED, 429). With `email`: the anonymous
   * request (e.g. from a sign-in refused with EMAIL_NOT_VERIFIED), always 202.
   */
  requestVerification(email?: string): Promise<Accepted> {
    return email === undefined
      ? this.request('POST', '/auth/email/verify-request')
      : this.#public('POST', '/auth/email/verify-request', { email });
  }

  /** Confirms an address with the token of a mailed link (verification or email change). */
  async verifyEmail(token: string): Promise<VerifyEmailStatus> {
    const { status } = await this.#public<{ status: VerifyEmailStatus }>('POST', '/auth/email/verify', { token });
    return status;
  }

  /** Mails a reset link for `login` (username or email). The answer is the same whether or not the account exists. */
  forgotPassword(login: string): Promise<Accepted> {
    return this.#public('POST', '/auth/password/forgot', { login });
  }

  /**
   * Sets a new password with the token of a reset link. The server signs every session of the
   * account out and opens none: the user signs in afterwards.
   */
  resetPassword(token: string, newPassword: string): Promise<void> {
    return this.#public('POST', '/auth/password/reset', { token, newPassword });
  }

  /** Starts a change of email address; it applies once the mailed link(s) are opened. */
  changeEmail(newEmail: string, password: string): Promise<PendingEmailChange> {
    return this.request('POST', '/users/me/email', { newEmail, password });
  }

  /** Cancels a pending change of email address (idempotent). */
  cancelEmailChange(): Promise<void> {
    return this.request('DELETE', '/users/me/email/pending');
  }

  // ---- two-step sign-in (TOTP + recovery codes) ----------------------------
  // Wrong passwords and codes are 403s here (not 401s): they never refresh or sign out.

  mfaStatus(): Promise<MfaStatus> {
    return this.request('GET', '/auth/mfa');
  }

  /**
   * Starts adding an authenticator (checks the password; replaces a pending one): the secret
   * and its `otpauth://` URI, for the QR code. 403 INVALID_PASSWORD / NO_LOCAL_PASSWORD,
   * 409 MFA_ALREADY_ENABLED.
   */
  enrolTotp(password: string): Promise<TotpEnrolment> {
    return this.request('POST', '/auth/mfa/totp', { password });
  }

  /**
   * Confirms the pending authenticator with its current code: two-step sign-in is on. Returns
   * the 10 recovery codes (shown once). The server also upgrades this session (every other
   * one is signed out): the new access token is adopted here and shared with the other tabs.
   * 400 MFA_ENROLLMENT_NOT_FOUND (none, or older than 10 minutes), 403 INVALID_MFA_CODE, 429.
   */
  async confirmTotp(code: string): Promise<string[]> {
    const result = await this.request<TokenResponse & { recoveryCodes: string[] }>('POST', '/auth/mfa/totp/confirm', {
      code,
    });
    if (typeof result.accessToken === 'string' && result.accessToken) {
      this.#hold(result, 'this-tab');
      this.#post({ type: 'token', accessToken: result.accessToken, expiresAt: this.#token?.expiresAt ?? 0 });
    }
    return result.recoveryCodes;
  }

  /** A new set of recovery codes (the old set stops working), for an authenticator code. */
  async regenerateRecoveryCodes(code: string): Promise<string[]> {
    const { recoveryCodes } = await this.request<{ recoveryCodes: string[] }>('POST', '/auth/mfa/recovery-codes', {
      code,
    });
    return recoveryCodes;
  }

  /**
   * Turns two-step sign-in off; `code` is an authenticator code or a recovery code. The other
   * sessions are signed out. 409 MFA_NOT_ENABLED, 403 INVALID_PASSWORD / INVALID_MFA_CODE.
   */
  disableMfa(password: string, code: string): Promise<void> {
    return this.request('DELETE', '/auth/mfa', { password, code });
  }

  sessions(): Promise<Session[]> {
    return this.request('GET', '/auth/sessions');
  }

  /** Revokes one of the user's sessions (another device, or this one). */
  revokeSession(id: string): Promise<void> {
    return this.request('DELETE', `/auth/sessions/${encodeURIComponent(id)}`);
  }

  /** The resources of the selected tenant (`tenantId`), or the personal ones when none is. */
  listResources(cursor?: string | null, limit = 20): Promise<Page<Resource>> {
    return this.request('GET', `/resources?${pageQuery(cursor, limit)}`);
  }

  createResource(input: ResourceInput & { title: string }): Promise<Resource> {
    return this.request('POST', '/resources', input);
  }

  updateResource(id: string, patch: ResourceInput): Promise<Resource> {
    return this.request('PATCH', `/resources/${encodeURIComponent(id)}`, patch);
  }

  deleteResource(id: string): Promise<void> {
    return this.request('DELETE', `/resources/${encodeURIComponent(id)}`);
  }

  // ---- tenants ---------------------------------------------------------------
  // Reads need the token scope tenants:read, changes tenants:write; what the user may do in a
  // tenant follows their roles there (403 INSUFFICIENT_TENANT_PERMISSION). A tenant the user
  // is not in answers 404 TENANT_NOT_FOUND, like one that does not exist.

  /** The user's tenants, newest first, with their roles in each. */
  listTenants(cursor?: string | null, limit = 100): Promise<Page<Tenant>> {
    return this.request('GET', `/tenants?${pageQuery(cursor, limit)}`);
  }

  /** A new tenant; the user becomes its owner. 409 TENANT_SLUG_TAKEN / TENANT_LIMIT_REACHED, 403 TENANT_CREATION_DISABLED. */
  createTenant(input: TenantInput): Promise<Tenant> {
    return this.request('POST', '/tenants', input);
  }

  getTenant(tenantId: string): Promise<Tenant> {
    return this.request('GET', tenantPath(tenantId));
  }

  /** Renames a tenant (tenant:update); the slug never changes. */
  renameTenant(tenantId: string, name: string): Promise<Tenant> {
    return this.request('PATCH', tenantPath(tenantId), { name });
  }

  /** Deletes a tenant with its resources, members and invitations (owners); `confirm` is its slug. */
  deleteTenant(tenantId: string, confirm: string): Promise<void> {
    return this.request('DELETE', tenantPath(tenantId), { confirm });
  }

  /** The members and their roles, newest first (members:read). */
  listMembers(tenantId: string, cursor?: string | null, limit = 100): Promise<Page<TenantMember>> {
    return this.request('GET', `${tenantPath(tenantId)}/members?${pageQuery(cursor, limit)}`);
  }

  /** Adds an existing account (members:write). 404 USER_NOT_FOUND, 409 ALREADY_MEMBER. */
  addMember(tenantId: string, username: string, roles: string[]): Promise<TenantMember> {
    return this.request('POST', `${tenantPath(tenantId)}/members`, { username, roles });
  }

  /** Replaces a member's role list (members:write). 409 LAST_OWNER. */
  setMemberRoles(tenantId: string, userId: string, roles: string[]): Promise<TenantMember> {
    return this.request('PATCH', `${tenantPath(tenantId)}/members/${encodeURIComponent(userId)}`, { roles });
  }

  /** Removes a member (members:write); the user's own id leaves the tenant. 409 LAST_OWNER. */
  removeMember(tenantId: string, userId: string): Promise<void> {
    return this.request('DELETE', `${tenantPath(tenantId)}/members/${encodeURIComponent(userId)}`);
  }

  /** The built-in and custom roles of a tenant, with their permissions (members:read). */
  listTenantRoles(tenantId: string): Promise<TenantRoleDefinition[]> {
    return this.request('GET', `${tenantPath(tenantId)}/roles`);
  }

  /**
   * Mails an invitation link to `email` (invitations:write); inviting the same address again
   * replaces the pending one. 409 ALREADY_MEMBER, 429.
   */
  invite(tenantId: string, email: string, roles: string[]): Promise<TenantInvitation> {
    return this.request('POST', `${tenantPath(tenantId)}/invitations`, { email, roles });
  }

  /** The pending invitations (invitations:write). */
  listInvitations(tenantId: string, cursor?: string | null, limit = 100): Promise<Page<TenantInvitation>> {
    return this.request('GET', `${tenantPath(tenantId)}/invitations?${pageQuery(cursor, limit)}`);
  }

  /** Revokes a pending invitation: its link stops working. 404 NOT_FOUND when it is no longer pending. */
  revokeInvitation(tenantId: string, invitationId: string): Promise<void> {
    return this.request('DELETE', `${tenantPath(tenantId)}/invitations/${encodeURIComponent(invitationId)}`);
  }

  /**
   * Joins the tenant of an invitation link. The user's verified email must be the invited
   * address: else 403 INVITATION_EMAIL_MISMATCH (the invitation stays usable). 400
   * INVITATION_INVALID (used, revoked, replaced, unknown) / INVITATION_EXPIRED, 409 ALREADY_MEMBER, 429.
   */
  acceptInvitation(token: string): Promise<AcceptedInvitation> {
    return this.request('POST', '/tenants/invitations/accept', { token });
  }

  /**
   * Selects a tenant in this session (null: none, personal): the server answers a new access
   * token of the same session with `tid`, which the client holds from now on (so every later
   * call is in that tenant) and shares with the other tabs of the session. Fires
   * `tenantchanged` when the tenant changed. 404 TENANT_NOT_FOUND for a tenant the user is not in.
   */
  async selectTenant(tenantId: string | null): Promise<void> {
    const tokens = await this.request<TokenResponse>('POST', '/auth/tenant', { tenantId });
    this.#hold(tokens, 'this-tab');
    this.#post({ type: 'token', accessToken: tokens.accessToken, expiresAt: this.#token?.expiresAt ?? 0 });
  }

  // ---- the account's activity and administration ------------------------------
  // The admin calls need the admin role and the scopes `users:admin` / `clients:admin` in the
  // token (403 INSUFFICIENT_ROLE / INSUFFICIENT_SCOPE otherwise, STEP_UP_REQUIRED under
  // ADMIN_REQUIRE_MFA from a sign-in without a second step): the server checks every one.

  /** The user's own security events, newest first (sign-ins, password changes ...). */
  activity(cursor?: string | null, limit = 20): Promise<Page<Activity>> {
    return this.request('GET', `/users/me/activity?${pageQuery(cursor, limit)}`);
  }

  /** Admin: users, oldest first; `q` matches username, email or display name (case-insensitive). */
  adminListUsers(options: { q?: string; cursor?: string | null; limit?: number } = {}): Promise<Page<AdminUser>> {
    const query = new URLSearchParams(pageQuery(options.cursor, options.limit ?? 20));
    if (options.q) query.set('q', options.q);
    return this.request('GET', `/users?${query.toString()}`);
  }

  /** Admin: roles and/or disabled. 403 LAST_ADMIN when no enabled administrator would be left. */
  adminUpdateUser(userId: string, patch: AdminUserPatch): Promise<AdminUser> {
    return this.request('PATCH', userPath(userId), patch);
  }

  /** Admin: switches off a user's two-step sign-in; every session of theirs ends. 409 MFA_NOT_ENABLED. */
  adminResetMfa(userId: string): Promise<void> {
    return this.request('DELETE', `${userPath(userId)}/mfa`);
  }

  /** Admin: one user, with `disabled` (which the list does not carry). 404 USER_NOT_FOUND. */
  adminGetUser(userId: string): Promise<AdminUser> {
    return this.request('GET', userPath(userId));
  }

  /** Admin: a user's live sessions, newest first. */
  adminUserSessions(userId: string): Promise<AdminSession[]> {
    return this.request('GET', `${userPath(userId)}/sessions`);
  }

  /** Admin: ends one session of a user (its refresh token and access tokens stop working). */
  adminEndUserSession(userId: string, sessionId: string): Promise<void> {
    return this.request('DELETE', `${userPath(userId)}/sessions/${encodeURIComponent(sessionId)}`);
  }

  /** Admin: ends every session of a user. */
  adminEndUserSessions(userId: string): Promise<void> {
    return this.request('DELETE', `${userPath(userId)}/sessions`);
  }

  /** Admin: the audit log, newest first. */
  auditEvents(filter: AuditFilter = {}): Promise<Page<AuditEvent>> {
    const query = new URLSearchParams(pageQuery(filter.cursor, filter.limit ?? 50));
    if (filter.userId) query.set('userId', filter.userId);
    if (filter.actorId) query.set('actorId', filter.actorId);
    if (filter.type?.length) query.set('type', filter.type.join(','));
    if (filter.from) query.set('from', filter.from);
    if (filter.to) query.set('to', filter.to);
    return this.request('GET', `/audit-events?${query.toString()}`);
  }

  /** Admin: machine clients, newest first. */
  listClients(cursor?: string | null, limit = 50): Promise<Page<OAuthClient>> {
    return this.request('GET', `/oauth/clients?${pageQuery(cursor, limit)}`);
  }

  getClient(id: string): Promise<OAuthClient> {
    return this.request('GET', clientPath(id));
  }

  /** Admin: a new machine client and its first secret, whose value is in this answer only. */
  createClient(input: NewClientInput): Promise<{ client: OAuthClient; secret: IssuedSecret }> {
    return this.request('POST', '/oauth/clients', input);
  }

  /** Admin: changes a client; `disabled: true` ends every token of its secrets. */
  updateClient(id: string, patch: ClientPatch): Promise<OAuthClient> {
    return this.request('PATCH', clientPath(id), patch);
  }

  /** Admin: deletes a client with its secrets and tokens (its service user is disabled). */
  deleteClient(id: string): Promise<void> {
    return this.request('DELETE', clientPath(id));
  }

  /** Admin: a further secret (rotation), whose value is in this answer only. 409 TOO_MANY_SECRETS. */
  addClientSecret(id: string, input: { label?: string | null; expiresAt?: string | null } = {}): Promise<IssuedSecret> {
    return this.request('POST', `${clientPath(id)}/secrets`, input);
  }

  /** Admin: a secret's expiry (null: never; now or past: it ends at once). */
  setClientSecretExpiry(id: string, secretId: string, expiresAt: string | null): Promise<ClientSecret> {
    return this.request('PATCH', `${clientPath(id)}/secrets/${encodeURIComponent(secretId)}`, { expiresAt });
  }

  /** Admin: revokes a secret now, with every token it obtained. */
  revokeClientSecret(id: string, secretId: string): Promise<void> {
    return this.request('DELETE', `${clientPath(id)}/secrets/${encodeURIComponent(secretId)}`);
  }

  /** Admin: every tenant (`GET /tenants?all=true`); `myRoles` is [] where the admin is no member. */
  listAllTenants(cursor?: string | null, limit = 50): Promise<Page<Tenant>> {
    return this.request('GET', `/tenants?all=true&${pageQuery(cursor, limit)}`);
  }

  /** The server's OAuth metadata (public): the scopes machine clients may be allowed. */
  authorizationServerMetadata(): Promise<AuthorizationServerMetadata> {
    return this.#public('GET', '/.well-known/oauth-authorization-server');
  }

  /** Forgets the token here and tells the other tabs (after this session was revoked by other means). */
  forget(): void {
    this.#drop('logout', true);
  }

  /** Stops listening to the other tabs. */
  close(): void {
    this.#channel?.close();
  }

  // ---------------------------------------------------------------------------

  /**
   * Runs a call that ends the session: the server's word of the end (`sessionEnded()`, from a
   * live connection) may come before its answer, and is then this call's `reason`.
   */
  async #ends<T>(reason: SignedOutReason, call: () => Promise<T>): Promise<T> {
    this.#ending = reason;
    this.#post({ type: 'signing-out' });
    try {
      return await call();
    } finally {
      this.#ending = null;
    }
  }

  /** A call without the session: no bearer, no refresh, no retry. */
  async #public<T>(method: string, path: string, body?: unknown): Promise<T> {
    const res = await this.#send(method, path, body, null);
    if (!res.ok) throw await ApiError.fromResponse(res);
    if (res.status === 204) return undefined as T;
    return (await res.json()) as T;
  }

  /** A call that opens a session (no bearer; the answer sets the refresh cookie). */
  async #signIn<T extends AuthResponse = AuthResponse>(path: string, body: object): Promise<T> {
    return this.#adopt<T>(await this.#send('POST', path, body, null));
  }

  /** Takes the session an AuthResponse opened (or rejects with the error answer). */
  async #adopt<T extends AuthResponse = AuthResponse>(res: Response): Promise<T> {
    if (!res.ok) throw await ApiError.fromResponse(res);
    const result = (await res.json()) as T;
    this.#hold(result, 'this-tab');
    this.#post({ type: 'token', accessToken: result.accessToken, expiresAt: this.#token?.expiresAt ?? 0 });
    return result;
  }

  /**
   * Single flight: every caller that saw the token of `staleGeneration` fail shares one
   * refresh. A caller whose token was already replaced just retries with the new one.
   */
  #refreshOnce(staleGeneration: number): Promise<boolean> {
    if (staleGeneration !== this.#generation) return Promise.resolve(this.#token !== null);
    const since = this.#token?.obtainedAt ?? Date.now();
    this.#refreshing ??= this.#coordinatedRefresh(staleGeneration, since).finally(() => {
      this.#refreshing = null;
    });
    return this.#refreshing;
  }

  /** `since`: when this tab got the token that failed (or asked for one, having none). */
  async #coordinatedRefresh(staleGeneration: number, since: number): Promise<boolean> {
    const signOuts = this.#signOuts;
    const run = async (): Promise<boolean> => {
      // While this tab waited for the lock, another tab may have refreshed and shared its
      // token (or signed out): then there is nothing left to do.
      if (staleGeneration !== this.#generation) return this.#token !== null;
      // Its message may still be on the way: the note says whether one is coming.
      if (this.#channel && (await this.#note.read()) > since) {
        await this.#tokenChange(staleGeneration, 1000);
        if (staleGeneration !== this.#generation) return this.#token !== null;
      }
      const res = await this.#send('POST', '/auth/refresh', undefined, null, this.#refreshTimeoutMs);
      const tokens = res.ok ? ((await res.json()) as TokenResponse) : null;
      // Signed out since the refresh began (this tab's sign-out, another tab's, the server's
      // 4410): the server may have renewed the session before it ended, and taking that token
      // would sign the page in again to a session that is over. A sign-in made meanwhile keeps
      // its own token.
      if (signOuts !== this.#signOuts) return this.#token !== null;
      if (tokens) {
        this.#hold(tokens, 'this-tab');
        this.#post({ type: 'token', accessToken: tokens.accessToken, expiresAt: this.#token?.expiresAt ?? 0 });
        await this.#note.write(this.#token?.obtainedAt ?? Date.now()); // before the lock goes
        return true;
      }
      if (res.status === 401 || res.status === 403) return false; // no live session here
      throw await ApiError.fromResponse(res); // 429, 5xx: passing, the session may be fine
    };
    const locks = typeof navigator === 'object' && 'locks' in navigator ? navigator.locks : undefined;
    return locks ? locks.request(this.#lockName, run) : run();
  }

  /** Resolves when the held token changes from `generation`, or after `ms`. */
  #tokenChange(generation: number, ms: number): Promise<void> {
    if (generation !== this.#generation) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.#tokenWaiters.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.#tokenWaiters.add(done);
    });
  }

  #changed(): void {
    this.#generation += 1;
    // Each waiter deletes itself as it wakes: a Set's iteration is safe against that.
    for (const wake of this.#tokenWaiters) wake();
  }

  async #send(
    method: string,
    path: string,
    body: unknown,
    bearer: string | null,
    timeoutMs?: number,
  ): Promise<Response> {
    const headers: Record<string, string> = { Accept: 'application/json' };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    if (bearer) headers.Authorization = `Bearer ${bearer}`;
    try {
      return await this.#fetch(this.#base + path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        // The refresh cookie is scoped to /auth: only those calls need (and get) it.
        credentials: path.startsWith('/auth/') ? 'include' : 'same-origin',
        cache: 'no-store',
        signal: timeoutMs === undefined ? undefined : AbortSignal.timeout(timeoutMs),
      });
    } catch (cause) {
      throw new ApiError(0, 'NETWORK_ERROR', ['Gatehouse could not be reached'], null, null, { cause });
    }
  }

  #hold(tokens: TokenResponse, source: SignedInDetail['source']): void {
    this.#set(tokens.accessToken, Date.now() + tokens.expiresIn * 1000, source);
  }

  #set(value: string, expiresAt: number, source: SignedInDetail['source']): void {
    const previous = this.#token;
    const claims = readClaims(value);
    this.#token = {
      value,
      expiresAt,
      obtainedAt: Date.now(),
      sessionId: claims.sid,
      subject: claims.sub,
      tenantId: claims.tid,
    };
    this.#changed();
    if (!previous || previous.sessionId !== claims.sid || previous.subject !== claims.sub) {
      this.dispatchEvent(new CustomEvent<SignedInDetail>('signedin', { detail: { source } }));
    } else if (previous.tenantId !== claims.tid) {
      this.dispatchEvent(new CustomEvent<TenantChangedDetail>('tenantchanged', { detail: { tenantId: claims.tid } }));
    }
    // The `signedin` listeners may have signed out again meanwhile.
    if (this.#token?.value === value) this.dispatchEvent(new Event('tokenchanged'));
  }

  #drop(reason: SignedOutReason, tellOtherTabs: boolean): void {
    this.#signOuts += 1;
    if (tellOtherTabs) this.#post({ type: 'signed-out' });
    if (!this.#token) return;
    this.#endedSession = this.#token.sessionId;
    // A session found over while this tab is ending it (a token renewal or another call refused
    // meanwhile) ended by this tab's own sign-out, not by expiry.
    if (reason === 'expired' && this.#ending) reason = this.#ending;
    this.#token = null;
    this.#changed();
    this.dispatchEvent(new CustomEvent<SignedOutDetail>('signedout', { detail: { reason } }));
  }

  #post(message: TabMessage): void {
    this.#channel?.postMessage(message);
  }

  #onTabMessage(message: TabMessage): void {
    if (message.type === 'signed-out') {
      this.#drop('other-tab', false);
    } else if (message.type === 'signing-out') {
      this.#otherTabEndingAt = Date.now();
    } else if (message.type === 'token' && typeof message.accessToken === 'string') {
      // Keep the newer of the two (a late message must not replace a fresher token).
      if (this.#token && this.#token.expiresAt > message.expiresAt) return;
      if (this.#token?.value === message.accessToken) return;
      // A token another tab got for the session this tab saw end, sent before it heard of the
      // end (its refresh was answered first): that session is over.
      if (this.#endedSession !== null && readClaims(message.accessToken).sid === this.#endedSession) return;
      this.#set(message.accessToken, message.expiresAt, 'other-tab');
    }
  }
}

/**
 * "Some tab refreshed at <time>": a timestamp, no token, in IndexedDB. Unlike a channel
 * message, a committed IndexedDB write is visible to the next lock holder for sure.
 * Any failure (no IndexedDB, private mode quirks) reads as "no note": the tab refreshes.
 */
class RefreshNote {
  #db: Promise<IDBDatabase | null> | null = null;

  async read(): Promise<number> {
    const db = await this.#open();
    if (!db) return 0;
    return new Promise((resolve) => {
      try {
        const request = db.transaction('notes', 'readonly').objectStore('notes').get('refreshedAt');
        request.addEventListener('success', () => resolve(typeof request.result === 'number' ? request.result : 0));
        request.addEventListener('error', () => resolve(0));
      } catch {
        resolve(0);
      }
    });
  }

  async write(at: number): Promise<void> {
    const db = await this.#open();
    if (!db) return;
    await new Promise<void>((resolve) => {
      try {
        const tx = db.transaction('notes', 'readwrite');
        tx.objectStore('notes').put(at, 'refreshedAt');
        tx.addEventListener('complete', () => resolve());
        tx.addEventListener('error', () => resolve());
        tx.addEventListener('abort', () => resolve());
      } catch {
        resolve();
      }
    });
  }

  #open(): Promise<IDBDatabase | null> {
    this.#db ??= new Promise((resolve) => {
      try {
        if (typeof indexedDB === 'undefined') return resolve(null);
        const request = indexedDB.open('gatehouse-client', 1);
        request.addEventListener('upgradeneeded', () => request.result.createObjectStore('notes'));
        request.addEventListener('success', () => resolve(request.result));
        request.addEventListener('error', () => resolve(null));
        request.addEventListener('blocked', () => resolve(null));
      } catch {
        resolve(null);
      }
    });
    return this.#db;
  }
}

async function readJson(res: Response): Promise<unknown> {
  try {
    return await res.json();
  } catch {
    return null;
  }
}

/** The challenge of a `403 MFA_REQUIRED` body, else null (another 403). */
function mfaChallengeOf(body: unknown): MfaChallenge | null {
  if (typeof body !== 'object' || body === null) return null;
  const { code, mfaToken, mfaTokenExpiresIn, methods } = body as Record<string, unknown>;
  if (code !== 'MFA_REQUIRED' || typeof mfaToken !== 'string' || !mfaToken) return null;
  const seconds = typeof mfaTokenExpiresIn === 'number' && mfaTokenExpiresIn > 0 ? mfaTokenExpiresIn : 300;
  const known: MfaMethod[] = ['totp', 'recovery_code'];
  const offered = Array.isArray(methods) ? known.filter((m) => methods.includes(m)) : [];
  return { mfaToken, methods: offered.length ? offered : known, expiresAt: Date.now() + seconds * 1000 };
}

/** `limit=…&cursor=…` of the keyset-paged lists. */
function pageQuery(cursor: string | null | undefined, limit: number): string {
  const query = new URLSearchParams({ limit: String(limit) });
  if (cursor) query.set('cursor', cursor);
  return query.toString();
}

function tenantPath(tenantId: string): string {
  return `/tenants/${encodeURIComponent(tenantId)}`;
}

function userPath(userId: string): string {
  return `/users/${encodeURIComponent(userId)}`;
}

function clientPath(id: string): string {
  return `/oauth/clients/${encodeURIComponent(id)}`;
}

/** The `roles` claim of a token (read, not verified), known roles only. */
function readRoles(token: string): Role[] {
  try {
    const payload = token.split('.')[1] ?? '';
    const json = atob(
      payload
        .replace(/-/g, '+')
        .replace(/_/g, '/')
        .padEnd(Math.ceil(payload.length / 4) * 4, '='),
    );
    const { roles } = JSON.parse(json) as { roles?: unknown };
    return Array.isArray(roles) ? roles.filter((r): r is Role => r === 'user' || r === 'admin') : [];
  } catch {
    return [];
  }
}

/** Reads (does not verify) the JWT claims the client uses to tell sessions (and tenants) apart. */
function readClaims(token: string): { sub: string | null; sid: string | null; tid: string | null } {
  try {
    const payload = token.split('.')[1] ?? '';
    const json = atob(
      payload
        .replace(/-/g, '+')
        .replace(/_/g, '/')
        .padEnd(Math.ceil(payload.length / 4) * 4, '='),
    );
    const claims = JSON.parse(json) as { sub?: unknown; sid?: unknown; tid?: unknown };
    return {
      sub: typeof claims.sub === 'string' ? claims.sub : null,
      sid: typeof claims.sid === 'string' ? claims.sid : null,
      tid: typeof claims.tid === 'string' ? claims.tid : null,
    };
  } catch {
    return { sub: null, sid: null, tid: null };
  }
}
