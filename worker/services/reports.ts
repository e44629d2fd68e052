import { type SQL, sql } from "drizzle-orm";
import type { ReportStatus } from "../../schema";
import { rowsOf } from "../lib/batch";
import { canonicalJson, sha256Hex } from "../lib/crypto";
import { newId } from "../lib/ids";
import { type FieldError, ProblemError } from "../lib/problem";
import { DAY_MS, toRfc3339, toRfc3339OrNull } from "../lib/time";
import {
  type AfterLookupBand,
  type Category,
  type Confirmation,
  type Evidence,
  type Report,
  type ReportBody,
  STRONG_CONFIRMATIONS,
} from "../schemas/reports";
import { DEFAULT_MODEL } from "../scoring/model";
import type { AfterLookupFlag } from "./after-lookup";
import { AUDIT_INSERT } from "./audit";
import { fingerprintWriteStatements, uncountFingerprintsSql } from "./fingerprints";
import { type KeyedSubject, pepperSubjects } from "./subjects";
import { utcDay } from "./usage";

/**
 * A record closed through due process blocks its reporter from filing an incident this close to
 * it about the same subject again: the scoring model's burst window, within which one platform's
 * records are one incident.
 */
export const REFILING_WINDOW_DAYS = DEFAULT_MODEL.burstWindowDays;
const REFILING_WINDOW_MS = REFILING_WINDOW_DAYS * DAY_MS;

/** How far ahead of the ledger's clock a platform's timestamps may run. */
export const CLOCK_SKEW_MS = 60_000;

/** A validated report body, peppered and hashed, ready to be written. */
export interface PreparedReport {
  id: string;
  caseId: string;
  category: Category;
  confirmation: Confirmation;
  /** Only present when given, so the content hash of a report without one is what it always was. */
  confirmationRef?: string;
  incidentAt: number;
  confirmedAt: number;
  amountValue: number;
  amountCurrency: string;
  evidence: Evidence[];
  note: string | null;
  subjectNotifiedAt: number | null;
  subjects: KeyedSubject[];
  /** Where each of `subjects` (sorted by key) stands in the request body, for error paths. */
  subjectPositions: number[];
  contentHash: string;
  /**
   * Set by `flagAfterLookups` (worker/services/after-lookup.ts) when the report follows its
   * reporter's own look-up that answered `review` or worse; written with the report, never part of
   * its content (a replay is decided on the content alone and leaves a held report's flag as it is).
   */
  afterLookup?: AfterLookupFlag | null;
}

/** The time rules of CONTRACT §4 that depend on the clock and the retention period. */
export function checkReportTimes(body: ReportBody, now: number, retentionDays: number): FieldError[] {
  const errors: FieldError[] = [];
  const incidentAt = Date.parse(body.incidentAt);
  const confirmedAt = Date.parse(body.confirmedAt);
  const oldest = now - retentionDays * DAY_MS;
  if (incidentAt > confirmedAt) {
    errors.push({ path: "incidentAt", message: "must not be after confirmedAt" });
  }
  if (confirmedAt > now + CLOCK_SKEW_MS) {
    errors.push({ path: "confirmedAt", message: "must not be in the future" });
  }
  if (incidentAt < oldest) {
    errors.push({
      path: "incidentAt",
      message: `must be within the retention period (${retentionDays} days)`,
    });
  }
  if (confirmedAt < oldest) {
    errors.push({
      path: "confirmedAt",
      message: `must be within the retention period (${retentionDays} days)`,
    });
  }
  if (body.confirmationRef && !STRONG_CONFIRMATIONS.includes(body.confirmation)) {
    errors.push({
      path: "confirmationRef",
      message: "only a police_report or court_ruling confirmation carries a reference",
    });
  }
  if (body.subjectNotifiedAt && Date.parse(body.subjectNotifiedAt) > now + CLOCK_SKEW_MS) {
    errors.push({ path: "subjectNotifiedAt", message: "must not be in the future" });
  }
  return errors;
}

