import { z } from "@hono/zod-openapi";
import { type SQL, sql } from "drizzle-orm";
import type { App } from "../app";
import { currentHeads, publicAuditKeys, readableLog, treeCheckpoints, verifyLog } from "../audit/ledger";
import { LEDGER_LEAF } from "../audit/tree";
import { all } from "../lib/batch";
import { decodeTimeIdCursor, encodeTimeIdCursor } from "../lib/cursor";
import { ProblemError } from "../lib/problem";
import { authenticatedRoute } from "../lib/route";
import { toRfc3339 } from "../lib/time";
import type { LogEntry, ShardHead } from "../log/chain";
import { everyShard, shardStub } from "../log/client";
import { guard } from "../middleware/auth";
import { CursorQuery, count, DateTime, Hex64, int, LimitQuery, page, Rfc3339 } from "../schemas/common";
import { MAX_BATCH_QUERIES } from "../schemas/scores";
import { MAX_AUDIT_TEXT } from "../services/audit";

/** Highest shard number: LOG_SHARDS is at most 64 (worker/env.ts). */
const MAX_SHARD = 63;
/** Subject keys one log entry commits to: one buyer's (8), or a batch's at most. */
const MAX_ENTRY_KEYS = 8 * MAX_BATCH_QUERIES;
/** A verifier's reason: one sentence naming the entry and what failed. */
const MAX_VERDICT_REASON = 1000;
/** Ceiling of the outbox's missing ranges (each a fault, alerted on): not enforced. */
const MAX_MISSING_RANGES = 100_000;

const EntrySchema = z
  .object({
    seq: count(),
    at: DateTime,
    actor: z.string().max(256),
    action: z.string().max(100),
    target: z.string().max(MAX_AUDIT_TEXT).nullable(),
    requestId: z.string().max(64),
    outcome: z.string().max(32),
    details: z.record(z.string(), z.unknown()).nullable(),
    prevHash: Hex64.nullable(),
    hash: Hex64.nullable().openapi({
      description: "Null until the sealer chains a ledger entry; never null in a shard",
    }),
    shard: int(0, MAX_SHARD)
      .nullable()
      .openapi({ description: "The log shard whose chain holds the entry; null for the ledger chain (D1)" }),
    keys: Hex64.nullable().openapi({
      description: "Shard entries: the chained commitment to the subject keys, or null",
    }),
    subjectKeys: z
      .array(
        z
          .string()
          .regex(/^(photo:)?[0-9a-f]{64}$/)
          .max(70),
      )
      .max(MAX_ENTRY_KEYS)
      .nullable()
      .openapi({
        description:
          "Shard entries: the subject keys committed to, and the claim photos' PDQ hashes probed (`photo:<hash>`), while retained; null once erased (and for the ledger)",
      }),
  })
  .openapi("AuditEntry");

const list = authenticatedRoute({
  method: "get",
  path: "/v1/admin/audit",
  operationId: "listAdminAuditEntries",
  tags: ["Admin: audit"],
  summary:
    "Audit entries of the ledger chain and every log shard, newest first, filtered by actor, action, target and time",
  description:
    "Ordered by (at descending, source, seq descending), the ledger chain (D1) being the first source and the shards following in shard order; `nextCursor` is an opaque position in that order.",
  middleware: [guard("audit.list", "admin")] as const,
  request: {
    query: z.object({
      actor: z.string().max(200).optional(),
      action: z.string().max(100).optional(),
      target: z.string().max(200).optional(),
      since: Rfc3339.optional(),
      until: Rfc3339.optional(),
      cursor: CursorQuery,
      limit: LimitQuery,
    }),
  },
  responses: {
    200: {
      description: "A page of entries",
      content: { "application/json": { schema: page(EntrySchema, "AuditPage") } },
    },
  },
});

