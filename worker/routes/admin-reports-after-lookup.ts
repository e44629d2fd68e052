import { z } from "@hono/zod-openapi";
import { sql } from "drizzle-orm";
import { reportStatuses } from "../../schema";
import type { App } from "../app";
import { all } from "../lib/batch";
import { decodeTimeIdCursor, pageByTimeOf } from "../lib/cursor";
import { conflictResponse, notFoundResponse, ProblemError } from "../lib/problem";
import { authenticatedRoute } from "../lib/route";
import { toRfc3339, toRfc3339OrNull } from "../lib/time";
import { guard } from "../middleware/auth";
import {
  CursorQuery,
  DateTime,
  freeText,
  IdParam,
  idOf,
  LimitQuery,
  PlatformRef,
  page,
} from "../schemas/common";
import {
  AFTER_LOOKUP_BANDS,
  type AfterLookupBand,
  CATEGORIES,
  CONFIRMATIONS,
  ReportSchema,
} from "../schemas/reports";
import { changeStanding, REPORT_ID, reportById } from "../services/report-queries";

const AfterLookupReportSchema = z
  .object({
    id: idOf("rpt"),
    platformId: PlatformRef,
    caseId: z.string().regex(/^[A-Za-z0-9._:-]{1,128}$/),
    status: z.enum(reportStatuses),
    category: z.enum(CATEGORIES),
    confirmation: z.enum(CONFIRMATIONS),
    createdAt: DateTime,
    afterLookupAt: DateTime.openapi({ description: "When the reporter's own look-up was made" }),
    afterLookupBand: z
      .enum(AFTER_LOOKUP_BANDS)
      .openapi({ description: "What that look-up answered (reconstructed, docs/scoring.md §3c)" }),
    clearedAt: DateTime.nullable().openapi({
      description: "When an admin cleared the flag; null while it stands",
    }),
    clearedBy: z
      .string()
      .max(200)
      .nullable()
      .openapi({ description: "The admin who cleared it (`admin:<kid>`); null while it stands" }),
  })
  .openapi("AfterLookupReport");

const list = authenticatedRoute({
  method: "get",
  path: "/v1/admin/reports/after-lookup",
  operationId: "listAdminAfterLookupReports",
  tags: ["Admin: reports"],
  summary: "Reports flagged as filed after their reporter's own look-up, newest look-up first",
  description:
    "The reports filed within AFTER_LOOKUP_WINDOW_DAYS after their reporter's own look-up of one of their subjects answered `review` or worse (docs/scoring.md §3c), still waiting to be cleared (whatever their status: a closed one counts nowhere and cannot be cleared), newest look-up first; with `cleared=true`, those an admin cleared, most recently cleared first, with who and when.",
  middleware: [guard("admin.report.list_after_lookup", "admin")] as const,
  request: {
    query: z.object({
      cleared: z
        .enum(["true", "false"])
        .default("false")
        .openapi({ description: "`true`: the flags admins cleared instead of those waiting" }),
      cursor: CursorQuery,
      limit: LimitQuery,
    }),
  },
  responses: {
    200: {
      description: "A page of flagged reports",
      content: { "application/json": { schema: page(AfterLookupReportSchema, "AfterLookupReportPage") } },
    },
  },
});

const clear = authenticatedRoute({
  method: "post",
  path: "/v1/admin/reports/{id}/clear-after-lookup",
  operationId: "clearAdminReportAfterLookup",
  tags: ["Admin: reports"],
  summary: "Clear a report's after-look-up flag, so it counts towards the consensus again",
  description:
    "An admin who found that the report stands on the platform's own evidence, not on the ledger's answer, clears its `after_lookup` flag: the record then counts as any other, in the consensus and in reporter trust (docs/scoring.md §3c, §2a). Audited as `report.clear_after_lookup` with the reason. Idempotent: clearing again answers the report unchanged. 404 for no such report; 409 when it is not flagged, or no longer counts (retracted, voided, expired).",
  middleware: [guard("report.clear_after_lookup", "admin")] as const,
  request: {
    params: IdParam("rpt"),
    body: {
      required: true,
      content: {
        "application/json": {
          schema: z
            .object({
              reason: freeText(500).openapi({
                description: "Why the report stands on its own evidence, for the audit log",
                example:
                  "The platform's forensic report predates its look-up; the case was opened on 2026-11-02.",
              }),
            })
            .strict()
            .openapi("ClearAfterLookupBody"),
        },
      },
    },
  },
  responses: {
    200: {
      description: "The report, its flag cleared",
      content: { "application/json": { schema: ReportSchema } },
    },
    ...notFoundResponse,
    ...conflictResponse,
  },
});

