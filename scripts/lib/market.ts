/**
 * A synthetic market for measuring the scoring model: honest buyers, repeat forgers who hit
 * several platforms, honest buyers wrongly confirmed now and then, one malicious platform that
 * reports honest buyers, and optionally one platform that breaks the no-feedback rule. The real
 * scoring code (`worker/scoring/model.ts`) scores every buyer. Seeded, so runs reproduce.
 */
import type { Category, Confirmation } from "../../worker/schemas/reports";
import {
  type Band,
  DEFAULT_MODEL,
  type Evaluation,
  evaluate,
  type PhotoMatchInput,
  type ScoreRecord,
} from "../../worker/scoring/model";
import { CHUNK_BITS, CHUNKS, chunkDistance } from "../../worker/services/fingerprints";

export const DAY = 86_400_000;
/** The evaluation instant of every simulated query. */
export const NOW = Date.UTC(2026, 10, 25);

export interface MarketParams {
  seed: number;
  buyers: number;
  /** Honest platforms p1..pN; the malicious one is "mal". */
  platforms: number;
  forgerShare: number;
  /** Share of forgeries a platform detects and confirms. */
  detection: number;
  /** Share of honest buyers wrongly confirmed once by one honest platform. */
  wrongConfirmation: number;
  maliciousVictims: number;
  /** How the malicious platform dresses its reports. */
  maliciousConfirmation: "mimic" | "forged_police";
  /** One honest platform reports any buyer it sees at review or worse (breaks the rule). */
  feedbackPlatform: boolean;
  /** Chance that the feedback platform queries a given buyer with records. */
  feedbackReach: number;
  /**
   * The ledger flags the feedback platform's reports `after_lookup` (docs/scoring.md §3c): each is
   * filed right after its own look-up answered review or worse, within the feedback window.
   */
  feedbackFlagged: boolean;
  /** Share of forgers who open a fresh account and claim with one of their earlier photos. */
  switchShare: number;
}

export const DEFAULT_MARKET: MarketParams = {
  seed: 20261125,
  buyers: 200_000,
  platforms: 7,
  forgerShare: 0.01,
  detection: 0.6,
  wrongConfirmation: 0.002,
  maliciousVictims: 2_000,
  maliciousConfirmation: "mimic",
  feedbackPlatform: false,
  feedbackReach: 0.3,
  feedbackFlagged: false,
  switchShare: 0.5,
};

export type BuyerKind = "forger" | "honest" | "wrongly_confirmed" | "malicious_victim";

export interface SimBuyer {
  kind: BuyerKind;
  records: ScoreRecord[];
  evaluation: Evaluation;
}

/** mulberry32: a small, fast, seeded PRNG. */
export function rng(seed: number) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function pick<T>(random: () => number, weighted: [T, number][]): T {
  let r = random() * weighted.reduce((s, [, w]) => s + w, 0);
  for (const [value, w] of weighted) {
    r -= w;
    if (r <= 0) {
      return value;
    }
  }
  return (weighted[weighted.length - 1] as [T, number])[0];
}

const CATEGORIES: [Category, number][] = [
  ["ai_generated_image", 0.5],
  ["edited_image", 0.25],
  ["reused_image", 0.1],
  ["staged_damage", 0.1],
  ["other_forgery", 0.05],
];
const HONEST_PLATFORM_CONFIRMATIONS: [Confirmation, number][] = [
  ["manual_review", 0.35],
  ["merchant_evidence", 0.25],
  ["platform_forensics", 0.3],
  ["police_report", 0.08],
  ["court_ruling", 0.02],
];
const WRONG_CONFIRMATIONS: [Confirmation, number][] = [
  ["manual_review", 0.6],
  ["merchant_evidence", 0.3],
  ["platform_forensics", 0.1],
];

