import { sql } from "drizzle-orm";
import type { Context } from "hono";
import type { ReportStatus } from "../../schema";
import type { AppEnv } from "../app";
import type { Config } from "../env";
import { batch, rowsOf } from "../lib/batch";
import { canonicalJson } from "../lib/crypto";
import { ledgerFor } from "../lib/db";
import { toRfc3339 } from "../lib/time";
import type { Subject } from "../schemas/common";
import type { Category, Confirmation } from "../schemas/reports";
import {
  DEFAULT_MODEL,
  type Evaluation,
  evaluate,
  MODEL_VERSION,
  type ScoreModel,
  type ScoreRecord,
} from "../scoring/model";
import { auditInsertMany } from "./audit";
import { pepperSubjects } from "./subjects";
import { usageUpsert, utcDay } from "./usage";

/** Why a platform may score a buyer: the purposes a score query accepts. */
export const PURPOSES = ["refund_review", "account_review", "dispute_handling"] as const;
export type Purpose = (typeof PURPOSES)[number];

/**
 * Every purpose the inquiry log records: the score purposes, and `subject_access` (a buyer's own
 * request for their file, which is a look-up too). Score queries never accept `subject_access`.
 */
export const INQUIRY_PURPOSES = [...PURPOSES, "subject_access"] as const;
export type InquiryPurpose = (typeof INQUIRY_PURPOSES)[number];

export interface ScoreQuery {
  ref?: string;
  subjects: Subject[];
}

export type ScoreAnswer = Omit<Evaluation, "evidence"> & { model: string; evaluatedAt: string };

interface MatchRow {
  subject_key: string;
  id: string;
  platform_id: string;
  category: Category;
  confirmation: Confirmation;
  incident_at: number;
  created_at: number;
  amount_value: number;
  amount_currency: string;
  status: ReportStatus;
  dispute_deadline_at: number | null;
  statement: string | null;
}

let configured: { config: Config; model: ScoreModel; version: string } | undefined;

/** The model with this deployment's configuration applied, built once per isolate. */
function modelOf(config: Config): { model: ScoreModel; version: string } {
  if (configured?.config !== config) {
    configured = { config, ...configureModel(config) };
  }
  return configured;
}

/**
 * Applies RETENTION_DAYS, SCORE_BANDS and SCORE_FX_RATES. Any value that differs from the
 * documented defaults is fingerprinted into the version (`pixiu-score/1+c3f9a1b2`), so an
 * answer always says exactly which model produced it.
 */
export function configureModel(config: Pick<Config, "RETENTION_DAYS" | "SCORE_BANDS" | "SCORE_FX_RATES">) {
  const overrides: Partial<ScoreModel> = {};
  if (config.RETENTION_DAYS !== DEFAULT_MODEL.retentionDays) {
    overrides.retentionDays = config.RETENTION_DAYS;
  }
  if (config.SCORE_BANDS) {
    const [medium, high, critical] = config.SCORE_BANDS;
    const bands = { medium, high, critical };
    if (canonicalJson(bands) !== canonicalJson(DEFAULT_MODEL.bands)) {
      overrides.bands = bands;
    }
  }
  if (config.SCORE_FX_RATES) {
    const fxToCny = { ...DEFAULT_MODEL.fxToCny, ...config.SCORE_FX_RATES };
    if (canonicalJson(fxToCny) !== canonicalJson(DEFAULT_MODEL.fxToCny)) {
      overrides.fxToCny = fxToCny;
    }
  }
  const model = { ...DEFAULT_MODEL, ...overrides };
  const fingerprint = canonicalJson(overrides);
  const version = fingerprint === "{}" ? MODEL_VERSION : `${MODEL_VERSION}+${fnv1a(fingerprint)}`;
  return { model, version };
}

/** FNV-1a, 32 bits, hex: a short stable fingerprint (not a security hash). */
function fnv1a(text: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0).toString(16).padStart(8, "0");
}

