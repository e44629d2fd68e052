/**
 * `pixiu backfill <file.csv|file.ndjson>`: a platform's history of confirmed cases into the
 * ledger, through `POST /v1/reports/bulk`, resumable.
 *
 * Rows are read as a stream, checked and hashed here (client/cli/rows.ts; raw identifiers never
 * leave), and sent in batches of up to 500, several batches in flight. Each batch covers a range
 * of rows; when its answer arrives, its rejected rows are appended to `<file>.rejects.csv` and the
 * range is added to the state file `<file>.pixiu-state.json`, rewritten atomically (temporary
 * file, fsync, rename). A run that stops (Ctrl-C, a crash, SIGKILL) is resumed by the same
 * command: rows in answered ranges are skipped, the rejects file is cut back to the length the
 * state recorded, and only batches without a recorded answer are sent again, which the bulk API
 * answers 200 "already present" for what it had already written (idempotent by caseId).
 */

import { createHash } from "node:crypto";
import {
  closeSync,
  createReadStream,
  existsSync,
  fsyncSync,
  openSync,
  readFileSync,
  readSync,
  renameSync,
  statSync,
  truncateSync,
  writeSync,
} from "node:fs";
import { basename, extname } from "node:path";
import { createInterface } from "node:readline";
import { parse } from "csv-parse";
import type { FieldError } from "../errors.ts";
import { PixiuError } from "../errors.ts";
import { MAX_BULK_REPORTS, type PixiuClient, type ReportBody } from "../sdk.ts";
import { type Counts, progress } from "./progress.ts";
import { BACKFILL_COLUMNS, type BackfillRow, prepareRow } from "./rows.ts";

/** The bulk route takes 1 MiB; batches stop short of it whatever their notes hold. */
const MAX_BATCH_BYTES = 900_000;
const STATE_VERSION = 1;

export interface BackfillOptions {
  file: string;
  /** Null for a dry run (nothing is sent, no state or rejects file is written). */
  client: PixiuClient | null;
  /** The consortium key. */
  key: CryptoKey;
  /** Identifies the ledger and platform in the state file, so a state is never resumed elsewhere. */
  ledger: string;
  platform: string;
  concurrency?: number;
  batchSize?: number;
  retentionDays?: number;
  /** Ignore (and replace) an existing state file and rejects file. */
  fresh?: boolean;
  /** Where progress goes (default stderr). */
  progressStream?: NodeJS.WriteStream;
  now?: () => number;
  /** Stops reading new rows when aborted (Ctrl-C); batches in flight still finish and are recorded. */
  signal?: AbortSignal;
}

export interface BackfillSummary {
  file: string;
  rows: number;
  /** Dry run: rows that would be sent. */
  valid?: number;
  /** Rows skipped because an earlier run had them answered. */
  resumed: number;
  created: number;
  present: number;
  rejected: number;
  /** Bulk calls made by this run. */
  calls: number;
  seconds: number;
  complete: boolean;
  dryRun: boolean;
  rejectsFile: string | null;
  stateFile: string | null;
  /** Set when the run stopped on an error it cannot get past (the ledger refused a whole call). */
  error?: string;
  /** Dry run: the first problems found, for the terminal. */
  problems?: { row: number; caseId: string; errors: FieldError[] }[];
}

interface BackfillState {
  version: number;
  input: { name: string; size: number; head: string };
  ledger: string;
  platform: string;
  /** Inclusive ranges of rows (1 = the first data row) whose outcome is recorded. */
  done: [number, number][];
  counts: Counts;
  /** Length of the rejects file when this state was written; a resumed run cuts it back to this. */
  rejectsBytes: number;
  complete: boolean;
  updatedAt: string;
}

interface Reject {
  row: number;
  caseId: string;
  status: string;
  problem: string;
  record: BackfillRow;
}

interface Batch {
  first: number;
  last: number;
  items: { row: number; caseId: string; body: ReportBody; record: BackfillRow }[];
  bytes: number;
  rejects: Reject[];
  /** Rows of the range this run read (rows answered by an earlier run are not among them). */
  rows: number;
}

export function stateFileFor(file: string): string {
  return `${file}.pixiu-state.json`;
}

export function rejectsFileFor(file: string): string {
  return `${file}.rejects.csv`;
}

