import { z } from "@hono/zod-openapi";
import { sql } from "drizzle-orm";
import type { App } from "../app";
import { all } from "../lib/batch";
import { decodeCursor, encodeCursor } from "../lib/cursor";
import { authenticatedRoute } from "../lib/route";
import { callerPlatform, guard } from "../middleware/auth";
import { CursorQuery, LimitQuery } from "../schemas/common";
import { EventPageSchema } from "../schemas/events";
import { type EventRow, toEventItem } from "../services/webhooks";

const route = authenticatedRoute({
  method: "get",
  path: "/v1/events",
  operationId: "listEvents",
  tags: ["Events"],
  summary: "The caller's event feed, oldest first",
  description:
    "Disputes of the caller's reports (opened, responded, escalated, decided, overdue), its reports voided or expired, and the decisions of disputes it opened. Events are kept at least 30 days (`EVENT_RETENTION_DAYS`). Keep `nextCursor` and poll with it: it marks the position after the last event returned.",
  middleware: [guard("event.list", "reports:write", "disputes:write", "scores:read")] as const,
  request: { query: z.object({ cursor: CursorQuery, limit: LimitQuery }) },
  responses: {
    200: { description: "A page of events", content: { "application/json": { schema: EventPageSchema } } },
  },
});

/** A cursor is the feed position (the `seq` of the last event returned), opaque to clients. */
const SEQ = /^[1-9]\d{0,15}$/;

export function registerEventsList(app: App) {
  app.openapi(route, async (c) => {
    const platformId = callerPlatform(c);
    const { cursor, limit } = c.req.valid("query");
    const after = decodeCursor(cursor, SEQ);
    const rows = await all<EventRow & { seq: number }>(
      c.var.db,
      sql`SELECT seq, id, type, at, data FROM events
          WHERE platform_id = ${platformId} AND seq > ${after === null ? 0 : Number(after)}
          ORDER BY seq LIMIT ${limit + 1}`,
    );
    const page = rows.slice(0, limit);
    const last = page[page.length - 1];
    return c.json(
      {
        items: page.map(toEventItem),
        nextCursor: last ? encodeCursor(String(last.seq)) : (cursor ?? null) || null,
        hasMore: rows.length > limit,
      },
      200,
    );
  });
}
