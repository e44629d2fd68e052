import { z } from "@hono/zod-openapi";
import { type SQL, sql } from "drizzle-orm";
import { reportStatuses } from "../../schema";
import type { App } from "../app";
import { readableLog } from "../audit/ledger";
import { batch, rowsOf } from "../lib/batch";
import { sha256Hex } from "../lib/crypto";
import { ledgerFor } from "../lib/db";
import { logUnavailableResponse, ProblemError } from "../lib/problem";
import { authenticatedRoute } from "../lib/route";
import { cursorKey, openCursor, signCursor } from "../lib/signed-cursor";
import { toRfc3339, toRfc3339OrNull } from "../lib/time";
import { everyShard, type LogConfig } from "../log/client";
import type { InquiryRow } from "../log/shard";
import { callerPlatform, guard } from "../middleware/auth";
import { AmountSchema, DateTime, idOf, int, subjectList, text } from "../schemas/common";
import { CATEGORIES, CONFIRMATIONS, MAX_STATUS_REASON } from "../schemas/reports";
import { INQUIRY_PURPOSES, type InquiryPurpose, logLookups } from "../services/scores";
import { pepperSubjects } from "../services/subjects";

/** Items of each list per page: `limit` defaults to this. */
export const DEFAULT_ACCESS_PAGE = 100;
/** The most items of each list one page may carry, so no answer grows to megabytes. */
export const MAX_ACCESS_PAGE = 500;
/**
 * How long after a request's first page its cursors are accepted: a buyer's request is served in
 * one sitting. Every page logs its look-up under the first page (shown to the buyer at that
 * page's time), so a cursor kept for later would be a re-read of the file the buyer never sees.
 */
export const ACCESS_CURSOR_LIFETIME_MS = 15 * 60_000;

const AccessSchema = z
  .object({
    records: z
      .array(
        z.object({
          ref: idOf("rpt"),
          status: z.enum(reportStatuses),
          platformName: z.string().max(200).openapi({ description: "Who furnished the record" }),
          category: z.enum(CATEGORIES),
          confirmation: z.enum(CONFIRMATIONS),
          incidentAt: DateTime,
          confirmedAt: DateTime,
          reportedAt: DateTime,
          amount: AmountSchema,
          subjectNotifiedAt: DateTime.nullable(),
          statusReason: text(MAX_STATUS_REASON).nullable(),
          statement: text(1000).nullable(),
        }),
      )
      .max(MAX_ACCESS_PAGE),
    inquiries: z
      .array(
        z.object({
          at: DateTime.openapi({ description: "When the look-up (its first page) was made" }),
          purpose: z.enum(INQUIRY_PURPOSES),
          platformName: z.string().max(200),
        }),
      )
      .max(MAX_ACCESS_PAGE),
    nextCursor: z
      .string()
      .max(4096)
      .nullable()
      .openapi({
        description: `Send it back (with the same subjects and requestRef) for the next page of both lists, within ${ACCESS_CURSOR_LIFETIME_MS / 60_000} minutes of the request's first page; null on the last page`,
      }),
  })
  .openapi("SubjectAccess");

