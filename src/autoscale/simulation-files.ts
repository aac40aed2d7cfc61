/**
 * The simulator's two inputs, validated at the edge: the policy file (JSON) and the load trace
 * (CSV, `at_s,requests_per_s`). Both fail with INFERD_ERR_CONFIG_INVALID and every problem found,
 * each with where it is.
 */
import { z } from 'zod';
import { InferdError } from '../errors.js';
import { DEFAULT_TARGET_TRACKING } from './policy.js';
import type { ScalingMetric, TracePoint } from './simulation.js';

/** CloudWatch's period for each metric: SageMaker's standard metrics are per minute, concurrency is high resolution. */
const METRIC_PERIOD_S: Readonly<Record<ScalingMetric, number>> = {
  invocations_per_instance_per_minute: 60,
  concurrent_requests_per_instance: 10,
  async_backlog_per_instance: 60,
};

const METRICS = Object.keys(METRIC_PERIOD_S) as [ScalingMetric, ...ScalingMetric[]];

const seconds = (description: string) => z.number().min(0).describe(description);

const PolicySchema = z
  .object({
    type: z.enum(['target-tracking', 'backlog']).describe('`backlog`: async target tracking that may scale to zero and back.'),
    metric: z.enum(METRICS).describe('The metric tracked; `async_backlog_per_instance` goes with `backlog`.'),
    targetValue: z.number().positive().describe('The metric value per instance to hold (`TargetValue`).'),
    minCapacity: z.number().int().min(0).describe('At least this many instances; 0 only for `backlog`.'),
    maxCapacity: z.number().int().min(1).describe('At most this many instances.'),
    scaleOutCooldownS: seconds('`ScaleOutCooldown`.').default(DEFAULT_TARGET_TRACKING.scaleOutCooldownS),
    scaleInCooldownS: seconds('`ScaleInCooldown`.').default(DEFAULT_TARGET_TRACKING.scaleInCooldownS),
    scaleOutAfterS: seconds('How long the metric stays above target before a scale-out (n datapoints: (n − 1) periods).').default(
      DEFAULT_TARGET_TRACKING.scaleOutAfterS,
    ),
    scaleInAfterS: seconds('How long the metric stays under the scale-in threshold before a scale-in.').default(DEFAULT_TARGET_TRACKING.scaleInAfterS),
    scaleInThreshold: z.number().gt(0).max(1).describe('Scale-in only below this fraction of the target.').default(DEFAULT_TARGET_TRACKING.scaleInThreshold),
    maxScaleInStep: z.number().int().min(1).describe('Instances one scale-in removes at most.').default(DEFAULT_TARGET_TRACKING.maxScaleInStep),
    disableScaleIn: z.boolean().describe('`DisableScaleIn`.').default(DEFAULT_TARGET_TRACKING.disableScaleIn),
    metricPeriodS: z.number().positive().optional().describe('Seconds per datapoint; default 10 for concurrency, else 60.'),
  })
  .strict()
  .transform((policy) => ({ ...policy, metricPeriodS: policy.metricPeriodS ?? METRIC_PERIOD_S[policy.metric] }));

export const PolicyFileSchema = z
  .object({
    description: z.string().optional().describe('What this file models, for the summary.'),
    capacityRps: z.number().positive().describe('Requests/s one instance serves at most, as measured.'),
    capacitySource: z.string().min(1).describe('Where `capacityRps` was measured: the bench result file and scenario.'),
    serviceTimeMs: z.number().positive().describe('Latency of one request on an idle instance.'),
    sloMs: z.number().positive().describe('The latency the time over the SLO is counted against.'),
    instanceStartupS: seconds('Seconds from asking for an instance to its serving.'),
    stepS: z.number().positive().default(10).describe('Simulation step.'),
    initialCapacity: z.number().int().min(0).describe('Instances in service when the trace starts.'),
    policies: z.array(PolicySchema).min(1).describe('Scaling policies on the one variant; the largest capacity wins.'),
  })
  .strict()
  .superRefine((file, ctx) => {
    file.policies.forEach((policy, i) => {
      const issue = (field: string, message: string) => ctx.addIssue({ code: 'custom', path: ['policies', i, field], message });
      if (policy.minCapacity > policy.maxCapacity) issue('minCapacity', `must be at most maxCapacity (${policy.maxCapacity})`);
      if ((policy.type === 'backlog') !== (policy.metric === 'async_backlog_per_instance')) {
        issue('metric', 'async_backlog_per_instance goes with type "backlog", and only with it');
      }
      if (policy.minCapacity === 0 && policy.type !== 'backlog') issue('minCapacity', 'must be at least 1: only a backlog policy scales to zero');
      if (!Number.isInteger(policy.metricPeriodS / file.stepS)) issue('metricPeriodS', `must be a multiple of stepS (${file.stepS})`);
      if (file.initialCapacity < policy.minCapacity || file.initialCapacity > policy.maxCapacity) {
        ctx.addIssue({ code: 'custom', path: ['initialCapacity'], message: `must be within policy ${i}'s [${policy.minCapacity}, ${policy.maxCapacity}]` });
      }
    });
  });

