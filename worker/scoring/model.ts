import type { ReportStatus } from "../../schema";
import { DAY_MS, toRfc3339 } from "../lib/time";
import type { Category, Confirmation } from "../schemas/reports";

/**
 * pixiu-score/2: a pure function from records (with their platforms' trust), the claim's photo
 * matches and a clock to a score. Every constant is documented in docs/scoring.md; changing one
 * changes the model and bumps MODEL_VERSION. (1.1 added photo matches; 2 weighs unverified
 * police and court confirmations as forensics and each platform by its reporter trust.)
 */
export const MODEL_VERSION = "pixiu-score/2";

export type Band = "none" | "low" | "medium" | "high" | "critical";
export type Action = "allow" | "review" | "require_return";
export type AmountTier = "minor" | "relatively_large" | "huge" | "especially_huge" | "unknown_currency";

export interface ScoreRecord {
  ref: string;
  platformId: string;
  category: Category;
  confirmation: Confirmation;
  incidentAt: number;
  createdAt: number;
  amountValue: number;
  amountCurrency: string;
  status: ReportStatus;
  /** The open dispute's deadline, when the record is under open dispute. */
  disputeDeadlineAt?: number | null;
  /** The buyer's own statement from a dispute, shown with the record. */
  statement?: string | null;
  /**
   * A police or court confirmation a consortium admin verified. Unverified, it weighs as
   * `platform_forensics` and lifts no cap (docs/scoring.md §2). Ignored for other confirmations.
   */
  verified?: boolean;
  /**
   * The reporting platform's trust (docs/scoring.md §2a) from the trust table, in [0, 1]; 1 when
   * not given. Every record of one platform carries the same value (one read of one table).
   */
  trust?: number;
  /**
   * Filed within the feedback window after its reporter's own look-up of the buyer answered
   * `review` or worse, and not cleared by an admin (docs/scoring.md §3c): it counts as its
   * platform's own evidence, never towards the consensus of platforms.
   */
  afterLookup?: boolean;
  /**
   * The reporting platform's collusion group (docs/scoring.md §3d), null or absent when it is in
   * none: platforms of one group count as one in the consensus. Every record of a platform
   * carries the same value.
   */
  group?: string | null;
}

export interface ScoreModel {
  /** Records older than this (from the incident) never count. */
  retentionDays: number;
  /** A record's weight halves every this many days after the incident. */
  halfLifeDays: number;
  /** Records of one platform whose incidents fall in the same window count once. */
  burstWindowDays: number;
  /** Most evidence one platform can contribute… */
  platformCap: number;
  /** …unless one of its counted records is confirmed by police or a court. */
  strongPlatformCap: number;
  /** Each further distinct platform multiplies the evidence by 1 + this. */
  consensusStep: number;
  /** Evidence that maps to score 63 (1 − 1/e); sets how fast the score saturates. */
  scale: number;
  /** Weight of a record under open dispute (before its deadline). */
  disputedFactor: number;
  /** Lowest score of each band above `low`. */
  bands: { medium: number; high: number; critical: number };
  confirmationWeight: Record<Confirmation, number>;
  categoryWeight: Record<Category, number>;
  amountWeight: Record<AmountTier, number>;
  /** Amount tier thresholds in CNY (major units): the legal tiers for fraud. */
  tierThresholdsCny: { relativelyLarge: number; huge: number; especiallyHuge: number };
  /** CNY per one major unit of each currency; and minor-unit digits where not 2. */
  fxToCny: Record<string, number>;
  minorDigits: Record<string, number>;
  /** A record this recent earns the RECENT reason. */
  recentDays: number;
  /** Weight of one photo match, about the claim: the heaviest one per platform counts. */
  photoWeight: number;
  /** Largest PDQ distance (bits of 256) at which a confirmed fingerprint matches a photo. */
  photoMaxDistance: number;
}

