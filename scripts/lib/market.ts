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
  type ScoreRecord,
} from "../../worker/scoring/model";

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
};

export type BuyerKind = "forger" | "honest" | "wrongly_confirmed" | "malicious_victim";

export interface SimBuyer {
  kind: BuyerKind;
  records: ScoreRecord[];
  evaluation: Evaluation;
}

/** mulberry32: a small, fast, seeded PRNG. */
function rng(seed: number) {
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
          b.records.push(record(violator, "manual_review", NOW - 5 * DAY));
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
