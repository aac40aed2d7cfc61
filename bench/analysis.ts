/**
 * From the raw rounds of one scenario to what the report says: each target's median and spread,
 * the ratios between targets (computed within each round, so that a machine slowdown during a
 * round hits both sides of it), and the goals with their verdicts.
 */
import type { ScenarioId } from './options.js';
import type { RoundResult, TargetId } from './report.js';
import { spread, type Spread } from './stats.js';
import { BASELINE_IDS } from './targets.js';

export interface TargetSummary {
  readonly target: TargetId;
  readonly label: string;
  /** Rounds that measured it, and rounds where it failed. */
  readonly rounds: number;
  readonly failures: number;
  readonly requestsPerS: Spread | null;
  readonly rowsPerS: Spread | null;
  readonly p50Ms: Spread | null;
  readonly p99Ms: Spread | null;
  readonly pingP99Ms: Spread | null;
  readonly mainUsPerRequest: Spread | null;
  readonly otherThreadsUsPerRequest: Spread | null;
  readonly processUsPerRequest: Spread | null;
  readonly serverCores: Spread | null;
  readonly otherCores: Spread | null;
  /** In-process ceiling: the batch size that gave the best rows/s, by round. */
  readonly bestBatchSizes?: readonly number[];
}

export interface RatioSummary {
  readonly id: RatioId;
  readonly label: string;
  readonly unit: 'requests/s' | 'rows/s';
  /** One figure per round, null where a side was missing. */
  readonly perRound: readonly (number | null)[];
  readonly spread: Spread | null;
  /** The two sides' medians over all rounds, divided: for comparison with the median of the per-round ratios. */
  readonly ratioOfMedians: number | null;
}

export type RatioId =
  | 'inferd/baseline'
  | 'inferd/inline-baseline'
  | 'inferd/node-http-baseline'
  | 'inline-baseline/node-http-baseline'
  | 'inferd/http-ceiling'
  | 'inferd/in-process-ceiling'
  | 'batching-on/off'
  | 'capture/without';

export interface GoalResult {
  readonly goal: string;
  /** What is compared: a ratio's id, or `/ping p99` of a target. */
  readonly metric: RatioId | 'ping-p99-ms';
  readonly comparison: '>=' | '<';
  readonly threshold: number;
  readonly measured: Spread | null;
  readonly verdict: 'met' | 'not met' | 'not measured';
  /** Whether every round on its own met it (the spread stays on the right side of the threshold). */
  readonly everyRound: boolean;
}

type Figure = (round: readonly RoundResult[]) => number | null;

function http(id: TargetId, key: 'requestsPerS' | 'rowsPerS'): Figure {
  return (round) => {
    const result = round.find((r) => r.target === id);
    return result?.ok && result.kind === 'http' ? result.load[key] : null;
  };
}

const inProcessCeilingRows: Figure = (round) => {
  const result = round.find((r) => r.target === 'in-process-ceiling');
  return result?.ok && result.kind === 'ceiling' ? (result.ceiling.best?.rowsPerS ?? null) : null;
};

interface RatioDefinition {
  readonly id: RatioId;
  readonly label: string;
  readonly unit: RatioSummary['unit'];
  readonly numerator: Figure;
  readonly denominator: Figure;
  /** The targets the scenario must have run for the ratio to be reported. */
  readonly needs: readonly TargetId[];
}

/**
 * The ratios a scenario reports. `baseline` is the faster of the two baselines by its median over
 * all rounds: picking the faster one within each round would pick the luckier of two noisy
 * figures, and flatter the baseline.
 */
