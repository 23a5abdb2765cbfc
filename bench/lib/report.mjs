/** The tables a person reads at the end of a run. */

/** `object` without `keys`: what the JSON reports leave out of a load result (refresh tokens, raw counts). */
export function without(object, ...keys) {
  return Object.fromEntries(Object.entries(object).filter(([key]) => !keys.includes(key)));
}

const n = (x, digits) => {
  if (x === null || x === undefined || !Number.isFinite(x)) return 'n/a';
  const d = digits ?? (Math.abs(x) >= 100 ? 0 : Math.abs(x) >= 10 ? 1 : 2);
  return x.toLocaleString('en', { minimumFractionDigits: d, maximumFractionDigits: d });
};

function table(headers, rows, align) {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => String(r[i]).length)));
  const line = (cells) =>
    cells.map((c, i) => (align[i] === 'r' ? String(c).padStart(widths[i]) : String(c).padEnd(widths[i]))).join('  ');
  return [line(headers), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

const span = (s, digits) => (s && s.n > 1 ? `${n(s.min, digits)}–${n(s.max, digits)}` : '');

export function printTables(report) {
  const m = report.machine;
  console.log(
    `\nGatehouse benchmark (${report.run.mode}) — ${m.cpu}, ${m.cores} cores, ${m.memoryGb} GiB, Node ${m.node}, ${m.database}`,
  );
  const la = report.run.loadAverage;
  if (la)
    console.log(
      `load average (1 min) at start ${n(la.atStart, 1)}, at end ${n(la.atEnd, 1)} — the benchmark itself accounts for about 2–3`,
    );
  console.log(
    `rounds: ${report.run.parameters.rounds}, ${report.run.parameters.duration} s per measurement (login ${report.run.parameters.loginDuration} s); value/baseline: medians over rounds (ws_idle_memory: its first round); ratio: median of per-round ratios [min–max]\n`,
  );

  const rows = Object.entries(report.scenarios).map(([key, s]) => [
    key,
    `${n(s.value)} ${s.unit}`,
    s.baseline === null ? 'n/a' : `${n(s.baseline)} ${s.baselineUnit}`,
    s.ratio === null ? 'n/a' : n(s.ratio, 2),
    span(s.range.ratio, 2),
    s.target,
    s.pass === null ? 'n/a' : s.pass ? 'pass' : 'MISS',
  ]);
  console.log(
    table(['scenario', 'value', 'baseline', 'ratio', 'min–max', 'target', 'result'], rows, [
      'l',
      'r',
      'r',
      'r',
      'r',
      'l',
      'l',
    ]),
  );

  const scale = report.scenarios.scale?.details?.parts;
  if (scale) {
    console.log(
      `\nscale parts: refresh ratio ${n(scale.refresh.ratio, 2)} (${n(scale.refresh.value)} vs ${n(scale.refresh.baseline)} req/s), guard ratio ${n(scale.guard.ratio, 2)} (${n(scale.guard.value)} vs ${n(scale.guard.baseline)} req/s)`,
    );
  }

  console.log('');
  const abs = report.series.map((s) => [
    s.label,
    `${n(s.median)} ${s.unit}`,
    span(s, undefined),
    s.p50 === null ? '' : n(s.p50, 2),
    s.p99 === null ? '' : n(s.p99, 2),
    s.serverCpuUsPerRequest === null ? '' : n(s.serverCpuUsPerRequest, 0),
    s.dbCpuUsPerRequest === null ? '' : n(s.dbCpuUsPerRequest, 0),
    s.clientCpuUsPerRequest === null ? '' : n(s.clientCpuUsPerRequest, 0),
  ]);
  console.log(
    table(
      [
        'measured series',
        'median',
        'min–max',
        'p50 ms',
        'p99 ms',
        'server CPU µs/req',
        'DB CPU µs/req',
        'load CPU µs/req',
      ],
      abs,
      ['l', 'r', 'r', 'r', 'r', 'r', 'r', 'r'],
    ),
  );
  console.log(
    'CPU per request: CPU time (/proc) of the server process (every thread) and of the PostgreSQL backends of its database, divided by the responses; for the rotation baseline, "server" is the pg client process; for the signing baseline, its node:http process. Load: CPU time of the load generator (bench/load.mjs, autocannon), which shares the machine\'s cores.',
  );
}

/**
 * The scenario table as Markdown, headed by the machine, the run and its load average: what
 * the README's Performance section shows (bench/results/latest.md after every run).
 */
export function markdownTable(report) {
  const m = report.machine;
  const la = report.run.loadAverage;
  const minutes = Math.floor(report.run.durationS / 60);
  const seconds = Math.round(report.run.durationS % 60);
  const head =
    `${report.run.mode === 'quick' ? 'Quick run' : 'Full run'} of ${report.run.startedAt.slice(0, 16).replace('T', ' ')} UTC: ` +
    `${m.cores}-core ${m.cpu}, ${m.memoryGb} GiB, Node ${m.node}, ${m.database.split(' on ')[0]}; ` +
    `${report.run.parameters.rounds} rounds of ${report.run.parameters.duration} s, ${minutes} min ${seconds} s; ` +
    `load average ${n(la.atStart, 1)} at start, ${n(la.atEnd, 1)} at end (the benchmark itself accounts for about 2–3).`;
  const cell = (s) => String(s).replace(/\|/g, '\\|');
  const rows = Object.entries(report.scenarios).map(([key, s]) => [
    `\`${key}\``,
    `${n(s.value)} ${s.unit}`,
    s.baseline === null ? 'n/a' : `${n(s.baseline)} ${s.baselineUnit}`,
    s.ratio === null ? 'n/a' : `${n(s.ratio, 2)}${span(s.range.ratio, 2) ? ` (${span(s.range.ratio, 2)})` : ''}`,
    s.target,
    s.pass === null ? 'info' : s.pass ? 'pass' : '**miss**',
  ]);
  const lines = [
    '| scenario | value | baseline | ratio (min–max) | target | result |',
    '| --- | --: | --: | --: | --- | --- |',
    ...rows.map((r) => `| ${r.map(cell).join(' | ')} |`),
  ];
  return `${head}\n\n${lines.join('\n')}\n`;
}
