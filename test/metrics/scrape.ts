/** Reading the Prometheus text format in the metrics tests. */

/** Every sample of a scrape, keyed by `name{label=value,...}` (labels sorted). */
export type Samples = Map<string, number>;

export function sampleKey(name: string, labels: Record<string, string | number> = {}): string {
  const parts = Object.entries(labels)
    .map(([k, v]) => `${k}=${String(v)}`)
    .sort();
  return `${name}{${parts.join(',')}}`;
}

export function parseSamples(text: string): Samples {
  const samples: Samples = new Map();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`not a sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!;
    const key = sampleKey(m[1]!, labels);
    if (samples.has(key)) throw new Error(`sample twice: ${key}`);
    samples.set(key, Number(m[3]));
  }
  return samples;
}

/** How much a sample grew between two scrapes (a sample absent counts as 0). */
export function delta(
  before: Samples,
  after: Samples,
  name: string,
  labels: Record<string, string | number> = {},
): number {
  const key = sampleKey(name, labels);
  return (after.get(key) ?? 0) - (before.get(key) ?? 0);
}

/** The label sets of every sample of `name`. */
export function labelSetsOf(samples: Samples, name: string): string[] {
  return [...samples.keys()].filter((k) => k.startsWith(`${name}{`)).map((k) => k.slice(name.length));
}
