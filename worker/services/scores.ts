import { type SQL, sql } from "drizzle-orm";
import type { ReportStatus } from "../../schema";
import type { Config } from "../env";
import { all } from "../lib/batch";
import { canonicalJson } from "../lib/crypto";
import { ledgerFor } from "../lib/db";
import { ProblemError } from "../lib/problem";
import type { RequestScope } from "../lib/scope";
import { DAY_MS, toRfc3339 } from "../lib/time";
import { PHOTO_KEY_PREFIX } from "../log/chain";
import { appendLog, LogUnavailable } from "../log/client";
import type { AppendResult } from "../log/shard";
import type { Subject } from "../schemas/common";
import type { Category, Confirmation } from "../schemas/reports";
import {
  DEFAULT_MODEL,
  type Evaluation,
  evaluate,
  MODEL_VERSION,
  type PhotoMatchInput,
  type ScoreModel,
  type ScoreRecord,
} from "../scoring/model";
import { TRUST } from "../scoring/trust";
import {
  candidateCtes,
  chunksOf,
  nearestDistance,
  type PhotoHashes,
  photoVariants,
  probePairsJson,
} from "./fingerprints";
import { pepperSubjects } from "./subjects";
import { utcDay } from "./usage";

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
  /** The claim's photos; the answer carries `photos` whenever this is given (even empty). */
  evidence?: PhotoHashes[];
}

export type ScoreAnswer = Omit<Evaluation, "evidence"> & { model: string; evaluatedAt: string };

export interface MatchRow {
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
  confirmation_verified_at: number | null;
  /** The reporting platform's trust from `platform_trust` (probation trust when it has no row). */
  trust: number;
  /** The reporting platform's collusion group from `platform_groups`, or null. */
  group_id: string | null;
  /** 1 when the report is flagged after its reporter's own look-up and not cleared. */
  after_lookup: number;
}

/** A confirmed fingerprint the photo probes found (unverified: the Worker checks the distance). */
export interface PhotoCandidateRow {
  hash: string;
  /** The report whose evidence it is. */
  id: string;
  platform_id: string;
  category: Category;
  incident_at: number;
  dispute_deadline_at: number | null;
  trust: number;
  group_id: string | null;
  after_lookup: number;
}

/** A row of the read with photos: a buyer's record or a photo candidate, tagged. */
export type TaggedReadRow = ({ kind: "record" } & MatchRow) | ({ kind: "photo" } & PhotoCandidateRow);

let configured: { config: Config; model: ScoreModel; version: string } | undefined;

/** The model with this deployment's configuration applied, built once per isolate. */
export function modelOf(config: Config): { model: ScoreModel; version: string } {
  if (configured?.config !== config) {
    configured = { config, ...configureModel(config) };
  }
  return configured;
}

/**
 * Applies RETENTION_DAYS, SCORE_BANDS, SCORE_FX_RATES and MAX_MATCH_DISTANCE. Any value that
 * differs from the documented defaults is fingerprinted into the version
 * (`pixiu-score/2+c3f9a1b2`), so an answer always says exactly which model produced it.
 */
