import { createRoute, z } from "@hono/zod-openapi";
import { type SQL, sql } from "drizzle-orm";
import type { App } from "../app";
import { publicAuditKeys, sealPending, verifyChain } from "../audit/ledger";
import { all } from "../lib/batch";
import { ProblemError, problemResponses } from "../lib/problem";
import { toRfc3339 } from "../lib/time";
import { guard } from "../middleware/auth";
import { LimitQuery, page, Rfc3339 } from "../schemas/common";

const EntrySchema = z
  .object({
    seq: z.number().int(),
    at: z.string(),
    actor: z.string(),
    action: z.string(),
    target: z.string().nullable(),
    requestId: z.string(),
    outcome: z.string(),
    details: z.record(z.string(), z.unknown()).nullable(),
    prevHash: z.string().nullable(),
    hash: z.string().nullable().openapi({ description: "Null until the sealer chains the entry" }),
  })
  .openapi("AuditEntry");

const list = createRoute({
  method: "get",
  path: "/v1/admin/audit",
  tags: ["Admin: audit"],
  summary: "Audit entries, newest first, filtered by actor, action, target and time",
  security: [{ bearer: [] }],
  middleware: [guard("audit.list", "admin")] as const,
  request: {
    query: z.object({
      actor: z.string().max(200).optional(),
      action: z.string().max(100).optional(),
      target: z.string().max(200).optional(),
      since: Rfc3339.optional(),
      until: Rfc3339.optional(),
      cursor: z
        .string()
        .regex(/^\d{1,15}$/, "must be a cursor from a previous page")
        .optional(),
      limit: LimitQuery,
    }),
  },
  responses: {
    200: {
      description: "A page of entries",
      content: { "application/json": { schema: page(EntrySchema, "AuditPage") } },
    },
    ...problemResponses,
  },
});

const verify = createRoute({
  method: "get",
  path: "/v1/admin/audit/verify",
  tags: ["Admin: audit"],
  summary: "Verify the hash chain, from the genesis or from the latest signed checkpoint",
  description:
    "Seals pending entries first. `ok: false` names the first bad `seq` when an entry was altered, removed or reordered; `unsealed` counts entries written but not yet chained (not a fault).",
  security: [{ bearer: [] }],
  middleware: [guard("audit.verify", "admin")] as const,
  request: { query: z.object({ from: z.enum(["genesis", "checkpoint"]).default("genesis") }) },
  responses: {
    200: {
      description: "The verdict",
      content: {
        "application/json": {
          schema: z.object({
            ok: z.boolean(),
            checked: z.number().int(),
            from: z.object({ seq: z.number().int(), checkpoint: z.boolean() }),
            head: z.object({ seq: z.number().int(), hash: z.string() }).nullable(),
            unsealed: z.number().int(),
            checkpoints: z.object({ checked: z.number().int(), invalid: z.number().int() }),
            firstBadSeq: z.number().int().optional(),
            reason: z.string().optional(),
          }),
        },
      },
    },
    ...problemResponses,
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

export function registerAdminAuditList(app: App) {
  app.openapi(list, async (c) => {
    const q = c.req.valid("query");
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
    if (q.since) {
      where.push(sql`at >= ${Date.parse(q.since)}`);
    }
    if (q.until) {
      where.push(sql`at < ${Date.parse(q.until)}`);
    }
    if (q.cursor) {
      where.push(sql`seq < ${Number(q.cursor)}`);
    }
    const clause = where.length > 0 ? sql`WHERE ${sql.join(where, sql` AND `)}` : sql``;
    const rows = await all<Row>(
      c.var.db,
      sql`SELECT seq, at, actor, action, target, request_id, outcome, details, prev_hash, hash
          FROM audit_log ${clause} ORDER BY seq DESC LIMIT ${q.limit + 1}`,
    );
    const items = rows.slice(0, q.limit);
    const last = items[items.length - 1];
    return c.json(
      { items: items.map(toAuditEntry), nextCursor: rows.length > q.limit && last ? String(last.seq) : null },
      200,
    );
  });
}

export function registerAdminAuditVerify(app: App) {
  app.openapi(verify, async (c) => {
    const { from } = c.req.valid("query");
    return c.json(
      await verifyChain(c.var.db, c.var.config.AUDIT_SIGNING_JWK, from, c.var.config.AUDIT_RETIRED_KEYS),
      200,
    );
  });
}

const exportRoute = createRoute({
  method: "get",
  path: "/v1/admin/audit/export",
  tags: ["Admin: audit"],
  summary: "Stream the sealed chain from `since` as NDJSON, with the signed checkpoints that cover it",
  description:
    "Lines: one `header`, one `keys` (the ledger's public audit keys), then `entry` lines in seq order, then `checkpoint` lines. Verify offline with `npm run audit:verify -- export.ndjson`.",
  security: [{ bearer: [] }],
  middleware: [guard("audit.export", "admin")] as const,
  request: {
    query: z.object({
      since: Rfc3339.optional(),
      sinceSeq: z.coerce.number().int().min(1).optional(),
    }),
  },
  responses: {
    200: { description: "NDJSON", content: { "application/x-ndjson": { schema: z.string() } } },
    ...problemResponses,
  },
});

export function registerAdminAuditExport(app: App) {
  app.openapi(exportRoute, async (c) => {
    const { since, sinceSeq } = c.req.valid("query");
    if (since && sinceSeq) {
      throw new ProblemError("validation", "give since or sinceSeq, not both", {
        errors: [{ path: "since", message: "conflicts with sinceSeq" }],
      });
    }
    const { config, now } = c.var;
    const d1 = c.var.db;
    const { head } = await sealPending(d1);
    let from = sinceSeq ?? 1;
    if (since) {
      const [row] = await all<{ seq: number | null }>(
        d1,
        sql`SELECT min(seq) AS seq FROM audit_log WHERE at >= ${Date.parse(since)}`,
      );
      from = row?.seq ?? head.seq + 1;
    }
    const encoder = new TextEncoder();
    let cursor = from - 1;
    let stage: "header" | "entries" | "checkpoints" | "done" = "header";
    const stream = new ReadableStream<Uint8Array>({
      async pull(controller) {
        // A pull that enqueues nothing is not called again and the response would hang: an empty
        // stage (no entries since `since`, no checkpoints) moves straight on to the next one.
        for (;;) {
          const lines: unknown[] = [];
          if (stage === "header") {
            lines.push({
              type: "header",
              format: "pixiu-audit-export/1",
              from,
              to: head.seq,
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
                  WHERE seq > ${cursor} AND seq <= ${head.seq} ORDER BY seq LIMIT 1000`,
            );
            for (const r of rows) {
              const { at: _at, ...entry } = toAuditEntry(r);
              lines.push({ type: "entry", ...entry, at: r.at });
              cursor = r.seq;
            }
            if (rows.length < 1000) {
              stage = "checkpoints";
            }
          } else if (stage === "checkpoints") {
            const cps = await all<Record<string, unknown>>(
              d1,
              sql`SELECT seq, hash, at, kid, signature FROM audit_checkpoints WHERE seq >= ${from} ORDER BY seq`,
            );
            for (const cp of cps) {
              lines.push({ type: "checkpoint", ...cp });
            }
            stage = "done";
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
