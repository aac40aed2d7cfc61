/**
 * A simulation's timeline as one standalone SVG, 900 × 600: load and capacity, instances with
 * the scale events, and the latency proxy against the SLO, in three panels over one time axis.
 * Pure: a string out, no fonts or scripts to fetch.
 */
import type { ScaleEvent, TimelineStep } from './simulation.js';

export interface TimelineChart {
  readonly title: string;
  readonly subtitle: string;
  readonly stepS: number;
  readonly sloMs: number;
  readonly timeline: readonly TimelineStep[];
  readonly scaleEvents: readonly ScaleEvent[];
}

const WIDTH = 900;
const HEIGHT = 600;
const LEFT = 64;
const RIGHT = WIDTH - 20;
const PANELS = {
  load: { top: 76, bottom: 236 },
  instances: { top: 276, bottom: 396 },
  latency: { top: 436, bottom: 546 },
};
const COLORS = {
  load: '#4e79a7',
  capacity: '#59a14f',
  inService: '#4e79a7',
  starting: '#f28e2b',
  scaleOut: '#59a14f',
  scaleIn: '#e15759',
  latency: '#b07aa1',
  slo: '#e15759',
  grid: '#e6e6e6',
  axis: '#666666',
  text: '#333333',
};

type Point = readonly [number, number];