export const DEFAULT_MODEL: ScoreModel = {
  retentionDays: 1826,
  halfLifeDays: 365,
  burstWindowDays: 7,
  platformCap: 1.5,
  strongPlatformCap: 3,
  consensusStep: 0.5,
  scale: 3,
  disputedFactor: 0.5,
  bands: { medium: 20, high: 50, critical: 75 },
  confirmationWeight: {
    manual_review: 0.6,
    merchant_evidence: 0.8,
    platform_forensics: 1,
    police_report: 1.4,
    court_ruling: 1.8,
  },
  categoryWeight: {
    ai_generated_image: 1,
    edited_image: 1,
    reused_image: 0.9,
    staged_damage: 0.9,
    other_forgery: 0.8,
  },
  amountWeight: { minor: 1, relatively_large: 1.25, huge: 1.5, especially_huge: 2, unknown_currency: 1 },
  tierThresholdsCny: { relativelyLarge: 3_000, huge: 30_000, especiallyHuge: 500_000 },
  fxToCny: {
    CNY: 1,
    HKD: 0.92,
    MOP: 0.89,
    TWD: 0.22,
    USD: 7.2,
    EUR: 7.8,
    GBP: 9.1,
    JPY: 0.047,
    KRW: 0.0052,
    SGD: 5.4,
    MYR: 1.6,
    THB: 0.21,
    VND: 0.00028,
    IDR: 0.00045,
    PHP: 0.125,
    AUD: 4.7,
    CAD: 5.2,
    RUB: 0.08,
  },
  minorDigits: { JPY: 0, KRW: 0, VND: 0, IDR: 0 },
  recentDays: 90,
  photoWeight: 0.75,
  photoMaxDistance: 31,
};

const STRONG: ReadonlySet<Confirmation> = new Set(["police_report", "court_ruling"]);

/** What an unverified police or court confirmation weighs as, until an admin verifies it. */
export const UNVERIFIED_STRONG_AS: Confirmation = "platform_forensics";

/** Whether the record is a police or court confirmation an admin verified: only those count as strong. */
export function isVerifiedStrong(r: Pick<ScoreRecord, "confirmation" | "verified">): boolean {
  return STRONG.has(r.confirmation) && r.verified === true;
}

/** The confirmation a record weighs as: an unverified police or court one as platform forensics. */
export function effectiveConfirmation(r: Pick<ScoreRecord, "confirmation" | "verified">): Confirmation {
  return STRONG.has(r.confirmation) && r.verified !== true ? UNVERIFIED_STRONG_AS : r.confirmation;
}
const NEVER_COUNTED: ReadonlySet<ReportStatus> = new Set(["retracted", "voided", "expired"]);

export interface Reason {
  code: string;
  detail: string;
}

export interface ScoredRecord {
  ref: string;
  category: Category;
  confirmation: Confirmation;
  incidentAt: string;
  amountTier: AmountTier;
  status: ReportStatus;
  /** Whether the record counts towards the score now. */
  counted: boolean;
  /** Under an open dispute (counted at reduced weight, or not at all once overdue). */
  disputed: boolean;
  /**
   * For a police or court confirmation, whether a consortium admin verified it (unverified, it
   * weighs as platform forensics); null for every other confirmation.
   */
  verified: boolean | null;
  /**
   * Filed right after its reporter's own look-up answered `review` or worse and not cleared by an
   * admin: it adds no consensus weight (docs/scoring.md §3c).
   */
  afterLookup: boolean;
  statement: string | null;
}

export interface Evaluation {
  score: number;
  band: Band;
  action: Action;
  reasons: Reason[];
  summary: {
    reports: number;
    platforms: number;
    disputed: number;
    firstReportedAt: string | null;
    lastReportedAt: string | null;
    amounts: { currency: string; value: number }[];
  };
  records: ScoredRecord[];
  /** Per photo of the claim, in request order, the matches that count; only when photos were given. */
  photos?: PhotoAnswer[];
  /** Total evidence before it is mapped to 0–100 (for tests and the docs, not the API). */
  evidence: number;
}