export function configureModel(
  config: Pick<Config, "RETENTION_DAYS" | "SCORE_BANDS" | "SCORE_FX_RATES" | "MAX_MATCH_DISTANCE">,
) {
  const overrides: Partial<ScoreModel> = {};
  if (config.RETENTION_DAYS !== DEFAULT_MODEL.retentionDays) {
    overrides.retentionDays = config.RETENTION_DAYS;
  }
  if (config.MAX_MATCH_DISTANCE !== DEFAULT_MODEL.photoMaxDistance) {
    overrides.photoMaxDistance = config.MAX_MATCH_DISTANCE;
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
 * The hot read, bounded per buyer: for each key (a JSON array, one bound parameter), for each
 * platform holding counted links about it, the `perPlatform` most recent counted links (by
 * incident time, report id breaking ties), each joined to its report. Rows read follow
 * min(links, perPlatform) per (key, platform), never the table size nor how many records one
 * member piled on one buyer.
 *
 * - `platforms` is a recursive walk of the partial index `report_subjects_counted` that hops
 *   from one platform to the next with a `min(platform_id) … > previous` seek (a loose index
 *   scan SQLite does not do by itself): one index probe per platform, however many links each
 *   holds, and no read of a closed report's links.
 * - Per (key, platform), the IN list reads the newest links off the same index, in index order,
 *   and stops at the LIMIT; each becomes one primary-key probe of `reports`.
 * - CROSS JOIN keeps `platforms` outermost: without table statistics SQLite's planner otherwise
 *   prefers walking reports. The unary `+` keeps the status test off any status index.
 *
 * Measured on the local D1: about 3 rows read per record returned (index entry, IN-list entry,
 * report) plus a few per key and per platform. One statement: the benchmark and the query-plan
 * tests run this very SQL. A query with photos runs it with the photo probes beside it
 * (`scoreWithPhotosReadSql`).
 *
 * @example scoreReadSql(JSON.stringify(keys), config.MAX_ACTIVE_REPORTS_PER_SUBJECT + 1)
 */
export function scoreReadSql(keysJson: string, perPlatform: number) {
  return sql`WITH RECURSIVE ${platformsCte(keysJson)}
    SELECT ${RECORD_COLUMNS}
    ${recordsFrom(perPlatform)}`;
}

/**
 * The read of a query with photos, still ONE statement on the ledger: the buyers' records
 * exactly as `scoreReadSql` reads them, and beside them (UNION ALL, rows tagged by `kind`) the
 * photo candidates exactly as `matchReadSql` finds them (worker/services/fingerprints.ts), each
 * joined by primary key to its report for the dispute deadline (a photo of a case whose dispute
 * is past its deadline does not count, as the case itself does not). Rows read are the sum of
 * the two reads' plus about one per candidate: the buyer's own records and the photos' probes,
 * never the table size. `chunksJson` comes from `probePairsJson` over every photo of the request.
 */
export function scoreWithPhotosReadSql(keysJson: string, perPlatform: number, chunksJson: string) {
  return sql`WITH RECURSIVE ${platformsCte(keysJson)},
    ${candidateCtes(chunksJson)}
    SELECT 'record' AS kind, NULL AS hash, ${RECORD_COLUMNS}
    ${recordsFrom(perPlatform)}
    UNION ALL
    SELECT 'photo', f.hash, NULL, f.report_id, f.platform_id, f.category, NULL, f.incident_at, NULL, NULL,
      NULL, r.status, r.dispute_deadline_at, NULL, NULL, ${trustOfPlatform(sql`f.platform_id`)},
      ${groupOfPlatform(sql`f.platform_id`)}, ${AFTER_LOOKUP}
    FROM candidates
      CROSS JOIN fingerprints f ON f.id = candidates.id
      CROSS JOIN reports r ON r.id = f.report_id
    WHERE f.counted = 1`;
}

/**
 * The records a past look-up may have seen (the after-look-up check, docs/scoring.md §3c): for
 * the keys (a JSON array, one bound parameter), the records created by `until` (the latest
 * look-up) that still count, read exactly as `scoreReadSql` reads them (the newest `perPlatform`
 * per (key, platform) through the counted index), and beside them (UNION ALL) the records closed
 * (retracted, voided, expired) after `since` (the earliest look-up), through the partial index
 * of closed links (`report_subjects_closed`). Each with what the Worker needs to put the record
 * back as it stood at a look-up's time (`recordAt` in worker/services/after-lookup.ts): when it
 * closed (`updated_at`: nothing changes a closed report), when its confirmation was verified, when
 * it was flagged and cleared, and its disputes' times (one index probe, only for a record that was
 * ever disputed); trust and collusion group as the score read takes them, today's.
 *
 * One statement; rows read follow the buyer's own records: what the score read reads, plus the
 * buyer's closed links and, per record ever disputed, its disputes.
 */
export function pastScoreReadSql(keysJson: string, perPlatform: number, since: number, until: number) {
  return sql`WITH RECURSIVE ${platformsCte(keysJson)}
    SELECT platforms.subject_key, ${PAST_COLUMNS}, platforms.trust, platforms.group_id
    ${recordsFrom(perPlatform)}
      AND r.created_at <= ${until}
    UNION ALL
    SELECT s.subject_key, ${PAST_COLUMNS}, ${trustOfPlatform(sql`r.platform_id`)},
      ${groupOfPlatform(sql`r.platform_id`)}
    FROM json_each(${keysJson}) k
      CROSS JOIN report_subjects s ON s.subject_key = k.value AND s.counted = 0
      CROSS JOIN reports r ON r.id = s.report_id
    WHERE r.updated_at > ${since} AND r.created_at <= ${until}
      AND +r.status NOT IN ('active', 'disputed')`;
}

const PAST_COLUMNS = sql`r.id, r.platform_id, r.category, r.confirmation, r.incident_at, r.created_at,
      r.amount_value, r.amount_currency, r.status, r.updated_at, r.confirmation_verified_at,
      r.after_lookup_at, r.after_lookup_cleared_at,
      CASE WHEN r.dispute_id IS NULL THEN NULL ELSE (
        SELECT json_group_array(json_array(d.opened_at, d.decided_at, d.deadline_at))
        FROM disputes d WHERE d.report_id = r.id) END AS disputes`;

/** A row of `pastScoreReadSql`: a record on one of the keys, with the times that date its state. */
export interface PastRow
  extends Pick<
    MatchRow,
    | "subject_key"
    | "id"
    | "platform_id"
    | "category"
    | "confirmation"
    | "incident_at"
    | "created_at"
    | "amount_value"
    | "amount_currency"
    | "status"
    | "confirmation_verified_at"
    | "trust"
    | "group_id"
  > {
  /** When it closed, for a closed record (nothing updates a report once closed). */
  updated_at: number;
  after_lookup_at: number | null;
  after_lookup_cleared_at: number | null;
  /** JSON `[[opened_at, decided_at, deadline_at], …]`, or null when never disputed. */
  disputes: string | null;
}

/** The platform walk of the score read: (subject key, platform) pairs with counted links. */
function platformsCte(keysJson: string) {
  return sql`platforms (subject_key, platform_id) AS (
      SELECT k.value, (SELECT min(s.platform_id) FROM report_subjects s
          WHERE s.subject_key = k.value AND s.counted = 1)
        FROM json_each(${keysJson}) k
      UNION ALL
      SELECT platforms.subject_key, (SELECT min(s.platform_id) FROM report_subjects s
          WHERE s.subject_key = platforms.subject_key AND s.counted = 1 AND s.platform_id > platforms.platform_id)
        FROM platforms WHERE platforms.platform_id IS NOT NULL),
    trusted (subject_key, platform_id, trust, group_id) AS MATERIALIZED (
      SELECT platforms.subject_key, platforms.platform_id, ${trustOfPlatform(sql`platforms.platform_id`)},
        ${groupOfPlatform(sql`platforms.platform_id`)}
      FROM platforms WHERE platforms.platform_id IS NOT NULL)`;
}

/**
 * The reporting platform's trust (docs/scoring.md §2a), by primary key probe of the small
 * `platform_trust` table inside the read's one statement: once per (key, platform) pair of the
 * walk (`trusted`, materialized so the probe is not repeated per record) and once per photo
 * candidate. A platform the job has not scored yet is on probation.
 */
function trustOfPlatform(platformId: SQL) {
  return sql`coalesce((SELECT t.trust FROM platform_trust t WHERE t.platform_id = ${platformId}), ${TRUST.probationTrust})`;
}

/**
 * The platform's collusion group (docs/scoring.md §3d), by primary key probe of the small
 * `platform_groups` table beside the trust probe; null for a platform in no group.
 */
function groupOfPlatform(platformId: SQL) {
  return sql`(SELECT g.group_id FROM platform_groups g WHERE g.platform_id = ${platformId})`;
}

/** Whether the report is flagged after its reporter's own look-up and not cleared (§3c): 1 or 0. */
const AFTER_LOOKUP = sql`(r.after_lookup_at IS NOT NULL AND r.after_lookup_cleared_at IS NULL)`;

const RECORD_COLUMNS = sql`platforms.subject_key, r.id, r.platform_id, r.category, r.confirmation, r.incident_at,
      r.created_at, r.amount_value, r.amount_currency, r.status, r.dispute_deadline_at, r.statement,
      r.confirmation_verified_at, platforms.trust, platforms.group_id, ${AFTER_LOOKUP} AS after_lookup`;

/** Per (key, platform) of the walk, its newest counted links' reports. */
function recordsFrom(perPlatform: number) {
  return sql`FROM trusted platforms
      CROSS JOIN reports r
    WHERE platforms.platform_id IS NOT NULL
      AND r.id IN (SELECT s.report_id FROM report_subjects s
        WHERE s.subject_key = platforms.subject_key AND s.platform_id = platforms.platform_id AND s.counted = 1
        ORDER BY s.incident_at DESC, s.report_id DESC LIMIT ${perPlatform})
      AND +r.status IN ('active', 'disputed')`;
}

/**
 * Keeps the `cap` most recent rows of each (subject key, platform) of a read that asked for one
 * more: whether any group had more tells whether records were left unread.
 */
export function capPerPlatform<
  R extends Pick<MatchRow, "subject_key" | "platform_id" | "incident_at" | "id">,
>(rows: readonly R[], cap: number): { kept: R[]; cappedKeys: Set<string> } {
  const groups = new Map<string, R[]>();
  for (const row of rows) {
    const group = `${row.subject_key} ${row.platform_id}`;
    const list = groups.get(group) ?? [];
    list.push(row);
    groups.set(group, list);
  }
  const kept: R[] = [];
  const cappedKeys = new Set<string>();
  for (const list of groups.values()) {
    if (list.length > cap) {
      list.sort((a, b) => b.incident_at - a.incident_at || (a.id < b.id ? 1 : -1));
      list.length = cap;
      cappedKeys.add(list[0]?.subject_key ?? "");
    }
    kept.push(...list);
  }
  return { kept, cappedKeys };
}

/** Seconds until the next UTC midnight, when the daily look-up cap starts afresh. */
function secondsToNextUtcDay(now: number): number {
  return Math.max(1, Math.ceil((DAY_MS - (now % DAY_MS)) / 1000));
}

/**
 * The daily cap's 429: its policy (in distinct subject keys, not requests, hence the `pixiu-qu`
 * parameter; draft-ietf-httpapi-ratelimit-headers-11 §3.1 allows vendor parameters), none left
 * until 00:00 UTC, and Retry-After saying the same.
 */
function lookupCapHeaders(limit: number, seconds: number): Record<string, string> {
  return {
    "retry-after": String(seconds),
    "ratelimit-policy": `"lookups";q=${limit};w=86400;pixiu-qu="subject-keys"`,
    ratelimit: `"lookups";r=0;t=${seconds}`,
  };
}

/** What a caller waits before retrying a look-up the log store could not commit. */
export const LOG_RETRY_AFTER_SECONDS = 2;

/**
 * Logs one request's look-ups in the log store and resolves once they are durably committed: the
 * audit entries (one per buyer), an inquiry row per subject key, the usage counts, and the daily
 * cap on distinct subject keys. Refused past the cap (429); 503 when the log cannot be written.
 * No answer about a buyer leaves before its look-up is logged.
 */
export async function logLookups(
  scope: RequestScope,
  look: {
    purpose: string;
    /**
     * The entries, one per buyer: target (a batch `ref`), the buyer's subject keys and, for a
     * query with photos, more details of its own (the photos' hashes).
     */
    buyers: {
      target: string | null;
      keys: string[];
      /**
       * Every PDQ hash probed for this entry (each photo's own and its dihedral ones): logged as
       * erasable keys (`photo:<hash>`, committed in the chain, erased at retention), never in the
       * details, and counted against the daily look-up cap like subject keys.
       */
      photos?: string[];
      details?: Record<string, unknown>;
    }[];
    usage: { queries?: number; subjectAccess?: number };
    /** Whose inquiries: the request itself, or the first page of a multi-page request. */
    inquiryRequestId?: string;
    /** More for each entry's details, beside the purpose. */
    details?: Record<string, unknown>;
    cap: boolean;
  },
): Promise<void> {
  const { config, principal, now, requestId } = scope;
  if (principal.kind !== "platform") {
    throw new Error("look-ups are made by platforms");
  }
  const keys = [...new Set(look.buyers.flatMap((b) => b.keys))];
  const photoKeys = (b: { photos?: string[] }) =>
    [...new Set(b.photos ?? [])].map((h) => `${PHOTO_KEY_PREFIX}${h}`);
  const capped = [...new Set([...keys, ...look.buyers.flatMap(photoKeys)])];
  const day = utcDay(now);
  let result: AppendResult;
  try {
    result = await appendLog(config, principal.actor, {
      id: requestId,
      entries: look.buyers.map((b) => ({
        at: now,
        actor: principal.actor,
        action: scope.action,
        target: b.target,
        requestId,
        outcome: "ok",
        // `inquired`: this look-up wrote inquiry rows, which verify holds it to (worker/log/chain.ts).
        details: {
          purpose: look.purpose,
          ...look.details,
          ...b.details,
          ...(b.keys.length > 0 ? { inquired: true } : {}),
          // A later page of a paged request logs its inquiries under the first page's request.
          ...(look.inquiryRequestId && look.inquiryRequestId !== requestId
            ? { inquiryRequestId: look.inquiryRequestId }
            : {}),
        },
        subjectKeys: [...b.keys, ...photoKeys(b)],
      })),
      inquiries: keys.map((subjectKey) => ({
        subjectKey,
        platformId: principal.platformId,
        purpose: look.purpose,
        requestId: look.inquiryRequestId ?? requestId,
      })),
      usage: {
        platformId: principal.platformId,
        day,
        queries: look.usage.queries ?? 0,
        subjects: look.usage.queries ? keys.length : 0,
        subjectAccess: look.usage.subjectAccess ?? 0,
      },
      ...(look.cap
        ? {
            lookupCap: {
              platformId: principal.platformId,
              day,
              keys: capped,
              limit: config.LOOKUP_DAILY_CAP,
            },
          }
        : {}),
    });
  } catch (err) {
    if (!(err instanceof LogUnavailable)) {
      throw err;
    }
    console.error(JSON.stringify({ level: "error", requestId, error: err.message }));
    throw new ProblemError(
      "unavailable",
      "The look-up could not be logged, so it was not answered; nothing about the buyer left the ledger. Retry shortly.",
      { headers: { "retry-after": String(LOG_RETRY_AFTER_SECONDS) } },
    );
  }
  if (!result.ok) {
    throw new ProblemError(
      "rate_limited",
      `This platform has looked up ${result.used} distinct subjects today, the daily cap is ${result.limit} (LOOKUP_DAILY_CAP); the cap starts afresh at 00:00 UTC.`,
      { headers: lookupCapHeaders(result.limit, secondsToNextUtcDay(now)) },
    );
  }
  scope.markAudited();
}

/**
 * Scores one or many buyers. The ledger database sees exactly one statement, the read (through
 * the request's D1 session, so a read replica may serve it): the matching records, at most
 * MAX_ACTIVE_REPORTS_PER_SUBJECT per subject key and platform (one more, to know whether any were
 * left unread; see `scoreReadSql`), and, when queries carry photos, the confirmed fingerprints
 * near them in the same statement (`scoreWithPhotosReadSql`). In parallel, the look-ups are
 * logged in the log store (`logLookups`, each query's entry with its photos' hashes); the answer
 * leaves only once both are done, so no look-up is ever answered unlogged, and a look-up logged
 * but not answered (the read failed) errs on the safe side. Subject keys and photo probes travel
 * as one JSON parameter each, so a batch of 100 buyers × 8 subjects stays within D1's
 * 100-bound-parameter limit.
 */
export async function scoreBuyers(
  scope: RequestScope,
  purpose: Purpose,
  queries: readonly ScoreQuery[],
): Promise<ScoreAnswer[]> {
  const { config, now } = scope;
  const keyed = await Promise.all(queries.map((q) => pepperSubjects(config.LEDGER_PEPPER, q.subjects)));
  const keys = [...new Set(keyed.flatMap((subjects) => subjects.map((s) => s.key)))];
  const cap = config.MAX_ACTIVE_REPORTS_PER_SUBJECT;
  const keysJson = JSON.stringify(keys);
  // Each query's photos as chunks (undefined: the query sent no `evidence`).
  const variants = queries.map((q) => (q.evidence ? photoVariants(q.evidence) : undefined));
  const probed = variants.flatMap((v) => v ?? []);
  const [found] = await Promise.all([
    // One more than the cap, to know whether records were left unread (RECORDS_CAPPED).
    probed.length === 0
      ? all<MatchRow>(ledgerFor(scope.db, keys), scoreReadSql(keysJson, cap + 1)).then((rows) =>
          rows.map((row): TaggedReadRow => ({ kind: "record", ...row })),
        )
      : all<TaggedReadRow>(
          ledgerFor(scope.db, keys),
          scoreWithPhotosReadSql(keysJson, cap + 1, probePairsJson(probed)),
        ),
    logLookups(scope, {
      purpose,
      buyers: keyed.map((subjects, i) => {
        const evidence = queries[i]?.evidence;
        return {
          target: queries[i]?.ref ?? null,
          keys: subjects.map((s) => s.key),
          ...(evidence
            ? {
                photos: evidence.flatMap((p) => [p.pdq, ...(p.dihedral ?? [])]),
                details: {
                  photos: evidence.length,
                  dihedral: evidence.filter((p) => p.dihedral).length,
                },
              }
            : {}),
        };
      }),
      usage: { queries: queries.length },
      cap: true,
    }),
  ]);
  const recordRows: MatchRow[] = [];
  const candidates = new Map<string, { chunks: number[]; rows: PhotoCandidateRow[] }>();
  for (const row of found) {
    if (row.kind === "record") {
      recordRows.push(row);
    } else {
      const entry = candidates.get(row.hash) ?? { chunks: chunksOf(row.hash), rows: [] };
      entry.rows.push(row);
      candidates.set(row.hash, entry);
    }
  }
  const matches = capPerPlatform(recordRows, cap);

  const byKey = new Map<string, MatchRow[]>();
  for (const row of matches.kept) {
    const list = byKey.get(row.subject_key) ?? [];
    list.push(row);
    byKey.set(row.subject_key, list);
  }
  const { model, version } = modelOf(config);
  const evaluatedAt = toRfc3339(now);
  return keyed.map((subjects, i) => {
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
          verified: row.confirmation_verified_at !== null,
          trust: row.trust,
          group: row.group_id,
          afterLookup: row.after_lookup === 1,
        });
      }
    }
    const capped = subjects.some((s) => matches.cappedKeys.has(s.key)) ? { cappedAt: cap } : undefined;
    const photos = variants[i]?.map((hashes) => photoMatches(hashes, candidates, model.photoMaxDistance));
    const { evidence: _evidence, ...answer } = evaluate([...records.values()], now, model, capped, photos);
    return { ...answer, model: version, evaluatedAt };
  });
}

/** One photo's verified matches among the read's candidates: those within `maxDistance`. */
function photoMatches(
  hashes: readonly number[][],
  candidates: ReadonlyMap<string, { chunks: number[]; rows: PhotoCandidateRow[] }>,
  maxDistance: number,
): PhotoMatchInput[] {
  const out: PhotoMatchInput[] = [];
  for (const [hash, { chunks, rows }] of candidates) {
    const distance = nearestDistance(hashes, chunks);
    if (distance > maxDistance) {
      continue;
    }
    for (const row of rows) {
      out.push({
        hash,
        distance,
        ref: row.id,
        platformId: row.platform_id,
        category: row.category,
        incidentAt: row.incident_at,
        disputeDeadlineAt: row.dispute_deadline_at,
        trust: row.trust,
        group: row.group_id,
        afterLookup: row.after_lookup === 1,
      });
    }
  }
  return out;
}