export function simulate(params: MarketParams = DEFAULT_MARKET): SimBuyer[] {
  const random = rng(params.seed);
  const honestPlatforms = Array.from({ length: params.platforms }, (_, i) => `p${i + 1}`);
  let refs = 0;
  const record = (platformId: string, confirmation: Confirmation, incidentAt: number): ScoreRecord => {
    // Amounts: log-normal around CNY 250, in fen; a long tail reaches the legal tiers.
    const normal = Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
    const yuan = Math.max(5, Math.round(250 * Math.exp(1.3 * normal)));
    refs += 1;
    return {
      ref: `r${refs}`,
      platformId,
      category: pick(random, CATEGORIES),
      confirmation,
      incidentAt,
      createdAt: incidentAt + Math.floor(random() * 10 * DAY),
      amountValue: yuan * 100,
      amountCurrency: "CNY",
      status: "active",
      // Honest members' police and court confirmations are genuine, and the consortium verifies
      // them; the malicious platform's forged ones never pass verification (docs/scoring.md §2).
      verified: platformId !== "mal",
    };
  };
  const within = (days: number) => NOW - Math.floor(random() * days * DAY) - 10 * DAY;

  const buyers: { kind: BuyerKind; records: ScoreRecord[] }[] = [];
  for (let i = 0; i < params.buyers; i++) {
    if (random() < params.forgerShare) {
      const reach = pick(random, [
        [1, 0.35],
        [2, 0.3],
        [3, 0.2],
        [4, 0.1],
        [5, 0.05],
      ]);
      const targets = [...honestPlatforms].sort(() => random() - 0.5).slice(0, reach);
      const records: ScoreRecord[] = [];
      for (const p of targets) {
        const incidents = 1 + Math.floor(random() * 4);
        for (let k = 0; k < incidents; k++) {
          if (random() < params.detection) {
            records.push(record(p, pick(random, HONEST_PLATFORM_CONFIRMATIONS), within(3 * 365)));
          }
        }
      }
      buyers.push({ kind: "forger", records });
    } else if (random() < params.wrongConfirmation) {
      const p = honestPlatforms[Math.floor(random() * honestPlatforms.length)] as string;
      buyers.push({
        kind: "wrongly_confirmed",
        records: [record(p, pick(random, WRONG_CONFIRMATIONS), within(2 * 365))],
      });
    } else {
      buyers.push({ kind: "honest", records: [] });
    }
  }

  // The malicious platform reports honest buyers who have no record at all.
  const clean = buyers.filter((b) => b.kind === "honest");
  for (let v = 0; v < params.maliciousVictims && clean.length > 0; v++) {
    const victim = clean.splice(Math.floor(random() * clean.length), 1)[0] as (typeof buyers)[number];
    victim.kind = "malicious_victim";
    const n = 1 + Math.floor(random() * 3);
    for (let k = 0; k < n; k++) {
      const confirmation: Confirmation =
        params.maliciousConfirmation === "forged_police"
          ? "police_report"
          : pick(random, WRONG_CONFIRMATIONS);
      victim.records.push(record("mal", confirmation, within(365)));
    }
  }

  // A platform that breaks the rule reports whoever the ledger already flags when it sees them.
  if (params.feedbackPlatform) {
    const violator = honestPlatforms[honestPlatforms.length - 1] as string;
    for (const b of buyers) {
      if (
        b.records.length > 0 &&
        random() < params.feedbackReach &&
        !b.records.some((r) => r.platformId === violator)
      ) {
        const seen = evaluate(b.records, NOW - 5 * DAY, DEFAULT_MODEL);
        if (seen.action !== "allow") {
          b.records.push({
            ...record(violator, "manual_review", NOW - 5 * DAY),
            ...(params.feedbackFlagged ? { afterLookup: true } : {}),
          });
        }
      }
    }
  }

  return buyers.map((b) => ({ ...b, evaluation: evaluate(b.records, NOW, DEFAULT_MODEL) }));
}

const BAND_ORDER: Band[] = ["none", "low", "medium", "high", "critical"];
export const atLeast = (band: Band, floor: Band) => BAND_ORDER.indexOf(band) >= BAND_ORDER.indexOf(floor);

export interface Metrics {
  buyers: number;
  forgers: number;
  forgersWithRecords: number;
  flaggedHigh: number;
  precision: number;
  recall: number;
  recallDetected: number;
  honest: number;
  honestReviewOrWorse: number;
  honestReviewShare: number;
  wronglyConfirmed: number;
  wronglyConfirmedHigh: number;
  maliciousVictims: number;
  maliciousVictimsHigh: number;
  maliciousVictimsReview: number;
}

export function measure(buyers: SimBuyer[]): Metrics {
  const of = (kind: BuyerKind) => buyers.filter((b) => b.kind === kind);
  const forgers = of("forger");
  const innocent = buyers.filter((b) => b.kind !== "forger");
  const high = (b: SimBuyer) => atLeast(b.evaluation.band, "high");
  const tp = forgers.filter(high).length;
  const fp = innocent.filter(high).length;
  const victims = of("malicious_victim");
  const wrong = of("wrongly_confirmed");
  const honestReview = innocent.filter((b) => b.evaluation.action !== "allow").length;
  return {
    buyers: buyers.length,
    forgers: forgers.length,
    forgersWithRecords: forgers.filter((b) => b.records.length > 0).length,
    flaggedHigh: tp + fp,
    precision: tp + fp === 0 ? 1 : tp / (tp + fp),
    recall: tp / Math.max(1, forgers.length),
    recallDetected: tp / Math.max(1, forgers.filter((b) => b.records.length > 0).length),
    honest: innocent.length,
    honestReviewOrWorse: honestReview,
    honestReviewShare: honestReview / Math.max(1, innocent.length),
    wronglyConfirmed: wrong.length,
    wronglyConfirmedHigh: wrong.filter(high).length,
    maliciousVictims: victims.length,
    maliciousVictimsHigh: victims.filter(high).length,
    maliciousVictimsReview: victims.filter((b) => b.evaluation.action !== "allow").length,
  };
}

