import { all } from "../lib/batch";
import { ledgerFor } from "../lib/db";
import { ProblemError } from "../lib/problem";
import type { RequestScope } from "../lib/scope";
import { DAY_MS } from "../lib/time";
import { LogUnavailable, readOwnLookups } from "../log/client";
import type { OwnLookup } from "../log/shard";
import { type Band, evaluate, type ScoreModel, type ScoreRecord } from "../scoring/model";
import type { PreparedReport } from "./reports";
import { capPerPlatform, LOG_RETRY_AFTER_SECONDS, modelOf, type PastRow, pastScoreReadSql } from "./scores";

/**
 * The after-look-up check (docs/scoring.md §3c): a report filed within `AFTER_LOOKUP_WINDOW_DAYS`
 * after its reporter's own look-up of one of its subject keys answered `review` or worse is
 * flagged, with that look-up's time and band.
 *
 * The inquiry log records who looked up which key and when, not what the ledger answered (the
 * look-up is logged in parallel with the read, before the answer exists), so the answer is
 * reconstructed: the buyer as that look-up named it (every subject key of the query), the
 * records on those keys as they stood at its time T (created by T; counting at T: still counting,
 * or closed after T; disputed, verified and flagged as they were at T), scored by the model at T
 * with today's trust table. Photos the look-up sent are not reconstructed (their matches could
 * only have raised the answer).
 */

/** The newest look-ups per subject key the check reconstructs; older ones in the window are not read. */
export const AFTER_LOOKUP_PER_KEY = 20;

/** A look-up that answered one of these is a look-up the report must not follow. */
const FLAGGED_BANDS: ReadonlySet<Band> = new Set<Band>(["medium", "high", "critical"]);
const BAND_RANK: Record<Band, number> = { none: 0, low: 1, medium: 2, high: 3, critical: 4 };
const OPEN: ReadonlySet<string> = new Set(["active", "disputed"]);

export interface AfterLookupFlag {
  /** When the reporter's look-up was made. */
  at: number;
  /** What it answered (reconstructed): `medium`, `high` or `critical`. */
  band: Band;
}

/**
 * The reports with their after-look-up flags set: one call to the reporter's log shard for every
 * subject key of every item, then, only if it made look-ups of them within the window, one read
 * of the records those look-ups saw. Per item, the latest of the reporter's look-ups of any of its
 * keys whose reconstructed answer was `medium` or worse (the highest band on a tie), or none.
 *
 * If the log store cannot answer, nothing is decided and nothing is written: 503 with
 * Retry-After, as for a look-up that cannot be logged.
 */
export async function flagAfterLookups(
  scope: RequestScope,
  items: readonly PreparedReport[],
): Promise<PreparedReport[]> {
  const { config, now, principal } = scope;
  if (items.length === 0 || principal.kind !== "platform") {
    return [...items];
  }
  const keys = [...new Set(items.flatMap((item) => item.subjects.map((s) => s.key)))];
  let lookups: OwnLookup[];
  try {
    lookups = await readOwnLookups(config, {
      platformId: principal.platformId,
      actor: principal.actor,
      keys,
      since: now - config.AFTER_LOOKUP_WINDOW_DAYS * DAY_MS,
      until: now,
      perKey: AFTER_LOOKUP_PER_KEY,
    });
  } catch (err) {
    if (!(err instanceof LogUnavailable)) {
      throw err;
    }
    console.error(JSON.stringify({ level: "error", requestId: scope.requestId, error: err.message }));
    throw new ProblemError(
      "unavailable",
      "The inquiry log could not be read to check whether this report follows the platform's own look-up of the buyer (docs/scoring.md §3c), so nothing was written. Retry shortly.",
      { headers: { "retry-after": String(LOG_RETRY_AFTER_SECONDS) } },
    );
  }
  if (lookups.length === 0) {
    return [...items];
  }
  const bands = await answersAt(scope, lookups, principal.platformId);
  return items.map((item) => {
    const own = new Set(item.subjects.map((s) => s.key));
    let flag: AfterLookupFlag | null = null;
    for (const [i, lookup] of lookups.entries()) {
      const band = bands[i] as Band;
      if (!FLAGGED_BANDS.has(band) || !lookup.keys.some((k) => own.has(k))) {
        continue;
      }
      if (!flag || lookup.at > flag.at || (lookup.at === flag.at && BAND_RANK[band] > BAND_RANK[flag.band])) {
        flag = { at: lookup.at, band };
      }
    }
    return { ...item, afterLookup: flag };
  });
}

