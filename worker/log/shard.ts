import { DurableObject } from "cloudflare:workers";
import { toHex } from "../lib/crypto";
import type { AuditEntryRow } from "../services/audit";
import {
  type ChainedContent,
  describeFault,
  entryHash,
  expectedInquiries,
  GENESIS_HASH,
  isPhotoKey,
  type JsonObject,
  keysCommitment,
  type LogEntry,
  type LogEntryInput,
  type LogFault,
  lookupInquiry,
  type ShardHead,
  verifyEntries,
} from "./chain";

/** One look-up of one subject key: the inquiry log a buyer is shown. */
export interface InquiryInput {
  subjectKey: string;
  platformId: string;
  purpose: string;
  requestId: string;
}

/** Per platform and UTC day: what the admin stats count. */
export interface UsageInput {
  platformId: string;
  day: string;
  queries?: number;
  subjects?: number;
  subjectAccess?: number;
}

/**
 * One request's log, appended all or nothing: its audit entries, its inquiry rows, its usage
 * counts, and optionally the daily cap on distinct subject keys a platform may look up.
 */
export interface AppendInput {
  /** Idempotency key: an append retried with the same id is answered, never written twice. */
  id: string;
  entries: LogEntryInput[];
  inquiries?: InquiryInput[];
  usage?: UsageInput;
  lookupCap?: { platformId: string; day: string; keys: string[]; limit: number };
  /** The audit outbox row this append drains (worker/log/outbox.ts): held for the outbox's accounting. */
  outboxId?: number;
}

export type AppendResult =
  | { ok: true; shard: number; first: number; last: number; replayed: boolean }
  | { ok: false; reason: "lookup_cap"; used: number; limit: number };

export interface EntryFilter {
  actor?: string;
  action?: string;
  target?: string;
  requestId?: string;
  since?: number;
  until?: number;
  /** Entries with seq below this. */
  beforeSeq?: number;
  /**
   * Entries strictly after this position in the list's order, (at, seq) descending: the audit
   * list's cursor. `seq: 0` means "every entry before `at`", MAX_SAFE_INTEGER "at `at` or before".
   */
  before?: { at: number; seq: number };
  limit: number;
}

export interface InquiryRow {
  requestId: string;
  at: number;
  purpose: string;
  platformId: string;
}

/** A platform's own look-up of one buyer (`LogShard.lookupsOf`): when, and the buyer's subject keys. */
export interface OwnLookup {
  at: number;
  /** Sorted, without `photo:` keys. */
  keys: string[];
}

/** `LogShard.lookupsOf`: the look-ups found, and how far back the list is complete. */
/** Which of a platform's own look-ups `LogShard.lookupsOf` reads: its actor's, of these keys, in [since, until]. */
export interface OwnLookupsQuery {
  platformId: string;
  actor: string;
  keys: readonly string[];
  since: number;
  until: number;
  /** Newest look-ups read per key. */
  perKey: number;
}

export interface OwnLookups {
  /** Newest first. */
  lookups: OwnLookup[];
  /**
   * Null when every look-up of the keys in the range was read; else some key had more than
   * `perKey`, and look-ups made at this time or before it may be missing (after it, none are).
   */
  completeAfter: number | null;
}

export interface ShardVerdict {
  shard: number;
  ok: boolean;
  checked: number;
  head: { seq: number; hash: string };
  /** Entries through this seq are in the archive (R2), verified there. */
  archivedThrough?: number;
  firstBadSeq?: number;
  reason?: string;
}

type EntryRow = AuditEntryRow & {
  seq: number;
  keys_commitment: string | null;
  prev_hash: string;
  hash: string;
  salt: string | null;
  subject_keys: string | null;
};

