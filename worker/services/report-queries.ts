import { and, eq, inArray, type SQL, sql } from "drizzle-orm";
import { disputes, type ReportStatus, reports, UNDECIDED } from "../../schema";
import { abortUnlessChanged, all, rowsOf } from "../lib/batch";
import { pageByTimeOf, type TimeIdCursor } from "../lib/cursor";
import type { Db } from "../lib/db";
import { orm } from "../lib/db";
import { ProblemError } from "../lib/problem";
import type { RequestScope } from "../lib/scope";
import type { Report } from "../schemas/reports";
import { requestAudit } from "./audit";
import { commitNamed } from "./commit";
import { enqueueDeliveries, eventsFromSelect, reportEvents } from "./events";
import { REPORT_COLUMNS, type ReportRow, toReport, uncountLinksSql } from "./reports";

export const REPORT_ID = /^rpt_[0-9A-HJKMNP-TV-Z]{26}$/;

/**
 * One report by id, scoped to its platform when `platformId` is given (tenancy is in the
 * query: another platform's report is simply not found).
 */
export function reportByIdSql(id: string, platformId: string | null) {
  const tenant = platformId === null ? sql`` : sql` AND r.platform_id = ${platformId}`;
  return sql`SELECT ${REPORT_COLUMNS} FROM reports r WHERE r.id = ${id}${tenant}`;
}

export async function reportById(
  d1: Db,
  id: string,
  platformId: string | null,
): Promise<ReportRow | undefined> {
  const [row] = await all<ReportRow>(d1, reportByIdSql(id, platformId));
  return row;
}

export interface ReportListFilter {
  platformId?: string | undefined;
  status?: ReportStatus | undefined;
  /** The last row of the previous page, from its cursor. */
  after: TimeIdCursor | null;
  limit: number;
}

/**
 * A page of reports, newest first: `ORDER BY created_at DESC, id DESC`, since report ids are
 * random. Reports written in one batch share `created_at`, so the id breaks the tie and the
 * cursor carries both. Each filter walks one index backwards from the cursor and stops at the
 * limit: (platform_id, created_at, id), (platform_id, status, created_at, id),
 * (status, created_at, id) or (created_at, id). The row-value comparison is what lets SQLite
 * seek the index to the cursor instead of filtering row by row.
 */
export function listReportsSql(filter: ReportListFilter): SQL {
  const where: SQL[] = [];
  if (filter.platformId !== undefined) {
    where.push(sql`r.platform_id = ${filter.platformId}`);
  }
  if (filter.status !== undefined) {
    where.push(sql`r.status = ${filter.status}`);
  }
  if (filter.after !== null) {
    where.push(sql`(r.created_at, r.id) < (${filter.after.at}, ${filter.after.id})`);
  }
  const clause = where.length > 0 ? sql`WHERE ${sql.join(where, sql` AND `)}` : sql``;
  return sql`SELECT ${REPORT_COLUMNS} FROM reports r ${clause}
    ORDER BY r.created_at DESC, r.id DESC LIMIT ${filter.limit + 1}`;
}

export async function listReports(
  d1: Db,
  filter: ReportListFilter,
): Promise<{ items: Report[]; nextCursor: string | null }> {
  const rows = await all<ReportRow>(d1, listReportsSql(filter));
  const { page, nextCursor } = pageByTimeOf(rows, filter.limit, (r) => ({ at: r.created_at, id: r.id }));
  return { items: page.map(toReport), nextCursor };
}

/** Statuses a report can leave for `retracted` or `voided`. */
const OPEN_STATUSES: readonly ReportStatus[] = ["active", "disputed"];

/**
 * An admin action on a report's standing (verifying its confirmation, clearing its after-look-up
 * flag), in one batch: refused with 409 once the report no longer counts, unless it was already
 * done (`already`: answered as a replay, audited `replayed`, nothing written, whatever the
 * report's status since); otherwise the guarded `update` runs and a report closed or changed
 * since it was read rolls the batch back (409). Answers the report as it now stands.
 */