/** Size and a hash of the first 64 KiB: enough to notice the file was replaced or rewritten. */
function inputIdentity(file: string) {
  const size = statSync(file).size;
  const fd = openSync(file, "r");
  const buffer = Buffer.alloc(Math.min(size, 65_536));
  try {
    readSync(fd, buffer, 0, buffer.length, 0);
  } finally {
    closeSync(fd);
  }
  return { name: basename(file), size, head: createHash("sha256").update(buffer).digest("hex") };
}

/** Writes `text` to `path` so that a reader sees the old file or the new one, never a part. */
export function writeAtomic(path: string, text: string): void {
  const tmp = `${path}.${process.pid}.tmp`;
  const fd = openSync(tmp, "w", 0o600);
  try {
    writeSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
}

function addRange(done: [number, number][], first: number, last: number): [number, number][] {
  const all = [...done, [first, last] as [number, number]].sort((a, b) => a[0] - b[0]);
  const merged: [number, number][] = [];
  for (const [a, b] of all) {
    const top = merged[merged.length - 1];
    if (top && a <= top[1] + 1) {
      top[1] = Math.max(top[1], b);
    } else {
      merged.push([a, b]);
    }
  }
  return merged;
}

function isDone(done: [number, number][], row: number): boolean {
  // Ranges are few (one per batch in flight at a crash, merged as they complete): a scan will do.
  return done.some(([a, b]) => row >= a && row <= b);
}

function csvField(value: unknown): string {
  const raw = value === null || value === undefined ? "" : String(value);
  // A cell a spreadsheet would run as a formula is written as text (OWASP's CSV injection rule).
  const s = /^[=+\-@\t\r]/.test(raw) ? `'${raw}` : raw;
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

const REJECT_HEADER = ["row", "status", "problem", ...BACKFILL_COLUMNS];

function rejectLine(r: Reject): string {
  return `${[r.row, r.status, r.problem, ...BACKFILL_COLUMNS.map((c) => r.record[c])].map(csvField).join(",")}\n`;
}

function describe(errors: FieldError[]): string {
  return errors.map((e) => `${e.path}: ${e.message}`).join("; ");
}

/** Counts the data rows quickly (lines, less the CSV header), for the progress bar. */
async function countRows(file: string, csv: boolean): Promise<number> {
  let lines = 0;
  let lastByte = 10;
  for await (const chunk of createReadStream(file)) {
    const buf = chunk as Buffer;
    for (let i = 0; i < buf.length; i++) {
      if (buf[i] === 10) {
        lines++;
      }
    }
    lastByte = buf[buf.length - 1] ?? lastByte;
  }
  if (lastByte !== 10) {
    lines++;
  }
  return Math.max(0, lines - (csv ? 1 : 0));
}

/** The rows of the file with their numbers (1 = first data row); a row that cannot be read is an error. */
async function* readRows(
  file: string,
  csv: boolean,
): AsyncGenerator<{ row: number; record: BackfillRow; error?: string }> {
  if (csv) {
    const parser = createReadStream(file).pipe(
      parse({
        columns: (header: string[]) => {
          const names = header.map((h) => h.trim());
          const unknown = names.filter((h) => !(BACKFILL_COLUMNS as readonly string[]).includes(h));
          if (unknown.length > 0 || !names.includes("case_id")) {
            // Name the unknown columns only when they look like column names: a file exported
            // without its header has a row of personal data there.
            const shown = unknown.filter((u) => /^[a-z][a-z0-9_]{0,39}$/.test(u));
            throw new Error(
              `the header must name columns of: ${BACKFILL_COLUMNS.join(",")} (unknown: ${shown.join(",") || "none"}${shown.length < unknown.length ? `, and ${unknown.length - shown.length} that are not column names (is the header row missing?)` : ""}; case_id is required)`,
            );
          }
          return names;
        },
        bom: true,
        skip_empty_lines: true,
        relax_column_count: false,
        trim: false,
      }),
    );
    let row = 0;
    for await (const record of parser) {
      row++;
      yield { row, record: record as BackfillRow };
    }
    return;
  }
  const lines = createInterface({ input: createReadStream(file), crlfDelay: Number.POSITIVE_INFINITY });
  let row = 0;
  for await (const line of lines) {
    if (line.trim() === "") {
      continue;
    }
    row++;
    try {
      const value = JSON.parse(line) as unknown;
      if (value === null || typeof value !== "object" || Array.isArray(value)) {
        throw new Error("not a JSON object");
      }
      const unknown = Object.keys(value).filter((k) => !(BACKFILL_COLUMNS as readonly string[]).includes(k));
      if (unknown.length > 0) {
        yield { row, record: value as BackfillRow, error: `unknown fields: ${unknown.join(", ")}` };
        continue;
      }
      yield { row, record: value as BackfillRow };
    } catch (err) {
      yield { row, record: {}, error: `not a JSON object: ${(err as Error).message}` };
    }
  }
}

export async function backfill(options: BackfillOptions): Promise<BackfillSummary> {
  const { file, client } = options;
  const dryRun = client === null;
  const csv = ![".ndjson", ".jsonl"].includes(extname(file).toLowerCase());
  const now = options.now ?? Date.now;
  const concurrency = Math.max(1, options.concurrency ?? 8);
  // NaN passed every bound below (`inflight.size >= NaN` is never true): every batch at once.
  for (const [name, value] of Object.entries({ concurrency, retentionDays: options.retentionDays ?? 1 })) {
    if (!(value >= 1) || !Number.isFinite(value)) {
      throw new RangeError(`${name} must be a number of at least 1`);
    }
  }
  const batchSize = Math.min(MAX_BULK_REPORTS, Math.max(1, options.batchSize ?? MAX_BULK_REPORTS));
  const stateFile = stateFileFor(file);
  const rejectsFile = rejectsFileFor(file);
  const identity = inputIdentity(file);
  const started = Date.now();

  let state: BackfillState = {
    version: STATE_VERSION,
    input: identity,
    ledger: options.ledger,
    platform: options.platform,
    done: [],
    counts: { created: 0, present: 0, rejected: 0 },
    rejectsBytes: 0,
    complete: false,
    updatedAt: new Date().toISOString(),
  };
  if (!dryRun && !options.fresh && existsSync(stateFile)) {
    const saved = JSON.parse(readFileSync(stateFile, "utf8")) as BackfillState;
    if (saved.version !== STATE_VERSION) {
      throw new Error(`${stateFile} is of another version; rerun with --fresh`);
    }
    if (saved.input.size !== identity.size || saved.input.head !== identity.head) {
      throw new Error(`${file} changed since ${stateFile} was written; rerun with --fresh to start over`);
    }
    if (saved.ledger !== options.ledger || saved.platform !== options.platform) {
      throw new Error(
        `${stateFile} is a back-fill of ${saved.platform} at ${saved.ledger}; rerun with --fresh to start over`,
      );
    }
    state = saved;
  }
  const resumedRows = state.done.reduce((n, [a, b]) => n + b - a + 1, 0);
  if (!dryRun) {
    // What a crashed run appended after its last state is written again by the batches redone now.
    if (!existsSync(rejectsFile) || state.rejectsBytes === 0) {
      writeAtomic(rejectsFile, `${REJECT_HEADER.join(",")}\n`);
      state.rejectsBytes = statSync(rejectsFile).size;
    } else {
      truncateSync(rejectsFile, state.rejectsBytes);
    }
    writeAtomic(stateFile, `${JSON.stringify(state, null, 2)}\n`);
  }

  const total = await countRows(file, csv);
  const bar = progress({
    stream: options.progressStream ?? process.stderr,
    total,
    startRows: resumedRows,
    dryRun,
  });
  const counts = state.counts;
  let rowsDone = resumedRows;
  let calls = 0;
  /** The error that stopped the run; set from the batches' callbacks. */
  const stop: { failure: Error | null } = { failure: null };
  const problems: BackfillSummary["problems"] = [];

  const record = (batch: Batch) => {
    if (!dryRun && batch.rejects.length > 0) {
      const fd = openSync(rejectsFile, "a");
      try {
        writeSync(fd, batch.rejects.map(rejectLine).join(""));
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
    }
    counts.rejected += batch.rejects.length;
    rowsDone += batch.rows;
    if (!dryRun) {
      state.done = addRange(state.done, batch.first, batch.last);
      state.rejectsBytes = statSync(rejectsFile).size;
      state.updatedAt = new Date().toISOString();
      writeAtomic(stateFile, `${JSON.stringify(state, null, 2)}\n`);
    }
    bar.update(rowsDone, counts);
  };

  const send = async (batch: Batch) => {
    if (client && batch.items.length > 0) {
      calls++;
      const { data } = await client.api.POST("/v1/reports/bulk", {
        body: { reports: batch.items.map((i) => i.body) },
      });
      // Every row answered exactly once, or the call counts as failed and nothing is recorded: a
      // batch marked done without its answers would never be sent again.
      const answered = new Set((data?.results ?? []).map((r) => r.index));
      if (answered.size !== batch.items.length || batch.items.some((_, i) => !answered.has(i))) {
        throw new Error(
          `the ledger answered ${answered.size} of ${batch.items.length} rows of a bulk call; nothing of it is recorded, run again to resume`,
        );
      }
      for (const result of data?.results ?? []) {
        const item = batch.items[result.index];
        if (!item) {
          continue;
        }
        if (result.status === 201) {
          counts.created++;
        } else if (result.status === 200) {
          counts.present++;
        } else {
          const p = result.problem;
          batch.rejects.push({
            row: item.row,
            caseId: item.caseId,
            status: String(result.status),
            problem: p ? [p.detail, describe(p.errors ?? [])].filter(Boolean).join(" ") : "refused",
            record: item.record,
          });
        }
      }
    } else if (dryRun) {
      counts.created += batch.items.length; // a dry run's "would send"
    }
    record(batch);
  };

  const inflight = new Set<Promise<void>>();
  const dispatch = async (batch: Batch) => {
    while (inflight.size >= concurrency) {
      await Promise.race(inflight);
    }
    if (stop.failure) {
      return;
    }
    const p = send(batch)
      .catch((err: unknown) => {
        stop.failure ??= err as Error;
      })
      .finally(() => inflight.delete(p));
    inflight.add(p);
  };

  const newBatch = (row: number): Batch => ({
    first: row,
    last: row,
    items: [],
    bytes: 0,
    rejects: [],
    rows: 0,
  });
  let batch: Batch | null = null;
  const key = options.key;
  for await (const { row, record: rec, error } of readRows(file, csv)) {
    if (stop.failure || options.signal?.aborted) {
      break;
    }
    if (isDone(state.done, row)) {
      if (batch) {
        await dispatch(batch);
        batch = null;
      }
      continue;
    }
    batch ??= newBatch(row);
    batch.last = row;
    batch.rows++;
    const prepared = error
      ? {
          ok: false as const,
          caseId: String(rec.case_id ?? ""),
          errors: [{ path: "record", message: error }],
        }
      : await prepareRow(rec, { key, now: now(), retentionDays: options.retentionDays });
    if (prepared.ok) {
      // UTF-8 bytes, as the bulk route's 1 MiB limit counts them (a Chinese note is 3 per character).
      const bytes = new TextEncoder().encode(JSON.stringify(prepared.body)).length + 1;
      batch.items.push({ row, caseId: prepared.caseId, body: prepared.body, record: rec });
      batch.bytes += bytes;
    } else {
      batch.rejects.push({
        row,
        caseId: prepared.caseId,
        status: "invalid",
        problem: describe(prepared.errors),
        record: rec,
      });
      if (dryRun && problems.length < 20) {
        problems.push({ row, caseId: prepared.caseId, errors: prepared.errors });
      }
    }
    if (batch.items.length >= batchSize || batch.bytes >= MAX_BATCH_BYTES) {
      await dispatch(batch);
      batch = null;
    }
  }
  if (batch && !stop.failure && !options.signal?.aborted) {
    await dispatch(batch);
  }
  await Promise.all(inflight);
  const complete = !stop.failure && !options.signal?.aborted;
  if (!dryRun) {
    state.complete = complete;
    writeAtomic(stateFile, `${JSON.stringify(state, null, 2)}\n`);
  }
  bar.done(rowsDone, counts);
  // (In a dry run `counts.created` counts the rows that would be sent; the summary says `valid`.)
  const failureText = stop.failure
    ? stop.failure instanceof PixiuError
      ? `the ledger refused a bulk call: ${stop.failure.message}`
      : (stop.failure as Error).message
    : undefined;
  return {
    file,
    rows: rowsDone,
    resumed: resumedRows,
    created: dryRun ? 0 : counts.created,
    present: counts.present,
    ...(dryRun ? { valid: counts.created } : {}),
    rejected: counts.rejected,
    calls,
    seconds: (Date.now() - started) / 1000,
    complete,
    dryRun,
    rejectsFile: dryRun ? null : rejectsFile,
    stateFile: dryRun ? null : stateFile,
    ...(failureText ? { error: failureText } : {}),
    ...(dryRun ? { problems } : {}),
  };
}