export type PolicyFile = z.infer<typeof PolicyFileSchema>;

const invalid = (message: string) => new InferdError('INFERD_ERR_CONFIG_INVALID', message);

/** The most problems one error lists; a file that is wrong everywhere needs no more to be fixed. */
const MAX_PROBLEMS = 10;

function listProblems(source: string, problems: readonly string[]): string {
  const more = problems.length > MAX_PROBLEMS ? `\n  … and ${problems.length - MAX_PROBLEMS} more` : '';
  return `${source} is invalid:\n  ${problems.slice(0, MAX_PROBLEMS).join('\n  ')}${more}`;
}

/** `source` names the file in messages. */
export function parsePolicyFile(text: string, source: string): PolicyFile {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    throw invalid(`${source} is not valid JSON: ${(error as Error).message}`);
  }
  const result = PolicyFileSchema.safeParse(raw);
  if (!result.success) throw invalid(listProblems(source, result.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`)));
  return result.data;
}

const TRACE_HEADER = 'at_s,requests_per_s';

function parseNumber(field: string): number | undefined {
  const value = field.trim() === '' ? Number.NaN : Number(field);
  return Number.isFinite(value) ? value : undefined;
}

/**
 * Rows of `at_s,requests_per_s`, times not decreasing. Two rows at one time make a step: the
 * rate jumps there instead of ramping. Blank lines are skipped.
 */
export function parseTrace(text: string, source: string): TracePoint[] {
  const lines = text.split(/\r?\n/);
  const headerIndex = lines.findIndex((line) => line.trim() !== '');
  if (headerIndex === -1) throw invalid(`${source} is empty; it needs the header "${TRACE_HEADER}" and at least two rows`);
  const header = lines[headerIndex]!.replace(/^\uFEFF/, '').replace(/\s/g, '');
  if (header !== TRACE_HEADER) throw invalid(`${source} line ${headerIndex + 1}: the header must be "${TRACE_HEADER}", not "${lines[headerIndex]!.trim()}"`);

  const points: TracePoint[] = [];
  const problems: string[] = [];
  let previousLine = 0;
  for (let i = headerIndex + 1; i < lines.length; i++) {
    const line = lines[i]!;
    if (line.trim() === '') continue;
    const where = `line ${i + 1}`;
    const fields = line.split(',');
    if (fields.length !== 2) {
      problems.push(`${where}: expected 2 fields (at_s,requests_per_s), found ${fields.length}`);
      continue;
    }
    const [atS, requestsPerS] = fields.map(parseNumber);
    if (atS === undefined) problems.push(`${where}: at_s "${fields[0]!.trim()}" is not a number`);
    if (requestsPerS === undefined || requestsPerS < 0) problems.push(`${where}: requests_per_s "${fields[1]!.trim()}" is not a number ≥ 0`);
    if (atS === undefined || requestsPerS === undefined || requestsPerS < 0) continue;

    const before = points[points.length - 1];
    if (before !== undefined && atS < before.atS) {
      problems.push(`${where}: at_s ${atS} is before ${before.atS} on line ${previousLine}`);
      continue;
    }
    if (before !== undefined && atS === before.atS && points[points.length - 2]?.atS === atS) {
      problems.push(`${where}: a third row at ${atS} s; two rows at one time make a step, more mean nothing`);
      continue;
    }
    points.push({ atS, requestsPerS });
    previousLine = i + 1;
  }
  if (problems.length > 0) throw invalid(listProblems(source, problems));
  if (points.length < 2 || points[points.length - 1]!.atS === points[0]!.atS) {
    throw invalid(`${source} needs at least two rows spanning some time; found ${points.length}`);
  }
  return points;
}
