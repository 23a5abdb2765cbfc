/**
 * Summary of a V8 .cpuprofile (node --cpu-prof): self time and inclusive ("total") time per
 * function, and self time per package, optionally restricted to a window of the monotonic
 * clock (µs, the clock of process.hrtime, which V8's profiler timestamps also use).
 */
import { readFileSync } from 'node:fs';

function where(url, root) {
  if (!url) return '';
  let u = url.replace(/^file:\/\//, '');
  const nm = u.lastIndexOf('/node_modules/');
  if (nm >= 0) return u.slice(nm + '/node_modules/'.length);
  if (root && u.startsWith(root)) u = u.slice(root.length);
  return u;
}

function packageOf(node, root) {
  const { url, functionName } = node.callFrame;
  if (!url) return functionName.startsWith('(') ? functionName : '(native)';
  if (url.startsWith('node:')) return 'node (core)';
  const u = url.replace(/^file:\/\//, '');
  const nm = u.lastIndexOf('/node_modules/');
  if (nm >= 0) {
    const rest = u.slice(nm + '/node_modules/'.length).split('/');
    return rest[0].startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0];
  }
  if (root && u.startsWith(root)) {
    const rel = u.slice(root.length);
    return rel.startsWith('dist/generated') ? 'app: generated Prisma client' : 'app';
  }
  return u;
}

export function summarizeProfile(file, { fromUs = -Infinity, toUs = Infinity, top = 25, root } = {}) {
  const profile = JSON.parse(readFileSync(file, 'utf8'));
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const keyOf = (n) => {
    const f = n.callFrame;
    return `${f.functionName || '(anonymous)'}  ${where(f.url, root)}${f.url ? `:${f.lineNumber + 1}` : ''}`;
  };

  const self = new Map();
  const total = new Map();
  const packages = new Map();
  let windowUs = 0;
  let t = profile.startTime;
  const { samples, timeDeltas } = profile;
  for (let i = 0; i < samples.length; i++) {
    t += timeDeltas[i];
    const dt = i + 1 < samples.length ? timeDeltas[i + 1] : 0;
    if (t < fromUs || t > toUs) continue;
    windowUs += dt;
    const node = byId.get(samples[i]);
    const k = keyOf(node);
    self.set(k, (self.get(k) ?? 0) + dt);
    const pkg = packageOf(node, root);
    packages.set(pkg, (packages.get(pkg) ?? 0) + dt);
    const seen = new Set();
    for (let id = samples[i]; id !== undefined; id = parent.get(id)) {
      const kk = keyOf(byId.get(id));
      if (seen.has(kk)) continue;
      seen.add(kk);
      total.set(kk, (total.get(kk) ?? 0) + dt);
    }
  }
  const rank = (m, filter = () => true) =>
    [...m.entries()]
      .filter(([k]) => filter(k))
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([name, us]) => ({ name, ms: Math.round(us / 100) / 10, pct: Math.round((us / windowUs) * 1000) / 10 }));
  const structural = (k) =>
    !/^\((root|program|idle|garbage collector)\)/.test(k) &&
    !/^(processTicksAndRejections|listOnTimeout|processTimers|emit|runMicrotasks)\s/.test(k);
  return {
    file,
    windowMs: Math.round(windowUs / 1000),
    self: rank(self),
    total: rank(total, structural),
    packages: rank(packages),
  };
}

export function formatSummary(s, title) {
  const lines = [`${title} — ${s.windowMs} ms of samples (${s.file})`, '', 'top self time:'];
  for (const e of s.self) lines.push(`  ${String(e.pct).padStart(5)}%  ${String(e.ms).padStart(8)} ms  ${e.name}`);
  lines.push('', 'self time by package:');
  for (const e of s.packages) lines.push(`  ${String(e.pct).padStart(5)}%  ${String(e.ms).padStart(8)} ms  ${e.name}`);
  lines.push('', 'top inclusive time (functions on the stack):');
  for (const e of s.total) lines.push(`  ${String(e.pct).padStart(5)}%  ${String(e.ms).padStart(8)} ms  ${e.name}`);
  return lines.join('\n');
}
