import { sql } from "drizzle-orm";
import { disputes } from "../../schema";
import type { App } from "../app";
import { abortUnlessChanged, all, isUniqueViolation } from "../lib/batch";
import { ledgerFor, orm } from "../lib/db";
import { newId } from "../lib/ids";
import { conflictResponse, notFoundResponse, ProblemError } from "../lib/problem";
import { authenticatedRoute } from "../lib/route";
import { DAY_MS, toRfc3339 } from "../lib/time";
import { callerPlatform, guard } from "../middleware/auth";
import { DisputeOpenSchema, DisputeSchema } from "../schemas/disputes";
import { requestAudit } from "../services/audit";
import { commit } from "../services/commit";
import { disputeById, toDispute } from "../services/disputes";
import { enqueueDeliveries, eventInserts } from "../services/events";
import { pepperSubjects } from "../services/subjects";

const route = authenticatedRoute({
  method: "post",
  path: "/v1/disputes",
  operationId: "openDispute",
  tags: ["Disputes"],
  summary: "Open a buyer's dispute of a record",
  description:
    "The subjects must match the record (else 404). The record becomes `disputed`: it counts at reduced weight, and not at all once the dispute is open past `deadlineAt` without a decision. One undecided dispute per record (409). The reporting platform cannot dispute its own record (403): a dispute is the buyer's side.",
  middleware: [guard("dispute.open", "disputes:write")] as const,
  request: { body: { required: true, content: { "application/json": { schema: DisputeOpenSchema } } } },
  responses: {
    201: { description: "Opened", content: { "application/json": { schema: DisputeSchema } } },
    ...notFoundResponse,
    ...conflictResponse,
  },
});

export function registerDisputesOpen(app: App) {
  app.openapi(route, async (c) => {
    const { reportRef, subjects, reason } = c.req.valid("json");
    const { config, now } = c.var;
    const platformId = callerPlatform(c);
    c.set("auditTarget", reportRef);
    const keys = (await pepperSubjects(config.LEDGER_PEPPER, subjects)).map((s) => s.key);
    const [report] = await all<{
      status: string;
      platform_id: string;
      matches: number;
      final: number;
      upheld_for_caller: number;
    }>(
      ledgerFor(c.var.db, keys),
      sql`SELECT r.status, r.platform_id, EXISTS (SELECT 1 FROM report_subjects s WHERE s.report_id = r.id
            AND s.subject_key IN (SELECT value FROM json_each(${JSON.stringify(keys)}))) AS matches,
            EXISTS (SELECT 1 FROM disputes d WHERE d.report_id = r.id AND d.status = 'report_upheld') AS final,
            EXISTS (SELECT 1 FROM disputes d WHERE d.report_id = r.id AND d.status = 'upheld'
              AND d.opened_by = ${platformId}) AS upheld_for_caller
          FROM reports r WHERE r.id = ${reportRef}`,
    );
    if (!report?.matches) {
      throw new ProblemError("not_found", `no record ${reportRef} about these subjects`);
    }
    if (report.platform_id === platformId) {
      // A reporter disputing its own record could plant a fake buyer statement, uphold it, and
      // so block every real dispute (a decided record cannot be disputed again).
      throw new ProblemError(
        "forbidden",
        `record ${reportRef} was reported by this platform: a dispute is opened for the buyer by another member; retract the report instead`,
      );
    }
    if (report.status === "disputed") {
      throw new ProblemError("conflict", `record ${reportRef} already has an undecided dispute`);
    }
    if (report.final) {
      throw new ProblemError(
        "conflict",
        `an admin already decided a dispute of record ${reportRef} in its favour`,
      );
    }
    if (report.upheld_for_caller) {
      // Its own upheld dispute is escalated, not opened again (which would halve the weight anew).
      throw new ProblemError(
        "conflict",
        `the reporter upheld record ${reportRef} against this platform's dispute; escalate that dispute instead`,
      );
    }
    if (report.status !== "active") {
      throw new ProblemError("conflict", `record ${reportRef} is ${report.status} and no longer counts`);
    }
    const id = newId("dsp");
    const deadlineAt = now + config.DISPUTE_DEADLINE_DAYS * DAY_MS;
    const db = orm(c.var.db);
    let results: D1Result[];
    try {
      results = await commit(c.var.scope, [
        // The record must still be active when the dispute lands: a racing retraction wins whole.
        sql`UPDATE reports SET status = 'disputed', dispute_deadline_at = ${deadlineAt}, statement = ${reason},
              dispute_id = ${id}, updated_at = ${now} WHERE id = ${reportRef} AND status = 'active'`,
        abortUnlessChanged(),
        db.insert(disputes).values({
          id,
          reportId: reportRef,
          openedBy: platformId,
          reportPlatformId: report.platform_id,
          status: "open",
          reason,
          openedAt: now,
          deadlineAt,
          createdAt: now,
          updatedAt: now,
        }),
        requestAudit(c.var.scope, {
          target: id,
          outcome: "created",
          details: { report: reportRef, subjectKeys: keys, deadlineAt },
        }),
        // The reporter learns of the dispute; the event names the dispute and the record only.
        ...eventInserts({ now }, [
          {
            platformId: report.platform_id,
            type: "dispute.opened",
            data: { disputeId: id, reportId: reportRef, deadlineAt: toRfc3339(deadlineAt) },
          },
        ]),
      ]);
    } catch (err) {
      if (isUniqueViolation(err, "disputes.report_id")) {
        throw new ProblemError("conflict", `record ${reportRef} already has an undecided dispute`);
      }
      throw err;
    }
    enqueueDeliveries(c.var.scope, results);
    const row = await disputeById(c.var.db, id);
    if (!row) {
      throw new Error(`dispute ${id} vanished after it was opened`);
    }
    return c.json(toDispute(row, false), 201);
  });
}
