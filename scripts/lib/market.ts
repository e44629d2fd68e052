/**
 * A synthetic market for measuring the scoring model: honest buyers, repeat forgers who hit
 * several platforms, honest buyers wrongly confirmed now and then, and the platforms that go
 * wrong on purpose or by carelessness: one malicious platform (or a coalition of three) that
 * reports honest buyers, a careless honest platform, a platform that reports whoever the ledger
 * flags. This file says who claims what, where and when, and what each platform would report;
 * `scripts/lib/ledger-sim.ts` runs those claims and reports through the ledger's rules over three
 * years (look-ups, `after_lookup` flags, disputes, retractions, reporter trust, collusion groups)
 * and the real scoring code (`worker/scoring/model.ts`) scores every buyer. Seeded, so runs
 * reproduce; docs/scoring.md §8 states every assumption.
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
/** The simulated years end at NOW; the earliest incident is this long before it. */
export const HISTORY_DAYS = 3 * 365 + 10;
/** When the simulated ledger opens: no report exists before it. */
export const START = NOW - HISTORY_DAYS * DAY;

export interface MarketParams {
  seed: number;
  buyers: number;
  /** Honest platforms p1..pN; the malicious one is "mal" (or the coalition "m1".."m3"). */
  platforms: number;
  forgerShare: number;
  /** Share of forgeries a platform detects and confirms. */
  detection: number;
  /** Share of honest buyers wrongly confirmed once by one honest platform. */
  wrongConfirmation: number;
  maliciousVictims: number;
  /** How the malicious platform dresses its reports. */
  maliciousConfirmation: "mimic" | "forged_police";
  /**
   * Platforms reporting the malicious victims: 1 ("mal"), or a coalition of this many ("m1"…),
   * each victim reported by 2 or 3 of them.
   */
  maliciousPlatforms: number;
  /** One honest platform (the last) reports any buyer its own look-up shows at review or worse. */
  feedbackPlatform: boolean;
  /** Ordinary refund claims a buyer makes on the feedback platform per year (each looked up). */
  feedbackClaimsPerYear: number;
  /** The first honest platform wrongly confirms this many times as often as the others (1: none careless). */
  carelessFactor: number;
  /** Share of forgers who open a fresh account and claim with one of their earlier photos. */
  switchShare: number;
  /**
   * How a forger picks the platforms it hits: `uniform` (every set of platforms equally likely),
   * or `correlated`, the draw of earlier versions (an array sorted by a random comparator), which
   * favours some pairs: p1 and p2 share about 3.4 times the forgers chance predicts, as two
   * platforms with overlapping customers would.
   */
  platformChoice: "uniform" | "correlated";
  /** Investigations take this many times `INVESTIGATION_DAYS` (the same draw scaled). */
  investigationFactor: number;
  /** The ledger's side (disputes, retractions, clearing): `LedgerParams` in ledger-sim.ts. */
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
  maliciousPlatforms: 1,
  feedbackPlatform: false,
  feedbackClaimsPerYear: 0.3,
  carelessFactor: 1,
  switchShare: 0.5,
  platformChoice: "uniform",
  investigationFactor: 1,
};

export type BuyerKind = "forger" | "honest" | "wrongly_confirmed" | "malicious_victim";

/** How a platform behaves: its role decides what it reports, looks up and answers to disputes. */
export type Role = "honest" | "careless" | "feedback" | "malicious";

/** A report a platform will file (once its investigation ends), before the ledger sees it. */
export interface MarketRecord
  extends Pick<
    ScoreRecord,
    "ref" | "platformId" | "category" | "confirmation" | "incidentAt" | "amountValue" | "amountCurrency"
  > {
  buyer: number;
  /** When the reporter files it: the incident plus its investigation (`INVESTIGATION_DAYS`). */
  createdAt: number;
  /** A police or court reference the consortium verified: honest members' only. */
  verified: boolean;
  /** The buyer is not a forger: the record is a mistake or a lie. */
  wrong: boolean;
}

