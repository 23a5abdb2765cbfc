import { APP_GUARD, APP_INTERCEPTOR } from '@nestjs/core';
import type { DynamicModule, Provider } from '@nestjs/common';
import { describe, expect, it } from 'vitest';
import { transactionalCls } from '../../src/database/cls.module.js';

/**
 * src/database/cls.module.ts: nestjs-cls and its transactional plugin, without the global guard
 * and interceptor that ClsModule.forRoot registers even unmounted (each would put every request
 * through NestJS's guard or interceptor chain for nothing). Ambient transactions themselves are
 * exercised by every suite that writes through the API.
 */
const tokensOf = (module: DynamicModule): unknown[] =>
  (module.imports ?? []).flatMap((m) =>
    ((m as DynamicModule).providers ?? []).map((p: Provider) =>
      typeof p === 'object' && 'provide' in p ? p.provide : p,
    ),
  );

describe('transactionalCls', () => {
  it('registers no global guard or interceptor, and keeps the module options and the plugin', () => {
    const module = transactionalCls();
    const tokens = tokensOf(module);
    expect(tokens).not.toContain(APP_GUARD);
    expect(tokens).not.toContain(APP_INTERCEPTOR);
    expect(module.global).toBe(true);
    expect(tokens.length).toBeGreaterThan(3); // the options, ClsService's and the plugin's providers
  });
});