const SCHEMA = [
  `CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL)`,
  `CREATE TABLE IF NOT EXISTS entries (
     seq INTEGER PRIMARY KEY, at INTEGER NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL,
     target TEXT, request_id TEXT NOT NULL, outcome TEXT NOT NULL, details TEXT,
     keys_commitment TEXT, prev_hash TEXT NOT NULL, hash TEXT NOT NULL)`,
  `CREATE INDEX IF NOT EXISTS entries_actor ON entries (actor, seq)`,
  `CREATE INDEX IF NOT EXISTS entries_action ON entries (action, seq)`,
  `CREATE INDEX IF NOT EXISTS entries_target ON entries (target, seq)`,
  `CREATE INDEX IF NOT EXISTS entries_request ON entries (request_id)`,
  `CREATE INDEX IF NOT EXISTS entries_at ON entries (at)`,
  // The audit list reads newest first by (at, seq) under each filter: one index range each.
  `CREATE INDEX IF NOT EXISTS entries_actor_at ON entries (actor, at)`,
  `CREATE INDEX IF NOT EXISTS entries_action_at ON entries (action, at)`,
  `CREATE INDEX IF NOT EXISTS entries_target_at ON entries (target, at)`,
  // The erasable part of an entry: its subject keys and the salt of their commitment.
  // With the entry's time and target copied, so keys are erased on time even once the entry itself
  // has moved to the archive.
  `CREATE TABLE IF NOT EXISTS entry_keys (
     seq INTEGER PRIMARY KEY, salt TEXT NOT NULL, keys TEXT NOT NULL, at INTEGER NOT NULL, target TEXT)`,
  `CREATE INDEX IF NOT EXISTS entry_keys_at ON entry_keys (at)`,
  `CREATE INDEX IF NOT EXISTS entry_keys_target ON entry_keys (target)`,
  // One row per inquired look-up whose entry moved to the archive (R2), written as it moves: what
  // its inquiry rows must say (see `lookupInquiry`), so verify keeps holding them to it, with its
  // keys in `entry_keys`, while the inquiries' retention runs. Deleted with the inquiries.
  `CREATE TABLE IF NOT EXISTS archived_lookups (
     seq INTEGER PRIMARY KEY, at INTEGER NOT NULL, platform_id TEXT NOT NULL,
     request_id TEXT NOT NULL, purpose TEXT NOT NULL)`,
  `CREATE INDEX IF NOT EXISTS archived_lookups_at ON archived_lookups (at)`,
  `CREATE TABLE IF NOT EXISTS inquiries (
     subject_key TEXT NOT NULL, platform_id TEXT NOT NULL, purpose TEXT NOT NULL,
     at INTEGER NOT NULL, request_id TEXT NOT NULL)`,
  `CREATE INDEX IF NOT EXISTS inquiries_subject_at ON inquiries (subject_key, at)`,
  `CREATE INDEX IF NOT EXISTS inquiries_at ON inquiries (at)`,
  `CREATE TABLE IF NOT EXISTS usage (
     day TEXT NOT NULL, platform_id TEXT NOT NULL, queries INTEGER NOT NULL DEFAULT 0,
     subjects INTEGER NOT NULL DEFAULT 0, subject_access INTEGER NOT NULL DEFAULT 0,
     PRIMARY KEY (day, platform_id))`,
  // Distinct subject keys each platform looked up per UTC day, for the daily cap.
  `CREATE TABLE IF NOT EXISTS lookups (
     day TEXT NOT NULL, platform_id TEXT NOT NULL, subject_key TEXT NOT NULL,
     PRIMARY KEY (day, platform_id, subject_key)) WITHOUT ROWID`,
  `CREATE TABLE IF NOT EXISTS lookup_counts (
     day TEXT NOT NULL, platform_id TEXT NOT NULL, n INTEGER NOT NULL, PRIMARY KEY (day, platform_id))`,
  // Appends already written, by id, so a retried append is never written twice.
  `CREATE TABLE IF NOT EXISTS appends (
     id TEXT PRIMARY KEY, first INTEGER NOT NULL, last INTEGER NOT NULL, at INTEGER NOT NULL)`,
  `CREATE INDEX IF NOT EXISTS appends_at ON appends (at)`,
  // Audit outbox ids appended here, with the seq of the entry that chains them (its details name the
  // id), until the outbox's accounting passes them (worker/log/outbox.ts, "accounting").
  `CREATE TABLE IF NOT EXISTS outbox_appended (id INTEGER PRIMARY KEY, seq INTEGER NOT NULL)`,
];

/**
 * A platform's inquiries of some keys in a time range, the newest `?5` per key (`lookupsOf`): one
 * `inquiries_subject_at` range per key. Parameters: keys (JSON), since, until, platform, per key.
 */
export const OWN_LOOKUPS_SQL = `SELECT subject_key, at, request_id FROM (
    SELECT i.subject_key, i.at, i.request_id,
      row_number() OVER (PARTITION BY i.subject_key ORDER BY i.at DESC) AS n
    FROM json_each(?) j CROSS JOIN inquiries i ON i.subject_key = j.value
    WHERE i.at >= ? AND i.at <= ? AND i.platform_id = ?)
  WHERE n <= ?`;

/**
 * The latest of a platform's inquiries within each (key, from, to) triple of a JSON array
 * (`latestLookupsIn`), null for none: one `inquiries_subject_at` range per triple.
 */
export const LATEST_LOOKUPS_IN_SQL = `SELECT (SELECT max(i.at) FROM inquiries i
    WHERE i.subject_key = j.value ->> 0 AND i.at >= j.value ->> 1 AND i.at <= j.value ->> 2
      AND i.platform_id = ?) AS at
  FROM json_each(?) j ORDER BY j.key`;

/** How old the outbox watermark's entry may grow before it is written again (see advanceOutboxWatermark). */
const ACCOUNTING_REFRESH_MS = 86_400_000;

const ENTRY_COLUMNS = `e.seq, e.at, e.actor, e.action, e.target, e.request_id, e.outcome, e.details,
  e.keys_commitment, e.prev_hash, e.hash, k.salt, k.keys AS subject_keys`;

function randomHex(bytes: number): string {
  return toHex(crypto.getRandomValues(new Uint8Array(bytes)));
}

function toEntry(shard: number, r: EntryRow): LogEntry {
  return {
    shard,
    seq: r.seq,
    at: r.at,
    actor: r.actor,
    action: r.action,
    target: r.target,
    requestId: r.request_id,
    outcome: r.outcome,
    details: r.details === null ? null : (JSON.parse(r.details) as JsonObject),
    keys: r.keys_commitment,
    prevHash: r.prev_hash,
    hash: r.hash,
    subjectKeys: r.subject_keys === null ? null : (JSON.parse(r.subject_keys) as string[]),
    salt: r.salt,
  };
}

interface Pending {
  input: AppendInput;
  resolve: (r: AppendResult) => void;
  reject: (e: unknown) => void;
}

/**
 * A log shard: one SQLite-backed Durable Object, the single writer of its part of the log.
 *
 * Appends are **group-committed**: the appends that arrive while a flush is scheduled (one
 * macrotask) are written together in one `transactionSync`, each chained to the one before as it
 * is written, so the chain never has an unsealed backlog. A caller's promise resolves after that
 * transaction; the Durable Object's output gate holds its answer until the write is durable, so
 * whoever awaits an append has its entries on disk before it answers anyone.
 */
export class LogShard extends DurableObject {
  private readonly sql: SqlStorage;
  private shard = -1;
  private head: { seq: number; hash: string } = { seq: 0, hash: GENESIS_HASH };
  /** The last entry moved to the archive (R2) and removed from here; the genesis if none. */
  private archived: { seq: number; hash: string } = { seq: 0, hash: GENESIS_HASH };
  private pending: Pending[] = [];
  private flushScheduled = false;
  /** Group-commit statistics since this instance started (the bench reads them). */
  private stats = { flushes: 0, appends: 0, entries: 0, largestGroup: 0 };

