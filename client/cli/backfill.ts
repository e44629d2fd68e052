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
 * state recorded (only when those bytes are still what the state recorded: a file the operator
 * edited is kept as it is), and only batches without a recorded answer are sent again, which the
 * bulk API answers 200 "already present" for what it had already written (idempotent by caseId).
 *
 * The state is resumed only for the same input (size and SHA-256 of the whole file), ledger,
 * platform and consortium key (a fingerprint of it); anything else is refused, naming --fresh.
 * A run holds the lock file `<file>.pixiu-lock` (client/cli/lock.ts) throughout, so a second run
 * of the same file refuses to start.
 */

import { createHash, type Hash } from "node:crypto";
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
import { acquireLock } from "./lock.ts";
import { type Counts, progress } from "./progress.ts";
import { BACKFILL_COLUMNS, type BackfillRow, prepareRow } from "./rows.ts";

/** The bulk route takes 1 MiB; batches stop short of it whatever their notes hold. */
const MAX_BATCH_BYTES = 900_000;
/** 2: the input identified by the SHA-256 of the whole file (1 hashed its first 64 KiB), and the consortium key by a fingerprint. */
const STATE_VERSION = 2;

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
  input: { name: string; size: number; sha256: string };
  ledger: string;
  platform: string;
  /** keyFingerprint(): which consortium key the rows were hashed under (never the key itself). */
  consortiumKeyFingerprint: string;
  /** Inclusive ranges of rows (1 = the first data row) whose outcome is recorded. */
  done: [number, number][];
  counts: Counts;
  /** Length of the rejects file when this state was written; a resumed run cuts it back to this. */
  rejectsBytes: number;
  /** SHA-256 of those bytes: a resumed run cuts the file back only when they are still there. */
  rejectsSha256: string;
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

export function lockFileFor(file: string): string {
  return `${file}.pixiu-lock`;
}

export function rejectsFileFor(file: string): string {
  return `${file}.rejects.csv`;
}

/**
 * The input's identity in the state file: its name, size and the SHA-256 of the whole file
 * (an edit anywhere, even one that keeps the size, is noticed), with the count of its data rows
 * for the progress bar, all in one streamed pass (about 1 s a GB: a hash is cheap next to the
 * hashing and sending of the rows themselves).
 */
async function scanInput(file: string, csv: boolean) {
  const hash = createHash("sha256");
  let size = 0;
  let lines = 0;
  let lastByte = 10;
  for await (const chunk of createReadStream(file)) {
    const buf = chunk as Buffer;
    hash.update(buf);
    size += buf.length;
    for (let i = buf.indexOf(10); i !== -1; i = buf.indexOf(10, i + 1)) {
      lines++;
    }
    lastByte = buf[buf.length - 1] ?? lastByte;
  }
  if (lastByte !== 10) {
    lines++;
  }
  return {
    identity: { name: basename(file), size, sha256: hash.digest("hex") },
    /** Lines, less the CSV header: the rows, near enough for a progress bar. */
    rows: Math.max(0, lines - (csv ? 1 : 0)),
  };
}

/**
 * A fingerprint of the consortium key, for the state file: the first 16 bytes of an HMAC under the
 * key of a fixed label. It tells two keys apart and reveals nothing of the key; the label names no
 * identifier type, so it is no identifier's hash either.
 */
async function keyFingerprint(key: CryptoKey): Promise<string> {
  const mac = await crypto.subtle.sign(
    "HMAC",
    key,
    new TextEncoder().encode("pixiu backfill state: consortium key fingerprint"),
  );
  return Buffer.from(mac.slice(0, 16)).toString("hex");
}