/**
 * A confirmed fingerprint near one of the claim's photos, as the ledger read it and the Worker
 * verified it. `hash` and `ref` are for grouping and deduplication only: never in the answer.
 */
export interface PhotoMatchInput {
  /** The stored PDQ hash. */
  hash: string;
  /** Bits of 256 that differ from the nearest of the photo's hashes (its dihedral variants). */
  distance: number;
  /** The report whose evidence it is. */
  ref: string;
  platformId: string;
  category: Category;
  incidentAt: number;
  /** The report's open dispute's deadline, when the report is under open dispute. */
  disputeDeadlineAt?: number | null;
  /** The confirming platform's trust, as on `ScoreRecord`; 1 when not given. */
  trust?: number;
  /** The confirming report is flagged `after_lookup`, as on `ScoreRecord`. */
  afterLookup?: boolean;
  /** The confirming platform's collusion group, as on `ScoreRecord`. */
  group?: string | null;
}

/** One confirmed fingerprint hash matching a photo, as the answer shows it (as `/v1/evidence/match` does). */
export interface PhotoMatch {
  distance: number;
  /** Distinct platforms that confirmed a case with this hash (among the matches that count). */
  platforms: number;
  categories: Category[];
  firstSeenAt: string;
  lastSeenAt: string;
}

export interface PhotoAnswer {
  /** The photo's position in the request's `evidence`, from 0. */
  index: number;
  matches: PhotoMatch[];
}

/** The amount in CNY major units, or null for a currency the rate table does not know. */
export function amountInCny(
  value: number,
  currency: string,
  model: ScoreModel = DEFAULT_MODEL,
): number | null {
  const rate = model.fxToCny[currency];
  if (rate === undefined) {
    return null;
  }
  return (value / 10 ** (model.minorDigits[currency] ?? 2)) * rate;
}

export function amountTier(value: number, currency: string, model: ScoreModel = DEFAULT_MODEL): AmountTier {
  const cny = amountInCny(value, currency, model);
  const t = model.tierThresholdsCny;
  if (cny === null) {
    return "unknown_currency";
  }
  if (cny >= t.especiallyHuge) {
    return "especially_huge";
  }
  if (cny >= t.huge) {
    return "huge";
  }
  return cny >= t.relativelyLarge ? "relatively_large" : "minor";
}

/** Recency factor: 1 at the incident, ½ after one half-life. Never above 1. */
export function decay(ageMs: number, model: ScoreModel = DEFAULT_MODEL): number {
  return 0.5 ** (Math.max(0, ageMs) / (model.halfLifeDays * DAY_MS));
}

/** One record's weight, before per-platform capping and consensus. */
export function recordWeight(r: ScoreRecord, now: number, model: ScoreModel = DEFAULT_MODEL): number {
  const disputed = r.disputeDeadlineAt !== null && r.disputeDeadlineAt !== undefined;
  return (
    model.confirmationWeight[effectiveConfirmation(r)] *
    model.categoryWeight[r.category] *
    model.amountWeight[amountTier(r.amountValue, r.amountCurrency, model)] *
    decay(now - r.incidentAt, model) *
    (disputed ? model.disputedFactor : 1)
  );
}

export function bandOf(score: number, counted: boolean, model: ScoreModel = DEFAULT_MODEL): Band {
  if (!counted) {
    return "none";
  }
  if (score >= model.bands.critical) {
    return "critical";
  }
  if (score >= model.bands.high) {
    return "high";
  }
  return score >= model.bands.medium ? "medium" : "low";
}

export function actionOf(band: Band): Action {
  switch (band) {
    case "none":
    case "low":
      return "allow";
    case "medium":
      return "review";
    case "high":
    case "critical":
      return "require_return";
  }
}

/** Evidence E (≥ 0) to a score in 0–100; any counted record scores at least 1. */
export function scoreOf(evidence: number, model: ScoreModel = DEFAULT_MODEL): number {
  if (evidence <= 0) {
    return 0;
  }
  return Math.min(100, Math.max(1, Math.round(100 * (1 - Math.exp(-evidence / model.scale)))));
}