  constructor(ctx: DurableObjectState, env: Cloudflare.Env) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    ctx.blockConcurrencyWhile(async () => {
      for (const statement of SCHEMA) {
        this.sql.exec(statement);
      }
      const shard = this.sql.exec<{ v: string }>("SELECT v FROM meta WHERE k = 'shard'").toArray()[0];
      this.shard = shard ? Number(shard.v) : -1;
      const last = this.sql
        .exec<{ seq: number; hash: string }>("SELECT seq, hash FROM entries ORDER BY seq DESC LIMIT 1")
        .toArray()[0];
      const archived = this.sql.exec<{ v: string }>("SELECT v FROM meta WHERE k = 'archived'").toArray()[0];
      if (archived) {
        this.archived = JSON.parse(archived.v) as { seq: number; hash: string };
      }
      this.head = last ? { seq: last.seq, hash: last.hash } : this.archived;
    });
  }

  /** Binds this object to its shard number (chained into every entry); idempotent. */
  private bind(shard: number): void {
    if (this.shard === shard) {
      return;
    }
    if (this.shard !== -1) {
      throw new Error(`log shard ${this.shard} was addressed as shard ${shard}`);
    }
    this.sql.exec("INSERT INTO meta (k, v) VALUES ('shard', ?)", String(shard));
    this.shard = shard;
  }

  /** Appends one request's log; resolves once it is committed (see the class comment). */
  append(shard: number, input: AppendInput): Promise<AppendResult> {
    this.bind(shard);
    return new Promise<AppendResult>((resolve, reject) => {
      this.pending.push({ input, resolve, reject });
      if (!this.flushScheduled) {
        this.flushScheduled = true;
        setTimeout(() => this.flush(), 0);
      }
    });
  }

  /**
   * Appends several logs in one call, in the order given, in the same group commit (the outbox
   * drainer's: its rows keep their order in the shard's chain). Each input is its own append,
   * deduplicated by its own id, and settles on its own: one failing fails only itself.
   */
  appendMany(shard: number, inputs: AppendInput[]): Promise<PromiseSettledResult<AppendResult>[]> {
    this.bind(shard);
    return Promise.allSettled(
      inputs.map(
        (input) =>
          new Promise<AppendResult>((resolve, reject) => {
            this.pending.push({ input, resolve, reject });
            if (!this.flushScheduled) {
              this.flushScheduled = true;
              setTimeout(() => this.flush(), 0);
            }
          }),
      ),
    );
  }

  private flush(): void {
    this.flushScheduled = false;
    const group = this.pending;
    this.pending = [];
    if (group.length === 0) {
      return;
    }
    const start = this.head;
    let outcomes: ({ ok: true; result: AppendResult } | { ok: false; error: unknown })[];
    try {
      // One transaction for the group; each append in its own savepoint (a nested
      // transactionSync), so one that fails rolls back alone and fails only its own caller.
      outcomes = this.ctx.storage.transactionSync(() =>
        group.map((p) => {
          const before = this.head;
          try {
            return { ok: true as const, result: this.ctx.storage.transactionSync(() => this.write(p.input)) };
          } catch (error) {
            this.head = before;
            return { ok: false as const, error };
          }
        }),
      );
    } catch (err) {
      this.head = start;
      for (const p of group) {
        p.reject(err);
      }
      return;
    }
    this.stats.flushes++;
    this.stats.appends += group.length;
    this.stats.largestGroup = Math.max(this.stats.largestGroup, group.length);
    group.forEach((p, i) => {
      const outcome = outcomes[i];
      if (outcome?.ok) {
        p.resolve(outcome.result);
      } else {
        p.reject(outcome?.error ?? new Error("append lost"));
      }
    });
  }

  /** One append inside the group's transaction. */
  private write(input: AppendInput): AppendResult {
    const seen = this.sql
      .exec<{ first: number; last: number }>("SELECT first, last FROM appends WHERE id = ?", input.id)
      .toArray()[0];
    if (seen) {
      return { ok: true, shard: this.shard, first: seen.first, last: seen.last, replayed: true };
    }
    const cap = input.lookupCap;
    if (cap) {
      const fresh = cap.keys.filter(
        (key) =>
          this.sql
            .exec(
              "SELECT 1 FROM lookups WHERE day = ? AND platform_id = ? AND subject_key = ?",
              cap.day,
              cap.platformId,
              key,
            )
            .toArray().length === 0,
      );
      const used =
        this.sql
          .exec<{ n: number }>(
            "SELECT n FROM lookup_counts WHERE day = ? AND platform_id = ?",
            cap.day,
            cap.platformId,
          )
          .toArray()[0]?.n ?? 0;
      if (used + fresh.length > cap.limit) {
        return { ok: false, reason: "lookup_cap", used, limit: cap.limit };
      }
      for (const key of fresh) {
        this.sql.exec(
          "INSERT INTO lookups (day, platform_id, subject_key) VALUES (?, ?, ?)",
          cap.day,
          cap.platformId,
          key,
        );
      }
      if (fresh.length > 0) {
        this.sql.exec(
          `INSERT INTO lookup_counts (day, platform_id, n) VALUES (?, ?, ?)
           ON CONFLICT (day, platform_id) DO UPDATE SET n = n + excluded.n`,
          cap.day,
          cap.platformId,
          fresh.length,
        );
      }
    }
    const first = this.head.seq + 1;
    const lookup = (input.inquiries?.length ?? 0) > 0;
    for (const e of input.entries) {
      const keys = e.subjectKeys && e.subjectKeys.length > 0 ? [...e.subjectKeys] : null;
      const salt = keys ? randomHex(16) : null;
      const content: ChainedContent = {
        shard: this.shard,
        seq: this.head.seq + 1,
        at: e.at,
        actor: e.actor,
        action: e.action,
        target: e.target ?? null,
        requestId: e.requestId,
        outcome: e.outcome,
        details: e.details ?? null,
        keys: keys && salt ? keysCommitment(salt, keys) : null,
      };
      const hash = entryHash(this.head.hash, content);
      this.sql.exec(
        `INSERT INTO entries (seq, at, actor, action, target, request_id, outcome, details, keys_commitment,
           prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
        content.seq,
        content.at,
        content.actor,
        content.action,
        content.target,
        content.requestId,
        content.outcome,
        content.details === null ? null : JSON.stringify(content.details),
        content.keys,
        this.head.hash,
        hash,
      );
      if (keys && salt) {
        // A look-up's keys are erased by age only, never with a purged record its target happens
        // to name (a batch `ref` is the caller's text): verify holds them for the inquiries' life.
        this.sql.exec(
          "INSERT INTO entry_keys (seq, salt, keys, at, target) VALUES (?, ?, ?, ?, ?)",
          content.seq,
          salt,
          JSON.stringify(keys),
          content.at,
          lookup ? null : content.target,
        );
      }
      this.head = { seq: content.seq, hash };
      this.stats.entries++;
    }
    const at = input.entries[0]?.at ?? Date.now();
    for (const q of input.inquiries ?? []) {
      this.sql.exec(
        "INSERT INTO inquiries (subject_key, platform_id, purpose, at, request_id) VALUES (?, ?, ?, ?, ?)",
        q.subjectKey,
        q.platformId,
        q.purpose,
        at,
        q.requestId,
      );
    }
    const u = input.usage;
    if (u) {
      this.sql.exec(
        `INSERT INTO usage (day, platform_id, queries, subjects, subject_access) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (day, platform_id) DO UPDATE SET queries = queries + excluded.queries,
           subjects = subjects + excluded.subjects, subject_access = subject_access + excluded.subject_access`,
        u.day,
        u.platformId,
        u.queries ?? 0,
        u.subjects ?? 0,
        u.subjectAccess ?? 0,
      );
    }
    if (input.outboxId !== undefined) {
      this.sql.exec("INSERT OR IGNORE INTO outbox_appended (id, seq) VALUES (?, ?)", input.outboxId, first);
    }
    const last = this.head.seq;
    // When the shard wrote it (not the entry's time: an outbox row may be drained late), so an
    // id is kept for its whole retention after the append it guards.
    this.sql.exec(
      "INSERT INTO appends (id, first, last, at) VALUES (?, ?, ?, ?)",
      input.id,
      first,
      last,
      Date.now(),
    );
    return { ok: true, shard: this.shard, first, last, replayed: false };
  }

  headOf(): ShardHead {
    return { shard: this.shard, seq: this.head.seq, hash: this.head.hash };
  }

  groupStats() {
    return { ...this.stats };
  }

  /** Entries matching a filter, newest first by (at, seq) (the admin's audit list). */
  entries(f: EntryFilter): LogEntry[] {
    const where: string[] = [];
    const binds: unknown[] = [];
    const add = (clause: string, value: unknown) => {
      where.push(clause);
      binds.push(value);
    };
    const filters: [string, unknown][] = [
      ["e.actor = ?", f.actor],
      ["e.action = ?", f.action],
      ["e.target = ?", f.target],
      ["e.request_id = ?", f.requestId],
      ["e.at >= ?", f.since],
      ["e.at < ?", f.until],
      ["e.seq < ?", f.beforeSeq],
    ];
    for (const [clause, value] of filters) {
      if (value !== undefined) {
        add(clause, value);
      }
    }
    if (f.before) {
      // A range on `at` the index serves, then the tie on `at` broken by seq.
      add("e.at <= ?", f.before.at);
      where.push("(e.at < ? OR e.seq < ?)");
      binds.push(f.before.at, f.before.seq);
    }
    const clause = where.length > 0 ? `WHERE ${where.join(" AND ")}` : "";
    return this.sql
      .exec<EntryRow>(
        `SELECT ${ENTRY_COLUMNS} FROM entries e LEFT JOIN entry_keys k ON k.seq = e.seq ${clause}
         ORDER BY e.at DESC, e.seq DESC LIMIT ?`,
        ...binds,
        f.limit,
      )
      .toArray()
      .map((r) => toEntry(this.shard, r));
  }

  /** Consecutive entries after `afterSeq`, oldest first (verify and export). */
  range(afterSeq: number, limit: number): LogEntry[] {
    return this.sql
      .exec<EntryRow>(
        `SELECT ${ENTRY_COLUMNS} FROM entries e LEFT JOIN entry_keys k ON k.seq = e.seq
         WHERE e.seq > ? ORDER BY e.seq LIMIT ?`,
        afterSeq,
        limit,
      )
      .toArray()
      .map((r) => toEntry(this.shard, r));
  }

  /** The hashes stored at these seqs (a checkpoint's heads are compared with them). */
  hashesAt(seqs: readonly number[]): { seq: number; hash: string }[] {
    const held = this.sql
      .exec<{ seq: number; hash: string }>(
        "SELECT e.seq, e.hash FROM json_each(?) j CROSS JOIN entries e ON e.seq = j.value",
        JSON.stringify(seqs),
      )
      .toArray();
    // The archive's last entry is gone from here, but its hash is what the chain goes on from.
    return this.archived.seq > 0 && seqs.includes(this.archived.seq) ? [...held, this.archived] : held;
  }

  /** The first seq written at or after `at`, or null (an export's `since`). */
  firstSeqSince(at: number): number | null {
    return (
      this.sql
        .exec<{ seq: number | null }>("SELECT min(seq) AS seq FROM entries WHERE at >= ?", at)
        .toArray()[0]?.seq ?? null
    );
  }

  /**
   * Verifies this shard's chain from `from` (a checkpointed head; by default where the archive
   * ends, or the genesis) to its head, in place, so a verify never ships the log over the network.
   * A `from` inside the archived part starts at the archive's end instead: archived segments are
   * verified on their own (`GET /v1/admin/audit/archive/verify`).
   */
  verify(from?: { seq: number; hash: string }, opts: { inquiriesSince?: number } = {}): ShardVerdict {
    // From storage, not memory: verify checks what is stored.
    const archived = this.archivedHead();
    const start = from === undefined || from.seq < archived.seq ? archived : from;
    let last = start;
    let checked = 0;
    if (start.seq > 0) {
      const at =
        start.seq === archived.seq
          ? archived
          : this.sql.exec<{ hash: string }>("SELECT hash FROM entries WHERE seq = ?", start.seq).toArray()[0];
      if (!at || at.hash !== start.hash) {
        return {
          shard: this.shard,
          ok: false,
          checked,
          head: last,
          firstBadSeq: start.seq,
          reason: `entry ${start.seq} no longer matches the signed checkpoint`,
        };
      }
    }
    // Look-ups already archived come first in the chain: their inquiry rows are checked first.
    const archivedFault =
      opts.inquiriesSince !== undefined && start.seq === archived.seq
        ? this.missingArchivedInquiry(opts.inquiriesSince)
        : null;
    if (archivedFault) {
      return {
        shard: this.shard,
        ok: false,
        checked,
        head: last,
        firstBadSeq: archivedFault.seq,
        reason: describeFault(archivedFault),
        archivedThrough: archived.seq,
      };
    }
    for (;;) {
      const run = this.range(last.seq, 1000);
      if (run.length === 0) {
        break;
      }
      const chained = verifyEntries(run, last);
      const { last: reached } = chained;
      checked += reached.seq - last.seq;
      const fault =
        chained.fault ??
        (opts.inquiriesSince === undefined ? null : this.missingInquiry(run, opts.inquiriesSince));
      if (fault) {
        return {
          shard: this.shard,
          ok: false,
          checked,
          head: reached,
          firstBadSeq: fault.kind === "gap" ? fault.expected : fault.seq,
          reason: describeFault(fault),
        };
      }
      last = reached;
    }
    return { shard: this.shard, ok: true, checked, head: last, archivedThrough: archived.seq };
  }

  /**
   * The first look-up among `run` whose keys or inquiry rows are gone though the inquiries'
   * retention (from `since`) still runs: a look-up deleted from a buyer's subject access.
   */
  private missingInquiry(run: readonly LogEntry[], since: number): LogFault | null {
    const expected = expectedInquiries(run, since);
    if (expected.rows.length > 0) {
      const missing = this.sql
        .exec<{ seq: number }>(
          `SELECT min(j.value ->> 3) AS seq FROM json_each(?) j
           WHERE NOT EXISTS (SELECT 1 FROM inquiries i WHERE i.subject_key = j.value ->> 0
             AND i.at = j.value ->> 1 AND i.platform_id = j.value ->> 2
             AND i.request_id = j.value ->> 4 AND i.purpose = j.value ->> 5)`,
          JSON.stringify(expected.rows),
        )
        .toArray()[0]?.seq;
      if (missing !== null && missing !== undefined) {
        const inquiry: LogFault = { kind: "inquiry", seq: missing };
        return expected.fault && expected.fault.seq < missing ? expected.fault : inquiry;
      }
    }
    return expected.fault;
  }

  /**
   * The first archived look-up (`archived_lookups`) written at or after `since` whose subject keys
   * or inquiry rows are gone: the entry itself is in R2, so these local rows are what verify holds
   * the inquiry log to while its retention runs. An inquiry row must match the look-up on
   * everything subject access shows: subject key, time, platform, request id and purpose.
   * Reads every such row (cost ∝ archived look-ups within retention: docs/audit.md).
   */
  private missingArchivedInquiry(since: number): LogFault | null {
    const erased = this.sql
      .exec<{ seq: number | null }>(
        `SELECT min(a.seq) AS seq FROM archived_lookups a
         WHERE a.at >= ? AND NOT EXISTS (SELECT 1 FROM entry_keys k WHERE k.seq = a.seq)`,
        since,
      )
      .toArray()[0]?.seq;
    const missing = this.sql
      .exec<{ seq: number | null }>(
        `SELECT min(a.seq) AS seq FROM archived_lookups a
           JOIN entry_keys k ON k.seq = a.seq CROSS JOIN json_each(k.keys) j
         WHERE a.at >= ? AND j.value NOT LIKE 'photo:%' AND NOT EXISTS (SELECT 1 FROM inquiries i WHERE i.subject_key = j.value
           AND i.at = a.at AND i.platform_id = a.platform_id AND i.request_id = a.request_id
           AND i.purpose = a.purpose)`,
        since,
      )
      .toArray()[0]?.seq;
    if (erased != null && (missing == null || erased <= missing)) {
      return { kind: "keys_erased", seq: erased };
    }
    return missing == null ? null : { kind: "inquiry", seq: missing };
  }

  /**
   * What this shard keeps of archived look-ups at these seqs: the `archived_lookups` row and the
   * subject keys with their salt (null when gone). Segment verify holds each inquired look-up of a
   * segment to it (worker/log/archive.ts, `verifySegment`).
   */
  archivedLookups(seqs: readonly number[]): {
    seq: number;
    at: number | null;
    platformId: string | null;
    requestId: string | null;
    purpose: string | null;
    salt: string | null;
    keys: string[] | null;
  }[] {
    return this.sql
      .exec<{
        seq: number;
        at: number | null;
        platform_id: string | null;
        request_id: string | null;
        purpose: string | null;
        salt: string | null;
        keys: string | null;
      }>(
        `SELECT j.value AS seq, a.at, a.platform_id, a.request_id, a.purpose, k.salt, k.keys
         FROM json_each(?) j LEFT JOIN archived_lookups a ON a.seq = j.value
           LEFT JOIN entry_keys k ON k.seq = j.value`,
        JSON.stringify(seqs),
      )
      .toArray()
      .map((r) => ({
        seq: r.seq,
        at: r.at,
        platformId: r.platform_id,
        requestId: r.request_id,
        purpose: r.purpose,
        salt: r.salt,
        keys: r.keys === null ? null : (JSON.parse(r.keys) as string[]),
      }));
  }

  /**
   * Entries old enough to archive, oldest first: the unbroken run of seqs right after what is
   * already archived, stopping at the first entry written at or after `before` (entries are
   * chained in append order, not in `at` order: an outbox entry drained late carries its earlier
   * write time, so a newer entry can sit between older ones, and it must hold the run back rather
   * than be skipped). Without their subject keys, which stay here until their own retention ends
   * (an archive under object lock cannot erase anything).
   */
  archivable(before: number, max: number): LogEntry[] {
    const run: LogEntry[] = [];
    const rows = this.sql.exec<EntryRow>(
      `SELECT e.seq, e.at, e.actor, e.action, e.target, e.request_id, e.outcome, e.details,
         e.keys_commitment, e.prev_hash, e.hash, NULL AS salt, NULL AS subject_keys
       FROM entries e WHERE e.seq > ? ORDER BY e.seq LIMIT ?`,
      this.archived.seq,
      max,
    );
    for (const r of rows) {
      if (r.seq !== this.archived.seq + run.length + 1 || r.at >= before) {
        break;
      }
      run.push(toEntry(this.shard, r));
    }
    return run;
  }

  /**
   * Records that entries through `seq` are safely in the archive and removes them from here (their
   * subject keys stay until retention). Refused unless the segment `key` holds exactly the entries
   * after this shard's archived head through `seq` (its metadata's `from`, `to` and entry count),
   * and `hash` is the hash of the entry at `seq`: the chain goes on from the archived head this
   * shard records. Each inquired look-up removed leaves its `archived_lookups` row.
   */
  async markArchived(
    seq: number,
    hash: string,
    key: string,
  ): Promise<{ archivedThrough: number } | { refused: string }> {
    // Nothing leaves this shard unless the segment holding it is in the archive, ending on it.
    const bucket = (this.env as unknown as { LOG_ARCHIVE: R2Bucket }).LOG_ARCHIVE;
    const segment = await bucket.head(key);
    const meta = segment?.customMetadata ?? {};
    if (!segment || meta.shard !== String(this.shard) || meta.to !== String(seq) || meta.hash !== hash) {
      return { refused: `no archived segment ${key} ends on entry ${seq} of shard ${this.shard}` };
    }
    return this.ctx.storage.transactionSync(() => {
      // Read inside the transaction: what is archived now, not before the R2 read.
      const from = this.archived.seq + 1;
      if (meta.from !== String(from) || meta.entries !== String(seq - from + 1)) {
        return {
          refused: `segment ${key} does not hold exactly entries ${from}–${seq} of shard ${this.shard} (it says ${meta.from ?? "?"}–${meta.to}, ${meta.entries ?? "?"} entries)`,
        };
      }
      const at = this.sql.exec<{ hash: string }>("SELECT hash FROM entries WHERE seq = ?", seq).toArray()[0];
      if (!at || at.hash !== hash) {
        return { refused: `entry ${seq} is not the archived segment's last entry` };
      }
      this.keepArchivedLookups(seq);
      this.sql.exec("DELETE FROM entries WHERE seq <= ?", seq);
      this.archived = { seq, hash };
      this.sql.exec(
        "INSERT INTO meta (k, v) VALUES ('archived', ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v",
        JSON.stringify(this.archived),
      );
      return { archivedThrough: seq };
    });
  }

  /** Writes the `archived_lookups` row of every inquired look-up through `seq` about to be archived. */
  private keepArchivedLookups(seq: number): void {
    const rows = this.sql.exec<{
      seq: number;
      at: number;
      actor: string;
      request_id: string;
      details: string | null;
      keys_commitment: string | null;
    }>(
      `SELECT seq, at, actor, request_id, details, keys_commitment FROM entries
       WHERE seq <= ? AND keys_commitment IS NOT NULL AND details IS NOT NULL`,
      seq,
    );
    for (const r of rows.toArray()) {
      const inquiry = lookupInquiry({
        actor: r.actor,
        requestId: r.request_id,
        details: JSON.parse(r.details as string) as JsonObject,
        keys: r.keys_commitment,
      });
      if (inquiry) {
        this.sql.exec(
          `INSERT OR REPLACE INTO archived_lookups (seq, at, platform_id, request_id, purpose)
           VALUES (?, ?, ?, ?, ?)`,
          r.seq,
          r.at,
          inquiry.platformId,
          inquiry.requestId,
          inquiry.purpose,
        );
      }
    }
  }

  /** Where this shard's chain goes on from after the archive: the last archived entry, or the genesis. */
  archivedHead(): { seq: number; hash: string } {
    const row = this.sql.exec<{ v: string }>("SELECT v FROM meta WHERE k = 'archived'").toArray()[0];
    return row ? (JSON.parse(row.v) as { seq: number; hash: string }) : { seq: 0, hash: GENESIS_HASH };
  }

  /** Look-ups of these subject keys, one per request, newest first. */
  inquiries(
    keys: readonly string[],
    before: { at: number; requestId: string } | null,
    limit: number,
  ): InquiryRow[] {
    const json = JSON.stringify(keys);
    const rows = this.sql
      .exec<{ request_id: string; at: number; purpose: string; platform_id: string }>(
        `SELECT i.request_id, min(i.at) AS at, i.purpose, i.platform_id
         FROM json_each(?) j CROSS JOIN inquiries i ON i.subject_key = j.value
         GROUP BY i.request_id
         HAVING ? IS NULL OR (min(i.at), i.request_id) < (?, ?)
         ORDER BY at DESC, i.request_id DESC LIMIT ?`,
        json,
        before === null ? null : 1,
        before?.at ?? 0,
        before?.requestId ?? "",
        limit,
      )
      .toArray();
    return rows.map((r) => ({
      requestId: r.request_id,
      at: r.at,
      purpose: r.purpose,
      platformId: r.platform_id,
    }));
  }

  /**
   * One platform's own look-ups of any of `keys` made in `[since, until]` (docs/scoring.md §3c,
   * the after-look-up check on a report write): per buyer looked up, the time and that buyer's
   * subject keys as the look-up sent them (its entry's keys, every subject of the query, not only
   * those in `keys`; `photo:` keys left out). At most the `perKey` newest look-ups of each key.
   *
   * Rows read: the `inquiries_subject_at` range of each key within the window (every platform's
   * look-ups of that buyer on this shard, filtered to `platformId`), then per look-up its entries by
   * request id (`entries_request`) and their keys by primary key. A look-up whose entry moved to
   * the archive is found through its `archived_lookups` row (same time and request id); one
   * whose keys are gone (erased) counts with the keys of `keys` it was inquired under.
   */
  lookupsOf(q: OwnLookupsQuery): OwnLookups {
    const hits = this.sql
      .exec<{ subject_key: string; at: number; request_id: string }>(
        OWN_LOOKUPS_SQL,
        JSON.stringify([...new Set(q.keys)]),
        q.since,
        q.until,
        q.platformId,
        q.perKey,
      )
      .toArray();
    // A key with `perKey` rows may have more, older ones: the list is complete only after its oldest.
    const perKey = new Map<string, { n: number; oldest: number }>();
    for (const h of hits) {
      const k = perKey.get(h.subject_key) ?? { n: 0, oldest: h.at };
      perKey.set(h.subject_key, { n: k.n + 1, oldest: Math.min(k.oldest, h.at) });
    }
    let completeAfter: number | null = null;
    for (const { n, oldest } of perKey.values()) {
      if (n >= q.perKey) {
        completeAfter = Math.max(completeAfter ?? oldest, oldest);
      }
    }
    // One inquiry per (request, key): a request's look-ups are its entries (one per buyer).
    const requests = new Map<string, { at: number; requestId: string; keys: Set<string> }>();
    for (const h of hits) {
      const id = `${h.at} ${h.request_id}`;
      const r = requests.get(id) ?? { at: h.at, requestId: h.request_id, keys: new Set<string>() };
      r.keys.add(h.subject_key);
      requests.set(id, r);
    }
    const found = new Map<string, OwnLookup>();
    for (const r of requests.values()) {
      let buyers = this.sql
        .exec<{ keys: string }>(
          `SELECT k.keys FROM entries e CROSS JOIN entry_keys k ON k.seq = e.seq
           WHERE e.request_id = ? AND e.actor = ?`,
          r.requestId,
          q.actor,
        )
        .toArray();
      if (buyers.length === 0) {
        buyers = this.sql
          .exec<{ keys: string }>(
            `SELECT k.keys FROM archived_lookups a CROSS JOIN entry_keys k ON k.seq = a.seq
             WHERE a.at = ? AND a.request_id = ? AND a.platform_id = ?`,
            r.at,
            r.requestId,
            q.platformId,
          )
          .toArray();
      }
      const sets = buyers
        .map((b) => (JSON.parse(b.keys) as string[]).filter((k) => !isPhotoKey(k)))
        .filter((keys) => keys.some((k) => r.keys.has(k)));
      for (const keys of sets.length > 0 ? sets : [[...r.keys]]) {
        const sorted = [...new Set(keys)].sort();
        found.set(`${r.at} ${sorted.join(",")}`, { at: r.at, keys: sorted });
      }
    }
    return { lookups: [...found.values()].sort((a, b) => b.at - a.at), completeAfter };
  }

  /**
   * For each (key, from, to), the time of the platform's latest inquiry of that key within
   * [from, to], or null. Rows read: the inquiries of those keys in those ranges.
   */
  latestLookupsIn(q: { platformId: string; ranges: readonly [string, number, number][] }): (number | null)[] {
    return this.sql
      .exec<{ at: number | null }>(LATEST_LOOKUPS_IN_SQL, q.platformId, JSON.stringify(q.ranges))
      .toArray()
      .map((r) => r.at);
  }

  /**
   * Audit outbox ids this shard holds in `(after, through]`, as inclusive ranges `[first, last]`
   * (worker/log/outbox.ts, "accounting"); with `after` null, every held id. An id counts as held
   * only with the chained entry that names it (`details.outboxId`), or once that entry is archived.
   */
  outboxHeld(after: number | null, through: number): [number, number][] {
    const ranges: [number, number][] = [];
    const rows = this.sql.exec<{ id: number; seq: number; named: number | null }>(
      `SELECT h.id, h.seq, e.details ->> '$.outboxId' AS named FROM outbox_appended h
       LEFT JOIN entries e ON e.seq = h.seq WHERE h.id > ? AND h.id <= ? ORDER BY h.id`,
      after ?? -1,
      through,
    );
    for (const { id, named } of rows) {
      // Held only with the chained entry naming it. An id whose entry is already archived counts
      // as missing: the watermark passes every id within a minute of its drain, so an id still
      // above it a month later sits behind a real gap, and reporting it too is the safe side.
      if (named !== id) {
        continue;
      }
      const tail = ranges[ranges.length - 1];
      if (tail && tail[1] === id - 1) {
        tail[1] = id;
      } else {
        ranges.push([id, id]);
      }
    }
    return ranges;
  }

  /**
   * Shard 0 keeps the outbox's watermark, in its chain: every outbox id at or below the `through`
   * of its latest `audit.outbox_accounted` entry reached a shard. Null before the first.
   */
  outboxWatermark(): number | null {
    const chained = this.latestAccounting();
    if (chained) {
      return chained.through;
    }
    // Its entry archived (the scheduled job rewrites it daily, so only when that did not run for a
    // month): the copy kept beside the chain when it was written.
    const kept = this.sql.exec<{ v: string }>("SELECT v FROM meta WHERE k = 'outbox_through'").toArray()[0];
    return kept ? Number(kept.v) : null;
  }

  /**
   * The latest accounting entry: written by the ledger itself (`system:ledger`), never an audit
   * outbox row dressed up as one (a drained row names its `outboxId`).
   */
  private latestAccounting(): { through: number; at: number } | null {
    const row = this.sql
      .exec<{ through: number | null; at: number }>(
        `SELECT details ->> '$.through' AS through, at FROM entries
         WHERE action = 'audit.outbox_accounted' AND actor = 'system:ledger'
           AND details ->> '$.outboxId' IS NULL
         ORDER BY seq DESC LIMIT 1`,
      )
      .toArray()[0];
    return row && row.through !== null ? { through: row.through, at: row.at } : null;
  }

  /**
   * Moves the outbox's watermark up (never down), as a chained entry: no move leaves no trace.
   * A watermark that has not moved for a day is written again as it is, so its entry is never old
   * enough to be archived (a watermark held back by a missing id must stay found).
   */
  async advanceOutboxWatermark(through: number, now = Date.now()): Promise<number> {
    const latest = this.latestAccounting();
    const current = latest?.through ?? null;
    const stale = latest !== null && now - latest.at > ACCOUNTING_REFRESH_MS;
    if (current !== null && through <= current && !stale) {
      return current;
    }
    through = Math.max(through, current ?? through);
    const requestId = `outbox-through:${through}:${now}`;
    await this.append(0, {
      id: requestId,
      entries: [
        {
          at: now,
          actor: "system:ledger",
          action: "audit.outbox_accounted",
          requestId,
          outcome: "ok",
          details: { through },
        },
      ],
    });
    this.sql.exec(
      "INSERT INTO meta (k, v) VALUES ('outbox_through', ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v",
      String(through),
    );
    return through;
  }

  /** Usage rows from `sinceDay` on (admin stats). */
  usage(sinceDay: string) {
    return this.sql
      .exec<{ day: string; platform_id: string; queries: number; subjects: number; subject_access: number }>(
        "SELECT day, platform_id, queries, subjects, subject_access FROM usage WHERE day >= ? ORDER BY day",
        sinceDay,
      )
      .toArray();
  }

  /** Distinct subject keys a platform looked up on a day (admin stats, the daily cap). */
  lookupCounts(day: string) {
    return this.sql
      .exec<{ platform_id: string; n: number }>("SELECT platform_id, n FROM lookup_counts WHERE day = ?", day)
      .toArray();
  }

  /**
   * Retention (docs/due-process.md): erases subject keys of entries older than `keysBefore` (the
   * chain keeps their commitment), of entries about the given targets (purged records), deletes
   * inquiries older than `inquiriesBefore`, and daily cap rows and append ids no longer needed.
   */
  purge(p: {
    keysBefore: number;
    inquiriesBefore: number;
    targets: string[];
    dayBefore: string;
    appendsBefore: number;
    /** Outbox append ids (`outbox:<id>`) are kept longer: see `OUTBOX_APPEND_RETENTION_MS`. */
    outboxAppendsBefore: number;
    /** Held outbox ids at or below the outbox's watermark are accounted for. */
    outboxThrough?: number | null;
  }) {
    return this.ctx.storage.transactionSync(() => {
      const keys = this.sql.exec("DELETE FROM entry_keys WHERE at < ?", p.keysBefore).rowsWritten;
      const targeted =
        p.targets.length === 0
          ? 0
          : this.sql.exec(
              "DELETE FROM entry_keys WHERE target IN (SELECT value FROM json_each(?))",
              JSON.stringify(p.targets),
            ).rowsWritten;
      const inquiries = this.sql.exec("DELETE FROM inquiries WHERE at < ?", p.inquiriesBefore).rowsWritten;
      this.sql.exec("DELETE FROM archived_lookups WHERE at < ?", p.inquiriesBefore);
      this.sql.exec("DELETE FROM lookups WHERE day < ?", p.dayBefore);
      this.sql.exec("DELETE FROM lookup_counts WHERE day < ?", p.dayBefore);
      this.sql.exec("DELETE FROM appends WHERE at < ? AND id NOT LIKE 'outbox:%'", p.appendsBefore);
      this.sql.exec("DELETE FROM appends WHERE at < ? AND id LIKE 'outbox:%'", p.outboxAppendsBefore);
      if (p.outboxThrough !== undefined && p.outboxThrough !== null) {
        this.sql.exec("DELETE FROM outbox_appended WHERE id <= ?", p.outboxThrough);
      }
      return { keysErased: keys + targeted, inquiriesPurged: inquiries };
    });
  }
}
