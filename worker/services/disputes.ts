import { and, eq, inArray, sql } from "drizzle-orm";
import { type DisputeStatus, disputes, reports, UNDECIDED } from "../../schema";
import { abortUnlessChanged, all, batchNamed, isUniqueViolation } from "../lib/batch";
import type { Db } from "../lib/db";
import { orm } from "../lib/db";
import { ProblemError } from "../lib/problem";
import type { RequestScope } from "../lib/scope";
import { toRfc3339, toRfc3339OrNull } from "../lib/time";
import { requestAudit } from "./audit";
import { commit } from "./commit";
import { deliveriesOf, type EventSpec, enqueueDeliveries, eventInserts, eventsFromSelect } from "./events";
import { uncountLinksSql } from "./reports";

export interface DisputeRow {
  id: string;
  report_id: string;
  opened_by: string;
  status: DisputeStatus;
  reason: string;
  opened_at: number;
  deadline_at: number;
  response_note: string | null;
  decided_at: number | null;
  escalated_at: number | null;
  escalation_reason: string | null;
  report_platform_id: string;
}

export const DISPUTE_ID = /^dsp_[0-9A-HJKMNP-TV-Z]{26}$/;

export const DISPUTE_COLUMNS = sql.raw(`d.id, d.report_id, d.opened_by, d.status, d.reason, d.opened_at,
  d.deadline_at, d.response_note, d.decided_at, d.escalated_at, d.escalation_reason,
  r.platform_id AS report_platform_id`);

/** The API view of a dispute; who opened it and whose report it is are for admins only. */
export function toDispute(row: DisputeRow, forAdmin: boolean) {
  return {
    id: row.id,
    status: row.status,
    reportRef: row.report_id,
    openedAt: toRfc3339(row.opened_at),
    deadlineAt: toRfc3339(row.deadline_at),
    reason: row.reason,
    responseNote: row.response_note,
    decidedAt: toRfc3339OrNull(row.decided_at),
    escalatedAt: toRfc3339OrNull(row.escalated_at),
    escalationReason: row.escalation_reason,
    ...(forAdmin ? { openedBy: row.opened_by, reportPlatformId: row.report_platform_id } : {}),
  };
}

export async function disputeById(d1: Db, id: string): Promise<DisputeRow | undefined> {
  const [row] = await all<DisputeRow>(
    d1,
    sql`SELECT ${DISPUTE_COLUMNS} FROM disputes d JOIN reports r ON r.id = d.report_id WHERE d.id = ${id}`,
  );
  return row;
}

/**
 * A dispute as the caller may see it: admins see all, platforms only disputes they opened or
 * about their own reports; anything else is not found, so existence does not leak.
 */
export async function visibleDispute(scope: RequestScope, id: string): Promise<DisputeRow> {
  scope.setTarget(id);
  const row = DISPUTE_ID.test(id) ? await disputeById(scope.db, id) : undefined;
  const p = scope.principal;
  const visible =
    row && (p.kind === "admin" || row.opened_by === p.platformId || row.report_platform_id === p.platformId);
  if (!row || !visible) {
    throw new ProblemError("not_found", `no dispute ${id}`);
  }
  return row;
}

/**
 * The events of a decided dispute, to the reporting platform and to the one that opened it (once
 * when they are the same). The data names the dispute and the record only, never the reporter.
 */
export function decisionEvents(
  dispute: Pick<DisputeRow, "id" | "report_id" | "opened_by" | "report_platform_id">,
  type: "dispute.responded" | "dispute.decided",
  data: Record<string, unknown>,
): EventSpec[] {
  const recipients = [...new Set([dispute.report_platform_id, dispute.opened_by])];
  return recipients.map((platformId) => ({
    platformId,
    type,
    data: { disputeId: dispute.id, reportId: dispute.report_id, ...data },
  }));
}

/**
 * Closes an undecided dispute and moves its report, with the audit entry and the events, in one
 * batch. `reportTo` is the report's new status: `active` (upheld) or a closing status. The
 * reporter's own answer is `dispute.responded` (with its `decision`), an admin's `dispute.decided`;
 * both go to the reporter and the opener.
 */
export async function decideDispute(
  scope: RequestScope,
  dispute: DisputeRow,
  decision: {
    status: DisputeStatus;
    reportTo: "active" | "retracted" | "voided";
    note: string;
    event: { type: "dispute.responded"; decision: "uphold" | "withdraw" } | { type: "dispute.decided" };
  },
): Promise<DisputeRow> {
  const { now, principal } = scope;
  const db = orm(scope.db);
  const { type, ...extra } = decision.event;
  const results = await commit(scope, [
    db
      .update(disputes)
      .set({
        status: decision.status,
        responseNote: decision.note,
        decidedBy: principal.actor,
        decidedAt: now,
        updatedAt: now,
      })
      .where(and(eq(disputes.id, dispute.id), inArray(disputes.status, [...UNDECIDED]))),
    // Only the request that decided the dispute goes on: a racing one rolls back whole (409).
    abortUnlessChanged(),
    db
      .update(reports)
      .set({
        status: decision.reportTo,
        disputeDeadlineAt: null,
        updatedAt: now,
        ...(decision.reportTo === "active" ? {} : { statusReason: decision.note }),
      })
      .where(and(eq(reports.id, dispute.report_id), eq(reports.status, "disputed"))),
    // Withdrawn or voided, the report stops counting; upheld, its links stay counted.
    ...uncountLinksSql(dispute.report_id, { dueProcess: true }),
    requestAudit(scope, {
      target: dispute.id,
      outcome: "ok",
      details: { report: dispute.report_id, decision: decision.status, reportStatus: decision.reportTo },
    }),
    ...eventInserts(
      { now },
      decisionEvents(dispute, type, { ...extra, status: decision.status, reportStatus: decision.reportTo }),
    ),
  ]);
  enqueueDeliveries(scope, results);
  return (await disputeById(scope.db, dispute.id)) ?? dispute;
}