/** What the ledger's read left out: set when some (subject key, platform) held more records. */
export interface ReadLimit {
  /** Records read per subject key and platform, the most recent first. */
  cappedAt: number;
}

/**
 * The photo matches that count, per photo (docs/scoring.md §3b): within the model's distance,
 * not evidence of one of the buyer's own records (those count as records, or, once they stop
 * counting, not at all), within retention and not under a dispute past its deadline. Each with
 * its weight: `photoWeight`, halved (`disputedFactor`) while its case is under open dispute. No
 * decay: the match is evidence about the claim in front of the platform now, however long ago
 * the photo was first confirmed forged.
 */
function countedPhotoMatches(
  photos: readonly (readonly PhotoMatchInput[])[],
  ownRefs: ReadonlySet<string>,
  now: number,
  model: ScoreModel,
): { match: PhotoMatchInput; weight: number }[][] {
  const oldest = now - model.retentionDays * DAY_MS;
  return photos.map((matches) => {
    const kept: { match: PhotoMatchInput; weight: number }[] = [];
    for (const m of matches) {
      const disputed = m.disputeDeadlineAt !== null && m.disputeDeadlineAt !== undefined;
      if (
        m.distance > model.photoMaxDistance ||
        ownRefs.has(m.ref) ||
        m.incidentAt < oldest ||
        (disputed && now >= (m.disputeDeadlineAt as number))
      ) {
        continue;
      }
      const weight = model.photoWeight * (disputed ? model.disputedFactor : 1);
      kept.push({ match: m, weight });
    }
    return kept;
  });
}

/** A photo's counted matches as the answer shows them: one entry per stored hash, nearest first. */
function photoAnswer(index: number, kept: readonly { match: PhotoMatchInput }[]): PhotoAnswer {
  const byHash = new Map<string, PhotoMatchInput[]>();
  for (const { match } of kept) {
    const list = byHash.get(match.hash) ?? [];
    list.push(match);
    byHash.set(match.hash, list);
  }
  const entries = [...byHash].map(([hash, list]) => {
    let first = Number.POSITIVE_INFINITY;
    let last = Number.NEGATIVE_INFINITY;
    let distance = Number.POSITIVE_INFINITY;
    for (const m of list) {
      first = Math.min(first, m.incidentAt);
      last = Math.max(last, m.incidentAt);
      distance = Math.min(distance, m.distance);
    }
    const match: PhotoMatch = {
      distance,
      platforms: new Set(list.map((m) => m.platformId)).size,
      categories: [...new Set(list.map((m) => m.category))].sort(),
      firstSeenAt: toRfc3339(first),
      lastSeenAt: toRfc3339(last),
    };
    return { hash, match };
  });
  // Nearest first, then the most platforms; the (never shown) hash makes the order total.
  entries.sort(
    (a, b) =>
      a.match.distance - b.match.distance ||
      b.match.platforms - a.match.platforms ||
      (a.hash < b.hash ? -1 : a.hash > b.hash ? 1 : 0),
  );
  return { index, matches: entries.map((e) => e.match) };
}

/**
 * Scores one buyer's records at time `now`, and, when the claim's photos are given, their
 * matches with confirmed fingerprints (`photos[i]`: the matches of the claim's photo i).
 * Deterministic: the same records (with their platforms' trust, groups and flags), photos and
 * `now` give the same answer, whatever the order of the records or of each photo's matches.
 * `read` says the records are the most recent `cappedAt` per subject key and platform of more
 * (reason RECORDS_CAPPED). Without `photos`, with every police or court confirmation verified,
 * every trust 1, no flagged record and no group, the answer is exactly pixiu-score/1's.
 */