const route = authenticatedRoute({
  method: "post",
  path: "/v1/subject-access",
  operationId: "requestSubjectAccess",
  tags: ["Disputes"],
  summary: "Everything held about a buyer, and who looked them up",
  description:
    "Every record about these subjects, whatever its status, with the furnishing platform's name and the buyer's statement; and every look-up (time, purpose, platform), newest first, a page of each list at a time. For the buyer's platform to show the buyer, under its own `requestRef`. The request is itself a look-up (purpose `subject_access`, shown in the buyer's next answer; the pages of one request show as one), counts in usage and is audited.",
  middleware: [guard("subject.access", "disputes:write")] as const,
  request: {
    body: {
      required: true,
      content: {
        "application/json": {
          schema: z
            .object({
              requestRef: z
                .string()
                .regex(/^[A-Za-z0-9._:-]{1,128}$/, "must be 1–128 characters of A–Z a–z 0–9 . _ : -")
                .openapi({ description: "The platform's own ticket for the buyer's request; audited" }),
              subjects: subjectList(8),
              cursor: z.string().min(1).max(4096).optional(),
              limit: int(1, MAX_ACCESS_PAGE).default(DEFAULT_ACCESS_PAGE),
            })
            .strict()
            .openapi("SubjectAccessQuery"),
        },
      },
    },
  },
  responses: {
    200: { description: "The buyer's file", content: { "application/json": { schema: AccessSchema } } },
    ...logUnavailableResponse,
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

/** Where one list stands: the last item shown, or null once the list is exhausted. */
type Position = [number, string] | null;

/**
 * What a subject-access cursor carries, signed (lib/signed-cursor): the buyer request's first
 * page id (continuation pages log their look-up under it, so the buyer sees one inquiry per
 * request) and that page's time (the cursor's issue time, carried unchanged to every later
 * cursor, so the whole walk ends `ACCESS_CURSOR_LIFETIME_MS` after it), the next page number, a
 * digest binding it to the caller, `requestRef` and subjects, and where each list stands.
 * Version 1 cursors had no issue time and are refused as not issued.
 */
const CursorPayload = z.object({
  v: z.literal(2),
  q: z.string(),
  t: z.number().int(),
  n: z.number().int().min(2),
  b: z.string(),
  r: z.tuple([z.number(), z.string()]).nullable(),
  i: z.tuple([z.number(), z.string()]).nullable(),
});
type CursorPayload = z.infer<typeof CursorPayload>;

function badCursor(message: string): ProblemError {
  return new ProblemError("validation", `The cursor ${message}.`, { errors: [{ path: "cursor", message }] });
}

/** Binds a cursor to the caller, the buyer request and the (order-free) set of subject keys. */
async function bindingOf(platformId: string, requestRef: string, keys: readonly string[]): Promise<string> {
  return (await sha256Hex(JSON.stringify([platformId, requestRef, [...keys].sort()]))).slice(0, 32);
}

/** Keyset condition: after `pos` in descending (time, id) order; nothing at all once exhausted. */
function after(pos: Position | undefined, time: SQL, id: SQL): SQL {
  if (pos === undefined) {
    return sql``;
  }
  if (pos === null) {
    return sql`AND 0`;
  }
  return sql`AND (${time} < ${pos[0]} OR (${time} = ${pos[0]} AND ${id} < ${pos[1]}))`;
}

/**
 * The look-ups of these subject keys from every log shard, one per request, newest first by
 * (first time, request id), after `pos`; merged and cut to `limit`.
 */
async function lookUps(config: LogConfig, keys: string[], pos: Position | undefined, limit: number) {
  if (pos === null) {
    return [];
  }
  const before = pos === undefined ? null : { at: pos[0], requestId: pos[1] };
  const perShard = await everyShard(
    config,
    (stub) => stub.inquiries(keys, before, limit) as unknown as Promise<InquiryRow[]>,
  );
  return perShard
    .flat()
    .sort((a, b) => b.at - a.at || (a.requestId < b.requestId ? 1 : a.requestId > b.requestId ? -1 : 0))
    .slice(0, limit);
}

export function registerSubjectAccess(app: App) {
  app.openapi(route, async (c) => {
    const { subjects, requestRef, cursor, limit } = c.req.valid("json");
    const { config, now, requestId } = c.var;
    const platformId = callerPlatform(c);
    const keys = [...new Set((await pepperSubjects(config.LEDGER_PEPPER, subjects)).map((s) => s.key))];
    const keysJson = JSON.stringify(keys);
    const binding = await bindingOf(platformId, requestRef, keys);
    const signingKey = await cursorKey(config.LEDGER_PEPPER, "subject-access");

    // A continuation page (undefined position: first page, list not started yet).
    let from: { q: string; t: number; n: number; r: Position | undefined; i: Position | undefined } = {
      q: requestId,
      t: now,
      n: 1,
      r: undefined,
      i: undefined,
    };
    if (cursor !== undefined) {
      const parsed = CursorPayload.safeParse(await openCursor(signingKey, cursor));
      if (!parsed.success) {
        throw badCursor("is not one this API issued");
      }
      if (parsed.data.b !== binding) {
        throw badCursor("was issued for other subjects, another requestRef or another platform");
      }
      if (now - parsed.data.t > ACCESS_CURSOR_LIFETIME_MS) {
        throw badCursor(
          `has expired: a request's pages are served within ${ACCESS_CURSOR_LIFETIME_MS / 60_000} minutes of its first page; start again without a cursor`,
        );
      }
      from = parsed.data;
    }

    // The reads: the records (the ledger database, one batch) and the look-ups (every log shard).
    const [[records, platforms], inquiryRows] = await Promise.all([
      batch(ledgerFor(c.var.db, keys), [
        sql`SELECT DISTINCT r.id, r.status, p.name AS platform_name, r.category, r.confirmation, r.incident_at,
              r.confirmed_at, r.created_at, r.amount_value, r.amount_currency, r.subject_notified_at,
              r.status_reason, r.statement
            FROM report_subjects rs JOIN reports r ON r.id = rs.report_id JOIN platforms p ON p.id = r.platform_id
            WHERE rs.subject_key IN (SELECT value FROM json_each(${keysJson}))
              ${after(from.r, sql`r.incident_at`, sql`r.id`)}
            ORDER BY r.incident_at DESC, r.id DESC LIMIT ${limit + 1}`,
        sql`SELECT id, name FROM platforms`,
      ]),
      readableLog(c.var.db, config).then((log) => lookUps(log, keys, from.i, limit + 1)),
    ]);
    // Then this look-up is logged, before anything is answered: it shows from the buyer's next
    // request on, never in its own pages, and all pages of one request are one inquiry.
    await logLookups(c.var.scope, {
      purpose: "subject_access",
      buyers: [{ target: requestRef, keys }],
      usage: { subjectAccess: 1 },
      inquiryRequestId: from.q,
      details: { requestRef, page: from.n, accessRequestId: from.q },
      cap: true,
    });

    const recordRows = rowsOf<RecordRow>(records);
    const names = new Map(rowsOf<{ id: string; name: string }>(platforms).map((p) => [p.id, p.name]));
    const recordPage = recordRows.slice(0, limit);
    const inquiryPage = inquiryRows.slice(0, limit);
    const lastRecord = recordPage[recordPage.length - 1];
    const lastInquiry = inquiryPage[inquiryPage.length - 1];
    const next: CursorPayload = {
      v: 2,
      q: from.q,
      t: from.t,
      n: from.n + 1,
      b: binding,
      r: recordRows.length > limit && lastRecord ? [lastRecord.incident_at, lastRecord.id] : null,
      i: inquiryRows.length > limit && lastInquiry ? [lastInquiry.at, lastInquiry.requestId] : null,
    };
    const nextCursor = next.r || next.i ? await signCursor(signingKey, next) : null;

    return c.json(
      {
        records: recordPage.map((r) => ({
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
        inquiries: inquiryPage.map((i) => ({
          at: toRfc3339(i.at),
          purpose: i.purpose as InquiryPurpose,
          platformName: names.get(i.platformId) ?? i.platformId,
        })),
        nextCursor,
      },
      200,
    );
  });
}
