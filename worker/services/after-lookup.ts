import { all } from "../lib/batch";
import { ledgerFor } from "../lib/db";
import { ProblemError } from "../lib/problem";
import type { RequestScope } from "../lib/scope";
import { DAY_MS } from "../lib/time";
import { LogUnavailable, readLatestLookupsIn, readOwnLookups } from "../log/client";
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

/**
 * The newest look-ups per subject key the first shard call returns; when a key has more, the
 * intervals that answered `medium` or worse before them are asked about in one more call.
 */
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
 * The first call reads at most the newest `AFTER_LOOKUP_PER_KEY` look-ups per key. When a key had
 * more, the answer still does not depend on how many: between two instants at which a buyer's
 * records change (`changeInstants`) the answer only decays, so the window is cut into intervals,
 * each scored at its end, and one more call asks the shard for the platform's latest look-up of
 * the report's keys inside each interval that answered `medium` or worse and that the first call
 * may not have covered (`missedRanges`).
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
  const windowStart = now - config.AFTER_LOOKUP_WINDOW_DAYS * DAY_MS;
  const { lookups, completeAfter } = await fromLog(scope, () =>
    readOwnLookups(config, {
      platformId: principal.platformId,
      actor: principal.actor,
      keys,
      since: windowStart,
      until: now,
      perKey: AFTER_LOOKUP_PER_KEY,
    }),
  );
  if (lookups.length === 0) {
    return [...items];
  }
  const cap = config.MAX_ACTIVE_REPORTS_PER_SUBJECT;
  const { model } = modelOf(config);
  const rows = await pastRows(scope, lookups, completeAfter === null ? null : windowStart);
  const reporter = principal.platformId;
  const answers: { at: number; band: Band; keys: readonly string[] }[] = [];
  for (const lookup of lookups) {
    const band = bandAt(rows, lookup, cap, model, reporter);
    if (FLAGGED_BANDS.has(band)) {
      answers.push({ at: lookup.at, band, keys: lookup.keys });
    }
  }
  if (completeAfter !== null) {
    const asks = missedRanges(rows, lookups, new Set(keys), windowStart, completeAfter, cap, model, reporter);
    if (asks.length > 0) {
      const found = await fromLog(scope, () =>
        readLatestLookupsIn(config, {
          platformId: reporter,
          actor: principal.actor,
          ranges: asks.map((a) => [a.key, a.from, a.to] as [string, number, number]),
        }),
      );
      for (const [i, at] of found.entries()) {
        const ask = asks[i];
        if (at === null || at === undefined || !ask) {
          continue;
        }
        const band = bandAt(rows, { at, keys: ask.buyer }, cap, model, reporter);
        if (FLAGGED_BANDS.has(band)) {
          answers.push({ at, band, keys: [ask.key] });
        }
      }
    }
  }
  return items.map((item) => {
    const own = new Set(item.subjects.map((s) => s.key));
    let flag: AfterLookupFlag | null = null;
    for (const { at, band, keys: named } of answers) {
      if (!named.some((k) => own.has(k))) {
        continue;
      }
      if (!flag || at > flag.at || (at === flag.at && BAND_RANK[band] > BAND_RANK[flag.band])) {
        flag = { at, band };
      }
    }
    return { ...item, afterLookup: flag };
  });
}

/** A call to the log store; if it cannot answer, 503 with Retry-After (nothing was written). */
async function fromLog<T>(scope: RequestScope, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
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
}

/**
 * One read of the records on the look-ups' keys as they stood from `since` (the earliest look-up
 * when null) through the latest look-up.
 */
async function pastRows(
  scope: RequestScope,
  lookups: readonly OwnLookup[],
  since: number | null,
): Promise<PastRow[]> {
  const keys = [...new Set(lookups.flatMap((l) => l.keys))];
  let from = Number.POSITIVE_INFINITY;
  let until = Number.NEGATIVE_INFINITY;
  for (const l of lookups) {
    from = Math.min(from, l.at);
    until = Math.max(until, l.at);
  }
  const cap = scope.config.MAX_ACTIVE_REPORTS_PER_SUBJECT;
  return all<PastRow>(
    ledgerFor(scope.db, keys),
    pastScoreReadSql(JSON.stringify(keys), cap + 1, Math.min(from, since ?? from), until),
  );
}

/**
 * The instants in (`from`, `to`] at which `bandAt` over these rows can change other than by
 * decay: a record created, closed, out of retention (the ms after), a dispute opened, decided or
 * past its deadline, a record verified, a flag cleared. In between, the records and their states
 * are fixed and every weight only decays, so the band at an interval's last ms is its lowest.
 */
export function changeInstants(
  rows: readonly PastRow[],
  from: number,
  to: number,
  model: ScoreModel,
): number[] {
  const out = new Set<number>();
  const add = (t: number | null | undefined) => {
    if (t !== null && t !== undefined && t > from && t <= to) {
      out.add(t);
    }
  };
  for (const r of rows) {
    add(r.created_at);
    if (!OPEN.has(r.status)) {
      add(r.updated_at);
    }
    add(r.incident_at + model.retentionDays * DAY_MS + 1);
    add(r.confirmation_verified_at);
    add(r.after_lookup_cleared_at);
    if (r.disputes !== null) {
      for (const [opened, decided, deadline] of JSON.parse(r.disputes) as [number, number | null, number][]) {
        add(opened);
        add(decided);
        add(deadline);
      }
    }
  }
  return [...out].sort((a, b) => a - b);
}

/**
 * The (key, from, to) ranges to ask the shard about: for each buyer as the first call's look-ups
 * named it, the intervals of [`since`, `completeAfter`] (between its records' change instants)
 * whose answer at their last ms was `medium` or worse, adjacent ones merged, once per report key
 * the buyer has. Their number follows the buyer's records, not the look-ups made.
 */
export function missedRanges(
  rows: readonly PastRow[],
  lookups: readonly OwnLookup[],
  reportKeys: ReadonlySet<string>,
  since: number,
  completeAfter: number,
  cap: number,
  model: ScoreModel,
  reporter: string,
): { key: string; from: number; to: number; buyer: string[] }[] {
  const asks: { key: string; from: number; to: number; buyer: string[] }[] = [];
  const buyers = new Map<string, string[]>();
  for (const l of lookups) {
    buyers.set(l.keys.join(","), l.keys);
  }
  for (const buyer of buyers.values()) {
    const named = new Set(buyer);
    const asked = buyer.filter((k) => reportKeys.has(k));
    const theirs = rows.filter((r) => r.platform_id !== reporter && named.has(r.subject_key));
    if (asked.length === 0 || theirs.length === 0) {
      continue;
    }
    const starts = [since, ...changeInstants(theirs, since, completeAfter, model)];
    const ranges: [number, number][] = [];
    for (const [i, from] of starts.entries()) {
      const to = i + 1 < starts.length ? (starts[i + 1] as number) - 1 : completeAfter;
      if (!FLAGGED_BANDS.has(bandAt(theirs, { at: to, keys: buyer }, cap, model, reporter))) {
        continue;
      }
      const last = ranges[ranges.length - 1];
      if (last && last[1] === from - 1) {
        last[1] = to;
      } else {
        ranges.push([from, to]);
      }
    }
    for (const [from, to] of ranges) {
      for (const key of asked) {
        asks.push({ key, from, to, buyer });
      }
    }
  }
  return asks;
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
