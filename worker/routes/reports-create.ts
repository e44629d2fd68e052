import type { App } from "../app";
import { conflictResponse, logReadUnavailableResponse, ProblemError } from "../lib/problem";
import { authenticatedRoute } from "../lib/route";
import { callerPlatform, guard } from "../middleware/auth";
import { ReportBodySchema, ReportSchema } from "../schemas/reports";
import { flagAfterLookups } from "../services/after-lookup";
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
    "Idempotent per `caseId`: the same content again answers 200 with the same report; different content answers 409. A platform holds at most MAX_ACTIVE_REPORTS_PER_SUBJECT active or disputed reports per subject: one more answers 422 and writes nothing. A report filed within AFTER_LOOKUP_WINDOW_DAYS after the platform's own look-up of one of its subjects answered `review` or worse is flagged (`afterLookup`) and adds no consensus weight until an admin clears it (docs/scoring.md §3c); 503 when the inquiry log cannot be read for that check (nothing written).",
  middleware: [guard("report.create", "reports:write")] as const,
  request: { body: { required: true, content: { "application/json": { schema: ReportBodySchema } } } },
  responses: {
    201: { description: "Created", content: { "application/json": { schema: ReportSchema } } },
    200: {
      description: "Idempotent replay: the report already held",
      content: { "application/json": { schema: ReportSchema } },
    },
    ...conflictResponse,
    ...logReadUnavailableResponse,
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
    const [prepared] = await flagAfterLookups(c.var.scope, [await prepareReport(body, config.LEDGER_PEPPER)]);
    if (!prepared) {
      throw new Error("the after-look-up check lost the report");
    }
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