interface FlaggedRow {
  id: string;
  platform_id: string;
  case_id: string;
  status: (typeof reportStatuses)[number];
  category: (typeof CATEGORIES)[number];
  confirmation: (typeof CONFIRMATIONS)[number];
  created_at: number;
  after_lookup_at: number;
  after_lookup_band: AfterLookupBand;
  after_lookup_cleared_at: number | null;
  after_lookup_cleared_by: string | null;
}

/**
 * A page of flagged reports, walking one partial index backwards from the cursor: waiting ones
 * by `(after_lookup_at, id)` (`reports_after_lookup`), cleared ones by
 * `(after_lookup_cleared_at, id)` (`reports_after_lookup_cleared`). Rows read follow the page,
 * never the table.
 */
export function afterLookupListSql(
  cleared: boolean,
  after: { at: number; id: string } | null,
  limit: number,
) {
  const columns = sql`r.id, r.platform_id, r.case_id, r.status, r.category, r.confirmation, r.created_at,
    r.after_lookup_at, r.after_lookup_band, r.after_lookup_cleared_at, r.after_lookup_cleared_by`;
  if (cleared) {
    const from =
      after === null ? sql`` : sql` AND (r.after_lookup_cleared_at, r.id) < (${after.at}, ${after.id})`;
    return sql`SELECT ${columns} FROM reports r WHERE r.after_lookup_cleared_at IS NOT NULL${from}
      ORDER BY r.after_lookup_cleared_at DESC, r.id DESC LIMIT ${limit + 1}`;
  }
  const from = after === null ? sql`` : sql` AND (r.after_lookup_at, r.id) < (${after.at}, ${after.id})`;
  return sql`SELECT ${columns} FROM reports r
    WHERE r.after_lookup_at IS NOT NULL AND r.after_lookup_cleared_at IS NULL${from}
    ORDER BY r.after_lookup_at DESC, r.id DESC LIMIT ${limit + 1}`;
}

export function registerAdminReportsAfterLookupList(app: App) {
  app.openapi(list, async (c) => {
    const { cleared, cursor, limit } = c.req.valid("query");
    const byCleared = cleared === "true";
    const after = decodeTimeIdCursor(cursor, REPORT_ID);
    const rows = await all<FlaggedRow>(c.var.db, afterLookupListSql(byCleared, after, limit));
    const { page: items, nextCursor } = pageByTimeOf(rows, limit, (r) => ({
      at: byCleared ? (r.after_lookup_cleared_at as number) : r.after_lookup_at,
      id: r.id,
    }));
    return c.json(
      {
        items: items.map((r) => ({
          id: r.id,
          platformId: r.platform_id,
          caseId: r.case_id,
          status: r.status,
          category: r.category,
          confirmation: r.confirmation,
          createdAt: toRfc3339(r.created_at),
          afterLookupAt: toRfc3339(r.after_lookup_at),
          afterLookupBand: r.after_lookup_band,
          clearedAt: toRfc3339OrNull(r.after_lookup_cleared_at),
          clearedBy: r.after_lookup_cleared_by,
        })),
        nextCursor,
      },
      200,
    );
  });
}

export function registerAdminReportsClearAfterLookup(app: App) {
  app.openapi(clear, async (c) => {
    const { id } = c.req.valid("param");
    const { reason } = c.req.valid("json");
    const scope = c.var.scope;
    scope.setTarget(id);
    const row = await reportById(scope.db, id, null);
    if (!row) {
      throw new ProblemError("not_found", `no report ${id}`);
    }
    if (row.after_lookup_at === null) {
      throw new ProblemError(
        "conflict",
        `report ${id} is not flagged as filed after its reporter's own look-up; there is nothing to clear`,
      );
    }
    const already = row.after_lookup_cleared_at !== null;
    // A second clearing changes nothing: the first admin and time stand. Only an open report is
    // cleared (a closed report's `updated_at` is when it closed, which the after-look-up check reads).
    const report = await changeStanding(scope, row, {
      already,
      update: sql`UPDATE reports SET after_lookup_cleared_at = ${scope.now},
          after_lookup_cleared_by = ${scope.principal.actor}, updated_at = ${scope.now}
        WHERE id = ${id} AND after_lookup_at IS NOT NULL AND after_lookup_cleared_at IS NULL
          AND status IN ('active', 'disputed')`,
      details: { afterLookupAt: row.after_lookup_at, afterLookupBand: row.after_lookup_band, reason },
    });
    return c.json(report, 200);
  });
}