// ---------------------------------------------------------------------------------------------
// Photos: forgers who switch accounts but reuse their photos (docs/scoring.md §8)
// ---------------------------------------------------------------------------------------------

/** A PDQ hash as its 16 chunks of 16 bits (`chunksOf` in worker/services/fingerprints.ts). */
type Chunks = number[];

/**
 * How far one submission of a photo lands from the photo itself, in PDQ bits: most are
 * re-encoded or resized (a few bits), some cropped or retouched, a few edited heavily (often
 * beyond the match distance of 31). Two submissions of one photo differ by up to the sum.
 */
export const PERTURBATION: [[number, number], number][] = [
  [[0, 8], 0.6],
  [[8, 24], 0.3],
  [[24, 48], 0.1],
];

export interface PhotoMetrics {
  /** Confirmed cases, each with the PDQ fingerprint of its forged photo. */
  fingerprints: number;
  /** Forgers' fresh accounts, each claiming once with a reused photo. */
  switched: number;
  /** …of which the photo (its original) had been confirmed at least once before… */
  switchedConfirmedBefore: number;
  /** …and of those, left at `none` all the same: every confirmed copy more than 31 bits away. */
  switchedConfirmedMissed: number;
  /** Fresh accounts by band with the photo in the query (without it every one is `none`). */
  switchedByBand: Record<Band, number>;
  /** The same, for fresh accounts whose photo had been confirmed on 2 or more platforms. */
  switchedMultiByBand: Record<Band, number>;
  /** Forgers claiming again on their own account with a reused photo: answers that changed. */
  ownAccountMoved: number;
  /** Innocent buyers (honest, wrongly confirmed, malicious victims), each claiming with a photo… */
  innocent: number;
  /** …whose photo matched any fingerprint, and whose answer changed at all. */
  innocentMatched: number;
  innocentMoved: number;
  ms: number;
}

/**
 * Gives every confirmed case in the market the fingerprint of its photo, then scores claims with
 * photos, with the real model: forgers keep a pool of 1–3 forged photos and send a perturbed copy
 * each time (`PERTURBATION`); innocent buyers photograph their own goods (a fresh random hash).
 * A share of forgers (`switchShare`) open a fresh account and claim once with one of their
 * photos; every forger also claims once more on their own account; every innocent buyer claims
 * once. Matches are found as the ledger finds them (a chunk index probed within one bit per
 * chunk, then the full distance verified) and scored by `evaluate` with the photos. A second
 * seeded generator, so the records (and every records-only number) are those of `simulate`.
 */
