import { sql } from "drizzle-orm";
import { all, batch } from "../lib/batch";
import type { Db } from "../lib/db";
import { DAY_MS } from "../lib/time";
import type { AuditEntryRow } from "../services/audit";
import type { JsonObject, LogEntryInput } from "./chain";
import { everyShard, type LogConfig, shardOf, shardStub } from "./client";
import type { AppendInput } from "./shard";

/**
 * The audit outbox's drainer: moves entries written in D1 (`audit_outbox`, in the batch of the
 * change they record) to their actor's log shard, exactly once.
 *
 * Exactly once: a row is appended with append id `outbox:<id>` and deleted only after that
 * append resolved. A drain that dies (or whose delete fails) between the two leaves the row,
 * and the next drain appends it again under the same id, which the shard answers as a replay
 * (its `appends` table) instead of writing a copy. So an entry is written at most once as long
 * as the shard keeps the id, and the shard keeps an outbox id `OUTBOX_APPEND_RETENTION_MS` from
 * the append it guards; the row it guards is deleted by the same drain, or by the next one (the
 * scheduled job drains every minute), so it would take D1 refusing the delete for that long to
 * make a copy. At least once: a row leaves the outbox only once its append resolved.
 */

/** Rows one drain reads and appends; the scheduled job loops over chunks. */
export const DRAIN_CHUNK = 500;

/** How long a shard keeps an outbox append id (from the append): far beyond a row's life after it. */
export const OUTBOX_APPEND_RETENTION_MS = 30 * DAY_MS;

/** The append id of an outbox row: stable across retries, never reused (AUTOINCREMENT). */
export function outboxAppendId(id: number): string {
  return `outbox:${id}`;
}

/** An outbox row: an audit entry waiting for its shard. */
export type OutboxRow = AuditEntryRow & { id: number };

/**
 * An outbox row as a shard entry: `details.subjectKeys` moves beside it (committed, erasable), and
 * `details.outboxId` names the row, in the chain (the accounting relies on it).
 */
export function outboxEntry(row: OutboxRow): LogEntryInput {
  const parsed = row.details === null ? null : (JSON.parse(row.details) as JsonObject);
  let details: JsonObject | null = parsed;
  let subjectKeys: string[] | undefined;
  if (parsed && Array.isArray(parsed.subjectKeys)) {
    const { subjectKeys: keys, ...rest } = parsed;
    subjectKeys = (keys as unknown[]).filter((k): k is string => typeof k === "string");
    details = rest;
  }
  return {
    at: row.at,
    actor: row.actor,
    action: row.action,
    target: row.target,
    requestId: row.request_id,
    outcome: row.outcome,
    // The outbox id, chained: the accounting counts an id only with the entry that names it.
    details: { ...details, outboxId: row.id },
    ...(subjectKeys && subjectKeys.length > 0 ? { subjectKeys } : {}),
  };
}

export interface DrainResult {
  /** Rows appended (or found already appended) and deleted. */
  drained: number;
  /** Rows whose append failed: they stay for the next drain. */
  failed: number;
  /** Whether the chunk was full (more rows may wait). */
  more: boolean;
}

/**
 * Drains one chunk of the outbox: reads up to `limit` rows in id order, appends them to their
 * actors' shards (one call per shard, rows in id order, group-committed there), and deletes the
 * rows whose append resolved. Safe to run concurrently with itself: a row two drains both read is
 * appended by the first and answered as a replay to the second.
 *
 * @example ctx.waitUntil(drainOutbox(config, db).catch(…)); // after a committed write
 */
export async function drainOutbox(
  config: LogConfig,
  db: Db,
  { limit = DRAIN_CHUNK }: { limit?: number } = {},
): Promise<DrainResult> {
  const rows = await all<OutboxRow>(
    db,
    sql`SELECT id, at, actor, action, target, request_id, outcome, details FROM audit_outbox
        ORDER BY id LIMIT ${limit}`,
  );
  if (rows.length === 0) {
    return { drained: 0, failed: 0, more: false };
  }
  const byShard = new Map<number, OutboxRow[]>();
  for (const row of rows) {
    const shard = shardOf(row.actor, config.LOG_SHARDS);
    byShard.set(shard, [...(byShard.get(shard) ?? []), row]);
  }
  const acked: number[] = [];
  await Promise.all(
    [...byShard].map(async ([shard, group]) => {
      const inputs: AppendInput[] = group.map((row) => ({
        id: outboxAppendId(row.id),
        entries: [outboxEntry(row)],
        outboxId: row.id,
      }));
      try {
        const settled = await shardStub(config, shard).appendMany(shard, inputs);
        settled.forEach((s, i) => {
          const row = group[i];
          if (s.status === "fulfilled" && s.value.ok && row) {
            acked.push(row.id);
          }
        });
      } catch (err) {
        // The shard is unreachable: its rows wait for the next drain.
        console.error("outbox drain: shard", shard, String(err));
      }
    }),
  );
  if (acked.length > 0) {
    await batch(db, [
      sql`DELETE FROM audit_outbox WHERE id IN (SELECT value FROM json_each(${JSON.stringify(acked)}))`,
    ]);
  }
  return { drained: acked.length, failed: rows.length - acked.length, more: rows.length === limit };
}

/** Whether this isolate is draining now, and whether rows were written since that drain began. */
let draining = false;
let drainWanted = false;

/** Most chunks one request's coalesced drain runs before it leaves the rest to the next one. */
const COALESCED_ROUNDS = 8;

