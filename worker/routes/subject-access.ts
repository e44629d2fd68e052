import { createRoute, z } from "@hono/zod-openapi";
import { sql } from "drizzle-orm";
import { reportStatuses } from "../../schema";
import type { App } from "../app";
import { batch, rowsOf } from "../lib/batch";
import { ledgerFor, orm } from "../lib/db";
import { problemResponses } from "../lib/problem";
import { toRfc3339, toRfc3339OrNull } from "../lib/time";
import { callerPlatform, guard } from "../middleware/auth";
import { AmountSchema, subjectList } from "../schemas/common";
import { CATEGORIES, CONFIRMATIONS } from "../schemas/reports";
import { auditInsert } from "../services/audit";
import { PURPOSES } from "../services/scores";
import { pepperSubjects } from "../services/subjects";

/** How many look-ups the answer lists, newest first. */
export const MAX_INQUIRIES = 500;

const AccessSchema = z
  .object({
    records: z.array(
      z.object({
        ref: z.string(),
        status: z.enum(reportStatuses),
        platformName: z.string().openapi({ description: "Who furnished the record" }),
        category: z.enum(CATEGORIES),
        confirmation: z.enum(CONFIRMATIONS),
        incidentAt: z.string(),
        confirmedAt: z.string(),
        reportedAt: z.string(),
        amount: AmountSchema,
        subjectNotifiedAt: z.string().nullable(),
        statusReason: z.string().nullable(),
        statement: z.string().nullable(),
      }),
    ),
    inquiries: z.array(z.object({ at: z.string(), purpose: z.enum(PURPOSES), platformName: z.string() })),
  })
  .openapi("SubjectAccess");

const route = createRoute({
  method: "post",
  path: "/v1/subject-access",
  tags: ["Disputes"],
  summary: "Everything held about a buyer, and who looked them up",
  description:
    "Every record about these subjects, whatever its status, with the furnishing platform's name and the buyer's statement; and every look-up (time, purpose, platform). For the buyer's platform to show the buyer. Audited like a score query.",
  security: [{ bearer: [] }],
  middleware: [guard("subject.access", "disputes:write")] as const,
  request: {
    body: {
      required: true,
      content: {
        "application/json": {
          schema: z
            .object({ subjects: subjectList(8) })
            .strict()
            .openapi("SubjectAccessQuery"),
        },
      },
    },
  },
  responses: {
    200: { description: "The buyer's file", content: { "application/json": { schema: AccessSchema } } },
    ...problemResponses,
  },
});

interface RecordRow {
  id: string;
  status: (typeof reportStatuses)[number];
  platform_name: string;
  category: (typeof CATEGORIES)[number];
  confirmation: (typeof CONFIRMATIONS)[number];
  incident_at: number;
  confirmed_at: number;
  created_at: number;
  amount_value: number;
  amount_currency: string;
  subject_notified_at: number | null;
  status_reason: string | null;
  statement: string | null;
}

export function registerSubjectAccess(app: App) {
  app.openapi(route, async (c) => {
    const { subjects } = c.req.valid("json");
    const { config, now, requestId, principal } = c.var;
    callerPlatform(c);
    const keys = (await pepperSubjects(config.LEDGER_PEPPER, subjects)).map((s) => s.key);
    const keysJson = JSON.stringify(keys);
    const [records, inquiries] = await batch(ledgerFor(c.var.db, keys), [
      sql`SELECT DISTINCT r.id, r.status, p.name AS platform_name, r.category, r.confirmation, r.incident_at,
            r.confirmed_at, r.created_at, r.amount_value, r.amount_currency, r.subject_notified_at,
            r.status_reason, r.statement
          FROM report_subjects rs JOIN reports r ON r.id = rs.report_id JOIN platforms p ON p.id = r.platform_id
          WHERE rs.subject_key IN (SELECT value FROM json_each(${keysJson}))
          ORDER BY r.incident_at DESC`,
      sql`SELECT i.request_id, max(i.at) AS at, i.purpose, p.name AS platform_name
          FROM inquiries i JOIN platforms p ON p.id = i.platform_id
          WHERE i.subject_key IN (SELECT value FROM json_each(${keysJson}))
          GROUP BY i.request_id ORDER BY at DESC LIMIT ${MAX_INQUIRIES}`,
      auditInsert(
        orm(c.var.db),
        { requestId, now },
        {
          actor: principal.actor,
          action: c.var.action,
          outcome: "ok",
          details: { subjectKeys: keys },
        },
      ),
    ]);
    c.set("audited", true);
    return c.json(
      {
        records: rowsOf<RecordRow>(records).map((r) => ({
          ref: r.id,
          status: r.status,
          platformName: r.platform_name,
          category: r.category,
          confirmation: r.confirmation,
          incidentAt: toRfc3339(r.incident_at),
          confirmedAt: toRfc3339(r.confirmed_at),
          reportedAt: toRfc3339(r.created_at),
          amount: { value: r.amount_value, currency: r.amount_currency },
          subjectNotifiedAt: toRfc3339OrNull(r.subject_notified_at),
          statusReason: r.status_reason,
          statement: r.statement,
        })),
        inquiries: rowsOf<{ at: number; purpose: (typeof PURPOSES)[number]; platform_name: string }>(
          inquiries,
        ).map((i) => ({ at: toRfc3339(i.at), purpose: i.purpose, platformName: i.platform_name })),
      },
      200,
    );
  });
}