/** Disputes marked overdue per run; a larger backlog is finished by the next runs (every minute). */
export const OVERDUE_CHUNK = 1000;

/**
 * Marks disputes past their deadline `overdue` for the admins' list, and tells each reporter
 * (`dispute.overdue`), in one batch: the events are selected from the very rows the update then
 * changes (both still require `open`, so a racing decision wins). Idempotent. Returns how many
 * were marked and the webhook deliveries to enqueue.
 */
export async function markOverdueDisputes(
  d1: Db,
  now: number,
): Promise<{ marked: number; deliveries: string[] }> {
  const due = await all<{ id: string }>(
    d1,
    sql`SELECT id FROM disputes WHERE status = 'open' AND deadline_at <= ${now} ORDER BY deadline_at LIMIT ${OVERDUE_CHUNK}`,
  );
  if (due.length === 0) {
    return { marked: 0, deliveries: [] };
  }
  const ids = JSON.stringify(due.map((d) => d.id));
  const results = await batchNamed(d1, {
    events: eventsFromSelect(
      { now },
      sql`SELECT r.platform_id AS platform_id, 'dispute.overdue' AS type,
            json_object('disputeId', d.id, 'reportId', d.report_id,
              'deadlineAt', strftime('%Y-%m-%dT%H:%M:%SZ', d.deadline_at / 1000, 'unixepoch')) AS data,
            j.key AS n
          FROM json_each(${ids}) j JOIN disputes d ON d.id = j.value JOIN reports r ON r.id = d.report_id
          WHERE d.status = 'open'`,
    ),
    marked: sql`UPDATE disputes SET status = 'overdue', updated_at = ${now}
        WHERE id IN (SELECT value FROM json_each(${ids})) AND status = 'open'`,
  });
  return { marked: results.marked.meta.changes ?? 0, deliveries: deliveriesOf(results.events) };
}

/**
 * The opening platform escalates a dispute the reporter upheld: the dispute is undecided again
 * (`escalated`), only an admin decides it, and the record is flagged like an open dispute —
 * `disputed`, reduced weight, and not counted past the new deadline (an admin has
 * DISPUTE_DEADLINE_DAYS to decide). One batch; a racing escalation, retraction or void makes
 * it roll back whole (409). The reporter is told (`dispute.escalated`).
 */
export async function escalateDispute(
  scope: RequestScope,
  dispute: DisputeRow,
  args: { reason: string; deadlineAt: number },
): Promise<DisputeRow> {
  const { now } = scope;
  const db = orm(scope.db);
  let results: D1Result[];
  try {
    results = await commit(scope, [
      db
        .update(disputes)
        .set({
          status: "escalated",
          escalatedAt: now,
          escalationReason: args.reason,
          deadlineAt: args.deadlineAt,
          decidedBy: null,
          decidedAt: null,
          updatedAt: now,
        })
        .where(and(eq(disputes.id, dispute.id), eq(disputes.status, "upheld"))),
      abortUnlessChanged(),
      db
        .update(reports)
        .set({
          status: "disputed",
          disputeDeadlineAt: args.deadlineAt,
          disputeId: dispute.id,
          updatedAt: now,
        })
        .where(and(eq(reports.id, dispute.report_id), eq(reports.status, "active"))),
      abortUnlessChanged(),
      requestAudit(scope, {
        target: dispute.id,
        outcome: "ok",
        details: { report: dispute.report_id, deadlineAt: args.deadlineAt },
      }),
      // The reporter must know its record is contested again; the opener asked for it.
      ...eventInserts({ now }, [
        {
          platformId: dispute.report_platform_id,
          type: "dispute.escalated",
          data: {
            disputeId: dispute.id,
            reportId: dispute.report_id,
            deadlineAt: toRfc3339(args.deadlineAt),
          },
        },
      ]),
    ]);
  } catch (err) {
    // Another platform's dispute of the record opened since: one undecided dispute per record.
    if (isUniqueViolation(err, "disputes.report_id")) {
      throw new ProblemError(
        "conflict",
        `record ${dispute.report_id} has another undecided dispute; dispute ${dispute.id} cannot be escalated now`,
      );
    }
    throw err;
  }
  enqueueDeliveries(scope, results);
  return (await disputeById(scope.db, dispute.id)) ?? dispute;
}
