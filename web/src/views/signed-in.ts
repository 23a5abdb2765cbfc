import { ApiError, type GatehouseClient } from '../gatehouse-client.js';

/**
 * Runs a signed-in action and hands its failure to `onError`, except the 401 that has already
 * signed the page out (the client fired `signedout`, so the login form is showing).
 */
export type Guarded = (work: () => Promise<void>, onError: (error: unknown) => void) => Promise<void>;

export function guardedBy(client: GatehouseClient): Guarded {
  return async (work, onError) => {
    try {
      await work();
    } catch (error) {
      if (error instanceof ApiError && error.status === 401 && !client.signedIn) return;
      onError(error);
    }
  };
}

/** What app.ts gives each part of the signed-in view (profile, resources, sessions). */
export interface SignedInDeps {
  client: GatehouseClient;
  guarded: Guarded;
}

/** What each part of the signed-in view gives back to app.ts. */
export interface SignedInPart {
  /** Fills the part from the API, on sign-in (errors are shown in the part). */
  load(): Promise<void>;
  /** Forgets the signed-in user's data, on sign-out. */
  clear(): void;
}
