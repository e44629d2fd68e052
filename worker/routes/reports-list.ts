import { z } from "@hono/zod-openapi";
import { reportStatuses } from "../../schema";
import type { App } from "../app";
import { decodeTimeIdCursor } from "../lib/cursor";
import { authenticatedRoute } from "../lib/route";
import { callerPlatform, guard } from "../middleware/auth";
import { CursorQuery, LimitQuery, page } from "../schemas/common";
import { ReportSchema } from "../schemas/reports";
import { listReports, REPORT_ID } from "../services/report-queries";

const route = authenticatedRoute({
  method: "get",
  path: "/v1/reports",
  operationId: "listReports",
  tags: ["Reports"],
  summary: "The caller's own reports, newest first",
  middleware: [guard("report.list", "reports:write")] as const,
  request: {
    query: z.object({ status: z.enum(reportStatuses).optional(), cursor: CursorQuery, limit: LimitQuery }),
  },
  responses: {
    200: {
      description: "A page of reports",
      content: { "application/json": { schema: page(ReportSchema, "ReportPage") } },
    },
  },
});

export function registerReportsList(app: App) {
  app.openapi(route, async (c) => {
    const { status, cursor, limit } = c.req.valid("query");
    const after = decodeTimeIdCursor(cursor, REPORT_ID);
    const result = await listReports(c.var.db, {
      platformId: callerPlatform(c),
      status,
      after,
      limit,
    });
    return c.json(result, 200);
  });
}
