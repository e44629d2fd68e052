import { z } from "@hono/zod-openapi";
import { sql } from "drizzle-orm";
import type { App } from "../app";
import { conflictResponse, notFoundResponse, ProblemError } from "../lib/problem";
import { authenticatedRoute } from "../lib/route";
import { guard } from "../middleware/auth";
import { freeText, IdParam } from "../schemas/common";
import { ReportSchema, STRONG_CONFIRMATIONS } from "../schemas/reports";
import { changeStanding, reportById } from "../services/report-queries";

const route = authenticatedRoute({
  method: "post",
  path: "/v1/admin/reports/{id}/verify-confirmation",
  operationId: "verifyAdminReportConfirmation",
  tags: ["Admin: reports"],
  summary: "Verify a report's police report or court ruling, so it weighs as a strong confirmation",
  description:
    "An admin who checked the report's `confirmationRef` with the police or court marks it verified: only then does the record weigh as `police_report`/`court_ruling` and lift its platform's cap (docs/scoring.md §2). Idempotent: verifying again answers the report unchanged. 404 for no such report; 409 when its confirmation is not a police report or court ruling, it carries no reference, or it no longer counts (retracted, voided, expired).",
  middleware: [guard("report.verify_confirmation", "admin")] as const,
  request: {
    params: IdParam("rpt"),
    body: {
      required: true,
      content: {
        "application/json": {
          schema: z
            .object({
              note: freeText(500).openapi({
                description: "How the reference was checked (with whom, when), for the audit log",
                example: "Case number confirmed by phone with the issuing police station.",
              }),
            })
            .strict()
            .openapi("VerifyConfirmationBody"),
        },
      },
    },
  },
  responses: {
    200: {
      description: "The report, its confirmation verified",
      content: { "application/json": { schema: ReportSchema } },
    },
    ...notFoundResponse,
    ...conflictResponse,
  },
});

export function registerAdminReportsVerifyConfirmation(app: App) {
  app.openapi(route, async (c) => {
    const { id } = c.req.valid("param");
    const { note } = c.req.valid("json");
    const scope = c.var.scope;
    scope.setTarget(id);
    const row = await reportById(scope.db, id, null);
    if (!row) {
      throw new ProblemError("not_found", `no report ${id}`);
    }
    if (!STRONG_CONFIRMATIONS.includes(row.confirmation)) {
      throw new ProblemError(
        "conflict",
        `report ${id} is confirmed by ${row.confirmation}; only police reports and court rulings are verified`,
      );
    }
    if (row.confirmation_ref === null) {
      throw new ProblemError(
        "conflict",
        `report ${id} carries no confirmationRef to verify; it weighs as platform forensics`,
      );
    }
    const already = row.confirmation_verified_at !== null;
    // A second verification changes nothing: the first admin and time stand. A police report or
    // court ruling the consortium checked is independent evidence, so verifying it also clears
    // an after-look-up flag (docs/scoring.md §3c), by the same admin at the same time.
    const clearsFlag = row.after_lookup_at !== null && row.after_lookup_cleared_at === null;
    const report = await changeStanding(scope, row, {
      already,
      update: sql`UPDATE reports SET confirmation_verified_at = ${scope.now},
          confirmation_verified_by = ${scope.principal.actor}, updated_at = ${scope.now},
          after_lookup_cleared_at = CASE WHEN after_lookup_at IS NOT NULL AND after_lookup_cleared_at IS NULL
            THEN ${scope.now} ELSE after_lookup_cleared_at END,
          after_lookup_cleared_by = CASE WHEN after_lookup_at IS NOT NULL AND after_lookup_cleared_at IS NULL
            THEN ${scope.principal.actor} ELSE after_lookup_cleared_by END
        WHERE id = ${id} AND confirmation_verified_at IS NULL AND status IN ('active', 'disputed')
          AND confirmation IN ('police_report', 'court_ruling') AND confirmation_ref IS NOT NULL`,
      details: {
        confirmation: row.confirmation,
        confirmationRef: row.confirmation_ref,
        note,
        ...(!already && clearsFlag ? { afterLookupCleared: true } : {}),
      },
    });
    return c.json(report, 200);
  });
}