/** Peppers the subjects and computes the canonical content hash that decides replay vs conflict. */
export async function prepareReport(body: ReportBody, pepper: string): Promise<PreparedReport> {
  const keyed = (await pepperSubjects(pepper, body.subjects)).map((subject, position) => ({
    subject,
    position,
  }));
  keyed.sort((a, b) => (a.subject.key < b.subject.key ? -1 : 1));
  const subjects = keyed.map((k) => k.subject);
  const content = {
    caseId: body.caseId,
    category: body.category,
    confirmation: body.confirmation,
    ...(body.confirmationRef ? { confirmationRef: body.confirmationRef } : {}),
    incidentAt: Date.parse(body.incidentAt),
    confirmedAt: Date.parse(body.confirmedAt),
    amountValue: body.amount.value,
    amountCurrency: body.amount.currency,
    evidence: body.evidence,
    note: body.note ?? null,
    subjectNotifiedAt: body.subjectNotifiedAt ? Date.parse(body.subjectNotifiedAt) : null,
    subjects,
  };
  return {
    id: newId("rpt"),
    ...content,
    subjectPositions: keyed.map((k) => k.position),
    contentHash: await sha256Hex(canonicalJson(content)),
  };
}

/** Columns of a report as the API returns it, subjects folded in as JSON. */
export const REPORT_COLUMNS = sql.raw(`r.id, r.case_id, r.platform_id, r.status, r.category, r.confirmation,
  r.incident_at, r.confirmed_at, r.amount_value, r.amount_currency, r.evidence, r.note,
  r.subject_notified_at, r.status_reason, r.statement, r.dispute_id, r.created_at, r.updated_at,
  r.confirmation_ref, r.confirmation_verified_at, r.after_lookup_at, r.after_lookup_band,
  r.after_lookup_cleared_at,
  (SELECT json_group_array(json_object('type', s.subject_type, 'key', s.subject_key))
     FROM report_subjects s WHERE s.report_id = r.id) AS subjects`);

export interface ReportRow {
  id: string;
  case_id: string;
  platform_id: string;
  status: ReportStatus;
  category: Category;
  confirmation: Confirmation;
  incident_at: number;
  confirmed_at: number;
  amount_value: number;
  amount_currency: string;
  evidence: string;
  note: string | null;
  subject_notified_at: number | null;
  status_reason: string | null;
  statement: string | null;
  dispute_id: string | null;
  created_at: number;
  updated_at: number;
  confirmation_ref: string | null;
  confirmation_verified_at: number | null;
  after_lookup_at: number | null;
  after_lookup_band: string | null;
  after_lookup_cleared_at: number | null;
  subjects: string;
}

export function toReport(row: ReportRow): Report {
  return {
    id: row.id,
    caseId: row.case_id,
    platformId: row.platform_id,
    status: row.status,
    subjects: (JSON.parse(row.subjects) as Report["subjects"]).sort((a, b) => (a.key < b.key ? -1 : 1)),
    category: row.category,
    incidentAt: toRfc3339(row.incident_at),
    confirmedAt: toRfc3339(row.confirmed_at),
    confirmation: row.confirmation,
    confirmationRef: row.confirmation_ref,
    confirmationVerifiedAt: toRfc3339OrNull(row.confirmation_verified_at),
    amount: { value: row.amount_value, currency: row.amount_currency },
    evidence: JSON.parse(row.evidence) as Report["evidence"],
    note: row.note,
    subjectNotifiedAt: toRfc3339OrNull(row.subject_notified_at),
    statusReason: row.status_reason,
    statement: row.statement,
    disputeId: row.dispute_id,
    afterLookup:
      row.after_lookup_at === null
        ? null
        : {
            lookedUpAt: toRfc3339(row.after_lookup_at),
            band: row.after_lookup_band as AfterLookupBand,
            clearedAt: toRfc3339OrNull(row.after_lookup_cleared_at),
          },
    createdAt: toRfc3339(row.created_at),
    updatedAt: toRfc3339(row.updated_at),
  };
}

export type WriteOutcome = "created" | "replayed" | "conflict" | "refused";