/** A refund claim a platform receives, and looks up at once (unless it is malicious). */
export interface Claim {
  buyer: number;
  platformId: string;
  at: number;
  /** Key for the claim's own seeded draws (the feedback platform's report about it). */
  key: string;
}

export interface Market {
  params: MarketParams;
  kinds: BuyerKind[];
  records: MarketRecord[];
  claims: Claim[];
  roles: Map<string, Role>;
}

export interface SimBuyer {
  kind: BuyerKind;
  /** The buyer's records as the ledger holds them at NOW (trust, flags and groups included). */
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

/**
 * A generator of its own for one named thing (a buyer's disputes, a record's outcome): the same
 * thing draws the same numbers in every scenario, whatever else the scenario adds.
 */
export function keyedRng(seed: number, key: string) {
  let h = 0x811c9dc5 ^ seed;
  for (let i = 0; i < key.length; i++) {
    h = Math.imul(h ^ key.charCodeAt(i), 0x01000193);
  }
  return rng(h >>> 0);
}

/** A uniformly shuffled copy (Fisher–Yates). */
export function shuffle<T>(random: () => number, items: readonly T[]): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j] as T, out[i] as T];
  }
  return out;
}

export function pick<T>(random: () => number, weighted: [T, number][]): T {
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

/**
 * Days from the claim to the report, by confirmation, drawn uniformly: a reviewer decides within
 * days, a merchant answers within weeks, a police or court reference takes longer. A report not
 * filed by NOW is not in the ledger yet.
 */
export const INVESTIGATION_DAYS: Record<Confirmation, [number, number]> = {
  manual_review: [1, 10],
  merchant_evidence: [3, 21],
  platform_forensics: [2, 14],
  police_report: [14, 60],
  court_ruling: [30, 180],
};

/** The platforms of a market, and each one's role. */
export function platformRoles(params: MarketParams): Map<string, Role> {
  const roles = new Map<string, Role>();
  for (let i = 1; i <= params.platforms; i++) {
    roles.set(`p${i}`, "honest");
  }
  if (params.carelessFactor > 1) {
    roles.set("p1", "careless");
  }
  if (params.feedbackPlatform) {
    roles.set(`p${params.platforms}`, "feedback");
  }
  for (const id of maliciousIds(params)) {
    roles.set(id, "malicious");
  }
  return roles;
}

function maliciousIds(params: MarketParams): string[] {
  return params.maliciousPlatforms === 1
    ? ["mal"]
    : Array.from({ length: params.maliciousPlatforms }, (_, i) => `m${i + 1}`);
}

/**
 * Who claims what where and when, and what each platform will report. The buyers, their
 * incidents and the honest and malicious records are drawn from one generator in the same order
 * as in earlier versions of this simulation (with `platformChoice: "correlated"` the market is
 * exactly theirs); everything added since (the incidents no platform detected, the coalition,
 * the careless platform, ordinary claims on the feedback platform) from keyed generators, so it
 * never shifts the rest.
 */
export function generateMarket(params: MarketParams = DEFAULT_MARKET): Market {
  const random = rng(params.seed);
  const honestPlatforms = Array.from({ length: params.platforms }, (_, i) => `p${i + 1}`);
  const roles = platformRoles(params);
  let refs = 0;
  const draw = (
    r: () => number,
    ref: string,
    buyer: number,
    platformId: string,
    confirmation: Confirmation,
    incidentAt: number,
    wrong: boolean,
  ): MarketRecord => {
    // Amounts: log-normal around CNY 250, in fen; a long tail reaches the legal tiers.
    const normal = Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r());
    const yuan = Math.max(5, Math.round(250 * Math.exp(1.3 * normal)));
    const category = pick(r, CATEGORIES);
    const [lo, hi] = INVESTIGATION_DAYS[confirmation];
    return {
      ref,
      buyer,
      platformId,
      category,
      confirmation,
      incidentAt,
      createdAt: incidentAt + Math.round((lo + (hi - lo) * r()) * params.investigationFactor * DAY),
      amountValue: yuan * 100,
      amountCurrency: "CNY",
      // Honest members' police and court confirmations are genuine, and the consortium verifies
      // them; a malicious platform's forged ones never pass verification (docs/scoring.md §2).
      verified: roles.get(platformId) !== "malicious",
      wrong,
    };
  };
  const record = (buyer: number, platformId: string, confirmation: Confirmation, incidentAt: number) =>
    draw(random, `r${++refs}`, buyer, platformId, confirmation, incidentAt, kinds[buyer] !== "forger");
  const within = (r: () => number, days: number) => NOW - Math.floor(r() * days * DAY) - 10 * DAY;

  const kinds: BuyerKind[] = [];
  const records: MarketRecord[] = [];
  const claims: Claim[] = [];
  /** Incidents no platform detected: claims all the same, looked up when they arrive. */
  const undetected: { buyer: number; platformId: string; k: number }[] = [];
  for (let i = 0; i < params.buyers; i++) {
    if (random() < params.forgerShare) {
      kinds.push("forger");
      const reach = pick(random, [
        [1, 0.35],
        [2, 0.3],
        [3, 0.2],
        [4, 0.1],
        [5, 0.05],
      ]);
      const targets = (
        params.platformChoice === "uniform"
          ? shuffle(random, honestPlatforms)
          : [...honestPlatforms].sort(() => random() - 0.5)
      ).slice(0, reach);
      for (const p of targets) {
        const incidents = 1 + Math.floor(random() * 4);
        for (let k = 0; k < incidents; k++) {
          if (random() < params.detection) {
            records.push(record(i, p, pick(random, HONEST_PLATFORM_CONFIRMATIONS), within(random, 3 * 365)));
          } else {
            undetected.push({ buyer: i, platformId: p, k });
          }
        }
      }
    } else if (random() < params.wrongConfirmation) {
      kinds.push("wrongly_confirmed");
      const p = honestPlatforms[Math.floor(random() * honestPlatforms.length)] as string;
      records.push(record(i, p, pick(random, WRONG_CONFIRMATIONS), within(random, 2 * 365)));
    } else {
      kinds.push("honest");
    }
  }

  // The malicious platform reports honest buyers who have no record at all.
  const clean: number[] = [];
  kinds.forEach((k, i) => {
    if (k === "honest") {
      clean.push(i);
    }
  });
  const victims: number[] = [];
  const malRecords: MarketRecord[] = [];
  for (let v = 0; v < params.maliciousVictims && clean.length > 0; v++) {
    const victim = clean.splice(Math.floor(random() * clean.length), 1)[0] as number;
    kinds[victim] = "malicious_victim";
    victims.push(victim);
    const n = 1 + Math.floor(random() * 3);
    for (let k = 0; k < n; k++) {
      const confirmation: Confirmation =
        params.maliciousConfirmation === "forged_police"
          ? "police_report"
          : pick(random, WRONG_CONFIRMATIONS);
      malRecords.push(record(victim, "mal", confirmation, within(random, 365)));
    }
  }
  if (params.maliciousPlatforms === 1) {
    records.push(...malRecords);
  } else {
    // A coalition: the same victims, each reported by 2 or 3 of its members, 1–3 times each.
    const members = maliciousIds(params);
    for (const victim of victims) {
      const r = keyedRng(params.seed, `coalition:${victim}`);
      const chosen = shuffle(r, members).slice(0, r() < 0.5 ? 2 : 3);
      for (const m of chosen) {
        const n = 1 + Math.floor(r() * 3);
        for (let k = 0; k < n; k++) {
          const confirmation: Confirmation =
            params.maliciousConfirmation === "forged_police" ? "police_report" : pick(r, WRONG_CONFIRMATIONS);
          records.push(draw(r, `c${victim}-${m}-${k}`, victim, m, confirmation, within(r, 365), true));
        }
      }
    }
  }

  // A careless honest platform: `carelessFactor` times the others' rate of wrong confirmations
  // (the base draw above already gave it its ordinary share), among the buyers still clean.
  if (params.carelessFactor > 1) {
    const extra = ((params.carelessFactor - 1) * params.wrongConfirmation) / params.platforms;
    for (const i of clean) {
      const r = keyedRng(params.seed, `careless:${i}`);
      if (r() < extra) {
        kinds[i] = "wrongly_confirmed";
        records.push(draw(r, `k${i}`, i, "p1", pick(r, WRONG_CONFIRMATIONS), within(r, 2 * 365), true));
      }
    }
  }

  // Every claim is looked up when it arrives by the platform receiving it (a malicious platform
  // never looks up its victims: it knows the rule of docs/scoring.md §3c). A report's claim is its
  // incident; an undetected forgery is a claim too, at a time of its own.
  for (const r of records) {
    if (roles.get(r.platformId) !== "malicious") {
      claims.push({ buyer: r.buyer, platformId: r.platformId, at: r.incidentAt, key: `claim:${r.ref}` });
    }
  }
  for (const u of undetected) {
    const key = `undetected:${u.buyer}:${u.platformId}:${u.k}`;
    claims.push({ ...u, at: within(keyedRng(params.seed, key), 3 * 365), key });
  }
  // Ordinary claims on the feedback platform, by every buyer with a record: a Poisson process of
  // `feedbackClaimsPerYear` over the three years. (A buyer with no record looks up `none`.)
  if (params.feedbackPlatform) {
    const violator = honestPlatforms[honestPlatforms.length - 1] as string;
    const withRecords = [...new Set(records.map((r) => r.buyer))].sort((a, b) => a - b);
    for (const buyer of withRecords) {
      const r = keyedRng(params.seed, `ordinary:${buyer}`);
      let t = START;
      for (let n = 0; ; n++) {
        t += (-Math.log(1 - r()) / params.feedbackClaimsPerYear) * 365 * DAY;
        if (t >= NOW) {
          break;
        }
        claims.push({ buyer, platformId: violator, at: Math.floor(t), key: `ordinary:${buyer}:${n}` });
      }
    }
  }
  return { params, kinds, records, claims, roles };
}