/**
 * The drain after a write, coalesced per isolate: when a drain is already running here, the
 * write only marks that more rows wait, and the running drain goes round again for them (on its
 * own request's I/O, never another's). Under load, one drain serves many writes instead of each
 * write paying a D1 read, a shard append and a D1 delete. Returns the drain to wait for, or null
 * when the running one takes the rows; what a drain leaves behind is drained by the next write's
 * or by the scheduled job (every minute).
 */
export function drainCoalesced(config: LogConfig, db: Db): Promise<void> | null {
  if (draining) {
    drainWanted = true;
    return null;
  }
  draining = true;
  return (async () => {
    try {
      for (let round = 0; round < COALESCED_ROUNDS; round++) {
        drainWanted = false;
        const r = await drainOutbox(config, db);
        if (r.failed > 0 || (!drainWanted && !r.more)) {
          break;
        }
      }
    } finally {
      draining = false;
    }
  })();
}

/** Drains chunk after chunk until the outbox is empty, a chunk fails, or `maxChunks` ran. */
export async function drainAll(
  config: LogConfig,
  db: Db,
  maxChunks = 40,
): Promise<{ drained: number; failed: number }> {
  let drained = 0;
  let failed = 0;
  for (let chunk = 0; chunk < maxChunks; chunk++) {
    const r = await drainOutbox(config, db);
    drained += r.drained;
    failed += r.failed;
    if (!r.more || r.failed > 0) {
      break;
    }
  }
  return { drained, failed };
}

/**
 * The outbox's accounting: proof that no audit entry was lost between its write and its shard.
 *
 * Outbox ids come from AUTOINCREMENT inside the write's own transaction, so they have no holes:
 * a batch that fails takes its id back with it. Every id ever assigned (up to the table's
 * `sqlite_sequence`) is therefore either still waiting in the outbox or held by the shard it was
 * appended to (`outbox_appended`, written in the append's own transaction, and counted only with
 * the chained entry whose `details.outboxId` names it). An id that is neither
 * was deleted before its drain: an action with no audit entry. Log shard 0 keeps a watermark
 * below which everything was accounted for, as chained `audit.outbox_accounted` entries, so each
 * run looks only at the ids since and the watermark cannot move without a trace.
 *
 * The outbox is read first and the shards second: a row drained in between was appended before
 * its deletion, so the shards show it.
 */
export interface OutboxAccount {
  /** Every id at or below this is accounted for (the watermark, moved up by `advance`). */
  through: number;
  /** The highest id the outbox ever assigned. */
  top: number;
  /** Rows waiting for their drain. */
  pending: number;
  /** Ids neither waiting nor held by a shard, as inclusive ranges: deleted before their drain. */
  missing: [number, number][];
}

/** Merges inclusive integer ranges (any order, may overlap or touch). */
function mergeRanges(ranges: readonly [number, number][]): [number, number][] {
  const out: [number, number][] = [];
  for (const [a, b] of [...ranges].sort((x, y) => x[0] - y[0])) {
    const tail = out[out.length - 1];
    if (tail && a <= tail[1] + 1) {
      tail[1] = Math.max(tail[1], b);
    } else {
      out.push([a, b]);
    }
  }
  return out;
}

/** Ids in `(after, through]` that no range covers. */
export function uncovered(
  after: number,
  through: number,
  ranges: readonly [number, number][],
): [number, number][] {
  const gaps: [number, number][] = [];
  let next = after + 1;
  for (const [a, b] of mergeRanges(ranges)) {
    if (b < next) {
      continue;
    }
    if (a > through) {
      break;
    }
    if (a > next) {
      gaps.push([next, Math.min(a - 1, through)]);
    }
    next = Math.max(next, b + 1);
  }
  if (next <= through) {
    gaps.push([next, through]);
  }
  return gaps;
}

/**
 * Accounts for every outbox id since the watermark (see `OutboxAccount`); with `advance`, moves
 * the watermark up to just below the first id still waiting or missing. Missing ids keep the
 * watermark below them, so every later verify reports them too.
 */
export async function accountOutbox(
  config: LogConfig,
  db: Db,
  { advance = false, now = Date.now() }: { advance?: boolean; now?: number } = {},
): Promise<OutboxAccount> {
  const [state] = await all<{ top: number | null; pending: string }>(
    db,
    sql`SELECT (SELECT seq FROM sqlite_sequence WHERE name = 'audit_outbox') AS top,
          (SELECT json_group_array(id) FROM (SELECT id FROM audit_outbox ORDER BY id)) AS pending`,
  );
  const top = state?.top ?? 0;
  const pendingIds = JSON.parse(state?.pending ?? "[]") as number[];
  const shard0 = shardStub(config, 0);
  const watermark = (await shard0.outboxWatermark()) as number | null;
  const held = (
    (await everyShard(config, (stub) => stub.outboxHeld(watermark, top))) as unknown as [number, number][][]
  ).flat();
  const pending = mergeRanges(pendingIds.map((id) => [id, id] as [number, number]));
  // Before the first accounting, start where the oldest id still known (held or waiting) is.
  const firstKnown = Math.min(...held.map((r) => r[0]), ...pending.map((r) => r[0]));
  const after = watermark ?? (Number.isFinite(firstKnown) ? firstKnown - 1 : top);
  const missing = uncovered(after, top, [...held, ...pending]);
  const firstOpen = Math.min(
    missing[0]?.[0] ?? Number.POSITIVE_INFINITY,
    pending.find((r) => r[1] > after)?.[0] ?? Number.POSITIVE_INFINITY,
  );
  let through = Number.isFinite(firstOpen) ? Math.max(after, firstOpen - 1) : top;
  if (advance) {
    through = (await shard0.advanceOutboxWatermark(through, now)) as number;
  } else {
    through = after;
  }
  return { through, top, pending: pendingIds.length, missing };
}