const ratioDefinitions = (baseline: TargetId): readonly RatioDefinition[] => [
  {
    id: 'inferd/baseline',
    label: `inferd, batching / the faster baseline (${baseline})`,
    unit: 'requests/s',
    numerator: http('inferd-batching', 'requestsPerS'),
    denominator: http(baseline, 'requestsPerS'),
    needs: ['inferd-batching', baseline],
  },
  { id: 'inferd/inline-baseline', label: 'inferd, batching / Fastify baseline', unit: 'requests/s', numerator: http('inferd-batching', 'requestsPerS'), denominator: http('inline-baseline', 'requestsPerS'), needs: ['inferd-batching', 'inline-baseline'] },
  { id: 'inferd/node-http-baseline', label: 'inferd, batching / node:http baseline', unit: 'requests/s', numerator: http('inferd-batching', 'requestsPerS'), denominator: http('node-http-baseline', 'requestsPerS'), needs: ['inferd-batching', 'node-http-baseline'] },
  { id: 'inline-baseline/node-http-baseline', label: 'the two baselines: Fastify / node:http', unit: 'requests/s', numerator: http('inline-baseline', 'requestsPerS'), denominator: http('node-http-baseline', 'requestsPerS'), needs: ['inline-baseline', 'node-http-baseline'] },
  { id: 'inferd/http-ceiling', label: 'inferd, batching / HTTP ceiling', unit: 'requests/s', numerator: http('inferd-batching', 'requestsPerS'), denominator: http('http-ceiling', 'requestsPerS'), needs: ['inferd-batching', 'http-ceiling'] },
  { id: 'inferd/in-process-ceiling', label: 'inferd, batching / in-process ceiling', unit: 'rows/s', numerator: http('inferd-batching', 'rowsPerS'), denominator: inProcessCeilingRows, needs: ['inferd-batching', 'in-process-ceiling'] },
  { id: 'batching-on/off', label: 'inferd, batching on / off', unit: 'requests/s', numerator: http('inferd-batching', 'requestsPerS'), denominator: http('inferd-no-batching', 'requestsPerS'), needs: ['inferd-batching', 'inferd-no-batching'] },
  { id: 'capture/without', label: 'inferd, data capture at 100% / without', unit: 'requests/s', numerator: http('inferd-capture', 'requestsPerS'), denominator: http('inferd-batching', 'requestsPerS'), needs: ['inferd-capture', 'inferd-batching'] },
];

function byRound(results: readonly RoundResult[], rounds: number): RoundResult[][] {
  return Array.from({ length: rounds }, (_, i) => results.filter((r) => r.round === i + 1));
}

export function summarizeTargets(results: readonly RoundResult[], targets: readonly { id: TargetId; label: string }[]): TargetSummary[] {
  return targets.map(({ id, label }) => {
    const mine = results.filter((r) => r.target === id);
    const ok = mine.filter((r) => r.ok);
    const httpRounds = ok.flatMap((r) => (r.kind === 'http' ? [r] : []));
    const ceilingRounds = ok.flatMap((r) => (r.kind === 'ceiling' ? [r] : []));
    return {
      target: id,
      label,
      rounds: ok.length,
      failures: mine.length - ok.length,
      requestsPerS: spread(httpRounds.map((r) => r.load.requestsPerS)),
      rowsPerS: spread([...httpRounds.map((r) => r.load.rowsPerS), ...ceilingRounds.map((r) => r.ceiling.best?.rowsPerS)]),
      p50Ms: spread(httpRounds.map((r) => r.load.latencyMs.p50)),
      p99Ms: spread(httpRounds.map((r) => r.load.latencyMs.p99)),
      pingP99Ms: spread(httpRounds.map((r) => r.ping.p99Ms)),
      mainUsPerRequest: spread(httpRounds.map((r) => r.threads?.mainUsPerRequest)),
      otherThreadsUsPerRequest: spread(httpRounds.map((r) => r.threads?.otherThreadsUsPerRequest)),
      processUsPerRequest: spread(httpRounds.map((r) => r.threads?.processUsPerRequest)),
      serverCores: spread(httpRounds.map((r) => r.cpu.serverCores)),
      otherCores: spread([...httpRounds, ...ceilingRounds].map((r) => r.cpu.otherCores)),
      ...(ceilingRounds.length > 0 && { bestBatchSizes: ceilingRounds.flatMap((r) => (r.ceiling.best ? [r.ceiling.best.batchSize] : [])) }),
    };
  });
}

