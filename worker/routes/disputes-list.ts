import { z } from "@hono/zod-openapi";
import { type SQL, sql } from "drizzle-orm";
import { disputeStatuses } from "../../schema";
import type { App } from "../app";
import { all } from "../lib/batch";
import { decodeCursor, pageOf } from "../lib/cursor";
import { authenticatedRoute } from "../lib/route";
import { callerPlatform, guard } from "../middleware/auth";
import { CursorQuery, LimitQuery, MAX_PAGE, NextCursor } from "../schemas/common";
import { DisputeSchema } from "../schemas/disputes";
import { DISPUTE_COLUMNS, DISPUTE_ID, type DisputeRow, toDispute } from "../services/disputes";

const ROLES = ["opener", "reporter"] as const;

const ListedDispute = DisputeSchema.extend({
  role: z.enum(ROLES).openapi({
    description: "`opener`: the caller opened it for a buyer; `reporter`: it disputes the caller's record",
  }),
}).openapi("ListedDispute");

const route = authenticatedRoute({
  method: "get",
  path: "/v1/disputes",
  operationId: "listDisputes",
  tags: ["Disputes"],
  summary: "The disputes the caller opened or that concern its reports, newest first",
  description:
    "`role=reporter` lists the disputes of the caller's own records (what it must answer within the deadline); `role=opener` those it opened for buyers; without `role`, both. Filter by `status` (`open`, `overdue`, `escalated`, …).",
  middleware: [guard("dispute.list", "disputes:write", "reports:write")] as const,
  request: {
    query: z.object({
      status: z.enum(disputeStatuses).optional(),
      role: z.enum(ROLES).optional(),
      cursor: CursorQuery,
      limit: LimitQuery,
    }),
  },
  responses: {
    200: {
      description: "A page of disputes",
      content: {
        "application/json": {
          schema: z
            .object({ items: z.array(ListedDispute).max(MAX_PAGE), nextCursor: NextCursor })
            .openapi("ListedDisputePage"),
        },
      },
    },
  },
});

/**
 * One role's page: an index walk of (opened_by, id) or (report_platform_id, id), newest first,
 * reading at most `limit + 1` matching rows.
 */
function roleSelect(role: (typeof ROLES)[number], platformId: string, extra: SQL, limit: number) {
  const mine =
    role === "opener" ? sql`d.opened_by = ${platformId}` : sql`d.report_platform_id = ${platformId}`;
  return sql`SELECT * FROM (SELECT ${DISPUTE_COLUMNS}, ${role} AS role
    FROM disputes d JOIN reports r ON r.id = d.report_id
    WHERE ${mine}${extra} ORDER BY d.id DESC LIMIT ${limit + 1})`;
}

export function registerDisputesList(app: App) {
  app.openapi(route, async (c) => {
    const { status, role, cursor, limit } = c.req.valid("query");
    const platformId = callerPlatform(c);
    const after = decodeCursor(cursor, DISPUTE_ID);
    const extra = sql.join(
      [status ? sql` AND d.status = ${status}` : sql``, after ? sql` AND d.id < ${after}` : sql``],
      sql``,
    );
    const roles = role ? [role] : ROLES;
    // Without a role, the two index walks are merged; a dispute is never both (a reporter cannot
    // open a dispute on its own record).
    const query = sql`${sql.join(
      roles.map((r) => roleSelect(r, platformId, extra, limit)),
      sql` UNION ALL `,
    )} ORDER BY id DESC LIMIT ${limit + 1}`;
    const rows = await all<DisputeRow & { role: (typeof ROLES)[number] }>(c.var.db, query);
    const { page: items, nextCursor } = pageOf(rows, limit, (r) => r.id);
    return c.json({ items: items.map((r) => ({ ...toDispute(r, false), role: r.role })), nextCursor }, 200);
  });
}
