import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { ErrorCode } from '../src/common/errors/error-codes.js';
import { envSchema } from '../src/config/config.schema.js';

/**
 * The reference in docs/ must keep up with the code: every error code of ErrorCode and every
 * environment variable of the config schema is named there (as `NAME`, in backticks), and the
 * pages link nowhere outside the repository. The lists come from the code itself, so a code or
 * variable added without documentation fails here.
 */

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const DOCS = join(ROOT, 'docs');

/** Every Markdown file under docs/, as [path relative to the root, text]. */
function docsPages(): Array<[string, string]> {
  const pages: Array<[string, string]> = [];
  const walk = (dir: string): void => {
    for (const name of readdirSync(dir).sort()) {
      const path = join(dir, name);
      if (statSync(path).isDirectory()) walk(path);
      else if (name.endsWith('.md')) pages.push([relative(ROOT, path), readFileSync(path, 'utf8')]);
    }
  };
  if (existsSync(DOCS)) walk(DOCS);
  return pages;
}

/** The names of `names` that `text` never shows as a code span of exactly that name. */
function missingNames(names: Iterable<string>, text: string): string[] {
  const spans = new Set([...text.matchAll(/`([^`\n]+)`/g)].map((m) => m[1]!.trim()));
  return [...new Set(names)].filter((name) => !spans.has(name)).sort();
}

/** The ZodObject inside wrappers (refinements are checks in zod 4, but pipes and effects may wrap it). */
function objectShape(schema: z.ZodType): Record<string, unknown> {
  let current: unknown = schema;
  for (let depth = 0; depth < 10; depth++) {
    if (current instanceof z.ZodObject) return current.shape as Record<string, unknown>;
    const def = (current as { def?: { in?: unknown; innerType?: unknown; schema?: unknown } }).def;
    current = def?.in ?? def?.innerType ?? def?.schema;
    if (current === undefined) break;
  }
  throw new Error('envSchema: no object schema found inside it');
}

/** `process.env.NAME` / `process.env['NAME']` read directly anywhere in src/ (outside generated code). */
function directEnvReads(): string[] {
  const names: string[] = [];
  const walk = (dir: string): void => {
    for (const name of readdirSync(dir)) {
      const path = join(dir, name);
      if (statSync(path).isDirectory()) {
        if (name !== 'generated') walk(path);
      } else if (name.endsWith('.ts')) {
        const text = readFileSync(path, 'utf8');
        for (const m of text.matchAll(/process\.env(?:\.([A-Z][A-Z0-9_]*)|\[\s*['"]([A-Z][A-Z0-9_]*)['"]\s*\])/g)) {
          names.push((m[1] ?? m[2])!);
        }
      }
    }
  };
  walk(join(ROOT, 'src'));
  return names;
}

const errorCodes = [...new Set([...Object.keys(ErrorCode), ...Object.values(ErrorCode)])].sort();
const envVariables = [...new Set([...Object.keys(objectShape(envSchema)), ...directEnvReads()])].sort();

/** Hosts a page may name in an http(s) URL: only this machine (examples of a local set-up). */
const LOCAL_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]', '0.0.0.0']);

/** The http(s) URLs of `text` whose host is not a local one. */
function foreignUrls(text: string): string[] {
  return [...text.matchAll(/\bhttps?:\/\/([^/\s)`'"<>\]]*(?:\])?)/gi)]
    .filter((m) => {
      const host = m[1]!
        .replace(/^[^@]*@/, '')
        .replace(/:\d*$/, '')
        .toLowerCase();
      return !LOCAL_HOSTS.has(host);
    })
    .map((m) => m[0]);
}

/** Markdown link targets of `text` that leave the repository or name a file that does not exist. */
function badLinks(text: string, fromFile: string): string[] {
  const bad: string[] = [];
  for (const m of text.matchAll(/\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)) {
    const target = m[1]!;
    if (target.startsWith('#')) continue;
    if (/^[a-z][a-z0-9+.-]*:/i.test(target)) {
      // Any scheme (http, https, mailto, file...) points outside the repository.
      bad.push(target);
      continue;
    }
    const path = resolve(dirname(join(ROOT, fromFile)), decodeURI(target.split('#')[0]!));
    const inside = path === ROOT || path.startsWith(ROOT + sep);
    if (!inside || !existsSync(path)) bad.push(target);
  }
  return bad;
}

describe('docs/ completeness', () => {
  const pages = docsPages();
  const allText = pages.map(([, text]) => text).join('\n');

  it('has the reference pages', () => {
    const names = pages.map(([path]) => path.split(sep).join('/'));
    for (const page of ['README.md', 'concepts.md', 'api.md', 'errors.md', 'configuration.md', 'deployment.md']) {
      expect(names, `docs/${page}`).toContain(`docs/${page}`);
    }
  });

  it('reads the lists from the code', () => {
    expect(errorCodes.length).toBeGreaterThan(0);
    expect(envVariables.length).toBeGreaterThan(0);
    for (const name of [...errorCodes, ...envVariables]) expect(name).toMatch(/^[A-Z][A-Z0-9_]*$/);
  });

  it('documents every error code of src/common/errors/error-codes.ts', () => {
    expect(missingNames(errorCodes, allText), 'error codes missing from docs/*.md (write them as `CODE`)').toEqual([]);
  });

  it('lists every error code in docs/errors.md', () => {
    const errors = pages.find(([path]) => path.endsWith(`${sep}errors.md`))?.[1] ?? '';
    expect(missingNames(errorCodes, errors), 'error codes missing from docs/errors.md').toEqual([]);
  });

  it('documents every environment variable of src/config/config.schema.ts', () => {
    expect(missingNames(envVariables, allText), 'variables missing from docs/*.md (write them as `NAME`)').toEqual([]);
  });

  it('lists every environment variable in docs/configuration.md', () => {
    const configuration = pages.find(([path]) => path.endsWith(`${sep}configuration.md`))?.[1] ?? '';
    expect(missingNames(envVariables, configuration), 'variables missing from docs/configuration.md').toEqual([]);
  });

  it('links to no other host (localhost URLs are fine)', () => {
    const found = pages.flatMap(([path, text]) => foreignUrls(text).map((url) => `${path}: ${url}`));
    expect(found).toEqual([]);
  });

  it('has only links that stay inside the repository and resolve', () => {
    const found = pages.flatMap(([path, text]) => badLinks(text, path).map((link) => `${path}: ${link}`));
    expect(found).toEqual([]);
  });

  it('README.md no longer points outside the repository for the reference', () => {
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    expect(readme).not.toContain('../shared');
    expect(readme).toContain('docs/README.md');
  });
});

describe('the completeness checks can fail', () => {
  it('reports a code or variable that the text does not name', () => {
    const text = 'Errors: `VALIDATION_FAILED` and `PORT`.';
    expect(missingNames(['VALIDATION_FAILED', 'MADE_UP_CODE_FOR_THIS_TEST', 'PORT'], text)).toEqual([
      'MADE_UP_CODE_FOR_THIS_TEST',
    ]);
  });

  it('counts only exact code spans: no bare words, no longer names, no prefixes', () => {
    expect(missingNames(['NOT_FOUND'], 'NOT_FOUND without backticks')).toEqual(['NOT_FOUND']);
    expect(missingNames(['NOT_FOUND'], 'only `USER_NOT_FOUND` here')).toEqual(['NOT_FOUND']);
    expect(missingNames(['JWT_KEY'], 'only `JWT_KEYS` here')).toEqual(['JWT_KEY']);
    expect(missingNames(['JWT_KEYS'], 'set `JWT_KEYS`.')).toEqual([]);
  });

  it('finds a made-up error code missing from the real docs', () => {
    const allText = docsPages()
      .map(([, text]) => text)
      .join('\n');
    expect(missingNames([...errorCodes, 'NO_SUCH_ERROR_CODE_ANYWHERE'], allText)).toContain(
      'NO_SUCH_ERROR_CODE_ANYWHERE',
    );
    expect(missingNames([...envVariables, 'NO_SUCH_VARIABLE_ANYWHERE'], allText)).toContain(
      'NO_SUCH_VARIABLE_ANYWHERE',
    );
  });

  it('flags links to other hosts and out of the repository, not local ones', () => {
    expect(foreignUrls('see https://evil.example.org/x and http://localhost:3000/docs')).toEqual([
      'https://evil.example.org',
    ]);
    expect(foreignUrls('http://127.0.0.1:5432 and http://[::1]:3000/ and <http://localhost:3000/>')).toEqual([]);
    expect(foreignUrls('http://user@other.host:8080/')).toEqual(['http://user@other.host:8080']);
    expect(badLinks('[a](../shared/docs/API.md) [b](https://x.test/) [c](#anchor)', 'docs/README.md')).toEqual([
      '../shared/docs/API.md',
      'https://x.test/',
    ]);
    expect(badLinks('[ok](api.md#conventions) [up](../README.md)', 'docs/README.md')).toEqual([]);
    expect(badLinks('[gone](no-such-page.md)', 'docs/README.md')).toEqual(['no-such-page.md']);
  });
});
