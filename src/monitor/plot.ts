/** A grouped bar chart, as standalone SVG: the baseline's and the captured distribution over the same bins. */
import type { DriftBin } from './drift.js';

export interface ComparisonChart {
  readonly title: string;
  readonly xLabel: string;
  readonly bins: readonly DriftBin[];
}

const WIDTH = 760;
const HEIGHT = 440;
const MARGIN = { top: 56, right: 24, bottom: 110, left: 72 };
const COLORS = { baseline: '#4e79a7', captured: '#f28e2b' };
const Y_TICKS = 5;

function escapeXml(text: string): string {
  return text.replace(/[<>&"']/g, (ch) => `&#${ch.charCodeAt(0)};`);
}

/** A round step for the y axis so that the ticks read as 0.05, 0.1, 0.2, 0.25, 0.5 and so on. */
function niceMax(value: number): number {
  const step = value / Y_TICKS;
  const magnitude = 10 ** Math.floor(Math.log10(step));
  const nice = [1, 2, 2.5, 5, 10].find((factor) => factor * magnitude >= step) ?? 10;
  return nice * magnitude * Y_TICKS;
}

export function comparisonSvg(chart: ComparisonChart): string {
  const plotWidth = WIDTH - MARGIN.left - MARGIN.right;
  const plotHeight = HEIGHT - MARGIN.top - MARGIN.bottom;
  const bottom = MARGIN.top + plotHeight;
  const yMax = niceMax(Math.max(0.01, ...chart.bins.flatMap((bin) => [bin.baseline, bin.captured])));
  const y = (fraction: number) => bottom - (fraction / yMax) * plotHeight;
  const slot = plotWidth / Math.max(1, chart.bins.length);
  const barWidth = slot * 0.38;

  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${HEIGHT}" viewBox="0 0 ${WIDTH} ${HEIGHT}" font-family="sans-serif" font-size="12">`,
    `<rect width="${WIDTH}" height="${HEIGHT}" fill="white"/>`,
    `<text x="${WIDTH / 2}" y="24" text-anchor="middle" font-size="15" font-weight="bold">${escapeXml(chart.title)}</text>`,
  ];
  for (let tick = 0; tick <= Y_TICKS; tick++) {
    const value = (yMax * tick) / Y_TICKS;
    parts.push(
      `<line x1="${MARGIN.left}" x2="${MARGIN.left + plotWidth}" y1="${y(value)}" y2="${y(value)}" stroke="#e0e0e0"/>`,
      `<text x="${MARGIN.left - 6}" y="${y(value) + 4}" text-anchor="end">${Number(value.toPrecision(3))}</text>`,
    );
  }
  chart.bins.forEach((bin, i) => {
    const left = MARGIN.left + i * slot + slot * 0.12;
    const labelX = MARGIN.left + (i + 0.5) * slot;
    parts.push(
      `<rect x="${left}" y="${y(bin.baseline)}" width="${barWidth}" height="${bottom - y(bin.baseline)}" fill="${COLORS.baseline}"><title>baseline ${bin.baseline.toFixed(3)}</title></rect>`,
      `<rect x="${left + barWidth}" y="${y(bin.captured)}" width="${barWidth}" height="${bottom - y(bin.captured)}" fill="${COLORS.captured}"><title>captured ${bin.captured.toFixed(3)}</title></rect>`,
      `<text transform="translate(${labelX},${bottom + 12}) rotate(-35)" text-anchor="end">${escapeXml(bin.label)}</text>`,
    );
  });
  const legendX = WIDTH - MARGIN.right - 150;
  parts.push(
    `<line x1="${MARGIN.left}" x2="${MARGIN.left + plotWidth}" y1="${bottom}" y2="${bottom}" stroke="black"/>`,
    `<line x1="${MARGIN.left}" x2="${MARGIN.left}" y1="${MARGIN.top}" y2="${bottom}" stroke="black"/>`,
    `<text x="${MARGIN.left + plotWidth / 2}" y="${HEIGHT - 12}" text-anchor="middle">${escapeXml(chart.xLabel)}</text>`,
    `<text transform="translate(18,${MARGIN.top + plotHeight / 2}) rotate(-90)" text-anchor="middle">fraction of values</text>`,
    `<rect x="${legendX}" y="${MARGIN.top - 18}" width="12" height="12" fill="${COLORS.baseline}"/>`,
    `<text x="${legendX + 18}" y="${MARGIN.top - 8}">baseline</text>`,
    `<rect x="${legendX + 80}" y="${MARGIN.top - 18}" width="12" height="12" fill="${COLORS.captured}"/>`,
    `<text x="${legendX + 98}" y="${MARGIN.top - 8}">captured</text>`,
    '</svg>',
  );
  return `${parts.join('\n')}\n`;
}