export function evaluate(
  records: readonly ScoreRecord[],
  now: number,
  model: ScoreModel = DEFAULT_MODEL,
  read?: ReadLimit,
  photos?: readonly (readonly PhotoMatchInput[])[],
): Evaluation {
  const oldest = now - model.retentionDays * DAY_MS;
  const windowMs = model.burstWindowDays * DAY_MS;
  const shown: ScoredRecord[] = [];
  const counted: ScoreRecord[] = [];
  let disputedCount = 0;
  let overdue = 0;

  const sorted = [...records].sort((a, b) => b.incidentAt - a.incidentAt || (a.ref < b.ref ? -1 : 1));
  for (const r of sorted) {
    if (NEVER_COUNTED.has(r.status) || r.incidentAt < oldest) {
      continue;
    }
    const disputed = r.disputeDeadlineAt !== null && r.disputeDeadlineAt !== undefined;
    const isOverdue = disputed && now >= (r.disputeDeadlineAt as number);
    if (disputed) {
      disputedCount++;
    }
    if (isOverdue) {
      overdue++;
    } else {
      counted.push(r);
    }
    shown.push({
      ref: r.ref,
      category: r.category,
      confirmation: r.confirmation,
      incidentAt: toRfc3339(r.incidentAt),
      amountTier: amountTier(r.amountValue, r.amountCurrency, model),
      status: r.status,
      counted: !isOverdue,
      disputed,
      verified: STRONG.has(r.confirmation) ? r.verified === true : null,
      afterLookup: r.afterLookup === true,
      statement: r.statement ?? null,
    });
  }

  // Per platform: the heaviest record of each burst window, summed, then capped. Twice: over all
  // its counted records, and over those not flagged after a look-up (§3c), which alone may join
  // the consensus of platforms.
  interface PlatformEvidence {
    all: Map<number, number>;
    regular: Map<number, number>;
    strong: boolean;
    strongRegular: boolean;
    records: number;
  }
  const byPlatform = new Map<string, PlatformEvidence>();
  const groupOf = new Map<string, string>();
  for (const r of counted) {
    const p = byPlatform.get(r.platformId) ?? {
      all: new Map(),
      regular: new Map(),
      strong: false,
      strongRegular: false,
      records: 0,
    };
    const w = recordWeight(r, now, model);
    const bucket = Math.floor(r.incidentAt / windowMs);
    p.all.set(bucket, Math.max(p.all.get(bucket) ?? 0, w));
    p.strong ||= isVerifiedStrong(r);
    if (r.afterLookup !== true) {
      p.regular.set(bucket, Math.max(p.regular.get(bucket) ?? 0, w));
      p.strongRegular ||= isVerifiedStrong(r);
    }
    p.records++;
    byPlatform.set(r.platformId, p);
    if (r.group) {
      groupOf.set(r.platformId, r.group);
    }
  }

  // Per platform: its heaviest photo match, whichever photo it matched (§3b); and its heaviest
  // among the matches whose report is not flagged after a look-up.
  const photoMatches = photos
    ? countedPhotoMatches(photos, new Set(records.map((r) => r.ref)), now, model)
    : [];
  const photoByPlatform = new Map<string, { all: number; regular: number }>();
  for (const kept of photoMatches) {
    for (const { match, weight } of kept) {
      const p = photoByPlatform.get(match.platformId) ?? { all: 0, regular: 0 };
      p.all = Math.max(p.all, weight);
      if (match.afterLookup !== true) {
        p.regular = Math.max(p.regular, weight);
      }
      photoByPlatform.set(match.platformId, p);
      if (match.group) {
        groupOf.set(match.platformId, match.group);
      }
    }
  }

  // Per platform: its trust, the lowest any of its rows carries (they all carry the same one).
  const trustOf = new Map<string, number>();
  const noteTrust = (platformId: string, t: number | undefined) => {
    const v = Math.min(1, Math.max(0, t ?? 1));
    trustOf.set(platformId, Math.min(trustOf.get(platformId) ?? 1, v));
  };
  for (const r of counted) {
    noteTrust(r.platformId, r.trust);
  }
  for (const kept of photoMatches) {
    for (const { match } of kept) {
      noteTrust(match.platformId, match.trust);
    }
  }

  let capped = 0;
  let merged = 0;
  let distrusted = 0;
  // The strongest a platform alone can say, all its evidence counted (flagged or not): E is never
  // below it, so a flagged record never lowers a score, and never above what one platform may.
  let alone = 0;
  // Consensus units: a platform, or a collusion group counted once (§3d), each with its heaviest
  // member's unflagged evidence and its most trusted member's say, in order of first appearance.
  const units = new Map<string, { evidence: number; say: number; members: number }>();
  // The records' platforms in their order (as pixiu-score/1 summed them), then the platforms only
  // photos brought, sorted: the sum never depends on the order of the input.
  const photoOnly = [...photoByPlatform.keys()].filter((id) => !byPlatform.has(id)).sort();
  const contributing = [...byPlatform.keys(), ...photoOnly];
  for (const platformId of contributing) {
    const p = byPlatform.get(platformId);
    const photo = photoByPlatform.get(platformId);
    const trust = trustOf.get(platformId) ?? 1;
    let rawAll = photo?.all ?? 0;
    let rawRegular = photo?.regular ?? 0;
    if (p) {
      for (const w of p.all.values()) {
        rawAll += w;
      }
      for (const w of p.regular.values()) {
        rawRegular += w;
      }
      merged += p.records - p.all.size;
    }
    const capAll = p?.strong ? model.strongPlatformCap : model.platformCap;
    const capRegular = p?.strongRegular ? model.strongPlatformCap : model.platformCap;
    if (rawAll > capAll) {
      capped++;
    }
    if (trust < 1) {
      distrusted++;
    }
    alone = Math.max(alone, trust * Math.min(capAll, rawAll));
    if (rawRegular > 0) {
      const id = groupOf.get(platformId);
      const key = id === undefined ? `platform:${platformId}` : `group:${id}`;
      const unit = units.get(key) ?? { evidence: 0, say: 0, members: 0 };
      unit.evidence = Math.max(unit.evidence, trust * Math.min(capRegular, rawRegular));
      unit.say = Math.max(unit.say, trust);
      unit.members++;
      units.set(key, unit);
    }
  }
  let sum = 0;
  let say = 0;
  let linked = 0;
  for (const unit of units.values()) {
    sum += unit.evidence;
    say += unit.say;
    if (unit.members > 1) {
      linked += unit.members;
    }
  }
  const platforms = contributing.length;
  // Consensus counts platforms by their trust: a distrusted member barely multiplies the others.
  const consensus = units.size === 0 ? 0 : sum * (1 + model.consensusStep * Math.max(0, say - 1));
  const evidence = platforms === 0 ? 0 : Math.max(consensus, alone);
  const score = scoreOf(evidence, model);
  const band = bandOf(score, platforms > 0, model);

  // Loops, not Math.min(...xs): spreading a large array into a call overflows the stack.
  const amounts = new Map<string, number>();
  let firstCreated = Number.POSITIVE_INFINITY;
  let lastCreated = Number.NEGATIVE_INFINITY;
  for (const r of counted) {
    amounts.set(r.amountCurrency, (amounts.get(r.amountCurrency) ?? 0) + r.amountValue);
    firstCreated = Math.min(firstCreated, r.createdAt);
    lastCreated = Math.max(lastCreated, r.createdAt);
  }

  const answers = photos ? photoMatches.map((kept, index) => photoAnswer(index, kept)) : undefined;
  return {
    score,
    band,
    action: actionOf(band),
    reasons: reasonsFor({
      counted,
      platforms: byPlatform.size,
      capped,
      merged,
      disputedCount,
      overdue,
      now,
      model,
      read,
      photos: answers ?? [],
      photoPlatforms: new Set(photoMatches.flatMap((kept) => kept.map((k) => k.match.platformId))).size,
      distrusted,
      afterLookup: counted.filter((r) => r.afterLookup === true).length,
      linked,
    }),
    summary: {
      reports: counted.length,
      platforms: byPlatform.size,
      disputed: disputedCount,
      firstReportedAt: counted.length ? toRfc3339(firstCreated) : null,
      lastReportedAt: counted.length ? toRfc3339(lastCreated) : null,
      amounts:
        amounts.size === 0
          ? [{ currency: "CNY", value: 0 }]
          : [...amounts]
              .sort(([a], [b]) => (a < b ? -1 : 1))
              .map(([currency, value]) => ({ currency, value })),
    },
    records: shown,
    ...(answers ? { photos: answers } : {}),
    evidence,
  };
}

