import type { App } from "../app";
import { conflictResponse, ProblemError } from "../lib/problem";
import { authenticatedRoute } from "../lib/route";
import { callerPlatform, guard } from "../middleware/auth";
import { ReportBodySchema, ReportSchema } from "../schemas/reports";
import { commitNamed } from "../services/commit";
import {
  checkReportTimes,
  prepareReport,
  refusalProblem,
  reportWriteStatements,
  toReport,
  writeResults,
} from "../services/reports";

const route = authenticatedRoute({
  method: "post",
  path: "/v1/reports",
  operationId: "createReport",
  tags: ["Reports"],
  summary: "Report a confirmed case",
  description:
    "Idempotent per `caseId`: the same content again answers 200 with the same report; different content answers 409. A platform holds at most MAX_ACTIVE_REPORTS_PER_SUBJECT active or disputed reports per subject: one more answers 422 and writes nothing.",
  middleware: [guard("report.create", "reports:write")] as const,
  request: { body: { required: true, content: { "application/json": { schema: ReportBodySchema } } } },
  responses: {
    201: { description: "Created", content: { "application/json": { schema: ReportSchema } } },
    200: {
      description: "Idempotent replay: the report already held",
      content: { "application/json": { schema: ReportSchema } },
    },
    ...conflictResponse,
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
    const cap = config.MAX_ACTIVE_REPORTS_PER_SUBJECT;
    const ctx = { platformId, actor: principal.actor, action: c.var.action, requestId, now, cap };
    const [result] = writeResults(await commitNamed(c.var.scope, reportWriteStatements(ctx, [prepared])));
    if (!result) {
      throw new Error("report write returned no row");
    }
    if (result.outcome === "refused") {
      throw refusalProblem(prepared, result, cap);
    }
    if (result.outcome === "conflict") {
      throw new ProblemError(
        "conflict",
        `case ${body.caseId} was already reported as ${result.row.id} with different content`,
      );
    }
    return c.json(toReport(result.row), result.outcome === "created" ? 201 : 200);
  });
}