function escapeXml(text: string): string {
  return text.replace(/[<>&"']/g, (ch) => `&#${ch.charCodeAt(0)};`);
}

const round = (value: number) => Math.round(value * 10) / 10;

/**
 * At most two points per pixel column, the highest and the lowest in their order: a day of 10 s
 * steps is 8,640 points for 816 columns, and the envelope is all the eye can see of them.
 */
function perColumn(points: readonly Point[]): Point[] {
  const kept: Point[] = [];
  for (let i = 0; i < points.length; ) {
    const column = Math.round(points[i]![0]);
    let [low, high] = [points[i]!, points[i]!];
    let [lowAt, highAt] = [i, i];
    for (i++; i < points.length && Math.round(points[i]![0]) === column; i++) {
      if (points[i]![1] < low[1]) [low, lowAt] = [points[i]!, i];
      if (points[i]![1] > high[1]) [high, highAt] = [points[i]!, i];
    }
    kept.push(...(lowAt === highAt ? [low] : lowAt < highAt ? [low, high] : [high, low]));
  }
  return kept;
}

/** Math.max over a long series without spreading it into arguments; -Infinity when empty. */
const largest = <T>(values: readonly T[], of: (value: T) => number) => values.reduce((max, value) => Math.max(max, of(value)), -Infinity);

const pathOf = (points: readonly Point[]) => points.map(([x, y], i) => `${i === 0 ? 'M' : 'L'}${round(x)} ${round(y)}`).join('');

/** The round step that cuts `span` into at most `count` parts: 1, 2, 2.5 or 5 times a power of ten. */
function niceStep(span: number, count: number, integer = false): number {
  const raw = Math.max(span, Number.EPSILON) / count;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const factors = integer ? [1, 2, 5, 10] : [1, 2, 2.5, 5, 10];
  const step = (factors.find((factor) => factor * magnitude >= raw) ?? 10) * magnitude;
  return integer ? Math.max(1, Math.round(step)) : step;
}

/** Time ticks a person reads at a glance: whole minutes or hours. */
const TIME_STEPS_S = [60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 14400, 21600, 43200, 86400];
const MAX_TIME_TICKS = 8;

const clock = (atS: number) => `${Math.floor(atS / 3600)}:${String(Math.floor((atS % 3600) / 60)).padStart(2, '0')}`;

function compactNumber(value: number): string {
  if (Math.abs(value) >= 1000) return `${Number((value / 1000).toPrecision(3))}k`;
  return String(Number(value.toPrecision(3)));
}

function durationLabel(ms: number): string {
  return ms >= 1000 ? `${compactNumber(ms / 1000)} s` : `${compactNumber(ms)} ms`;
}

function legend(items: readonly { label: string; swatch: string }[], baseline: number): string[] {
  const parts: string[] = [];
  let x = RIGHT;
  for (const item of [...items].reverse()) {
    x -= item.label.length * 6.2 + 8;
    parts.push(`<text x="${round(x)}" y="${baseline}">${escapeXml(item.label)}</text>`);
    x -= 22;
    parts.push(`<g transform="translate(${round(x)},${baseline - 4})">${item.swatch}</g>`);
    x -= 14;
  }
  return parts;
}

const lineSwatch = (color: string, dash = '') => `<line x1="0" x2="18" y1="0" y2="0" stroke="${color}" stroke-width="2"${dash ? ` stroke-dasharray="${dash}"` : ''}/>`;
const areaSwatch = (color: string, opacity: number) => `<rect x="0" y="-5" width="18" height="10" fill="${color}" fill-opacity="${opacity}" stroke="${color}"/>`;
const triangle = (up: boolean, color: string) => `<path d="${up ? 'M-5 4L5 4L0 -5Z' : 'M-5 -4L5 -4L0 5Z'}" fill="${color}"/>`;

export function timelineSvg(chart: TimelineChart): string {
  const { timeline, stepS } = chart;
  const startS = timeline[0]?.atS ?? 0;
  const endS = startS + Math.max(1, timeline.length) * stepS;
  const x = (atS: number) => LEFT + ((atS - startS) / (endS - startS)) * (RIGHT - LEFT);

  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${HEIGHT}" viewBox="0 0 ${WIDTH} ${HEIGHT}" font-family="Helvetica, Arial, sans-serif" font-size="11" fill="${COLORS.text}">`,
    `<rect width="${WIDTH}" height="${HEIGHT}" fill="white"/>`,
    `<text x="${LEFT}" y="24" font-size="16" font-weight="bold">${escapeXml(chart.title)}</text>`,
    `<text x="${LEFT}" y="42" font-size="11" fill="#666666">${escapeXml(chart.subtitle)}</text>`,
  ];

  const timeStepS = TIME_STEPS_S.find((step) => (endS - startS) / step <= MAX_TIME_TICKS) ?? 86400;
  const timeTicks: number[] = [];
  for (let atS = Math.ceil(startS / timeStepS) * timeStepS; atS <= endS; atS += timeStepS) timeTicks.push(atS);

  /** Grid, y ticks and heading of one panel; `y` maps a value to its pixel row. */
  const frame = (panel: { top: number; bottom: number }, heading: string, ticks: readonly number[], y: (value: number) => number, label: (value: number) => string) => {
    parts.push(`<text x="${LEFT}" y="${panel.top - 10}" font-size="12" font-weight="bold">${escapeXml(heading)}</text>`);
    for (const atS of timeTicks) parts.push(`<line x1="${round(x(atS))}" x2="${round(x(atS))}" y1="${panel.top}" y2="${panel.bottom}" stroke="${COLORS.grid}"/>`);
    for (const value of ticks) {
      const row = round(y(value));
      parts.push(
        `<line x1="${LEFT}" x2="${RIGHT}" y1="${row}" y2="${row}" stroke="${COLORS.grid}"/>`,
        `<text x="${LEFT - 6}" y="${row + 4}" text-anchor="end">${escapeXml(label(value))}</text>`,
      );
    }
    parts.push(`<rect x="${LEFT}" y="${panel.top}" width="${RIGHT - LEFT}" height="${panel.bottom - panel.top}" fill="none" stroke="${COLORS.axis}"/>`);
  };

  const linear = (panel: { top: number; bottom: number }, max: number, integer = false) => {
    const step = niceStep(max, 4, integer);
    const top = Math.max(step, Math.ceil(max / step) * step);
    const ticks = Array.from({ length: Math.round(top / step) + 1 }, (_, i) => i * step);
    return { ticks, y: (value: number) => panel.bottom - (value / top) * (panel.bottom - panel.top) };
  };

  /** A value held for each step: a corner only where it changes. */
  const stepPoints = (values: readonly number[], y: (value: number) => number): Point[] => {
    const points: Point[] = [];
    values.forEach((value, i) => {
      if (i > 0 && value === values[i - 1]) return;
      if (i > 0) points.push([x(startS + i * stepS), y(values[i - 1]!)]);
      points.push([x(startS + i * stepS), y(value)]);
    });
    if (values.length > 0) points.push([x(endS), y(values[values.length - 1]!)]);
    return points;
  };

  // (a) Offered load against what the instances in service can serve.
  const load = PANELS.load;
  const loadScale = linear(load, largest(timeline, (row) => Math.max(1, row.loadRps, row.capacityRps)));
  frame(load, 'Load (requests/s)', loadScale.ticks, loadScale.y, compactNumber);
  const capacityLine = stepPoints(timeline.map((row) => row.capacityRps), loadScale.y);
  parts.push(
    `<path d="${pathOf(capacityLine)}V${load.bottom}H${LEFT}Z" fill="${COLORS.capacity}" fill-opacity="0.12" stroke="none"/>`,
    `<path d="${pathOf(capacityLine)}" fill="none" stroke="${COLORS.capacity}" stroke-width="1.5"/>`,
    `<path d="${pathOf(perColumn(timeline.map((row) => [x(row.atS + stepS / 2), loadScale.y(row.loadRps)] as const)))}" fill="none" stroke="${COLORS.load}" stroke-width="1.8"/>`,
    ...legend(
      [
        { label: 'offered load', swatch: lineSwatch(COLORS.load) },
        { label: 'capacity in service', swatch: areaSwatch(COLORS.capacity, 0.25) },
      ],
      load.top - 10,
    ),
  );

  // (b) Instances: in service, and starting stacked on top; the scale events where they happened.
  const instances = PANELS.instances;
  const instanceScale = linear(instances, largest(timeline, (row) => Math.max(1, row.inService + row.starting, row.desired)), true);
  frame(instances, 'Instances', instanceScale.ticks, instanceScale.y, String);
  const inService = stepPoints(timeline.map((row) => row.inService), instanceScale.y);
  const asked = stepPoints(timeline.map((row) => row.inService + row.starting), instanceScale.y);
  parts.push(
    `<path d="${pathOf([...asked, ...[...inService].reverse()])}Z" fill="${COLORS.starting}" fill-opacity="0.35" stroke="none"/>`,
    `<path d="${pathOf(inService)}V${instances.bottom}H${LEFT}Z" fill="${COLORS.inService}" fill-opacity="0.25" stroke="none"/>`,
    `<path d="${pathOf(inService)}" fill="none" stroke="${COLORS.inService}" stroke-width="1.5"/>`,
  );
  for (const event of chart.scaleEvents) {
    const out = event.action === 'scale_out';
    const tip = `${clock(event.atS)} ${out ? 'scale-out' : 'scale-in'} ${event.from} → ${event.to} (${event.rule}): ${event.reason}`;
    parts.push(
      `<g transform="translate(${round(x(event.atS))},${round(instanceScale.y(event.to))})">${triangle(out, out ? COLORS.scaleOut : COLORS.scaleIn)}<title>${escapeXml(tip)}</title></g>`,
    );
  }
  parts.push(
    ...legend(
      [
        { label: 'in service', swatch: areaSwatch(COLORS.inService, 0.25) },
        { label: 'starting', swatch: areaSwatch(COLORS.starting, 0.35) },
        { label: 'scale-out', swatch: triangle(true, COLORS.scaleOut) },
        { label: 'scale-in', swatch: triangle(false, COLORS.scaleIn) },
      ],
      instances.top - 10,
    ),
  );

  // (c) Latency proxy on a log scale: from milliseconds in service to minutes in a backlog.
  const latency = PANELS.latency;
  const latencies = timeline.flatMap((row) => (row.latencyProxyMs === null ? [] : [row.latencyProxyMs]));
  // A little room below the fastest value and above the slowest, so neither lies on the frame.
  const fastestMs = latencies.reduce((min, ms) => Math.min(min, ms), chart.sloMs);
  const slowestMs = latencies.reduce((max, ms) => Math.max(max, ms), chart.sloMs);
  const low = Math.log10(fastestMs) - 0.15;
  const high = Math.max(low + 1, Math.log10(slowestMs) + 0.15);
  const yLatency = (ms: number) => latency.bottom - ((Math.log10(ms) - low) / (high - low)) * (latency.bottom - latency.top);
  // Every decade, every other one past six; 2 and 5 between them when the range spans few.
  const decadeStep = high - low > 6 ? 2 : 1;
  const multiples = high - low < 2.5 ? [1, 2, 5] : [1];
  const latencyTicks: number[] = [];
  for (let decade = Math.floor(low); decade <= high; decade += decadeStep) {
    for (const multiple of multiples) {
      const value = multiple * 10 ** decade;
      if (Math.log10(value) >= low && Math.log10(value) <= high) latencyTicks.push(value);
    }
  }
  frame(latency, 'Latency proxy (log scale)', latencyTicks, yLatency, durationLabel);
  for (let i = 0; i < timeline.length; i++) {
    if (!timeline[i]!.overSlo || timeline[i - 1]?.overSlo) continue;
    let end = i;
    while (timeline[end + 1]?.overSlo) end++;
    const [from, to] = [x(timeline[i]!.atS), x(timeline[end]!.atS + stepS)];
    parts.push(`<rect x="${round(from)}" y="${latency.top}" width="${round(Math.max(1, to - from))}" height="${latency.bottom - latency.top}" fill="${COLORS.slo}" fill-opacity="0.1"/>`);
  }
  const runs: Point[][] = [];
  timeline.forEach((row, i) => {
    if (row.latencyProxyMs === null) return;
    if (i === 0 || timeline[i - 1]!.latencyProxyMs === null) runs.push([]);
    runs[runs.length - 1]!.push([x(row.atS + stepS / 2), yLatency(row.latencyProxyMs)]);
  });
  const sloRow = round(yLatency(chart.sloMs));
  parts.push(
    `<path d="${runs.map((run) => pathOf(perColumn(run))).join('')}" fill="none" stroke="${COLORS.latency}" stroke-width="1.5"/>`,
    `<line x1="${LEFT}" x2="${RIGHT}" y1="${sloRow}" y2="${sloRow}" stroke="${COLORS.slo}" stroke-width="1.2" stroke-dasharray="6 4"/>`,
    ...legend(
      [
        { label: 'latency proxy', swatch: lineSwatch(COLORS.latency) },
        { label: `SLO ${durationLabel(chart.sloMs)}`, swatch: lineSwatch(COLORS.slo, '6 4') },
        { label: 'over SLO', swatch: areaSwatch(COLORS.slo, 0.1) },
      ],
      latency.top - 10,
    ),
  );

  for (const atS of timeTicks) {
    parts.push(`<text x="${round(x(atS))}" y="${latency.bottom + 16}" text-anchor="middle">${clock(atS)}</text>`);
  }
  parts.push(`<text x="${(LEFT + RIGHT) / 2}" y="${HEIGHT - 14}" text-anchor="middle" fill="#666666">time (h:mm)</text>`, '</svg>');
  return `${parts.join('\n')}\n`;
}
