/**
 * What the loader (dist/main.js, see run-bundle.ts) shares with the bundled server it runs: one
 * object under a registered symbol, since the bundle holds a copy of its own of every module it
 * imports (this one included) and so cannot share a module's state with the loader.
 */
export const LOADER_STATE = Symbol.for('gatehouse.loader');

/**
 * What a start did with V8's code cache of the bundle (run-bundle.ts):
 * - `used`: the cache was read and V8 accepted it;
 * - `absent`: there was none;
 * - `stale`: it was made for a bundle with other contents (a new build);
 * - `damaged`: its checksum or header did not match its bytes;
 * - `rejected`: V8 refused it (another Node.js or V8 version, other V8 flags).
 */
export type CodeCacheStatus = 'used' | 'absent' | 'stale' | 'damaged' | 'rejected';

export interface LoaderState {
  /** `import()` as the loader's module does it: the bundle's dynamic imports go through it. */
  import(specifier: string, options?: ImportCallOptions): Promise<unknown>;
  codeCache: {
    status: CodeCacheStatus;
    /**
     * Once the server serves: unless the cache was used, writes a new one after a short delay
     * (the functions the start compiled are then in it). Resolves with `written`, `kept` (the
     * cache was used), or the reason it was not written (an error code such as `EACCES`).
     */
    save(): Promise<string>;
  };
}

/** The loader's state, or undefined when the server was not started through it (tests, tsx). */
export function loaderState(): LoaderState | undefined {
  return (globalThis as { [LOADER_STATE]?: LoaderState })[LOADER_STATE];
}
