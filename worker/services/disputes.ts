import { and, eq, inArray, sql } from "drizzle-orm";
import type { Context } from "hono";
import { type DisputeStatus, disputes, reports, UNDECIDED } from "../../schema";
import type { AppEnv } from "../app";
import { abortUnlessChanged, all } from "../lib/batch";
import type { Db } from "../lib/db";
import { orm } from "../lib/db";
import { ProblemError } from "../lib/problem";
import { toRfc3339, toRfc3339OrNull } from "../lib/time";
import { auditInsert } from "./audit";
import { commit } from "./commit";
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
  report_platform_id: string;
}

export const DISPUTE_ID = /^dsp_[0-9A-HJKMNP-TV-Z]{26}$/;

export const DISPUTE_COLUMNS = sql.raw(`d.id, d.report_id, d.opened_by, d.status, d.reason, d.opened_at,
  d.deadline_at, d.response_note, d.decided_at, r.platform_id AS report_platform_id`);

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
export async function visibleDispute(c: Context<AppEnv>, id: string): Promise<DisputeRow> {
  c.set("auditTarget", id);
  const row = DISPUTE_ID.test(id) ? await disputeById(c.var.db, id) : undefined;
  const p = c.var.principal;
  const visible =
    row && (p.kind === "admin" || row.opened_by === p.platformId || row.report_platform_id === p.platformId);
  if (!row || !visible) {
    throw new ProblemError("not_found", `no dispute ${id}`);
  }
  return row;
}

/**
 * Closes an undecided dispute and moves its report, with the audit entry, in one batch.
 * `reportTo` is the report's new status: `active` (upheld) or a closing status.
 */
export async function decideDispute(
  c: Context<AppEnv>,
  dispute: DisputeRow,
  decision: { status: DisputeStatus; reportTo: "active" | "retracted" | "voided"; note: string },
): Promise<DisputeRow> {
  const { now, requestId, principal } = c.var;
  const db = orm(c.var.db);
  await commit(c, [
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
    uncountLinksSql(dispute.report_id),
    auditInsert(
      db,
      { requestId, now },
      {
        actor: principal.actor,
        action: c.var.action,
        target: dispute.id,
        outcome: "ok",
        details: { report: dispute.report_id, decision: decision.status, reportStatus: decision.reportTo },
      },
    ),
  ]);
  return (await disputeById(c.var.db, dispute.id)) ?? dispute;
}

/** Marks disputes past their deadline `overdue` for the admins' list. Idempotent. */
export async function markOverdueDisputes(d1: Db, now: number): Promise<number> {
  const result = await orm(d1)
    .update(disputes)
    .set({ status: "overdue", updatedAt: now })
    .where(and(eq(disputes.status, "open"), sql`${disputes.deadlineAt} <= ${now}`))
    .run();
  return result.meta.changes ?? 0;
}