/**
 * Which new items of a write are refused, and why, as a CTE (`refused (item, subject, reason)`):
 * - `over_cap`: per key, the platform's counted links (up to the cap: at most `cap` index entries
 *   read, however many the key has) plus the earlier new items of the same request naming it
 *   reach the cap;
 * - `dispute_pending`: the platform has a record about the key under an undecided dispute (the
 *   buyer contests it: the reporter answers the dispute before it reports the buyer again, so a
 *   copy cannot restore what the dispute took away);
 * - `refiling`: the platform's record of an incident about the key within the burst window of
 *   this one was closed through due process (withdrawn or voided under a dispute, or voided by an
 *   admin); re-filing it would shed the buyer's statement and undo the decision.
 * Items whose case id the platform already holds are replays or conflicts, never refused here.
 * Evaluated before the insert, in the write's own batch, so racing writes cannot slip past it.
 */
function refusedCte(platformId: string, cap: number, json: string): SQL {
  return sql`WITH fresh AS (
      SELECT j.key AS item, j.value AS v FROM json_each(${json}) j
      WHERE NOT EXISTS (SELECT 1 FROM reports r
        WHERE r.platform_id = ${platformId} AND r.case_id = j.value ->> 'caseId')),
    named AS (
      SELECT fresh.item, s.key AS subject, s.value ->> 'key' AS subject_key,
        fresh.v ->> 'incidentAt' AS incident_at,
        row_number() OVER (PARTITION BY s.value ->> 'key' ORDER BY fresh.item) - 1 AS earlier
      FROM fresh CROSS JOIN json_each(fresh.v -> 'subjects') s),
    held AS MATERIALIZED (
      SELECT named_keys.subject_key, (SELECT count(*) FROM (SELECT 1 FROM report_subjects rs
          WHERE rs.subject_key = named_keys.subject_key AND rs.platform_id = ${platformId}
            AND rs.counted = 1
          LIMIT ${cap})) AS n,
        EXISTS (SELECT 1 FROM report_subjects rs CROSS JOIN reports d ON d.id = rs.report_id
          WHERE rs.subject_key = named_keys.subject_key AND rs.platform_id = ${platformId}
            AND rs.counted = 1 AND d.status = 'disputed') AS disputed
      FROM (SELECT DISTINCT subject_key FROM named) named_keys),
    reasons AS (
      SELECT named.item, named.subject,
        CASE WHEN held.disputed THEN 'dispute_pending'
             WHEN EXISTS (SELECT 1 FROM report_subjects rs
               WHERE rs.subject_key = named.subject_key AND rs.platform_id = ${platformId}
                 AND rs.blocks_refiling = 1
                 AND rs.incident_at BETWEEN named.incident_at - ${REFILING_WINDOW_MS}
                   AND named.incident_at + ${REFILING_WINDOW_MS}) THEN 'refiling'
             WHEN held.n + named.earlier >= ${cap} THEN 'over_cap' END AS reason
      FROM named CROSS JOIN held ON held.subject_key = named.subject_key),
    refused AS (
      SELECT item, min(subject) AS subject, min(reason) AS reason FROM reasons
      WHERE reason IS NOT NULL GROUP BY item)`;
}

/**
 * The statements that write reports set-based, for any number of items (one for a single
 * POST, up to 500 for bulk), to run in one `db.batch`: find the items over the per-subject cap,
 * insert the other new reports (a case id already held by this platform is left alone), link
 * their subjects, write one audit entry per item, read back what each item now maps to, and
 * count the usage, and index the reports' image fingerprints. Eight statements whatever the count, each with a handful of bound parameters
 * (the items travel as one JSON parameter), so D1's 100-parameter limit never bites and the
 * whole write is one round trip and one transaction. Read the results with `writeResults`.
 */