/**
 * The market as earlier versions of this simulation scored it: every report in the ledger at
 * once, none disputed or retracted, every platform at trust 1, every police or court reference
 * taken as verified: what `pixiu-score/1` answered. The recall target of issue 13.
 */
export function scoreAsV1(market: Market): Metrics {
  const byBuyer = new Map<number, ScoreRecord[]>();
  for (const r of market.records) {
    const list = byBuyer.get(r.buyer) ?? [];
    list.push({ ...r, status: "active", verified: true });
    byBuyer.set(r.buyer, list);
  }
  return measure(
    market.kinds.map((kind, i) => {
      const records = byBuyer.get(i) ?? [];
      return { kind, records, band: records.length ? evaluate(records, NOW, DEFAULT_MODEL).band : "none" };
    }),
  );
}

const BAND_ORDER: Band[] = ["none", "low", "medium", "high", "critical"];
export const atLeast = (band: Band, floor: Band) => BAND_ORDER.indexOf(band) >= BAND_ORDER.indexOf(floor);

export interface Metrics {
  buyers: number;
  forgers: number;
  /** Forgers with at least one report in the ledger at NOW. */
  forgersWithRecords: number;
  flaggedHigh: number;
  precision: number;
  recall: number;
  recallDetected: number;
  /** Every buyer who is not a forger. */
  honest: number;
  honestReviewOrWorse: number;
  honestReviewShare: number;
  /** Innocent buyers at band ≥ high (false positives). */
  honestHigh: number;
  wronglyConfirmed: number;
  wronglyConfirmedReview: number;
  wronglyConfirmedHigh: number;
  maliciousVictims: number;
  maliciousVictimsHigh: number;
  maliciousVictimsReview: number;
}

