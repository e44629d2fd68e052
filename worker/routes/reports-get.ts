import type { App } from "../app";
import { notFoundResponse, ProblemError } from "../lib/problem";
import { authenticatedRoute } from "../lib/route";
import { callerPlatform, guard } from "../middleware/auth";
import { IdParam } from "../schemas/common";
import { ReportSchema } from "../schemas/reports";
import { reportById } from "../services/report-queries";
import { toReport } from "../services/reports";

const route = authenticatedRoute({
  method: "get",
  path: "/v1/reports/{id}",
  operationId: "getReport",
  tags: ["Reports"],
  summary: "One of the caller's own reports",
  middleware: [guard("report.read", "reports:write")] as const,
  request: { params: IdParam("rpt") },
  responses: {
    200: { description: "The report", content: { "application/json": { schema: ReportSchema } } },
    ...notFoundResponse,
  },
});

export function registerReportsGet(app: App) {
  app.openapi(route, async (c) => {
    const { id } = c.req.valid("param");
    c.set("auditTarget", id);
    const row = await reportById(c.var.db, id, callerPlatform(c));
    if (!row) {
      throw new ProblemError("not_found", `no report ${id}`);
    }
    return c.json(toReport(row), 200);
  });
}
