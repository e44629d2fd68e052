import type { App } from "../app";
import { conflictResponse, notFoundResponse } from "../lib/problem";
import { authenticatedRoute } from "../lib/route";
import { callerPlatform, guard } from "../middleware/auth";
import { IdParam } from "../schemas/common";
import { ReasonBodySchema, ReportSchema } from "../schemas/reports";
import { closeReport } from "../services/report-queries";

const route = authenticatedRoute({
  method: "post",
  path: "/v1/reports/{id}/retract",
  operationId: "retractReport",
  tags: ["Reports"],
  summary: "Retract one of the caller's own reports",
  description: "A retracted report never counts again. Retracting a closed report answers 409.",
  middleware: [guard("report.retract", "reports:write")] as const,
  request: {
    params: IdParam("rpt"),
    body: { required: true, content: { "application/json": { schema: ReasonBodySchema } } },
  },
  responses: {
    200: { description: "The report, retracted", content: { "application/json": { schema: ReportSchema } } },
    ...notFoundResponse,
    ...conflictResponse,
  },
});

export function registerReportsRetract(app: App) {
  app.openapi(route, async (c) => {
    const { id } = c.req.valid("param");
    const { reason } = c.req.valid("json");
    const report = await closeReport(c.var.scope, {
      id,
      platformId: callerPlatform(c),
      to: "retracted",
      reason,
    });
    return c.json(report, 200);
  });
}