/** The band each look-up answered, reconstructed from one read of the records on their keys. */
async function answersAt(
  scope: RequestScope,
  lookups: readonly OwnLookup[],
  reporter: string,
): Promise<Band[]> {
  const { config } = scope;
  const keys = [...new Set(lookups.flatMap((l) => l.keys))];
  let since = Number.POSITIVE_INFINITY;
  let until = Number.NEGATIVE_INFINITY;
  for (const l of lookups) {
    since = Math.min(since, l.at);
    until = Math.max(until, l.at);
  }
  const cap = config.MAX_ACTIVE_REPORTS_PER_SUBJECT;
  const rows = await all<PastRow>(
    ledgerFor(scope.db, keys),
    pastScoreReadSql(JSON.stringify(keys), cap + 1, since, until),
  );
  const { model } = modelOf(config);
  return lookups.map((l) => bandAt(rows, l, cap, model, reporter));
}

/**
 * What the look-up answered from OTHER platforms' evidence: the model at its time over the other
 * members' records as they stood then. The reporter's own records are left out: they cannot
 * echo back as another platform's word, and a repeat forger caught again by the same platform
 * (its `review` coming from that platform's own earlier case) must not be flagged.
 */
export function bandAt(
  rows: readonly PastRow[],
  lookup: OwnLookup,
  cap: number,
  model: ScoreModel,
  reporter: string,
): Band {
  const keys = new Set(lookup.keys);
  const t = lookup.at;
  const then = rows.filter(
    (r) =>
      r.platform_id !== reporter &&
      keys.has(r.subject_key) &&
      r.created_at <= t &&
      (OPEN.has(r.status) || r.updated_at > t),
  );
  // As the score read at T would have taken them: the newest `cap` per (key, platform).
  const { kept, cappedKeys } = capPerPlatform(then, cap);
  const records = new Map<string, ScoreRecord>();
  for (const row of kept) {
    records.set(row.id, recordAt(row, t));
  }
  return evaluate([...records.values()], t, model, cappedKeys.size > 0 ? { cappedAt: cap } : undefined).band;
}

/**
 * A record as it stood at `t`: under dispute if one of its disputes was opened by then and not
 * yet decided (an escalated dispute counts as open since it was first opened: its first decision
 * is not kept), verified if verified by then, flagged if its flag was not yet cleared.
 */
function recordAt(r: PastRow, t: number): ScoreRecord {
  const disputes = r.disputes === null ? [] : (JSON.parse(r.disputes) as [number, number | null, number][]);
  const open = disputes.find(([opened, decided]) => opened <= t && (decided === null || decided > t));
  return {
    ref: r.id,
    platformId: r.platform_id,
    category: r.category,
    confirmation: r.confirmation,
    incidentAt: r.incident_at,
    createdAt: r.created_at,
    amountValue: r.amount_value,
    amountCurrency: r.amount_currency,
    status: open ? "disputed" : "active",
    disputeDeadlineAt: open ? open[2] : null,
    verified: r.confirmation_verified_at !== null && r.confirmation_verified_at <= t,
    trust: r.trust,
    group: r.group_id,
    afterLookup:
      r.after_lookup_at !== null && (r.after_lookup_cleared_at === null || r.after_lookup_cleared_at > t),
  };
}