export function simulatePhotos(buyers: SimBuyer[], params: MarketParams = DEFAULT_MARKET): PhotoMetrics {
  const started = performance.now();
  const random = rng(params.seed ^ 0x5eed_f070);
  const randomHash = (): Chunks => Array.from({ length: CHUNKS }, () => Math.floor(random() * 65_536));
  const perturb = (hash: Chunks): Chunks => {
    const [lo, hi] = pick(random, PERTURBATION);
    const flips = lo + Math.floor(random() * (hi - lo + 1));
    const out = [...hash];
    for (let i = 0; i < flips; i++) {
      const bit = Math.floor(random() * CHUNKS * CHUNK_BITS);
      const k = Math.floor(bit / CHUNK_BITS);
      out[k] = (out[k] ?? 0) ^ (1 << (bit % CHUNK_BITS));
    }
    return out;
  };
  const hex = (h: Chunks) => h.map((v) => v.toString(16).padStart(4, "0")).join("");

  // The index: every confirmed case's fingerprint, 16 chunk entries each.
  interface Fingerprint {
    chunks: Chunks;
    hash: string;
    record: ScoreRecord;
    /** The forged photo it is a copy of (null: an honest buyer's own photo). */
    origin: Chunks | null;
  }
  const fingerprints: Fingerprint[] = [];
  const pools = new Map<SimBuyer, Chunks[]>();
  for (const b of buyers) {
    const pool = b.kind === "forger" ? Array.from({ length: 1 + Math.floor(random() * 3) }, randomHash) : [];
    if (b.kind === "forger") {
      pools.set(b, pool);
    }
    for (const record of b.records) {
      const origin = pool.length ? (pool[Math.floor(random() * pool.length)] as Chunks) : null;
      const chunks = origin ? perturb(origin) : randomHash();
      fingerprints.push({ chunks, hash: hex(chunks), record, origin });
    }
  }
  // The chunk index as two flat arrays (the fingerprints of key k are ids[start[k]] … ids[start[k + 1]
  // − 1], k = chunk · 65,536 + value): the same rows as `fingerprint_chunks`, fast to probe.
  const start = new Uint32Array(CHUNKS * 65_536 + 1);
  for (const f of fingerprints) {
    f.chunks.forEach((v, k) => {
      start[k * 65_536 + v + 1] = (start[k * 65_536 + v + 1] ?? 0) + 1;
    });
  }
  for (let key = 1; key < start.length; key++) {
    start[key] = (start[key] ?? 0) + (start[key - 1] ?? 0);
  }
  const ids = new Uint32Array(fingerprints.length * CHUNKS);
  const filled = start.slice(0, -1);
  fingerprints.forEach((f, i) => {
    f.chunks.forEach((v, k) => {
      const key = k * 65_536 + v;
      ids[filled[key] ?? 0] = i;
      filled[key] = (filled[key] ?? 0) + 1;
    });
  });
  const model = DEFAULT_MODEL;
  /** The ledger's match: probe each chunk and its one-bit neighbours, verify the distance. */
  const matchesOf = (photo: Chunks): PhotoMatchInput[] => {
    const candidates = new Set<number>();
    for (let k = 0; k < CHUNKS; k++) {
      const v = photo[k] ?? 0;
      for (let m = -1; m < CHUNK_BITS; m++) {
        const key = k * 65_536 + (m < 0 ? v : v ^ (1 << m));
        for (let j = start[key] ?? 0; j < (start[key + 1] ?? 0); j++) {
          candidates.add(ids[j] ?? 0);
        }
      }
    }
    const out: PhotoMatchInput[] = [];
    for (const i of candidates) {
      const f = fingerprints[i] as Fingerprint;
      const distance = chunkDistance(photo, f.chunks);
      if (distance <= model.photoMaxDistance) {
        out.push({
          hash: f.hash,
          distance,
          ref: f.record.ref,
          platformId: f.record.platformId,
          category: f.record.category,
          incidentAt: f.record.incidentAt,
          disputeDeadlineAt: null,
        });
      }
    }
    return out;
  };
  const same = (a: Evaluation, b: Evaluation) => {
    const { photos: _photos, ...rest } = a;
    return JSON.stringify(rest) === JSON.stringify(b);
  };
  const bands = (): Record<Band, number> => ({ none: 0, low: 0, medium: 0, high: 0, critical: 0 });

  const metrics: PhotoMetrics = {
    fingerprints: fingerprints.length,
    switched: 0,
    switchedConfirmedBefore: 0,
    switchedConfirmedMissed: 0,
    switchedByBand: bands(),
    switchedMultiByBand: bands(),
    ownAccountMoved: 0,
    innocent: 0,
    innocentMatched: 0,
    innocentMoved: 0,
    ms: 0,
  };
  const confirmedPlatforms = (origin: Chunks) =>
    new Set(fingerprints.filter((f) => f.origin === origin).map((f) => f.record.platformId)).size;
  for (const b of buyers) {
    const pool = pools.get(b);
    if (pool) {
      // Again on the same account, with one of the photos: its own cases already count.
      const again = perturb(pool[Math.floor(random() * pool.length)] as Chunks);
      const own = evaluate(b.records, NOW, model, undefined, [matchesOf(again)]);
      if (!same(own, b.evaluation)) {
        metrics.ownAccountMoved++;
      }
      if (random() < params.switchShare) {
        // A fresh account: no record, one claim with a perturbed copy of one of the photos.
        const origin = pool[Math.floor(random() * pool.length)] as Chunks;
        const fresh = evaluate([], NOW, model, undefined, [matchesOf(perturb(origin))]);
        const platforms = confirmedPlatforms(origin);
        metrics.switched++;
        metrics.switchedConfirmedBefore += platforms > 0 ? 1 : 0;
        metrics.switchedConfirmedMissed += platforms > 0 && fresh.band === "none" ? 1 : 0;
        metrics.switchedByBand[fresh.band]++;
        if (platforms >= 2) {
          metrics.switchedMultiByBand[fresh.band]++;
        }
      }
    } else {
      metrics.innocent++;
      const matches = matchesOf(randomHash());
      const withPhoto = evaluate(b.records, NOW, model, undefined, [matches]);
      metrics.innocentMatched += matches.length > 0 ? 1 : 0;
      metrics.innocentMoved += same(withPhoto, b.evaluation) ? 0 : 1;
    }
  }
  metrics.ms = performance.now() - started;
  return metrics;
}
