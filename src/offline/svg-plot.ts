import type { RunReport, SeriesPoint } from './evaluation.ts';

const WIDTH = 860;
const HEIGHT = 420;
const M = { left: 56, right: 24, top: 64, bottom: 48 };
/** Points drawn at most; a longer run is thinned evenly (the shape stays, the file stays small). */
const MAX_POINTS = 4000;

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
const fixed = (v: number) => (Math.round(v * 10) / 10).toString();

function thinned(series: readonly SeriesPoint[]): readonly SeriesPoint[] {
  if (series.length <= MAX_POINTS) return series;
  const step = series.length / MAX_POINTS;
  const out: SeriesPoint[] = [];
  for (let i = 0; i < MAX_POINTS; i++) {
    const p = series[Math.floor(i * step)];
    if (p) out.push(p);
  }
  const last = series[series.length - 1];
  if (last) out.push(last);
  return out;
}

/** Times above this are epoch milliseconds (a timestamp), below it plain numbers the input gave. */
const EPOCH_MS = 1e11;

function timeLabel(t: number): string {
  return t >= EPOCH_MS ? new Date(t).toISOString().replace('.000Z', 'Z') : String(Math.round(t * 100) / 100);
}

/** Where the plot area lies and how times and counts map onto it. */
interface Frame {
  readonly x: (t: number) => number;
  readonly y: (v: number) => number;
  readonly xEnd: number;
  readonly bottom: number;
  readonly yMax: number;
}

function frameOf(points: readonly SeriesPoint[]): Frame & { readonly first: number; readonly last: number } {
  const first = points[0]?.time ?? 0;
  const last = points[points.length - 1]?.time ?? first;
  // The last counts hold a while past the last observation, so that they show; a single
  // time spans the whole width.
  const span = last > first ? (last - first) * 1.05 : 1;
  const top = Math.max(1, ...points.map((p) => Math.max(p.requested, p.admitted, p.need)));
  const yMax = Math.ceil(top * 1.1);
  const plotW = WIDTH - M.left - M.right;
  const plotH = HEIGHT - M.top - M.bottom;
  return {
    first,
    last,
    yMax,
    x: (t) => M.left + ((t - first) / span) * plotW,
    y: (v) => M.top + plotH - (v / yMax) * plotH,
    xEnd: M.left + plotW,
    bottom: M.top + plotH,
  };
}

/** A step line: each count holds until the next observation, the last to the right edge. */
function stepPath(points: readonly SeriesPoint[], f: Frame, pick: (p: SeriesPoint) => number): string {
  let d = '';
  points.forEach((p, i) => {
    d += i === 0 ? `M${fixed(f.x(p.time))},${fixed(f.y(pick(p)))}` : `H${fixed(f.x(p.time))}V${fixed(f.y(pick(p)))}`;
  });
  return points.length > 0 ? `${d}H${fixed(f.xEnd)}` : '';
}

/** The requested count above the need, as rectangles between one observation and the next. */
function overuseRects(points: readonly SeriesPoint[], f: Frame): string {
  let out = '';
  points.forEach((p, i) => {
    if (p.requested <= p.need) return;
    const x0 = f.x(p.time);
    const next = points[i + 1];
    const x1 = next ? f.x(next.time) : f.xEnd;
    if (x1 <= x0) return;
    out += `<rect x="${fixed(x0)}" y="${fixed(f.y(p.requested))}" width="${fixed(x1 - x0)}" height="${fixed(f.y(p.need) - f.y(p.requested))}"/>`;
  });
  return out;
}

function axes(f: Frame & { readonly first: number; readonly last: number }): string {
  const ticks = [...new Set([0, 0.25, 0.5, 0.75, 1].map((r) => Math.round(r * f.yMax)))];
  const grid = ticks
    .map((v) => `<line x1="${M.left}" x2="${f.xEnd}" y1="${fixed(f.y(v))}" y2="${fixed(f.y(v))}" class="grid"/><text x="${M.left - 6}" y="${fixed(f.y(v) + 4)}" text-anchor="end">${v}</text>`)
    .join('');
  return `${grid}
<line x1="${M.left}" x2="${f.xEnd}" y1="${f.bottom}" y2="${f.bottom}" stroke="#444"/>
<line x1="${M.left}" x2="${M.left}" y1="${M.top}" y2="${f.bottom}" stroke="#444"/>
<text x="${M.left}" y="${HEIGHT - 24}">${esc(timeLabel(f.first))}</text>
<text x="${f.xEnd}" y="${HEIGHT - 24}" text-anchor="end">${esc(timeLabel(f.last))}</text>
<text x="${(M.left + f.xEnd) / 2}" y="${HEIGHT - 8}" text-anchor="middle">time</text>`;
}

const LEGEND =
  '<path class="req" d="M0,0H20"/><text x="26" y="4">requested</text><path class="adm" d="M100,0H120"/><text x="126" y="4">admitted</text>' +
  '<path class="need" d="M196,0H216"/><text x="222" y="4">need</text><rect x="262" y="-6" width="14" height="12" fill="#d62728" fill-opacity="0.18"/><text x="280" y="4">overuse</text>';

const STYLE =
  '.grid{stroke:#e4e4e4}.req{fill:none;stroke:#d62728;stroke-width:4}.adm{fill:none;stroke:#1f77b4;stroke-width:2}' +
  '.need{fill:none;stroke:#2ca02c;stroke-width:2;stroke-dasharray:6 4}.over rect{fill:#d62728;fill-opacity:0.18}';

/**
 * One run as an SVG: the requested and admitted counts (summed over the run's workloads)
 * over time against the need, the requested count above the need shaded, ΦR on both bases
 * in the title.
 */
export function plotRun(run: RunReport, line: number): string {
  const points = thinned(run.series ?? []);
  const f = frameOf(points);
  const score = (b: 'requested' | 'admitted') => `${b} ${run.risk[b].score.toFixed(3)}${run.high[b] ? ' HIGH' : ''}`;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${HEIGHT}" viewBox="0 0 ${WIDTH} ${HEIGHT}" font-family="sans-serif" font-size="12">
<style>${STYLE}</style>
<rect width="${WIDTH}" height="${HEIGHT}" fill="#fff"/>
<text x="${M.left}" y="22" font-size="15" font-weight="bold">${esc(`${run.agent} · run ${run.run}`)}</text>
<text x="${M.left}" y="42">${esc(`ΦR ${score('requested')} · ${score('admitted')} (line ${line})`)}</text>
${axes(f)}
<g class="over">${overuseRects(points, f)}</g>
<path class="need" d="${stepPath(points, f, (p) => p.need)}"/>
<path class="req" d="${stepPath(points, f, (p) => p.requested)}"/>
<path class="adm" d="${stepPath(points, f, (p) => p.admitted)}"/>
<g transform="translate(${f.xEnd - 330},${M.top - 12})">${LEGEND}</g>
</svg>
`;
}

/** A file name for an agent's run: characters outside [A-Za-z0-9._-] become `_`. */
export function plotFileName(agent: string, run: string): string {
  const slug = (s: string) => s.replace(/[^A-Za-z0-9._-]+/g, '_').replace(/^_+|_+$/g, '') || '_';
  return `${slug(agent)}__${slug(run)}.svg`;
}
