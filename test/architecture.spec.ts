import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

/**
 * The module graph points one way: capabilities → shared domain → infrastructure →
 * common/config. A capability never imports another capability, and a layer never imports
 * the layer above it. README "Project layout" draws the same graph.
 */
const LAYERS: Record<string, number> = {
  // foundations
  common: 0,
  config: 0,
  generated: 0,
  boot: 0, // the loader of the bundled server (dist/main.js)
  // infrastructure
  database: 1,
  redis: 1,
  events: 1,
  logging: 1,
  // shared domain
  tokens: 2,
  audit: 2,
  throttle: 2,
  mail: 3,
  sessions: 3,
  accounts: 4,
  access: 4,
  mfa: 4,
  clients: 4,
  tenants: 4,
  identities: 4,
  // capabilities (may import everything below, never one another)
  auth: 5,
  users: 5,
  resources: 5,
  recovery: 5,
  oauth: 5,
  tenancy: 5,
  health: 5,
  retention: 5,
  realtime: 5,
  metrics: 5,
  cli: 5,
  // the application shell wires everything
  '.': 6,
};
const CAPABILITY = 5;

const SRC = resolve(import.meta.dirname, '../src');

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name);
    if (e.isDirectory()) return e.name === 'generated' ? [] : sourceFiles(path);
    return e.name.endsWith('.ts') ? [path] : [];
  });
}

/** The top-level folder of src/ a file belongs to ('.' for main.ts, app.module.ts ...). */
function moduleOf(file: string): string {
  const rel = relative(SRC, file);
  return rel.includes('/') ? rel.split('/')[0]! : '.';
}

export interface Arrow {
  from: string;
  to: string;
  file: string;
}

/** Every import between two different top-level modules of src/. */
export function arrows(files: string[]): Arrow[] {
  const out: Arrow[] = [];
  for (const file of files) {
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(/(?:from|import)\s*\(?\s*'(\.{1,2}\/[^']+)'/g)) {
      const target = resolve(dirname(file), m[1]!);
      if (!target.startsWith(SRC)) continue;
      const from = moduleOf(file);
      const to = moduleOf(target);
      if (from !== to) out.push({ from, to, file: relative(SRC, file) });
    }
  }
  return out;
}

/** The arrows that point up or sideways between capabilities. */
export function violations(list: Arrow[]): string[] {
  return list
    .filter(({ from, to }) => {
      const a = LAYERS[from];
      const b = LAYERS[to];
      if (a === undefined || b === undefined) return true; // a new folder must be placed in LAYERS
      return b > a || (a === CAPABILITY && b === CAPABILITY);
    })
    .map(({ from, to, file }) => `${file}: ${from} → ${to}`);
}

describe('module graph', () => {
  const all = arrows(sourceFiles(SRC));

  it('has every folder of src/ placed in a layer', () => {
    const unknown = [...new Set(all.flatMap((a) => [a.from, a.to]))].filter((m) => LAYERS[m] === undefined);
    expect(unknown).toEqual([]);
  });

  it('has no import pointing up a layer or between capabilities', () => {
    expect(violations(all)).toEqual([]);
  });

  it('reports an arrow that points up, and one between capabilities (the check can fail)', () => {
    expect(
      violations([
        { from: 'tokens', to: 'accounts', file: 'tokens/x.ts' },
        { from: 'users', to: 'auth', file: 'users/y.ts' },
        { from: 'auth', to: 'accounts', file: 'auth/z.ts' },
      ]),
    ).toEqual(['tokens/x.ts: tokens → accounts', 'users/y.ts: users → auth']);
  });
});

describe('process start-up', () => {
  it("sets the server's V8 flags before main.ts loads anything else", () => {
    // A flag only affects code compiled after it is set (src/runtime-flags.ts): moving the
    // import down would silently bring back the memory it saves (bench: memory_idle).
    const main = readFileSync(join(SRC, 'main.ts'), 'utf8');
    const imports = [...main.matchAll(/^import\s+(?:[^'"]*from\s+)?'([^']+)';/gm)].map((m) => m[1]);
    expect(imports[0]).toBe('./runtime-flags.js');
    const flags = readFileSync(join(SRC, 'runtime-flags.ts'), 'utf8');
    const flagImports = [...flags.matchAll(/^import\s+(?:[^'"]*from\s+)?'([^']+)';/gm)].map((m) => m[1]);
    expect(flagImports).toEqual(['node:v8']);
  });
});
