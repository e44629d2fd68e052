import { z } from "@hono/zod-openapi";
import { type SQL, sql } from "drizzle-orm";
import { disputeStatuses, UNDECIDED } from "../../schema";
import type { App } from "../app";
import { all } from "../lib/batch";
import { decodeCursor, pageOf } from "../lib/cursor";
import { conflictResponse, notFoundResponse, ProblemError } from "../lib/problem";
import { authenticatedRoute } from "../lib/route";
import { guard } from "../middleware/auth";
import { CursorQuery, IdParam, LimitQuery, page } from "../schemas/common";
import { DisputeResolveSchema, DisputeSchema } from "../schemas/disputes";
import {
  DISPUTE_COLUMNS,
  DISPUTE_ID,
  type DisputeRow,
  decideDispute,
  toDispute,
  visibleDispute,
} from "../services/disputes";

const list = authenticatedRoute({
  method: "get",
  path: "/v1/admin/disputes",
  operationId: "listAdminDisputes",
  tags: ["Admin: disputes"],
  summary:
    "Disputes by status, newest first (`overdue`: open past the deadline, awaiting an admin; `escalated`: the opener contests the reporter's uphold, awaiting an admin)",
  middleware: [guard("admin.dispute.list", "admin")] as const,
  request: {
    query: z.object({ status: z.enum(disputeStatuses).optional(), cursor: CursorQuery, limit: LimitQuery }),
  },
  responses: {
    200: {
      description: "A page of disputes",
      content: { "application/json": { schema: page(DisputeSchema, "DisputePage") } },
    },
  },
});

const resolve = authenticatedRoute({
  method: "post",
  path: "/v1/admin/disputes/{id}/resolve",
  operationId: "resolveAdminDispute",
  tags: ["Admin: disputes"],
  summary: "Decide an undecided dispute: keep the record or void it",
  middleware: [guard("dispute.resolve", "admin")] as const,
  request: {
    params: IdParam("dsp"),
    body: { required: true, content: { "application/json": { schema: DisputeResolveSchema } } },
  },
  responses: {
    200: { description: "The dispute, decided", content: { "application/json": { schema: DisputeSchema } } },
    ...notFoundResponse,
    ...conflictResponse,
  },
});

export function registerAdminDisputesList(app: App) {
  app.openapi(list, async (c) => {
    const { status, cursor, limit } = c.req.valid("query");
    const after = decodeCursor(cursor, DISPUTE_ID);
    const where: SQL[] = [];
    if (status) {
      where.push(sql`d.status = ${status}`);
    }
    if (after) {
      where.push(sql`d.id < ${after}`);
    }
    const clause = where.length > 0 ? sql`WHERE ${sql.join(where, sql` AND `)}` : sql``;
    const rows = await all<DisputeRow>(
      c.var.db,
      sql`SELECT ${DISPUTE_COLUMNS} FROM disputes d JOIN reports r ON r.id = d.report_id ${clause}
          ORDER BY d.id DESC LIMIT ${limit + 1}`,
    );
    const { page: items, nextCursor } = pageOf(rows, limit, (r) => r.id);
    return c.json({ items: items.map((r) => toDispute(r, true)), nextCursor }, 200);
  });
}

export function registerAdminDisputesResolve(app: App) {
  app.openapi(resolve, async (c) => {
    const { outcome, note } = c.req.valid("json");
    const row = await visibleDispute(c.var.scope, c.req.valid("param").id);
    if (!UNDECIDED.includes(row.status)) {
      throw new ProblemError("conflict", `dispute ${row.id} is already ${row.status}`);
    }
    const decided = await decideDispute(c.var.scope, row, {
      status: outcome,
      reportTo: outcome === "report_upheld" ? "active" : "voided",
      note,
      event: { type: "dispute.decided" },
    });
    return c.json(toDispute(decided, true), 200);
  });
}
