import { AsyncLocalStorage } from 'node:async_hooks';

/** What every log line written while handling one HTTP request carries. */
export interface RequestContext {
  /** The request id (X-Request-Id, set by the requestId middleware). */
  readonly reqId: string;
}

const storage = new AsyncLocalStorage<RequestContext>();

/** Runs `fn` (and everything it starts, sync or async) inside this request's context. */
export function runInRequestContext<T>(context: RequestContext, fn: () => T): T {
  return storage.run(context, fn);
}

/** The context of the request being handled, if any. */
export function currentRequest(): RequestContext | undefined {
  return storage.getStore();
}