export async function changeStanding(
  scope: RequestScope,
  row: ReportRow,
  change: { already: boolean; update: SQL; details: Record<string, unknown> },
): Promise<Report> {
  if (!change.already && !OPEN_STATUSES.includes(row.status)) {
    throw new ProblemError("conflict", `report ${row.id} is ${row.status}: it no longer counts`);
  }
  const { readBack } = await commitNamed(scope, {
    change: change.already ? [] : [change.update, abortUnlessChanged()],
    audit: requestAudit(scope, {
      target: row.id,
      outcome: change.already ? "replayed" : "ok",
      details: change.details,
    }),
    readBack: reportByIdSql(row.id, null),
  });
  const [updated] = rowsOf<ReportRow>(readBack);
  if (!updated) {
    throw new Error(`report ${row.id} vanished while its standing changed`);
  }
  return toReport(updated);
}

/**
 * Retracts (reporter) or voids (admin) a report: read it (404 when absent or another
 * tenant's), refuse if already closed (409), then update it and audit the change in one batch.
 */
export async function closeReport(
  scope: RequestScope,
  args: { id: string; platformId: string | null; to: "retracted" | "voided"; reason: string },
): Promise<Report> {
  const { now, principal } = scope;
  const db = orm(scope.db);
  scope.setTarget(args.id);
  const row = await reportById(scope.db, args.id, args.platformId);
  if (!row) {
    throw new ProblemError("not_found", `no report ${args.id}`);
  }
  if (!OPEN_STATUSES.includes(row.status)) {
    throw new ProblemError("conflict", `report ${args.id} is already ${row.status}`);
  }
  const disputeStatus = args.to === "retracted" ? "withdrawn" : "report_voided";
  const results = await commitNamed(scope, {
    close: [
      db
        .update(reports)
        .set({ status: args.to, statusReason: args.reason, disputeDeadlineAt: null, updatedAt: now })
        .where(and(eq(reports.id, args.id), inArray(reports.status, [...OPEN_STATUSES]))),
      abortUnlessChanged(),
    ],
    // The opener of a dispute this closes learns its outcome; selected before the update below
    // changes the dispute's status. The data names the dispute and the record, not the reporter.
    // A report has at most one undecided dispute (disputes_one_undecided), hence `0 AS n`.
    openerEvents: eventsFromSelect(
      { now },
      sql`SELECT d.opened_by AS platform_id, 'dispute.decided' AS type,
            json_object('disputeId', d.id, 'reportId', d.report_id, 'status', ${disputeStatus},
              'reportStatus', ${args.to}) AS data, 0 AS n
          FROM disputes d
          WHERE d.report_id = ${args.id} AND d.status IN (SELECT value FROM json_each(${JSON.stringify(UNDECIDED)}))`,
    ),
    // A closed report frees its slot under the per-subject cap and leaves the score read. Closed
    // by an admin, or while the buyer disputes it, the reporter may not re-file the incident.
    uncount: uncountLinksSql(args.id, { dueProcess: args.to === "voided" || row.status === "disputed" }),
    // A retraction withdraws, a void decides, any dispute still undecided on the report.
    decide: db
      .update(disputes)
      .set({
        status: disputeStatus,
        responseNote: args.reason,
        decidedBy: principal.actor,
        decidedAt: now,
        updatedAt: now,
      })
      .where(and(eq(disputes.reportId, args.id), inArray(disputes.status, [...UNDECIDED]))),
    // A void is news to the reporter; a retraction is its own doing.
    reporterEvents: args.to === "voided" ? reportEvents({ now }, "report.voided", [args.id]) : [],
    audit: requestAudit(scope, {
      target: args.id,
      outcome: "ok",
      details: { from: row.status, to: args.to, reason: args.reason },
    }),
    readBack: reportByIdSql(args.id, null),
  });
  enqueueDeliveries(scope, [...results.openerEvents, ...results.reporterEvents]);
  const [updated] = rowsOf<ReportRow>(results.readBack);
  if (!updated) {
    throw new Error(`report ${args.id} vanished while it was being ${args.to}`);
  }
  return toReport(updated);
}
