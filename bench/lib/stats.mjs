/** Small statistics helpers: every figure the benchmark reports goes through these. */

export function median(values) {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return null;
  const mid = Math.floor(v.length / 2);
  return v.length % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
}

export function range(values) {
  const v = values.filter((x) => Number.isFinite(x));
  if (v.length === 0) return null;
  return [Math.min(...v), Math.max(...v)];
}

/** Percentile (0–100) of raw samples, nearest-rank. */
export function percentile(samples, p) {
  if (samples.length === 0) return null;
  const sorted = Float64Array.from(samples).sort();
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank];
}

/** { median, min, max } of a series (null members ignored). */
export function summary(values) {
  const r = range(values);
  return {
    median: median(values),
    min: r ? r[0] : null,
    max: r ? r[1] : null,
    n: values.filter(Number.isFinite).length,
  };
}

export function round(x, digits = 2) {
  if (x === null || x === undefined || !Number.isFinite(x)) return null;
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}
