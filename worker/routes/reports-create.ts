import { createRoute } from "@hono/zod-openapi";
import type { App } from "../app";
import { rowsOf } from "../lib/batch";
import { conflictResponse, ProblemError, problemResponses } from "../lib/problem";
import { callerPlatform, guard } from "../middleware/auth";
import { ReportBodySchema, ReportSchema } from "../schemas/reports";
import { commit } from "../services/commit";
import {
  checkReportTimes,
  prepareReport,
  reportWriteStatements,
  toReport,
  type WriteRow,
} from "../services/reports";

const route = createRoute({
  method: "post",
  path: "/v1/reports",
  tags: ["Reports"],
  summary: "Report a confirmed case",
  description:
    "Idempotent per `caseId`: the same content again answers 200 with the same report; different content answers 409.",
  security: [{ bearer: [] }],
  middleware: [guard("report.create", "reports:write")] as const,
  request: { body: { required: true, content: { "application/json": { schema: ReportBodySchema } } } },
  responses: {
    201: { description: "Created", content: { "application/json": { schema: ReportSchema } } },
    200: {
      description: "Idempotent replay: the report already held",
      content: { "application/json": { schema: ReportSchema } },
    },
    ...conflictResponse,
    ...problemResponses,
  },
});

export function registerReportsCreate(app: App) {
  app.openapi(route, async (c) => {
    const body = c.req.valid("json");
    const { config, now, requestId, principal } = c.var;
    const platformId = callerPlatform(c);
    const errors = checkReportTimes(body, now, config.RETENTION_DAYS);
    if (errors.length > 0) {
      throw new ProblemError("validation", "The report's times are not acceptable; see errors.", { errors });
    }
    const prepared = await prepareReport(body, config.LEDGER_PEPPER);
    const ctx = { platformId, actor: principal.actor, action: c.var.action, requestId, now };
    const [row] = rowsOf<WriteRow>((await commit(c, reportWriteStatements(ctx, [prepared])))[3]);
    if (!row) {
      throw new Error("report write returned no row");
    }
    if (row.outcome === "conflict") {
      throw new ProblemError(
        "conflict",
        `case ${body.caseId} was already reported as ${row.id} with different content`,
      );
    }
    const { item: _item, outcome, ...report } = row;
    return c.json(toReport(report), outcome === "created" ? 201 : 200);
  });
}