/** Writes `text` to `path` so that a reader sees the old file or the new one, never a part. */
export function writeAtomic(path: string, text: string | Uint8Array): void {
  const tmp = `${path}.${process.pid}.tmp`;
  const fd = openSync(tmp, "w", 0o600);
  try {
    writeSync(fd, typeof text === "string" ? Buffer.from(text) : text);
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

/** The SHA-256 state of the first `bytes` bytes of `path`, or null when it is shorter. */
function hashPrefix(path: string, bytes: number): Hash | null {
  if (statSync(path).size < bytes) {
    return null;
  }
  const hash = createHash("sha256");
  const buffer = Buffer.alloc(Math.min(bytes, 1 << 20));
  const fd = openSync(path, "r");
  try {
    for (let at = 0; at < bytes; ) {
      const n = readSync(fd, buffer, 0, Math.min(buffer.length, bytes - at), at);
      if (n === 0) {
        return null;
      }
      hash.update(buffer.subarray(0, n));
      at += n;
    }
  } finally {
    closeSync(fd);
  }
  return hash;
}

/**
 * Readies the rejects file for a run and returns the hash of what it holds, which the run keeps
 * up as it appends (state.rejectsBytes and state.rejectsSha256 are set to match):
 *
 * - none yet, or none recorded (a fresh start): the header alone;
 * - the bytes the state recorded still there: cut back to them, as what a stopped run appended
 *   after its last state is written again by the batches redone now;
 * - else the operator edited it (removed the rows they fixed, say): kept as it is, never cut or
 *   padded; only a header for an emptied file, or a final newline, is added, and new rejects go
 *   after it.
 */
function readyRejects(path: string, state: BackfillState, say: NodeJS.WriteStream): Hash {
  const header = Buffer.from(`${REJECT_HEADER.join(",")}\n`);
  let content: Buffer;
  if (state.rejectsBytes === 0 || !existsSync(path)) {
    content = header;
    writeAtomic(path, content);
  } else {
    const prefix = hashPrefix(path, state.rejectsBytes);
    if (prefix && prefix.copy().digest("hex") === state.rejectsSha256) {
      truncateSync(path, state.rejectsBytes);
      return prefix;
    }
    const found = readFileSync(path);
    content =
      found.toString("utf8").trim() === ""
        ? header
        : found[found.length - 1] === 10
          ? found
          : Buffer.concat([found, Buffer.from("\n")]);
    if (content !== found) {
      writeAtomic(path, content);
    }
    say.write(`${path} was edited since the last run: kept as it is, new rejects are added after it\n`);
  }
  state.rejectsBytes = content.length;
  const hash = createHash("sha256").update(content);
  state.rejectsSha256 = hash.copy().digest("hex");
  return hash;
}

function rejectLine(r: Reject): string {
  return `${[r.row, r.status, r.problem, ...BACKFILL_COLUMNS.map((c) => r.record[c])].map(csvField).join(",")}\n`;
}

function describe(errors: FieldError[]): string {
  return errors.map((e) => `${e.path}: ${e.message}`).join("; ");
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

/**
 * Runs a back-fill (a dry run when `client` is null). A real run holds the lock file
 * `<file>.pixiu-lock` throughout, so a second run of the same file refuses (LockedError) instead
 * of writing the same state and rejects files.
 */
export async function backfill(options: BackfillOptions): Promise<BackfillSummary> {
  const lock =
    options.client === null ? null : acquireLock(lockFileFor(options.file), `back-fill of ${options.file}`);
  try {
    return await run(options);
  } finally {
    lock?.release();
  }
}

async function run(options: BackfillOptions): Promise<BackfillSummary> {
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
  const started = Date.now();
  const { identity, rows: total } = await scanInput(file, csv);
  const keyId = await keyFingerprint(options.key);

  let state: BackfillState = {
    version: STATE_VERSION,
    input: identity,
    ledger: options.ledger,
    platform: options.platform,
    consortiumKeyFingerprint: keyId,
    done: [],
    counts: { created: 0, present: 0, rejected: 0 },
    rejectsBytes: 0,
    rejectsSha256: "",
    complete: false,
    updatedAt: new Date().toISOString(),
  };
  if (!dryRun && !options.fresh && existsSync(stateFile)) {
    const saved = JSON.parse(readFileSync(stateFile, "utf8")) as BackfillState;
    if (saved.version !== STATE_VERSION) {
      throw new Error(
        `${stateFile} was written by another version of pixiu (state version ${saved.version}, this one reads ${STATE_VERSION}); rerun with --fresh to go through the whole file again (the ledger answers "already present" for what it holds, nothing is created twice)`,
      );
    }
    if (saved.input.size !== identity.size || saved.input.sha256 !== identity.sha256) {
      throw new Error(
        `${file} changed since ${stateFile} was written (its SHA-256 differs), so the rows that state records as done may not be the rows in it now; rerun with --fresh to go through the whole file again (the ledger answers "already present" for what it holds, nothing is created twice)`,
      );
    }
    if (saved.ledger !== options.ledger || saved.platform !== options.platform) {
      throw new Error(
        `${stateFile} is a back-fill of ${saved.platform} at ${saved.ledger}; rerun with --fresh to start over`,
      );
    }
    if (saved.consortiumKeyFingerprint !== keyId) {
      // The rows it records as done went to the ledger hashed under that other key.
      throw new Error(
        `${stateFile} was written under another consortium key (fingerprint ${saved.consortiumKeyFingerprint}; this run's is ${keyId}), so the rows it records as sent went out hashed under that key. If that key is the right one, run again with it (--consortium-key or PIXIU_CONSORTIUM_KEY). If this one is, the reports that run created carry wrong hashes: retract them, and send those cases again under new case ids (the ledger keeps a retracted report's case id: sent again, it answers 409); --fresh starts this file over under this key`,
      );
    }
    state = saved;
  }
  const resumedRows = state.done.reduce((n, [a, b]) => n + b - a + 1, 0);
  /** The hash of the rejects file as written so far, kept up as lines are appended. */
  let rejectsHash = createHash("sha256");
  if (!dryRun) {
    rejectsHash = readyRejects(rejectsFile, state, options.progressStream ?? process.stderr);
    writeAtomic(stateFile, `${JSON.stringify(state, null, 2)}\n`);
  }

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
      const lines = Buffer.from(batch.rejects.map(rejectLine).join(""));
      const fd = openSync(rejectsFile, "a");
      try {
        writeSync(fd, lines);
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      rejectsHash.update(lines);
      state.rejectsBytes += lines.length;
      state.rejectsSha256 = rejectsHash.copy().digest("hex");
    }
    counts.rejected += batch.rejects.length;
    rowsDone += batch.rows;
    if (!dryRun) {
      state.done = addRange(state.done, batch.first, batch.last);
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