const verify = authenticatedRoute({
  method: "get",
  path: "/v1/admin/audit/verify",
  operationId: "verifyAdminAudit",
  tags: ["Admin: audit"],
  summary:
    "Verify the ledger chain and every log shard's chain, from the genesis or from the latest signed checkpoint",
  description:
    "Seals pending ledger entries first. The top-level fields are the ledger chain's verdict (`firstBadSeq` names its first bad `seq` when an entry was altered, removed or reordered; `unsealed` counts entries written but not yet chained, not a fault); `shards` holds one verdict per log shard (never anything unsealed: a shard chains as it writes). `outbox` accounts for every audit outbox id (none deleted before its drain). `ok` is true only when the ledger, every shard, every stored checkpoint and the outbox's accounting verify.",
  middleware: [guard("audit.verify", "admin")] as const,
  request: { query: z.object({ from: z.enum(["genesis", "checkpoint"]).default("genesis") }) },
  responses: {
    200: {
      description: "The verdict",
      content: {
        "application/json": {
          schema: z.object({
            ok: z.boolean(),
            checked: count(),
            from: z.object({ seq: count(), checkpoint: z.boolean() }),
            head: z.object({ seq: count(), hash: Hex64 }).nullable(),
            unsealed: count(),
            checkpoints: z.object({ checked: count(), invalid: count() }),
            treeCheckpoints: z.object({ count: count(), invalid: count() }),
            firstBadSeq: count().optional(),
            reason: z.string().max(MAX_VERDICT_REASON).optional(),
            outbox: z
              .object({
                through: count(),
                top: count(),
                pending: count(),
                missing: z
                  .array(z.tuple([count(), count()]).openapi({ minItems: 2, maxItems: 2 }))
                  .max(MAX_MISSING_RANGES),
              })
              .describe(
                "The audit outbox's accounting: every id up to `top` is waiting (`pending`) or held by a shard; `missing` ranges were deleted before reaching the log (a fault).",
              ),
            shards: z
              .array(
                z.object({
                  shard: int(0, MAX_SHARD),
                  ok: z.boolean(),
                  checked: count(),
                  from: z.object({ seq: count(), checkpoint: z.boolean() }),
                  head: z.object({ seq: count(), hash: Hex64 }),
                  unsealed: z.literal(0),
                  firstBadSeq: count().optional(),
                  reason: z.string().max(MAX_VERDICT_REASON).optional(),
                }),
              )
              .max(MAX_SHARD + 1),
          }),
        },
      },
    },
  },
});

interface Row {
  seq: number;
  at: number;
  actor: string;
  action: string;
  target: string | null;
  request_id: string;
  outcome: string;
  details: string | null;
  prev_hash: string | null;
  hash: string | null;
}

export function toAuditEntry(r: Row) {
  return {
    seq: r.seq,
    at: toRfc3339(r.at),
    actor: r.actor,
    action: r.action,
    target: r.target,
    requestId: r.request_id,
    outcome: r.outcome,
    details: r.details === null ? null : (JSON.parse(r.details) as Record<string, unknown>),
    prevHash: r.prev_hash,
    hash: r.hash,
  };
}

/** A position in the merged list: (at, source, seq), the source −1 for the ledger chain. */
interface Position {
  at: number;
  source: number;
  seq: number;
}

/** The cursor's id part: `<source>.<seq>`. */
const SOURCE_SEQ = /^(-1|0|[1-9][0-9]?)\.([1-9][0-9]{0,15})$/;

function decodePosition(cursor: string | undefined): Position | null {
  const c = decodeTimeIdCursor(cursor, SOURCE_SEQ);
  if (c === null) {
    return null;
  }
  const [source, seq] = c.id.split(".").map(Number) as [number, number];
  return { at: c.at, source, seq };
}

/**
 * What a source still has to list after `p`: entries strictly before (at, seq) in its own order.
 * A source listed before `p.source` at the same instant is done with it (seq 0: only earlier `at`);
 * one listed after has all of that instant still to come.
 */
function beforeIn(source: number, p: Position | null): { at: number; seq: number } | undefined {
  if (p === null) {
    return undefined;
  }
  if (source < p.source) {
    return { at: p.at, seq: 0 };
  }
  return { at: p.at, seq: source === p.source ? p.seq : Number.MAX_SAFE_INTEGER };
}

type Listed = ReturnType<typeof toAuditEntry> & {
  shard: number | null;
  keys: string | null;
  subjectKeys: string[] | null;
  /** Epoch ms, for the merge. */
  atMs: number;
};

function fromShard(e: LogEntry): Listed {
  return {
    seq: e.seq,
    at: toRfc3339(e.at),
    actor: e.actor,
    action: e.action,
    target: e.target,
    requestId: e.requestId,
    outcome: e.outcome,
    details: e.details,
    prevHash: e.prevHash,
    hash: e.hash,
    shard: e.shard,
    keys: e.keys,
    subjectKeys: e.subjectKeys,
    atMs: e.at,
  };
}

