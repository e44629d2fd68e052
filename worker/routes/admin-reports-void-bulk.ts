import { z } from "@hono/zod-openapi";
import { sql } from "drizzle-orm";
import type { App } from "../app";
import { all } from "../lib/batch";
import { authenticatedRoute } from "../lib/route";
import { guard } from "../middleware/auth";
import { freeText, idOf, Rfc3339 } from "../schemas/common";
import { AUDIT_INSERT } from "../services/audit";
import { commitNamed } from "../services/commit";
import { enqueueDeliveries, eventsFromSelect } from "../services/events";
import { uncountFingerprintsSql } from "../services/fingerprints";
import { REPORT_ID } from "../services/report-queries";

/** Reports one request voids at most; a larger flood takes several calls (`more: true`). */
export const MAX_BULK_VOID = 1000;

const BulkVoidSchema = z
  .object({
    reason: freeText(500),
    ids: z
      .array(z.string().regex(REPORT_ID, "must be a report id (rpt_…)"))
      .min(1)
      .max(MAX_BULK_VOID)
      .optional()
      .openapi({ description: `Up to ${MAX_BULK_VOID} report ids` }),
    platformId: z.string().max(63).optional().openapi({ description: "Every open report of this platform…" }),
    since: Rfc3339.optional().openapi({ description: "…filed at or after this time…" }),
    until: Rfc3339.optional().openapi({ description: "…and before this time" }),
  })
  .strict()
  .superRefine((b, ctx) => {
    if ((b.ids === undefined) === (b.platformId === undefined)) {
      ctx.addIssue({
        code: "custom",
        path: ["ids"],
        message: "give either ids or platformId (with since/until)",
      });
    }
    if (b.ids !== undefined && (b.since !== undefined || b.until !== undefined)) {
      ctx.addIssue({ code: "custom", path: ["since"], message: "since/until filter by platformId, not ids" });
    }
    if (b.since && b.until && Date.parse(b.since) >= Date.parse(b.until)) {
      ctx.addIssue({ code: "custom", path: ["until"], message: "must be after since" });
    }
    if (b.ids && new Set(b.ids).size !== b.ids.length) {
      ctx.addIssue({ code: "custom", path: ["ids"], message: "duplicate ids" });
    }
  })
  .openapi("ReportBulkVoid");

const ResultSchema = z
  .object({
    voided: z.array(idOf("rpt")).max(MAX_BULK_VOID).openapi({ description: "The reports this call voided" }),
    skipped: z
      .array(z.object({ id: idOf("rpt"), reason: z.string().max(100) }))
      .max(MAX_BULK_VOID)
      .openapi({ description: "Listed ids not voided: unknown, or already closed" }),
    more: z.boolean().openapi({ description: "The filter matches more open reports: call again" }),
  })
  .openapi("ReportBulkVoidResult");

const route = authenticatedRoute({
  method: "post",
  path: "/v1/admin/reports/void",
  operationId: "voidAdminReportsBulk",
  tags: ["Admin: reports"],
  summary: `Void many reports at once: up to ${MAX_BULK_VOID} ids, or one platform's open reports filed in a time range`,
  description: `For cleaning up a poisoning flood. Only \`active\` and \`disputed\` reports are voided; an undecided dispute on one is decided \`report_voided\`. Each voided report is its own audit entry and its own \`report.voided\` event. One call voids at most ${MAX_BULK_VOID} (oldest filed first) in one D1 batch; \`more: true\` says the filter matches more.`,
  middleware: [guard("report.void", "admin")] as const,
  request: { body: { required: true, content: { "application/json": { schema: BulkVoidSchema } } } },
  responses: {
    200: { description: "What was voided", content: { "application/json": { schema: ResultSchema } } },
  },
});

interface Target {
  id: string;
  status: string;
}