/** Precision, recall and the innocent's side, from each buyer's band. */
export function measure(buyers: readonly { kind: BuyerKind; records: unknown[]; band: Band }[]): Metrics {
  let forgers = 0;
  let forgersWithRecords = 0;
  let tp = 0;
  let fp = 0;
  let honest = 0;
  let honestReview = 0;
  let wrong = 0;
  let wrongReview = 0;
  let wrongHigh = 0;
  let victims = 0;
  let victimsHigh = 0;
  let victimsReview = 0;
  for (const b of buyers) {
    const high = atLeast(b.band, "high");
    const review = atLeast(b.band, "medium");
    if (b.kind === "forger") {
      forgers++;
      forgersWithRecords += b.records.length > 0 ? 1 : 0;
      tp += high ? 1 : 0;
      continue;
    }
    honest++;
    fp += high ? 1 : 0;
    honestReview += review ? 1 : 0;
    if (b.kind === "wrongly_confirmed") {
      wrong++;
      wrongReview += review ? 1 : 0;
      wrongHigh += high ? 1 : 0;
    } else if (b.kind === "malicious_victim") {
      victims++;
      victimsReview += review ? 1 : 0;
      victimsHigh += high ? 1 : 0;
    }
  }
  return {
    buyers: buyers.length,
    forgers,
    forgersWithRecords,
    flaggedHigh: tp + fp,
    precision: tp + fp === 0 ? 1 : tp / (tp + fp),
    recall: tp / Math.max(1, forgers),
    recallDetected: tp / Math.max(1, forgersWithRecords),
    honest,
    honestReviewOrWorse: honestReview,
    honestReviewShare: honestReview / Math.max(1, honest),
    honestHigh: fp,
    wronglyConfirmed: wrong,
    wronglyConfirmedReview: wrongReview,
    wronglyConfirmedHigh: wrongHigh,
    maliciousVictims: victims,
    maliciousVictimsHigh: victimsHigh,
    maliciousVictimsReview: victimsReview,
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
  /** Counted confirmed cases at NOW, each with the PDQ fingerprint of its forged photo. */
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
  /**
   * Those of them below `high`: the claim's copy within the match distance of fewer than two
   * platforms' fingerprints (`onePlatform`: one or none), or of two or more platforms' with a match
   * under dispute (half weight) or flagged `after_lookup` and uncleared (no consensus).
   */
  switchedMultiBelowHigh: { onePlatform: number; disputedOrFlagged: number };
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
 * Gives every confirmed case in the ledger the fingerprint of its photo, then scores claims with
 * photos at NOW, with the real model and the ledger's state (each match carries its reporter's
 * trust, `after_lookup` flag and collusion group, as the score read does): forgers keep a pool of 1–3 forged photos and send a perturbed copy
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
      // Only counted reports' fingerprints are in the index: a retracted or voided one left it.
      if (record.status === "active" || record.status === "disputed") {
        fingerprints.push({ chunks, hash: hex(chunks), record, origin });
      }
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
          disputeDeadlineAt: f.record.disputeDeadlineAt ?? null,
          trust: f.record.trust,
          afterLookup: f.record.afterLookup,
          group: f.record.group ?? null,
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
    switchedMultiBelowHigh: { onePlatform: 0, disputedOrFlagged: 0 },
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
        const matches = matchesOf(perturb(origin));
        const fresh = evaluate([], NOW, model, undefined, [matches]);
        const platforms = confirmedPlatforms(origin);
        metrics.switched++;
        metrics.switchedConfirmedBefore += platforms > 0 ? 1 : 0;
        metrics.switchedConfirmedMissed += platforms > 0 && fresh.band === "none" ? 1 : 0;
        metrics.switchedByBand[fresh.band]++;
        if (platforms >= 2) {
          metrics.switchedMultiByBand[fresh.band]++;
          if (!atLeast(fresh.band, "high")) {
            const matched = new Set(matches.map((m) => m.platformId)).size;
            metrics.switchedMultiBelowHigh[matched >= 2 ? "disputedOrFlagged" : "onePlatform"]++;
          }
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
