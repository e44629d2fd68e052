import { z } from "@hono/zod-openapi";
import { reportStatuses } from "../../schema";
import type { App } from "../app";
import { decodeTimeIdCursor } from "../lib/cursor";
import { conflictResponse, notFoundResponse, ProblemError } from "../lib/problem";
import { authenticatedRoute } from "../lib/route";
import { guard } from "../middleware/auth";
import { CursorQuery, IdParam, LimitQuery, page } from "../schemas/common";
import { ReasonBodySchema, ReportSchema } from "../schemas/reports";
import { closeReport, listReports, REPORT_ID, reportById } from "../services/report-queries";
import { toReport } from "../services/reports";

const list = authenticatedRoute({
  method: "get",
  path: "/v1/admin/reports",
  operationId: "listAdminReports",
  tags: ["Admin: reports"],
  summary: "All reports, newest first, by platform and status",
  middleware: [guard("admin.report.list", "admin")] as const,
  request: {
    query: z.object({
      platformId: z.string().max(63).optional(),
      status: z.enum(reportStatuses).optional(),
      cursor: CursorQuery,
      limit: LimitQuery,
    }),
  },
  responses: {
    200: {
      description: "A page of reports",
      content: { "application/json": { schema: page(ReportSchema, "AdminReportPage") } },
    },
  },
});

const get = authenticatedRoute({
  method: "get",
  path: "/v1/admin/reports/{id}",
  operationId: "getAdminReport",
  tags: ["Admin: reports"],
  summary: "Any report, with its platformId",
  middleware: [guard("admin.report.read", "admin")] as const,
  request: { params: IdParam("rpt") },
  responses: {
    200: { description: "The report", content: { "application/json": { schema: ReportSchema } } },
    ...notFoundResponse,
  },
});

const voidRoute = authenticatedRoute({
  method: "post",
  path: "/v1/admin/reports/{id}/void",
  operationId: "voidAdminReport",
  tags: ["Admin: reports"],
  summary: "Void a report that should never have been made",
  middleware: [guard("report.void", "admin")] as const,
  request: {
    params: IdParam("rpt"),
    body: { required: true, content: { "application/json": { schema: ReasonBodySchema } } },
  },
  responses: {
    200: { description: "The report, voided", content: { "application/json": { schema: ReportSchema } } },
    ...notFoundResponse,
    ...conflictResponse,
  },
});

export function registerAdminReportsList(app: App) {
  app.openapi(list, async (c) => {
    const { platformId, status, cursor, limit } = c.req.valid("query");
    const after = decodeTimeIdCursor(cursor, REPORT_ID);
    return c.json(await listReports(c.var.db, { platformId, status, after, limit }), 200);
  });
}

export function registerAdminReportsGet(app: App) {
  app.openapi(get, async (c) => {
    const { id } = c.req.valid("param");
    c.set("auditTarget", id);
    const row = await reportById(c.var.db, id, null);
    if (!row) {
      throw new ProblemError("not_found", `no report ${id}`);
    }
    return c.json(toReport(row), 200);
  });
}

export function registerAdminReportsVoid(app: App) {
  app.openapi(voidRoute, async (c) => {
    const { id } = c.req.valid("param");
    const { reason } = c.req.valid("json");
    return c.json(await closeReport(c.var.scope, { id, platformId: null, to: "voided", reason }), 200);
  });
}
