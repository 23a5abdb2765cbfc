import type { GatehouseClient } from '../gatehouse-client.js';
import type { Guarded } from '../views/signed-in.js';

/** What the console (admin.ts) gives each of its screens. */
export interface AdminDeps {
  client: GatehouseClient;
  /** Runs a call; a 401 that has already signed the page out is not reported again. */
  guarded: Guarded;
}

/** One screen of the console (Users, Machine clients, Tenants, Audit log). */
export interface AdminScreen {
  /**
   * The screen is shown, or its address changed (`#audit?userId=…`): `params` is the part after
   * the `?`. It loads what it shows the first time, and again when the parameters say so.
   */
  enter(params: URLSearchParams): void;
  /** Forgets everything shown (sign-out, or the token lost the admin role). */
  clear(): void;
}
