import { z } from "@hono/zod-openapi";
import type { App } from "../app";
import {
  fieldErrors,
  logReadUnavailableResponse,
  ProblemError,
  ProblemSchema,
  toProblem,
} from "../lib/problem";
import { authenticatedRoute } from "../lib/route";
import { callerPlatform, guard } from "../middleware/auth";
import { idOf, int } from "../schemas/common";
import { ReportBodySchema } from "../schemas/reports";
import { flagAfterLookups } from "../services/after-lookup";
import { type AuditEntry, auditInsertMany } from "../services/audit";
import { commitNamed } from "../services/commit";
import {
  checkReportTimes,
  type PreparedReport,
  prepareReport,
  refusalProblem,
  reportWriteStatements,
  writeResults,
} from "../services/reports";

export const MAX_BULK_REPORTS = 500;

const ItemResultSchema = z.object({
  index: int(0, MAX_BULK_REPORTS - 1),
  status: int(200, 599),
  id: idOf("rpt").optional(),
  problem: ProblemSchema.optional(),
});

const route = authenticatedRoute({
  method: "post",
  path: "/v1/reports/bulk",
  operationId: "createReportsBulk",
  tags: ["Reports"],
  summary: "Report up to 500 cases",
  description:
    "Each item is processed as if posted alone (201, 200 replay, 409, 422, including 422 for an item over the per-subject cap MAX_ACTIVE_REPORTS_PER_SUBJECT, counting the earlier items of the same call); one bad item fails only itself. The valid items are written in one D1 batch. Each item is checked for the after-look-up flag as a single report is (docs/scoring.md §3c), all in one read of the inquiry log; 503 when it cannot be read (nothing written).",
  middleware: [guard("report.create", "reports:write")] as const,
  request: {
    body: {
      required: true,
      content: {
        "application/json": {
          schema: z
            .object({ reports: z.array(z.unknown()).min(1).max(MAX_BULK_REPORTS) })
            .strict()
            .openapi("ReportBulk"),
        },
      },
    },
  },
  responses: {
    200: {
      description: "One result per item, in order",
      content: {
        "application/json": {
          schema: z.object({ results: z.array(ItemResultSchema).max(MAX_BULK_REPORTS) }),
        },
      },
    },
    ...logReadUnavailableResponse,
  },
});

type ItemResult = z.infer<typeof ItemResultSchema>;

export function registerReportsBulk(app: App) {
  app.openapi(route, async (c) => {
    const { reports } = c.req.valid("json");
    const { config, now, requestId, principal } = c.var;
    const platformId = callerPlatform(c);
    const results: ItemResult[] = new Array(reports.length);
    const prepared: PreparedReport[] = [];
    const positions: number[] = [];
    const rejected: AuditEntry[] = [];
    const reject = (index: number, err: ProblemError) => {
      results[index] = { index, status: err.status, problem: toProblem(err, requestId) };
      rejected.push({
        actor: principal.actor,
        action: c.var.action,
        outcome: "invalid",
        details: { item: index, errors: err.errors ?? [] },
      });
    };
    for (const [index, item] of reports.entries()) {
      const parsed = ReportBodySchema.safeParse(item);
      if (!parsed.success) {
        reject(
          index,
          new ProblemError("validation", "The report does not match the schema; see errors.", {
            errors: fieldErrors(parsed.error.issues),
          }),
        );
        continue;
      }
      const errors = checkReportTimes(parsed.data, now, config.RETENTION_DAYS);
      if (errors.length > 0) {
        reject(
          index,
          new ProblemError("validation", "The report's times are not acceptable; see errors.", { errors }),
        );
        continue;
      }
      prepared.push(await prepareReport(parsed.data, config.LEDGER_PEPPER));
      positions.push(index);
    }
    const cap = config.MAX_ACTIVE_REPORTS_PER_SUBJECT;
    const ctx = { platformId, actor: principal.actor, action: c.var.action, requestId, now, cap };
    const flagged = await flagAfterLookups(c.var.scope, prepared);
    const written = await commitNamed(c.var.scope, {
      ...reportWriteStatements(ctx, flagged, positions),
      rejected: auditInsertMany({ requestId, now }, rejected),
    });
    for (const result of writeResults(written)) {
      const index = positions[result.item] as number;
      if (result.outcome === "refused") {
        const err = refusalProblem(prepared[result.item] as PreparedReport, result, cap);
        results[index] = { index, status: err.status, problem: toProblem(err, requestId) };
      } else if (result.outcome === "conflict") {
        const err = new ProblemError(
          "conflict",
          `case ${result.row.case_id} was already reported as ${result.row.id} with different content`,
        );
        results[index] = { index, status: 409, problem: toProblem(err, requestId) };
      } else {
        results[index] = { index, status: result.outcome === "created" ? 201 : 200, id: result.row.id };
      }
    }
    return c.json({ results }, 200);
  });
}