/** The baseline with the higher median requests/s over the rounds (the Fastify one when neither was measured). */
export function fasterBaseline(results: readonly RoundResult[]): TargetId {
  const medians = BASELINE_IDS.map((id) => ({ id, median: spread(results.map((r) => (r.target === id && r.ok && r.kind === 'http' ? r.load.requestsPerS : null)))?.median ?? -1 }));
  return medians.reduce((best, candidate) => (candidate.median > best.median ? candidate : best)).id;
}

export function ratios(results: readonly RoundResult[], rounds: number, targets: readonly TargetId[]): RatioSummary[] {
  const grouped = byRound(results, rounds);
  const medianOf = (figure: Figure) => spread(grouped.map(figure))?.median ?? null;
  return ratioDefinitions(fasterBaseline(results)).filter((definition) => definition.needs.every((id) => targets.includes(id))).map((definition) => {
    const perRound = grouped.map((round) => {
      const numerator = definition.numerator(round);
      const denominator = definition.denominator(round);
      return numerator === null || denominator === null || denominator === 0 ? null : numerator / denominator;
    });
    const numeratorMedian = medianOf(definition.numerator);
    const denominatorMedian = medianOf(definition.denominator);
    return {
      id: definition.id,
      label: definition.label,
      unit: definition.unit,
      perRound,
      spread: spread(perRound),
      ratioOfMedians: numeratorMedian === null || !denominatorMedian ? null : numeratorMedian / denominatorMedian,
    };
  });
}

interface GoalDefinition {
  readonly goal: string;
  readonly metric: GoalResult['metric'];
  readonly comparison: GoalResult['comparison'];
  readonly threshold: number;
}

/** The goals, per scenario: ratios are medians of per-round ratios over alternated rounds. */
const GOALS: Record<ScenarioId, readonly GoalDefinition[]> = {
  'churn-csv': [
    { goal: 'inferd ≥ 1.3× the faster inline baseline', metric: 'inferd/baseline', comparison: '>=', threshold: 1.3 },
    { goal: 'inferd ≥ 0.8× the HTTP ceiling', metric: 'inferd/http-ceiling', comparison: '>=', threshold: 0.8 },
    { goal: '/ping p99 < 50 ms under load (inferd, batching)', metric: 'ping-p99-ms', comparison: '<', threshold: 50 },
  ],
  'mlp-json': [{ goal: 'inferd ≥ 1.2× the faster inline baseline', metric: 'inferd/baseline', comparison: '>=', threshold: 1.2 }],
  'text-json': [
    { goal: 'inferd ≥ 0.85× the in-process ceiling (rows/s)', metric: 'inferd/in-process-ceiling', comparison: '>=', threshold: 0.85 },
    { goal: 'batching on ≥ 1.4× off', metric: 'batching-on/off', comparison: '>=', threshold: 1.4 },
  ],
  'mobilenet-npy': [
    { goal: 'inferd, batching on, ≥ 0.85× the in-process ceiling (rows/s)', metric: 'inferd/in-process-ceiling', comparison: '>=', threshold: 0.85 },
    { goal: '/ping p99 < 50 ms under load (inferd, batching)', metric: 'ping-p99-ms', comparison: '<', threshold: 50 },
  ],
};

export function goals(scenario: ScenarioId, ratioSummaries: readonly RatioSummary[], targets: readonly TargetSummary[]): GoalResult[] {
  return GOALS[scenario].map((definition) => {
    const measured =
      definition.metric === 'ping-p99-ms'
        ? (targets.find((t) => t.target === 'inferd-batching')?.pingP99Ms ?? null)
        : (ratioSummaries.find((r) => r.id === definition.metric)?.spread ?? null);
    const passes = (value: number) => (definition.comparison === '>=' ? value >= definition.threshold : value < definition.threshold);
    const worst = measured === null ? null : definition.comparison === '>=' ? measured.min : measured.max;
    return {
      ...definition,
      measured,
      verdict: measured === null ? 'not measured' : passes(measured.median) ? 'met' : 'not met',
      everyRound: worst !== null && passes(worst),
    };
  });
}