const TIER_ORDER: AmountTier[] = ["unknown_currency", "minor", "relatively_large", "huge", "especially_huge"];
const TIER_TEXT: Record<AmountTier, string> = {
  unknown_currency: "an unknown currency",
  minor: "below CNY 3,000",
  relatively_large: "CNY 3,000 or more (relatively large)",
  huge: "CNY 30,000 or more (huge)",
  especially_huge: "CNY 500,000 or more (especially huge)",
};

function reasonsFor(x: {
  counted: ScoreRecord[];
  platforms: number;
  capped: number;
  merged: number;
  disputedCount: number;
  overdue: number;
  now: number;
  model: ScoreModel;
  read: ReadLimit | undefined;
  /** The photos' counted matches (empty without photos). */
  photos: readonly PhotoAnswer[];
  /** Distinct platforms among the counted photo matches. */
  photoPlatforms: number;
  /** Contributing platforms whose trust is below 1. */
  distrusted: number;
  /** Counted records flagged after their reporter's own look-up (§3c). */
  afterLookup: number;
  /** Contributing platforms counted as one with others of their collusion group (§3d). */
  linked: number;
}): Reason[] {
  const { counted, model } = x;
  const reasons: Reason[] = [];
  const plural = (n: number, one: string, many: string) => `${n} ${n === 1 ? one : many}`;
  const matched = x.photos.filter((p) => p.matches.length > 0);
  if (counted.length === 0 && matched.length > 0) {
    reasons.push({
      code: "PHOTO_MATCH_NO_RECORDS",
      detail:
        "no confirmed case counts for these subjects, but the claim's photos match photos confirmed forged: the score is about this claim",
    });
  } else if (counted.length === 0) {
    reasons.push({ code: "NO_RECORDS", detail: "no confirmed case counts for these subjects" });
  } else {
    reasons.push({
      code: "CONFIRMED_CASES",
      detail: `${plural(counted.length, "confirmed case", "confirmed cases")} counted`,
    });
    reasons.push(
      x.platforms > 1
        ? { code: "MULTI_PLATFORM", detail: `confirmed on ${x.platforms} platforms` }
        : { code: "SINGLE_PLATFORM", detail: "all counted cases come from one platform" },
    );
  }
  if (matched.length > 0) {
    reasons.push({ code: "PHOTO_MATCH", detail: photoDetail(matched, x.photoPlatforms) });
  }
  if (x.capped > 0) {
    reasons.push({
      code: "PLATFORM_CAP",
      detail: `evidence from ${plural(x.capped, "platform", "platforms")} reached the per-platform cap`,
    });
  }
  if (x.distrusted > 0) {
    reasons.push({
      code: "REPORTER_TRUST",
      detail: `evidence from ${plural(x.distrusted, "platform weighs", "platforms weigh")} less: reporter on probation or with records overturned or uncorroborated`,
    });
  }
  if (x.afterLookup > 0) {
    reasons.push({
      code: "AFTER_LOOKUP",
      detail: `${plural(x.afterLookup, "case was", "cases were")} reported right after the reporter's own look-up answered review or worse and ${x.afterLookup === 1 ? "adds" : "add"} no consensus weight until the consortium clears ${x.afterLookup === 1 ? "it" : "them"}`,
    });
  }
  if (x.linked > 0) {
    reasons.push({
      code: "LINKED_PLATFORMS",
      detail: `evidence from ${x.linked} platforms whose reports overlap beyond chance counts as one platform's in the consensus`,
    });
  }
  if (x.merged > 0) {
    reasons.push({
      code: "BURST_MERGED",
      detail: `${plural(x.merged, "report", "reports")} from the same platform within a ${model.burstWindowDays}-day window counted once`,
    });
  }
  const strong = counted.filter(isVerifiedStrong).length;
  if (strong > 0) {
    reasons.push({
      code: "STRONG_CONFIRMATION",
      detail: `${plural(strong, "case", "cases")} confirmed by a police report or court ruling`,
    });
  }
  const unverified = counted.filter((r) => STRONG.has(r.confirmation) && r.verified !== true).length;
  if (unverified > 0) {
    reasons.push({
      code: "UNVERIFIED_CONFIRMATION",
      detail: `${plural(unverified, "case cites", "cases cite")} a police report or court ruling not yet verified by the consortium, weighed as platform forensics`,
    });
  }
  let top: AmountTier = "unknown_currency";
  for (const r of counted) {
    const t = amountTier(r.amountValue, r.amountCurrency, model);
    if (TIER_ORDER.indexOf(t) > TIER_ORDER.indexOf(top)) {
      top = t;
    }
  }
  if (TIER_ORDER.indexOf(top) >= TIER_ORDER.indexOf("relatively_large")) {
    reasons.push({ code: "LARGE_AMOUNT", detail: `largest case amount is ${TIER_TEXT[top]}` });
  }
  if (counted.length > 0) {
    let latest = Number.NEGATIVE_INFINITY;
    for (const r of counted) {
      latest = Math.max(latest, r.incidentAt);
    }
    const days = Math.floor((x.now - latest) / DAY_MS);
    if (days <= model.recentDays) {
      reasons.push({
        code: "RECENT",
        detail: `most recent incident ${plural(Math.max(0, days), "day", "days")} ago`,
      });
    }
  }
  if (x.disputedCount - x.overdue > 0) {
    reasons.push({
      code: "DISPUTED",
      detail: `${plural(x.disputedCount - x.overdue, "case is", "cases are")} under open dispute and count at reduced weight`,
    });
  }
  if (x.overdue > 0) {
    reasons.push({
      code: "DISPUTE_OVERDUE",
      detail: `${plural(x.overdue, "case has", "cases have")} a dispute open past its deadline and ${x.overdue === 1 ? "does" : "do"} not count`,
    });
  }
  if (x.read) {
    reasons.push({
      code: "RECORDS_CAPPED",
      detail: `only the ${x.read.cappedAt} most recent records per platform and subject were read; the counts are lower bounds`,
    });
  }
  return reasons;
}

/**
 * "photo 1 matches a photo confirmed forged on 2 platforms (distance 6)"; "photos 1 and 3 match
 * photos confirmed forged on 3 platforms (nearest distance 4)". Photos are numbered from 1 for
 * people (`photos[].index` counts from 0).
 */
function photoDetail(matched: readonly PhotoAnswer[], platforms: number): string {
  const numbers = matched.map((p) => String(p.index + 1));
  const list =
    numbers.length === 1
      ? numbers[0]
      : `${numbers.slice(0, -1).join(", ")} and ${numbers[numbers.length - 1]}`;
  let nearest = Number.POSITIVE_INFINITY;
  for (const p of matched) {
    for (const m of p.matches) {
      nearest = Math.min(nearest, m.distance);
    }
  }
  const on = `on ${platforms} ${platforms === 1 ? "platform" : "platforms"}`;
  return matched.length === 1
    ? `photo ${list} matches a photo confirmed forged ${on} (distance ${nearest})`
    : `photos ${list} match photos confirmed forged ${on} (nearest distance ${nearest})`;
}