export function reportWriteStatements(
  ctx: { platformId: string; actor: string; action: string; requestId: string; now: number; cap: number },
  items: readonly PreparedReport[],
  /** Each item's index in the request (bulk skips rejected items), for its audit entry. */
  itemIndexes?: readonly number[],
) {
  const json = JSON.stringify(
    items.map(({ afterLookup, ...r }, i) => ({
      ...r,
      keys: r.subjects.map((s) => s.key),
      item: itemIndexes?.[i] ?? i,
      afterLookupAt: afterLookup?.at ?? null,
      afterLookupBand: afterLookup?.band ?? null,
    })),
  );
  const refused = refusedCte(ctx.platformId, ctx.cap, json);
  // json_each stays outermost (LEFT JOIN): one (platform_id, case_id) index probe per item,
  // never a walk over the platform's reports; an item left unwritten (over the cap) has no row.
  const matched: SQL = sql`FROM json_each(${json}) j
    LEFT JOIN reports r ON r.platform_id = ${ctx.platformId} AND r.case_id = j.value ->> 'caseId'`;
  const outcome: SQL = sql`CASE WHEN r.id IS NULL THEN 'refused' WHEN r.id = j.value ->> 'id' THEN 'created'
             WHEN r.content_hash = j.value ->> 'contentHash' THEN 'replayed' ELSE 'conflict' END`;
  return {
    refused: sql`${refused} SELECT item, subject, reason FROM refused ORDER BY item`,
    reports: sql`${refused}
      INSERT INTO reports (id, platform_id, case_id, status, category, confirmation, incident_at,
        confirmed_at, amount_value, amount_currency, evidence, note, subject_notified_at, content_hash,
        status_reason, confirmation_ref, after_lookup_at, after_lookup_band, created_at, updated_at)
      SELECT j.value ->> 'id', ${ctx.platformId}, j.value ->> 'caseId', 'active', j.value ->> 'category',
        j.value ->> 'confirmation', j.value ->> 'incidentAt', j.value ->> 'confirmedAt',
        j.value ->> 'amountValue', j.value ->> 'amountCurrency', j.value -> 'evidence', j.value ->> 'note',
        j.value ->> 'subjectNotifiedAt', j.value ->> 'contentHash', NULL, j.value ->> 'confirmationRef',
        j.value ->> 'afterLookupAt', j.value ->> 'afterLookupBand', ${ctx.now}, ${ctx.now}
      FROM json_each(${json}) j WHERE j.key NOT IN (SELECT item FROM refused)
      ON CONFLICT (platform_id, case_id) DO NOTHING`,
    // The report's platform and incident time are copied onto its links (counted from the start):
    // the score read and the cap walk the partial index on them.
    links: sql`INSERT INTO report_subjects (subject_key, report_id, subject_type, platform_id, incident_at, counted)
      SELECT s.value ->> 'key', r.id, s.value ->> 'type', r.platform_id, r.incident_at, 1
      FROM json_each(${json}) j
      CROSS JOIN reports r ON r.id = j.value ->> 'id'
      CROSS JOIN json_each(j.value -> 'subjects') s`,
    // Refused items have no report row. Evaluated again after the insert, the refusals stay the
    // same: the insert only adds links, and every reason is monotone in them.
    audit: sql`${refused} ${AUDIT_INSERT}
      SELECT ${ctx.now}, ${ctx.actor}, ${ctx.action}, r.id, ${ctx.requestId},
        CASE WHEN r.id IS NULL THEN 'invalid' ELSE ${outcome} END,
        json_patch(json_object('caseId', j.value ->> 'caseId', 'item', j.value ->> 'item', 'subjectKeys', j.value -> 'keys',
          'error', CASE WHEN r.id IS NULL THEN (SELECT x.reason FROM refused x WHERE x.item = j.key) END,
          'cap', CASE WHEN r.id IS NULL THEN ${ctx.cap} END),
          -- A report created flagged says so in its entry: the look-up it follows, and its answer.
          CASE WHEN r.id = j.value ->> 'id' AND r.after_lookup_at IS NOT NULL
            THEN json_object('afterLookup', json_object('at', r.after_lookup_at, 'band', r.after_lookup_band))
            ELSE '{}' END)
      ${matched} ORDER BY j.key`,
    readBack: sql`SELECT j.key AS item, ${outcome} AS outcome, ${REPORT_COLUMNS}
      ${matched} ORDER BY j.key`,
    usage: sql`INSERT INTO usage_daily (day, platform_id, queries, subjects, reports)
      SELECT ${utcDay(ctx.now)}, ${ctx.platformId}, 0, 0, count(*)
      FROM json_each(${json}) j CROSS JOIN reports r ON r.id = j.value ->> 'id'
      WHERE true
      ON CONFLICT (day, platform_id) DO UPDATE SET reports = reports + excluded.reports`,
    // Last, so the results above keep their places: the new reports' fingerprints, indexed.
    fingerprints: fingerprintWriteStatements(json),
  };
}