export function registerAdminAuditList(app: App) {
  app.openapi(list, async (c) => {
    const q = c.req.valid("query");
    const position = decodePosition(q.cursor);
    const since = q.since ? Date.parse(q.since) : undefined;
    const until = q.until ? Date.parse(q.until) : undefined;
    const where: SQL[] = [];
    if (q.actor) {
      where.push(sql`actor = ${q.actor}`);
    }
    if (q.action) {
      where.push(sql`action = ${q.action}`);
    }
    if (q.target) {
      where.push(sql`target = ${q.target}`);
    }
    if (since !== undefined) {
      where.push(sql`at >= ${since}`);
    }
    if (until !== undefined) {
      where.push(sql`at < ${until}`);
    }
    const ledgerBefore = beforeIn(LEDGER_LEAF, position);
    if (ledgerBefore) {
      // A range on `at` the (…, at) indexes serve; the tie on `at` broken by seq.
      where.push(sql`at <= ${ledgerBefore.at} AND (at < ${ledgerBefore.at} OR seq < ${ledgerBefore.seq})`);
    }
    const clause = where.length > 0 ? sql`WHERE ${sql.join(where, sql` AND `)}` : sql``;
    // Each source's next `limit + 1`: the page is among them whatever the interleaving.
    const [ledgerRows, shardRows] = await Promise.all([
      all<Row>(
        c.var.db,
        sql`SELECT seq, at, actor, action, target, request_id, outcome, details, prev_hash, hash
            FROM audit_log ${clause} ORDER BY at DESC, seq DESC LIMIT ${q.limit + 1}`,
      ),
      everyShard(
        await readableLog(c.var.db, c.var.config),
        async (stub, shard) =>
          (await stub.entries({
            actor: q.actor,
            action: q.action,
            target: q.target,
            since,
            until,
            before: beforeIn(shard, position),
            limit: q.limit + 1,
          })) as unknown as LogEntry[],
      ),
    ]);
    const merged: Listed[] = [
      ...ledgerRows.map((r) => ({
        ...toAuditEntry(r),
        shard: null,
        keys: null,
        subjectKeys: null,
        atMs: r.at,
      })),
      ...shardRows.flat().map(fromShard),
    ].sort((a, b) => b.atMs - a.atMs || (a.shard ?? LEDGER_LEAF) - (b.shard ?? LEDGER_LEAF) || b.seq - a.seq);
    const items = merged.slice(0, q.limit);
    const last = items[items.length - 1];
    const nextCursor =
      merged.length > q.limit && last
        ? encodeTimeIdCursor({ at: last.atMs, id: `${last.shard ?? LEDGER_LEAF}.${last.seq}` })
        : null;
    return c.json({ items: items.map(({ atMs: _at, ...item }) => item), nextCursor }, 200);
  });
}

export function registerAdminAuditVerify(app: App) {
  app.openapi(verify, async (c) => {
    const { from } = c.req.valid("query");
    return c.json(
      await verifyLog(
        c.var.db,
        c.var.config,
        c.var.config.AUDIT_SIGNING_JWK,
        from,
        c.var.config.AUDIT_RETIRED_KEYS,
      ),
      200,
    );
  });
}

const exportRoute = authenticatedRoute({
  method: "get",
  path: "/v1/admin/audit/export",
  operationId: "exportAdminAudit",
  tags: ["Admin: audit"],
  summary: "Stream the ledger chain and every log shard's chain as NDJSON, with the signed checkpoints",
  description:
    "Format `pixiu-audit-export/2` (docs/audit.md): one `header`, one `keys` (the ledger's public audit keys), the ledger chain's `entry` lines in seq order (from `since` or `sinceSeq`), then each shard's `log-entry` lines in shard and seq order (from `since`, else whole), then `checkpoint` (format 1) and `tree-checkpoint` lines. Verify offline with `npm run audit:verify -- export.ndjson`.",
  middleware: [guard("audit.export", "admin")] as const,
  request: {
    query: z.object({
      since: Rfc3339.optional(),
      sinceSeq: z.coerce.number().int().min(1).max(Number.MAX_SAFE_INTEGER).optional().openapi({
        format: "int64",
        description: "First seq of the ledger chain (shards are then exported whole)",
      }),
    }),
  },
  responses: {
    200: {
      description: "NDJSON, streamed: one JSON object a line",
      content: { "application/x-ndjson": { schema: z.string().openapi({ format: "binary" }) } },
    },
  },
});

/** Lines read per pull: one D1 query or one shard call each. */
const EXPORT_CHUNK = 1000;

