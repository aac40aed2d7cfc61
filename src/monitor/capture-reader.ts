/**
 * Reads captured rows from a capture tree laid out as SageMaker writes it,
 * `<root>/<endpoint>/<variant>/yyyy/mm/dd/hh/*.jsonl` (UTC hours), opening only the hour folders
 * that overlap the window. Files come through `CaptureFiles`, so any store can serve them.
 */
import { rowsFromCaptureLine, type TimeWindow } from './capture-records.js';

/** Where capture files are read from: a local directory now, an object store later. */
export interface CaptureFiles {
  /** Every file under the folder `prefix` (a path or URI ending in '/'), at any depth. */
  list(prefix: string): AsyncIterable<string>;
  readText(uri: string): Promise<string>;
}

export interface CaptureQuery extends TimeWindow {
  readonly endpoint?: string | undefined;
  readonly variant?: string | undefined;
}

export interface CapturedRows {
  readonly rows: string[][];
  /** Records in the window that yielded rows. */
  records: number;
  outsideWindow: number;
  /** Records that yielded no rows, counted by reason. */
  readonly skipped: Map<string, number>;
  files: number;
}

const HOUR_MS = 3_600_000;

export async function readCapture(files: CaptureFiles, root: string, query: CaptureQuery): Promise<CapturedRows> {
  const base = root.replace(/\/+$/, '');
  const captured: CapturedRows = { rows: [], records: 0, outsideWindow: 0, skipped: new Map(), files: 0 };
  for (const prefix of listingPrefixes(base, query)) {
    for await (const uri of files.list(prefix)) {
      if (!uri.startsWith(`${base}/`) || !isWantedFile(uri.slice(base.length + 1), query)) continue;
      captured.files++;
      addCaptureText(await files.readText(uri), query, captured);
    }
  }
  return captured;
}

function addCaptureText(text: string, window: TimeWindow, captured: CapturedRows): void {
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    const outcome = rowsFromCaptureLine(line, window);
    if (outcome.kind === 'rows') {
      captured.records++;
      for (const row of outcome.rows) captured.rows.push(row);
    } else if (outcome.kind === 'outside-window') {
      captured.outsideWindow++;
    } else {
      captured.skipped.set(outcome.reason, (captured.skipped.get(outcome.reason) ?? 0) + 1);
    }
  }
}

/** One listing per hour folder when endpoint and variant are known; else the narrowest known folder. */
function listingPrefixes(base: string, query: CaptureQuery): string[] {
  const { endpoint, variant } = query;
  if (endpoint === undefined) return [`${base}/`];
  if (variant === undefined) return [`${base}/${endpoint}/`];
  const prefixes: string[] = [];
  for (let hour = startOfHour(query.from); hour < query.to.getTime(); hour += HOUR_MS) {
    prefixes.push(`${base}/${endpoint}/${variant}/${hourFolder(hour)}/`);
  }
  return prefixes;
}

function startOfHour(time: Date): number {
  return Math.floor(time.getTime() / HOUR_MS) * HOUR_MS;
}

function hourFolder(hour: number): string {
  const iso = new Date(hour).toISOString();
  return `${iso.slice(0, 4)}/${iso.slice(5, 7)}/${iso.slice(8, 10)}/${iso.slice(11, 13)}`;
}

/** `endpoint/variant/yyyy/mm/dd/hh/name.jsonl`, of the wanted endpoint and variant, in an hour overlapping the window. */
function isWantedFile(relative: string, query: CaptureQuery): boolean {
  const parts = relative.split('/');
  const [endpoint, variant, year, month, day, hour, name] = parts;
  if (parts.length !== 7 || !name?.endsWith('.jsonl')) return false;
  if (query.endpoint !== undefined && endpoint !== query.endpoint) return false;
  if (query.variant !== undefined && variant !== query.variant) return false;
  const start = new Date(`${year}-${month}-${day}T${hour}:00:00Z`).getTime();
  return !Number.isNaN(start) && start < query.to.getTime() && start + HOUR_MS > query.from.getTime();
}