export function registerAdminReportsVoidBulk(app: App) {
  app.openapi(route, async (c) => {
    const body = c.req.valid("json");
    const { now, requestId, principal } = c.var;
    let targets: Target[];
    let skipped: { id: string; reason: string }[] = [];
    let more = false;
    if (body.ids) {
      const found = await all<Target>(
        c.var.db,
        sql`SELECT r.id, r.status FROM json_each(${JSON.stringify(body.ids)}) j
            CROSS JOIN reports r ON r.id = j.value`,
      );
      const byId = new Map(found.map((r) => [r.id, r.status]));
      targets = found.filter((r) => r.status === "active" || r.status === "disputed");
      skipped = body.ids
        .filter((id) => !targets.some((t) => t.id === id))
        .map((id) => ({ id, reason: byId.has(id) ? `already ${byId.get(id)}` : "not found" }));
    } else {
      const since = body.since ? Date.parse(body.since) : 0;
      const until = body.until ? Date.parse(body.until) : Number.MAX_SAFE_INTEGER;
      // One ordered index walk per open status, each stopping after MAX_BULK_VOID + 1 rows.
      const walk = (status: string) => sql`SELECT * FROM (SELECT r.id, r.status, r.created_at FROM reports r
          WHERE r.platform_id = ${body.platformId} AND r.status = ${status}
            AND r.created_at >= ${since} AND r.created_at < ${until}
          ORDER BY r.created_at, r.id LIMIT ${MAX_BULK_VOID + 1})`;
      const rows = await all<Target>(
        c.var.db,
        sql`${walk("active")} UNION ALL ${walk("disputed")} ORDER BY created_at, id LIMIT ${MAX_BULK_VOID + 1}`,
      );
      more = rows.length > MAX_BULK_VOID;
      targets = rows.slice(0, MAX_BULK_VOID);
    }
    if (targets.length === 0) {
      c.set("auditTarget", body.platformId ?? null);
      return c.json({ voided: [], skipped, more: false }, 200);
    }
    const ids = JSON.stringify(targets.map((t) => t.id));
    // Every statement re-checks that the report is still open, so a report closed by a racing
    // request between the read and this batch is simply left out of all of them.
    const open = sql`SELECT r.id FROM json_each(${ids}) j CROSS JOIN reports r ON r.id = j.value
      WHERE r.status IN ('active', 'disputed')`;
    const filter = body.ids
      ? { ids: body.ids.length }
      : { platformId: body.platformId, since: body.since, until: body.until };
    const results = await commitNamed(c.var.scope, {
      stillOpen: sql`SELECT r.id FROM json_each(${ids}) j CROSS JOIN reports r ON r.id = j.value
          WHERE r.status IN ('active', 'disputed')`,
      audit: sql`${AUDIT_INSERT}
          SELECT ${now}, ${principal.actor}, ${c.var.action}, r.id, ${requestId}, 'ok',
            json_object('from', r.status, 'to', 'voided', 'reason', ${body.reason}, 'bulk', json(${JSON.stringify(filter)}))
          FROM json_each(${ids}) j CROSS JOIN reports r ON r.id = j.value
          WHERE r.status IN ('active', 'disputed') ORDER BY j.key`,
      // Events before the changes they announce select from the rows still open.
      reporterEvents: eventsFromSelect(
        { now },
        sql`SELECT r.platform_id AS platform_id, 'report.voided' AS type,
              json_object('reportId', r.id, 'caseId', r.case_id) AS data, j.key AS n
            FROM json_each(${ids}) j CROSS JOIN reports r ON r.id = j.value
            WHERE r.status IN ('active', 'disputed')`,
      ),
      openerEvents: eventsFromSelect(
        { now },
        sql`SELECT d.opened_by AS platform_id, 'dispute.decided' AS type,
              json_object('disputeId', d.id, 'reportId', d.report_id, 'status', 'report_voided',
                'reportStatus', 'voided') AS data, j.key AS n
            FROM json_each(${ids}) j CROSS JOIN disputes d ON d.report_id = j.value
            WHERE d.status IN ('open', 'overdue', 'escalated')`,
      ),
      decide: sql`UPDATE disputes SET status = 'report_voided', response_note = ${body.reason},
            decided_by = ${principal.actor}, decided_at = ${now}, updated_at = ${now}
          WHERE report_id IN (${open}) AND status IN ('open', 'overdue', 'escalated')`,
      // Voided by an admin: the links stop counting and the reporter may not re-file the incidents.
      uncount: sql`UPDATE report_subjects SET counted = 0, blocks_refiling = 1 WHERE report_id IN (${open})`,
      void: sql`UPDATE reports SET status = 'voided', status_reason = ${body.reason}, dispute_deadline_at = NULL,
            updated_at = ${now}
          WHERE id IN (SELECT value FROM json_each(${ids})) AND status IN ('active', 'disputed')`,
      // After the void: the voided reports' fingerprints stop matching.
      fingerprints: uncountFingerprintsSql(sql`SELECT value FROM json_each(${ids})`),
    });
    enqueueDeliveries(c.var.scope, [...results.reporterEvents, ...results.openerEvents]);
    const done = new Set((results.stillOpen.results ?? []).map((r) => (r as { id: string }).id));
    const raced = targets
      .filter((t) => !done.has(t.id))
      .map((t) => ({ id: t.id, reason: "closed meanwhile" }));
    return c.json(
      {
        voided: targets.filter((t) => done.has(t.id)).map((t) => t.id),
        skipped: [...skipped, ...raced],
        more,
      },
      200,
    );
  });
}