export function registerAdminAuditExport(app: App) {
  app.openapi(exportRoute, async (c) => {
    const { since, sinceSeq } = c.req.valid("query");
    if (since && sinceSeq) {
      throw new ProblemError("validation", "give since or sinceSeq, not both", {
        errors: [{ path: "since", message: "conflicts with sinceSeq" }],
      });
    }
    const { now } = c.var;
    const d1 = c.var.db;
    const config = await readableLog(d1, c.var.config);
    // One snapshot of every head: the export ends there, whatever is written while it streams.
    const heads = await currentHeads(d1, config);
    const [ledgerHead, ...shardHeads] = heads as [ShardHead, ...ShardHead[]];
    const sinceMs = since ? Date.parse(since) : undefined;
    let from = sinceSeq ?? 1;
    if (sinceMs !== undefined) {
      const [row] = await all<{ seq: number | null }>(
        d1,
        sql`SELECT min(seq) AS seq FROM audit_log WHERE at >= ${sinceMs}`,
      );
      from = row?.seq ?? ledgerHead.seq + 1;
    }
    // Each shard from its first entry at or after `since`, else from its genesis.
    const shardFrom = await everyShard(config, async (stub, shard) => {
      const head = shardHeads[shard] as ShardHead;
      if (sinceMs === undefined) {
        return 1;
      }
      return ((await stub.firstSeqSince(sinceMs)) as number | null) ?? head.seq + 1;
    });
    const encoder = new TextEncoder();
    let cursor = from - 1;
    let shard = 0;
    let shardCursor = (shardFrom[0] ?? 1) - 1;
    let treeCursor = 0;
    let stage: "header" | "entries" | "shards" | "checkpoints" | "trees" | "done" = "header";
    const stream = new ReadableStream<Uint8Array>({
      async pull(controller) {
        // A pull that enqueues nothing is not called again and the response would hang: an empty
        // stage (no entries since `since`, no checkpoints) moves straight on to the next one.
        for (;;) {
          const lines: unknown[] = [];
          if (stage === "header") {
            lines.push({
              type: "header",
              format: "pixiu-audit-export/2",
              from,
              to: ledgerHead.seq,
              shards: shardHeads.map((h, i) => ({ shard: i, from: shardFrom[i], to: h.seq })),
              exportedAt: toRfc3339(now),
            });
            lines.push({
              type: "keys",
              ...publicAuditKeys(config.AUDIT_SIGNING_JWK, config.AUDIT_RETIRED_KEYS),
            });
            stage = "entries";
          } else if (stage === "entries") {
            const rows = await all<Row>(
              d1,
              sql`SELECT seq, at, actor, action, target, request_id, outcome, details, prev_hash, hash FROM audit_log
                  WHERE seq > ${cursor} AND seq <= ${ledgerHead.seq} ORDER BY seq LIMIT ${EXPORT_CHUNK}`,
            );
            for (const r of rows) {
              const { at: _at, ...entry } = toAuditEntry(r);
              lines.push({ type: "entry", ...entry, at: r.at });
              cursor = r.seq;
            }
            if (rows.length < EXPORT_CHUNK) {
              stage = "shards";
            }
          } else if (stage === "shards") {
            const head = shardHeads[shard];
            if (head === undefined) {
              stage = "checkpoints";
              continue;
            }
            const run =
              shardCursor >= head.seq
                ? []
                : ((await shardStub(config, shard).range(
                    shardCursor,
                    Math.min(EXPORT_CHUNK, head.seq - shardCursor),
                  )) as unknown as LogEntry[]);
            for (const e of run) {
              lines.push({ type: "log-entry", ...e });
              shardCursor = e.seq;
            }
            if (run.length === 0 || shardCursor >= head.seq) {
              shard++;
              shardCursor = (shardFrom[shard] ?? 1) - 1;
            }
          } else if (stage === "checkpoints") {
            const cps = await all<Record<string, unknown>>(
              d1,
              sql`SELECT seq, hash, at, kid, signature FROM audit_checkpoints WHERE seq >= ${from} ORDER BY seq`,
            );
            for (const cp of cps) {
              lines.push({ type: "checkpoint", ...cp });
            }
            stage = "trees";
          } else if (stage === "trees") {
            // Tree checkpoints whose ledger head is in range, as the format-1 ones above.
            const cps = await treeCheckpoints(d1, treeCursor, 500);
            for (const { id, ...cp } of cps) {
              treeCursor = id;
              const ledger = cp.heads.find((h) => h.shard === LEDGER_LEAF);
              if ((ledger?.seq ?? 0) >= from) {
                lines.push({ type: "tree-checkpoint", ...cp });
              }
            }
            if (cps.length < 500) {
              stage = "done";
            }
          } else {
            controller.close();
            return;
          }
          if (lines.length > 0) {
            controller.enqueue(encoder.encode(`${lines.map((l) => JSON.stringify(l)).join("\n")}\n`));
            return;
          }
        }
      },
    });
    // zod-openapi types handlers by JSON responses; a streamed body is not one of them.
    return c.body(stream, 200, { "content-type": "application/x-ndjson; charset=utf-8" }) as never;
  });
}