export type RefusalReason = "over_cap" | "dispute_pending" | "refiling";

/** What one item of a write came to: its report, or why it was refused and for which subject. */
export type WriteResult =
  | { item: number; outcome: "created" | "replayed" | "conflict"; row: ReportRow }
  | { item: number; outcome: "refused"; reason: RefusalReason; subject: number };

/** The per-item results of `reportWriteStatements`, from the named results of its batch. */
export function writeResults(results: { refused: D1Result; readBack: D1Result }): WriteResult[] {
  const refused = new Map(
    rowsOf<{ item: number; subject: number; reason: RefusalReason }>(results.refused).map(
      (r) => [r.item, r] as const,
    ),
  );
  return rowsOf<ReportRow & { item: number; outcome: WriteOutcome }>(results.readBack).map(
    ({ item, outcome, ...row }): WriteResult => {
      if (outcome !== "refused") {
        return { item, outcome, row };
      }
      const why = refused.get(item);
      return { item, outcome, reason: why?.reason ?? "over_cap", subject: why?.subject ?? 0 };
    },
  );
}

/**
 * The problem of a refused item: 422 over the per-subject cap, 409 when due process stands in the
 * way. Names the subject by its place and type in the request, never by its key.
 */
export function refusalProblem(
  report: PreparedReport,
  refusal: { reason: RefusalReason; subject: number },
  cap: number,
): ProblemError {
  const type = report.subjects[refusal.subject]?.type ?? "subject";
  const path = `subjects.${report.subjectPositions[refusal.subject] ?? 0}.hash`;
  switch (refusal.reason) {
    case "over_cap":
      return new ProblemError(
        "validation",
        `This platform already holds ${cap} active or disputed reports about this ${type}, the most one platform may hold about one subject; retract one to report another.`,
        {
          errors: [
            {
              path,
              message: `at most ${cap} active or disputed reports per ${type} and platform (MAX_ACTIVE_REPORTS_PER_SUBJECT)`,
            },
          ],
        },
      );
    case "dispute_pending":
      return new ProblemError(
        "conflict",
        `The buyer disputes a record of this platform about this ${type}: answer the dispute (GET /v1/disputes?role=reporter) before reporting the buyer again.`,
      );
    case "refiling":
      return new ProblemError(
        "conflict",
        `This platform's record of an incident within ${REFILING_WINDOW_DAYS} days of this one about this ${type} was withdrawn or voided through due process; it cannot be filed again.`,
      );
  }
}

/**
 * Stops a report's subject links counting, and its fingerprints matching, once the report has
 * left `active`/`disputed`; put them in the same batch as the status change, after it. It reads the status back, so it is a no-op
 * when the change did not happen or the report stayed open (a dispute upheld). `dueProcess`: the
 * report was closed by a dispute's outcome or an admin's void, so its reporter may not re-file the
 * incident (`refusedCte`).
 */
export function uncountLinksSql(reportId: string, options: { dueProcess: boolean }): SQL[] {
  return [
    sql`UPDATE report_subjects SET counted = 0, blocks_refiling = ${options.dueProcess ? 1 : 0}
    WHERE report_id = ${reportId} AND counted = 1
      AND (SELECT r.status FROM reports r WHERE r.id = ${reportId}) NOT IN ('active', 'disputed')`,
    ...uncountFingerprintsSql(sql`${reportId}`),
  ];
}