/**
 * The hot read: every counted record linked to any of the keys (a JSON array, one bound
 * parameter). It walks the (subject_key, report_id) index per key and the reports primary key
 * per match, so rows read follow the buyers' own records. CROSS JOIN fixes that join order:
 * without table statistics SQLite's planner otherwise prefers walking every active report
 * through the status index (measured: rows read grew with the table). The unary `+` keeps the
 * status test off the (status, id) index, so each match is one primary-key probe rather than
 * two status-index probes (measured: rows read 2 × matches + 2 × keys instead of about 5 ×
 * matches). The benchmark and the query-plan test run this very statement.
 */
export function scoreReadSql(keysJson: string) {
  return sql`SELECT rs.subject_key, r.id, r.platform_id, r.category, r.confirmation, r.incident_at,
      r.created_at, r.amount_value, r.amount_currency, r.status, r.dispute_deadline_at, r.statement
    FROM json_each(${keysJson}) k
      CROSS JOIN report_subjects rs ON rs.subject_key = k.value
      CROSS JOIN reports r ON r.id = rs.report_id
    WHERE +r.status IN ('active', 'disputed')`;
}

/**
 * Scores one or many buyers in one D1 round trip: a single batch that reads every matching
 * record (walking the subject-key index, so rows read follow the buyers' own records, never
 * the table size), logs the inquiry per subject key, and writes one audit entry per query.
 * Subject keys travel as one JSON parameter, so a batch of 100 buyers × 8 subjects stays
 * within D1's 100-bound-parameter limit.
 */
export async function scoreBuyers(
  c: Context<AppEnv>,
  purpose: Purpose,
  queries: readonly ScoreQuery[],
): Promise<ScoreAnswer[]> {
  const { config, principal, now, requestId } = c.var;
  if (principal.kind !== "platform") {
    throw new Error("score queries are made by platforms");
  }
  const keyed = await Promise.all(queries.map((q) => pepperSubjects(config.LEDGER_PEPPER, q.subjects)));
  const keys = [...new Set(keyed.flatMap((subjects) => subjects.map((s) => s.key)))];
  const keysJson = JSON.stringify(keys);
  // The log rows share the read's batch, so they live with the records (see ledgerFor).
  const [found] = await batch(ledgerFor(c.var.db, keys), [
    scoreReadSql(keysJson),
    sql`INSERT INTO inquiries (subject_key, platform_id, purpose, at, request_id)
      SELECT value, ${principal.platformId}, ${purpose}, ${now}, ${requestId} FROM json_each(${keysJson})`,
    usageUpsert({
      day: utcDay(now),
      platformId: principal.platformId,
      queries: queries.length,
      subjects: keys.length,
    }),
    auditInsertMany(
      { requestId, now },
      keyed.map((subjects, i) => ({
        actor: principal.actor,
        action: c.var.action,
        target: queries[i]?.ref ?? null,
        outcome: "ok",
        details: { purpose, subjectKeys: subjects.map((s) => s.key) },
      })),
    ),
  ]);
  c.set("audited", true);
  const matches = rowsOf<MatchRow>(found);

  const byKey = new Map<string, MatchRow[]>();
  for (const row of matches) {
    const list = byKey.get(row.subject_key) ?? [];
    list.push(row);
    byKey.set(row.subject_key, list);
  }
  const { model, version } = modelOf(config);
  const evaluatedAt = toRfc3339(now);
  return keyed.map((subjects) => {
    const records = new Map<string, ScoreRecord>();
    for (const s of subjects) {
      for (const row of byKey.get(s.key) ?? []) {
        records.set(row.id, {
          ref: row.id,
          platformId: row.platform_id,
          category: row.category,
          confirmation: row.confirmation,
          incidentAt: row.incident_at,
          createdAt: row.created_at,
          amountValue: row.amount_value,
          amountCurrency: row.amount_currency,
          status: row.status,
          disputeDeadlineAt: row.dispute_deadline_at,
          statement: row.statement,
        });
      }
    }
    const { evidence: _evidence, ...answer } = evaluate([...records.values()], now, model);
    return { ...answer, model: version, evaluatedAt };
  });
}
