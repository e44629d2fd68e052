/**
 * Properties of the pure scoring model (worker/scoring/model.ts, docs/scoring.md) checked with
 * fast-check over generated record sets, plus the worked examples of docs/scoring.md §6
 * reproduced number for number. One API round trip at the end checks that the answer a
 * platform receives carries the model version and agrees with the pure function.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { ReportStatus } from "../schema";
import { DAY_MS } from "../worker/lib/time";
import type { Category, Confirmation } from "../worker/schemas/reports";
import {
  actionOf,
  type Band,
  bandOf,
  DEFAULT_MODEL,
  decay,
  type Evaluation,
  evaluate,
  MODEL_VERSION,
  type PhotoMatchInput,
  recordWeight,
  type ScoreRecord,
  scoreOf,
} from "../worker/scoring/model";
import { configureModel } from "../worker/services/scores";
import { callJson, daysAgo, newBuyer, newPlatform, reportBody } from "./harness";

const M = DEFAULT_MODEL;
const NOW = Date.parse("2026-11-25T00:00:00Z");
const RETENTION_MS = 1826 * DAY_MS;

const WEAK: Confirmation[] = ["manual_review", "merchant_evidence", "platform_forensics"];
const STRONG: Confirmation[] = ["police_report", "court_ruling"];
const CATEGORIES: Category[] = [
  "ai_generated_image",
  "edited_image",
  "reused_image",
  "staged_damage",
  "other_forgery",
];
const BAND_RANK: Record<Band, number> = { none: 0, low: 1, medium: 2, high: 3, critical: 4 };
const ACTION_RANK = { allow: 0, review: 1, require_return: 2 } as const;

type Draft = Omit<ScoreRecord, "ref">;

/** Whether a record counts, per docs/scoring.md §1, written independently of the model. */
function counts(r: ScoreRecord | Draft, now = NOW): boolean {
  const overdue =
    r.disputeDeadlineAt !== null && r.disputeDeadlineAt !== undefined && now >= r.disputeDeadlineAt;
  return (
    !["retracted", "voided", "expired"].includes(r.status) && r.incidentAt >= now - RETENTION_MS && !overdue
  );
}

function withRefs(drafts: readonly Draft[], prefix = "rpt_"): ScoreRecord[] {
  return drafts.map((d, i) => ({ ref: `${prefix}${String(i).padStart(3, "0")}`, ...d }));
}

// ---------------------------------------------------------------------------------------------
// Generators
// ---------------------------------------------------------------------------------------------

const platformArb = fc.constantFrom("p0", "p1", "p2", "p3", "p4");
/** A police or court record an admin verified: only those lift the cap (docs/scoring.md §2). */
const verifiedStrong = (r: Pick<ScoreRecord, "confirmation" | "verified">) =>
  STRONG.includes(r.confirmation) && r.verified === true;

const anyConfirmation = fc.constantFrom(...WEAK, ...STRONG);

/** Minor units across every amount tier, including the tier boundaries and the maximum. */
const amountArb = fc.oneof(
  fc.integer({ min: 1, max: 1_000_000_000_000 }),
  fc.integer({ min: 1, max: 10_000_000 }),
  fc.constantFrom(1, 299_999, 300_000, 2_999_999, 3_000_000, 49_999_999, 50_000_000, 1_000_000_000_000),
);
const currencyArb = fc.constantFrom("CNY", "CNY", "USD", "JPY", "HKD", "KRW", "GBP", "XAU");

/** Age of the incident within the retention period, biased to recent and to the limits. */
const ageArb = fc.oneof(
  fc.integer({ min: 0, max: RETENTION_MS }),
  fc.integer({ min: 0, max: 30 * DAY_MS }),
  fc.constantFrom(0, DAY_MS, RETENTION_MS),
);

/** Active, or under open dispute before its deadline: either way it counts. */
const countedStatusArb = fc.oneof(
  fc.constant({ status: "active" as ReportStatus, disputeDeadlineAt: null }),
  fc
    .integer({ min: 1, max: 20 * DAY_MS })
    .map((ahead) => ({ status: "disputed" as ReportStatus, disputeDeadlineAt: NOW + ahead })),
);

function draftArb(options: {
  platform?: fc.Arbitrary<string>;
  confirmation?: fc.Arbitrary<Confirmation>;
  age?: fc.Arbitrary<number>;
  amount?: fc.Arbitrary<number>;
  currency?: fc.Arbitrary<string>;
  status?: fc.Arbitrary<{ status: ReportStatus; disputeDeadlineAt: number | null }>;
}): fc.Arbitrary<Draft> {
  return fc
    .record({
      platformId: options.platform ?? platformArb,
      category: fc.constantFrom(...CATEGORIES),
      confirmation: options.confirmation ?? anyConfirmation,
      age: options.age ?? ageArb,
      filedAfter: fc.integer({ min: 0, max: 10 * DAY_MS }),
      amountValue: options.amount ?? amountArb,
      amountCurrency: options.currency ?? currencyArb,
      state: options.status ?? countedStatusArb,
      statement: fc.option(fc.constant("I returned the item."), { nil: null }),
      verified: fc.boolean(),
    })
    .map(({ age, filedAfter, state, ...rest }) => ({
      ...rest,
      ...state,
      incidentAt: NOW - age,
      createdAt: Math.min(NOW, NOW - age + filedAfter),
    }));
}

const countedDraft = draftArb({});

/** Records that must never count: retracted, voided, expired, or older than retention. */
const neverCountedDraft = fc.oneof(
  draftArb({
    status: fc.record({
      status: fc.constantFrom<ReportStatus>("retracted", "voided", "expired"),
      disputeDeadlineAt: fc.option(fc.integer({ min: NOW - 30 * DAY_MS, max: NOW + 20 * DAY_MS }), {
        nil: null,
      }),
    }),
    age: fc.integer({ min: 0, max: RETENTION_MS + 400 * DAY_MS }),
  }),
  draftArb({ age: fc.integer({ min: RETENTION_MS + 1, max: RETENTION_MS + 3000 * DAY_MS }) }),
);

/** Under open dispute at or past its deadline. */
const overdueDraft = draftArb({
  status: fc
    .integer({ min: 0, max: 30 * DAY_MS })
    .map((past) => ({ status: "disputed" as ReportStatus, disputeDeadlineAt: NOW - past })),
});

const anyDraft = fc.oneof(
  { arbitrary: countedDraft, weight: 4 },
  { arbitrary: neverCountedDraft, weight: 1 },
  { arbitrary: overdueDraft, weight: 1 },
);

const recordSet = (maxLength: number) => fc.array(anyDraft, { maxLength }).map((ds) => withRefs(ds));

/** Mostly p0's records, heavy and recent, so its cap is often reached: the edge of §3's claim. */
const concentratedSet = fc
  .array(
    draftArb({
      platform: fc.constantFrom("p0", "p0", "p0", "p1"),
      age: fc.oneof(fc.integer({ min: 0, max: 60 * DAY_MS }), ageArb),
    }),
    { maxLength: 10 },
  )
  .map((ds) => withRefs(ds, "rpt_c"));

function rec(
  ref: string,
  platformId: string,
  confirmation: Confirmation,
  category: Category,
  amountValue: number,
  daysAgoN: number,
  now = NOW,
): ScoreRecord {
  const incidentAt = now - daysAgoN * DAY_MS;
  return {
    ref,
    platformId,
    category,
    confirmation,
    incidentAt,
    createdAt: incidentAt + DAY_MS / 2,
    amountValue,
    amountCurrency: "CNY",
    status: "active",
    disputeDeadlineAt: null,
    // The hand-built police and court records are verified ones (docs/scoring.md §2).
    verified: STRONG.includes(confirmation),
  };
}

const codes = (e: Evaluation) => e.reasons.map((r) => r.code);

// ---------------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------------

describe("pixiu-score/2 properties: records", () => {
  it("adding a counted record never lowers the score", () => {
    fc.assert(
      fc.property(recordSet(14), countedDraft, (base, draft) => {
        const before = evaluate(base, NOW);
        const after = evaluate([...base, { ref: "rpt_added", ...draft }], NOW);
        expect(after.score).toBeGreaterThanOrEqual(before.score);
        expect(after.evidence).toBeGreaterThanOrEqual(before.evidence - 1e-12);
        expect(BAND_RANK[after.band]).toBeGreaterThanOrEqual(BAND_RANK[before.band]);
        expect(after.summary.reports).toBe(before.summary.reports + 1);
        expect(after.score).toBeGreaterThanOrEqual(1);
      }),
      { numRuns: 1000 },
    );
  });

  /**
   * docs/scoring.md §3: "a record from a new platform adds its own weight and raises the
   * multiplier on everything already counted". That holds, strictly in evidence, when adding
   * the record to the platform already counted (p0) would not lift p0's cap above the cap a new
   * platform gets for the same record: not a police/court record added to a platform without
   * one (its cap would jump 1.5 → 3), and not a record heavier than 1.5 added to a platform
   * already at the strong cap. Generated within exactly those conditions.
   */
  it("a record from a new platform raises the score more than the same record from a platform already counted", () => {
    fc.assert(
      fc.property(
        draftArb({ platform: fc.constant("p0") }),
        fc.oneof(recordSet(12), concentratedSet),
        countedDraft,
        (anchor, rest, draft) => {
          const base = [{ ref: "rpt_anchor", ...anchor }, ...rest];
          const added: ScoreRecord = { ref: "rpt_added", ...draft };
          const strongP = base.some((r) => r.platformId === "p0" && counts(r) && verifiedStrong(r));
          const strongR = verifiedStrong(added);
          const w = recordWeight(added, NOW);
          fc.pre((!strongR || strongP) && (strongR || !strongP || w <= M.platformCap));

          const existing = evaluate([...base, { ...added, platformId: "p0" }], NOW);
          const fresh = evaluate([...base, { ...added, platformId: "p-new" }], NOW);
          expect(fresh.summary.platforms).toBe(existing.summary.platforms + 1);
          expect(fresh.evidence).toBeGreaterThan(existing.evidence);
          // Scores are rounded and saturate at 100, so only ≥ survives the mapping.
          expect(fresh.score).toBeGreaterThanOrEqual(existing.score);
        },
      ),
      { numRuns: 1000 },
    );
  });

  it("one episode filed as many reports gains nothing: copies in the same 7-day window change no number", () => {
    fc.assert(
      fc.property(recordSet(12), countedDraft, fc.integer({ min: 1, max: 9 }), (base, draft, copies) => {
        const one: ScoreRecord = { ref: "rpt_episode", ...draft };
        const many = Array.from({ length: copies }, (_, i) => ({ ...one, ref: `rpt_episode_${i}` }));
        const single = evaluate([...base, one], NOW);
        const repeated = evaluate([...base, one, ...many], NOW);
        expect(repeated.evidence).toBeCloseTo(single.evidence, 12);
        expect(repeated.score).toBe(single.score);
        expect(repeated.band).toBe(single.band);
        expect(repeated.summary.reports).toBe(single.summary.reports + copies);
        expect(codes(repeated)).toContain("BURST_MERGED");
      }),
      { numRuns: 500 },
    );
  });

  it("a burst window contributes its heaviest record only, windows are fixed from the epoch", () => {
    // 2026-11-19T00:00Z starts a window (20776 days after the epoch, a multiple of 7).
    const start = Date.parse("2026-11-19T00:00:00Z");
    expect((start / DAY_MS) % 7).toBe(0);
    const light = { ...rec("rpt_l", "A", "manual_review", "other_forgery", 30_000, 0), incidentAt: start };
    const heavy = {
      ...rec("rpt_h", "A", "platform_forensics", "other_forgery", 30_000, 0),
      incidentAt: start + 6 * DAY_MS,
    };
    const nextWindow = { ...light, ref: "rpt_n", incidentAt: start - 1 };
    const merged = evaluate([light, heavy], NOW);
    expect(merged.evidence).toBe(recordWeight(heavy, NOW));
    expect(codes(merged)).toContain("BURST_MERGED");
    const split = evaluate([nextWindow, heavy], NOW);
    expect(split.evidence).toBeCloseTo(recordWeight(heavy, NOW) + recordWeight(nextWindow, NOW), 12);
    expect(codes(split)).not.toContain("BURST_MERGED");
  });

  it("an older record never weighs more than a newer identical one", () => {
    fc.assert(
      fc.property(
        countedDraft,
        fc.integer({ min: 0, max: 2500 * DAY_MS }),
        recordSet(10),
        (draft, olderBy, base) => {
          const newer: ScoreRecord = { ref: "rpt_x", ...draft, platformId: "p-alone" };
          const older: ScoreRecord = { ...newer, incidentAt: newer.incidentAt - olderBy };
          expect(recordWeight(older, NOW)).toBeLessThanOrEqual(recordWeight(newer, NOW));
          expect(evaluate([older], NOW).score).toBeLessThanOrEqual(evaluate([newer], NOW).score);
          const withOlder = evaluate([...base, older], NOW);
          const withNewer = evaluate([...base, newer], NOW);
          // Sums of floats in another order may differ in the last bit (seed -245050494 did).
          expect(withOlder.evidence).toBeLessThanOrEqual(withNewer.evidence * (1 + 1e-12));
          expect(withOlder.score).toBeLessThanOrEqual(withNewer.score);
        },
      ),
      { numRuns: 1000 },
    );
  });

  it("a retracted, voided, expired or past-retention record changes nothing at all", () => {
    fc.assert(
      fc.property(recordSet(14), neverCountedDraft, (base, draft) => {
        const extra: ScoreRecord = { ref: "rpt_ignored", ...draft };
        expect(counts(extra)).toBe(false);
        expect(evaluate([...base, extra], NOW)).toStrictEqual(evaluate(base, NOW));
      }),
      { numRuns: 1000 },
    );
  });

  it("the retention limit is exact: 1826 days counts, one millisecond more does not", () => {
    const atLimit = {
      ...rec("rpt_a", "p0", "court_ruling", "ai_generated_image", 100, 0),
      incidentAt: NOW - RETENTION_MS,
    };
    const past = { ...atLimit, incidentAt: NOW - RETENTION_MS - 1 };
    expect(evaluate([atLimit], NOW).summary.reports).toBe(1);
    expect(evaluate([atLimit], NOW).score).toBe(scoreOf(1.8 * 0.5 ** (1826 / 365)));
    expect(evaluate([past], NOW).summary.reports).toBe(0);
    expect(evaluate([past], NOW).records).toEqual([]);
  });

  it("a record open past its dispute deadline changes no number, only flags itself", () => {
    fc.assert(
      fc.property(recordSet(14), overdueDraft, (base, draft) => {
        const overdue: ScoreRecord = { ref: "rpt_overdue", ...draft };
        const before = evaluate(base, NOW);
        const after = evaluate([...base, overdue], NOW);
        expect(after.score).toBe(before.score);
        expect(after.evidence).toBe(before.evidence);
        expect(after.band).toBe(before.band);
        expect(after.action).toBe(before.action);
        expect({ ...after.summary, disputed: 0 }).toStrictEqual({ ...before.summary, disputed: 0 });
        expect(after.summary.disputed).toBe(before.summary.disputed + 1);
        expect(after.records.find((r) => r.ref === "rpt_overdue")).toMatchObject({
          counted: false,
          disputed: true,
        });
        expect(codes(after)).toContain("DISPUTE_OVERDUE");
        const notOverdue = (e: Evaluation) => e.reasons.filter((r) => r.code !== "DISPUTE_OVERDUE");
        expect(notOverdue(after)).toStrictEqual(notOverdue(before));
      }),
      { numRuns: 1000 },
    );
  });

  it("a record under open dispute within its deadline weighs half, never more than undisputed", () => {
    fc.assert(
      fc.property(
        recordSet(14),
        draftArb({ status: fc.constant({ status: "active" as ReportStatus, disputeDeadlineAt: null }) }),
        fc.integer({ min: 1, max: 20 * DAY_MS }),
        (base, draft, ahead) => {
          const plain: ScoreRecord = { ref: "rpt_d", ...draft };
          const disputed: ScoreRecord = { ...plain, status: "disputed", disputeDeadlineAt: NOW + ahead };
          expect(recordWeight(disputed, NOW)).toBe(recordWeight(plain, NOW) * 0.5);
          const d = evaluate([...base, disputed], NOW);
          const u = evaluate([...base, plain], NOW);
          expect(d.evidence).toBeLessThanOrEqual(u.evidence + 1e-12);
          expect(d.score).toBeLessThanOrEqual(u.score);
          expect(d.summary.reports).toBe(u.summary.reports);
          expect(d.records.find((r) => r.ref === "rpt_d")).toMatchObject({ counted: true, disputed: true });
          expect(codes(d)).toContain("DISPUTED");
        },
      ),
      { numRuns: 1000 },
    );
  });

  it("the score is an integer in 0–100, zero exactly when nothing counts, with band and action per the table", () => {
    fc.assert(
      fc.property(recordSet(40), (records) => {
        const e = evaluate(records, NOW);
        const countedN = records.filter((r) => counts(r)).length;
        expect(Number.isInteger(e.score)).toBe(true);
        expect(e.score).toBeGreaterThanOrEqual(0);
        expect(e.score).toBeLessThanOrEqual(100);
        expect(e.summary.reports).toBe(countedN);
        expect(e.score === 0).toBe(countedN === 0);
        const band =
          countedN === 0
            ? "none"
            : e.score >= 75
              ? "critical"
              : e.score >= 50
                ? "high"
                : e.score >= 20
                  ? "medium"
                  : "low";
        expect(e.band).toBe(band);
        expect(e.action).toBe(
          band === "high" || band === "critical" ? "require_return" : band === "medium" ? "review" : "allow",
        );
      }),
      { numRuns: 1000 },
    );
  });

  it("saturates at exactly 100 and never beyond", () => {
    const records = ["a", "b", "c", "d", "e", "f", "g", "h"].map((p, i) =>
      rec(`rpt_${p}`, p, "court_ruling", "ai_generated_image", 1_000_000_000_000, i),
    );
    const e = evaluate(records, NOW);
    expect(e.score).toBe(100);
    expect(e.band).toBe("critical");
    expect(scoreOf(1e9)).toBe(100);
    expect(scoreOf(0)).toBe(0);
    expect(scoreOf(1e-9)).toBe(1);
  });

  it("band and action only ever rise with the score, for the default and any valid band thresholds", () => {
    const check = (model = M) => {
      for (let s = 1; s <= 100; s++) {
        const lo = bandOf(s - 1, s - 1 > 0, model);
        const hi = bandOf(s, true, model);
        expect(BAND_RANK[hi]).toBeGreaterThanOrEqual(BAND_RANK[lo]);
        expect(ACTION_RANK[actionOf(hi)]).toBeGreaterThanOrEqual(ACTION_RANK[actionOf(lo)]);
      }
    };
    check();
    expect([1, 19, 20, 49, 50, 74, 75, 100].map((s) => bandOf(s, true))).toEqual([
      "low",
      "low",
      "medium",
      "medium",
      "high",
      "high",
      "critical",
      "critical",
    ]);
    fc.assert(
      fc.property(fc.uniqueArray(fc.integer({ min: 1, max: 100 }), { minLength: 3, maxLength: 3 }), (t) => {
        const [medium, high, critical] = [...t].sort((a, b) => a - b) as [number, number, number];
        check({ ...M, bands: { medium, high, critical } });
      }),
      { numRuns: 300 },
    );
    fc.assert(
      fc.property(recordSet(20), recordSet(20), (a, b) => {
        const [x, y] = [evaluate(a, NOW), evaluate(b, NOW)].sort((p, q) => p.score - q.score) as [
          Evaluation,
          Evaluation,
        ];
        expect(BAND_RANK[x.band]).toBeLessThanOrEqual(BAND_RANK[y.band]);
        expect(ACTION_RANK[x.action]).toBeLessThanOrEqual(ACTION_RANK[y.action]);
      }),
      { numRuns: 500 },
    );
  });

  describe("one platform alone", () => {
    /** Adversarial: up to 80 reports, the largest amounts, bursts, everything recent. */
    const soloDraft = (confirmation: fc.Arbitrary<Confirmation>) =>
      draftArb({
        platform: fc.constant("solo"),
        confirmation,
        amount: fc.oneof(
          fc.constant(1_000_000_000_000),
          fc.integer({ min: 50_000_000, max: 1_000_000_000_000 }),
          amountArb,
        ),
        currency: fc.constantFrom("CNY", "GBP", "EUR"),
        age: fc.oneof(
          fc.constant(0),
          fc.integer({ min: 0, max: 7 * DAY_MS }),
          fc.integer({ min: 0, max: 90 * DAY_MS }),
          ageArb,
        ),
      });
    /** Other platforms' records that must not count, however strong they claim to be. */
    const noise = fc.array(fc.oneof(neverCountedDraft, overdueDraft), { maxLength: 20 });

    it("never reaches high without a police report or court ruling", () => {
      fc.assert(
        fc.property(
          fc.array(soloDraft(fc.constantFrom(...WEAK)), { minLength: 1, maxLength: 80 }),
          noise,
          (solo, other) => {
            const e = evaluate(withRefs([...solo, ...other]), NOW);
            expect(e.evidence).toBeLessThanOrEqual(M.platformCap);
            expect(e.score).toBeGreaterThanOrEqual(1);
            expect(e.score).toBeLessThanOrEqual(39);
            expect(["low", "medium"]).toContain(e.band);
            expect(e.action).not.toBe("require_return");
            expect(e.summary.platforms).toBe(1);
          },
        ),
        { numRuns: 500 },
      );
    });

    it("never reaches high with unverified police reports or court rulings: they weigh as forensics", () => {
      fc.assert(
        fc.property(
          fc.array(
            soloDraft(anyConfirmation).map((d) => ({ ...d, verified: false })),
            { minLength: 1, maxLength: 80 },
          ),
          noise,
          (solo, other) => {
            const e = evaluate(withRefs([...solo, ...other]), NOW);
            expect(e.evidence).toBeLessThanOrEqual(M.platformCap);
            expect(e.score).toBeLessThanOrEqual(39);
            expect(e.action).not.toBe("require_return");
            expect(codes(e)).not.toContain("STRONG_CONFIRMATION");
            const asForensics = withRefs(
              solo.map((d) =>
                STRONG.includes(d.confirmation) ? { ...d, confirmation: "platform_forensics" } : d,
              ),
            );
            expect(e.evidence).toBe(evaluate([...asForensics, ...withRefs(other, "rpt_o")], NOW).evidence);
          },
        ),
        { numRuns: 300 },
      );
    });

    it("with police or court confirmation reaches at most 63, never critical", () => {
      fc.assert(
        fc.property(
          fc.array(soloDraft(anyConfirmation), { minLength: 1, maxLength: 80 }),
          noise,
          (solo, other) => {
            const e = evaluate(withRefs([...solo, ...other]), NOW);
            expect(e.evidence).toBeLessThanOrEqual(M.strongPlatformCap);
            expect(e.score).toBeLessThanOrEqual(63);
            expect(e.band).not.toBe("critical");
          },
        ),
        { numRuns: 500 },
      );
    });

    it("the two limits are reached: 39 at the normal cap, 63 at the strong cap", () => {
      const weak = [0, 8, 16].map((d, i) =>
        rec(`rpt_w${i}`, "solo", "platform_forensics", "ai_generated_image", 1_000_000_000_000, d),
      );
      expect(evaluate(weak, NOW)).toMatchObject({
        score: 39,
        band: "medium",
        action: "review",
        evidence: 1.5,
      });
      const strong = [0, 8].map((d, i) =>
        rec(`rpt_s${i}`, "solo", "court_ruling", "ai_generated_image", 1_000_000_000_000, d),
      );
      expect(evaluate(strong, NOW)).toMatchObject({
        score: 63,
        band: "high",
        action: "require_return",
        evidence: 3,
      });
    });
  });

  it("is deterministic: same records and time give an identical answer, in any input order", () => {
    fc.assert(
      fc.property(
        recordSet(25).chain((rs) =>
          fc.tuple(fc.constant(rs), fc.shuffledSubarray(rs, { minLength: rs.length, maxLength: rs.length })),
        ),
        ([records, shuffled]) => {
          const snapshot = structuredClone(records);
          const first = evaluate(records, NOW);
          expect(records).toStrictEqual(snapshot);
          expect(evaluate(records, NOW)).toStrictEqual(first);
          const again = evaluate(shuffled, NOW);
          expect(again).toStrictEqual(first);
          expect(JSON.stringify(again.reasons)).toBe(JSON.stringify(first.reasons));
        },
      ),
      { numRuns: 500 },
    );
  });
});

// ---------------------------------------------------------------------------------------------
// Trust tables, after_lookup flags and collusion groups (docs/scoring.md §2a, §3c, §3d)
// ---------------------------------------------------------------------------------------------

const PLATFORMS = ["p0", "p1", "p2", "p3", "p4"] as const;

/** One state of the ledger's tables: each platform's trust and collusion group. */
interface World {
  trust: Record<string, number>;
  group: Record<string, string | null>;
}

const trustArb = fc.oneof(
  fc.constant(1),
  fc.constantFrom(0.05, 0.5),
  fc.double({ min: 0.05, max: 1, noNaN: true }),
);
const worldArb: fc.Arbitrary<World> = fc.record({
  trust: fc.record(Object.fromEntries(PLATFORMS.map((p) => [p, trustArb]))) as fc.Arbitrary<
    Record<string, number>
  >,
  group: fc.record(
    Object.fromEntries(PLATFORMS.map((p) => [p, fc.constantFrom<string | null>(null, null, "g1", "g2")])),
  ) as fc.Arbitrary<Record<string, string | null>>,
});

/** Records as the score read gives them in `world`: each with its platform's trust and group. */
function inWorld(
  records: readonly ScoreRecord[],
  world: World,
  flags: readonly boolean[] = [],
): ScoreRecord[] {
  return records.map((r, i) => ({
    ...r,
    trust: world.trust[r.platformId] ?? 1,
    group: world.group[r.platformId] ?? null,
    afterLookup: flags[i % Math.max(1, flags.length)] === true,
  }));
}

/** Matches as the read gives them in `world`. */
function matchesInWorld(photos: readonly (readonly PhotoMatchInput[])[], world: World): PhotoMatchInput[][] {
  return photos.map((p) =>
    p.map((m) => ({ ...m, trust: world.trust[m.platformId] ?? 1, group: world.group[m.platformId] ?? null })),
  );
}

const flagsArb = fc.array(fc.boolean(), { minLength: 1, maxLength: 14 });

describe("pixiu-score/2 properties: any trust table, after_lookup flags and collusion groups", () => {
  it("adding a counted record, flagged or not, never lowers the score", () => {
    fc.assert(
      fc.property(
        recordSet(14),
        worldArb,
        flagsArb,
        countedDraft,
        fc.boolean(),
        (base, world, flags, draft, flag) => {
          const records = inWorld(base, world, flags);
          const added = {
            ...inWorld([{ ref: "rpt_added", ...draft }], world)[0],
            afterLookup: flag,
          } as ScoreRecord;
          const before = evaluate(records, NOW);
          const after = evaluate([...records, added], NOW);
          expect(after.evidence).toBeGreaterThanOrEqual(before.evidence - 1e-12);
          expect(after.score).toBeGreaterThanOrEqual(before.score);
          expect(BAND_RANK[after.band]).toBeGreaterThanOrEqual(BAND_RANK[before.band]);
          expect(after.score).toBeGreaterThanOrEqual(1);
        },
      ),
      { numRuns: 1000 },
    );
  });

  it("adding a photo match never lowers the score", () => {
    fc.assert(
      fc.property(
        recordSet(10),
        worldArb,
        flagsArb,
        photosArb,
        matchArb(),
        fc.boolean(),
        (base, world, flags, photos, m, flag) => {
          const records = inWorld(base, world, flags);
          const before = evaluate(records, NOW, M, undefined, matchesInWorld(photos, world));
          const more = matchesInWorld([...photos.slice(0, -1), [...(photos.at(-1) ?? []), m]], world);
          const last = more.at(-1);
          if (last && last.length > 0) {
            last[last.length - 1] = { ...(last.at(-1) as PhotoMatchInput), afterLookup: flag };
          }
          const after = evaluate(records, NOW, M, undefined, more);
          expect(after.evidence).toBeGreaterThanOrEqual(before.evidence - 1e-12);
          expect(after.score).toBeGreaterThanOrEqual(before.score);
        },
      ),
      { numRuns: 500 },
    );
  });

  it("raising a platform's trust never lowers the score", () => {
    fc.assert(
      fc.property(
        recordSet(14),
        worldArb,
        flagsArb,
        fc.constantFrom(...PLATFORMS),
        trustArb,
        (base, world, flags, p, t) => {
          const low = { ...world, trust: { ...world.trust, [p]: Math.min(t, world.trust[p] ?? 1) } };
          const high = { ...world, trust: { ...world.trust, [p]: Math.max(t, world.trust[p] ?? 1) } };
          const a = evaluate(inWorld(base, low, flags), NOW);
          const b = evaluate(inWorld(base, high, flags), NOW);
          expect(b.evidence).toBeGreaterThanOrEqual(a.evidence - 1e-12);
          expect(b.score).toBeGreaterThanOrEqual(a.score);
        },
      ),
      { numRuns: 1000 },
    );
  });

  it("a retracted, voided, expired or past-retention record changes nothing, whatever its platform's trust, group or flag", () => {
    fc.assert(
      fc.property(
        recordSet(12),
        worldArb,
        flagsArb,
        neverCountedDraft,
        fc.boolean(),
        (base, world, flags, draft, flag) => {
          const records = inWorld(base, world, flags);
          const closed = {
            ...inWorld([{ ref: "rpt_closed", ...draft }], world)[0],
            afterLookup: flag,
          } as ScoreRecord;
          expect(evaluate([...records, closed], NOW)).toStrictEqual(evaluate(records, NOW));
        },
      ),
      { numRuns: 500 },
    );
  });

  it("is bounded, zero exactly when nothing counts, with band and action rising with the score", () => {
    fc.assert(
      fc.property(recordSet(20), worldArb, flagsArb, photosArb, (base, world, flags, photos) => {
        const e = evaluate(inWorld(base, world, flags), NOW, M, undefined, matchesInWorld(photos, world));
        expect(Number.isInteger(e.score)).toBe(true);
        expect(e.score).toBeGreaterThanOrEqual(0);
        expect(e.score).toBeLessThanOrEqual(100);
        expect(e.band).toBe(bandOf(e.score, e.band !== "none", M));
        expect(e.action).toBe(actionOf(e.band));
        expect(e.score === 0).toBe(e.band === "none");
      }),
      { numRuns: 500 },
    );
  });

  it("no single platform reaches high without a verified police report or court ruling, whatever its trust, group or flags", () => {
    fc.assert(
      fc.property(
        fc.array(draftArb({ platform: fc.constant("p0"), confirmation: fc.constantFrom(...WEAK) }), {
          minLength: 1,
          maxLength: 40,
        }),
        fc.array(matchArb({ platform: fc.constant("p0") }), { maxLength: 6 }),
        worldArb,
        flagsArb,
        (solo, matches, world, flags) => {
          const e = evaluate(
            inWorld(withRefs(solo), world, flags),
            NOW,
            M,
            undefined,
            matchesInWorld([matches], world),
          );
          expect(e.evidence).toBeLessThanOrEqual(M.platformCap);
          expect(e.score).toBeLessThanOrEqual(39);
          expect(e.action).not.toBe("require_return");
        },
      ),
      { numRuns: 500 },
    );
  });

  it("is deterministic for the same records, trust table, flags, groups and time, in any order", () => {
    fc.assert(
      fc.property(
        recordSet(20).chain((rs) =>
          fc.tuple(fc.constant(rs), fc.shuffledSubarray(rs, { minLength: rs.length, maxLength: rs.length })),
        ),
        worldArb,
        ([records, shuffled], world) => {
          // Flags follow the record, not its position: derived from its ref.
          const flagOf = (r: ScoreRecord) => r.ref.endsWith("1") || r.ref.endsWith("4");
          const put = (rs: readonly ScoreRecord[]) =>
            inWorld(rs, world).map((r) => ({ ...r, afterLookup: flagOf(r) }));
          const first = evaluate(put(records), NOW);
          expect(evaluate(put(shuffled), NOW)).toStrictEqual(first);
          expect(evaluate(put(records), NOW)).toStrictEqual(first);
        },
      ),
      { numRuns: 500 },
    );
  });

  it("a platform whose records are all flagged adds no consensus: E is the larger of the others' E and its own alone", () => {
    fc.assert(
      fc.property(recordSet(14), worldArb, fc.constantFrom(...PLATFORMS), (base, world, flagged) => {
        const records = inWorld(base, world).map((r) => ({ ...r, afterLookup: r.platformId === flagged }));
        const others = records.filter((r) => r.platformId !== flagged);
        const alone = records.filter((r) => r.platformId === flagged);
        const e = evaluate(records, NOW);
        const expected = Math.max(evaluate(others, NOW).evidence, evaluate(alone, NOW).evidence);
        expect(e.evidence).toBeCloseTo(expected, 12);
        if (alone.some((r) => counts(r))) {
          expect(codes(e)).toContain("AFTER_LOOKUP");
        }
      }),
      { numRuns: 1000 },
    );
  });

  it("clearing every flag gives exactly the answer without flags, and flags never raise a score", () => {
    fc.assert(
      fc.property(recordSet(14), worldArb, flagsArb, (base, world, flags) => {
        const flagged = evaluate(inWorld(base, world, flags), NOW);
        const cleared = evaluate(inWorld(base, world), NOW);
        expect(flagged.evidence).toBeLessThanOrEqual(cleared.evidence + 1e-12);
        expect(flagged.score).toBeLessThanOrEqual(cleared.score);
        expect(codes(cleared)).not.toContain("AFTER_LOOKUP");
      }),
      { numRuns: 1000 },
    );
  });

  it("a collusion group counts once: its members alone score as the heaviest of them, and grouping never raises a score", () => {
    fc.assert(
      fc.property(
        fc.array(draftArb({ platform: fc.constantFrom("p0", "p1", "p2") }), { minLength: 1, maxLength: 14 }),
        worldArb,
        (drafts, world) => {
          const records = withRefs(drafts);
          const grouped: World = { ...world, group: { ...world.group, p0: "g", p1: "g", p2: "g" } };
          const apart: World = { ...world, group: { ...world.group, p0: null, p1: null, p2: null } };
          const together = evaluate(inWorld(records, grouped), NOW);
          const each = ["p0", "p1", "p2"].map(
            (p) =>
              evaluate(
                inWorld(
                  records.filter((r) => r.platformId === p),
                  grouped,
                ),
                NOW,
              ).evidence,
          );
          expect(together.evidence).toBeCloseTo(Math.max(...each), 12);
          expect(together.evidence).toBeLessThanOrEqual(
            evaluate(inWorld(records, apart), NOW).evidence + 1e-12,
          );
          const contributors = new Set(records.filter((r) => counts(r)).map((r) => r.platformId));
          if (contributors.size > 1) {
            expect(codes(together)).toContain("LINKED_PLATFORMS");
          } else {
            expect(codes(together)).not.toContain("LINKED_PLATFORMS");
          }
        },
      ),
      { numRuns: 1000 },
    );
  });

  it("with every trust 1, no flag and no group, the answer is exactly pixiu-score/1.1's", () => {
    fc.assert(
      fc.property(recordSet(20), (records) => {
        const plain = records.map(({ trust: _t, group: _g, afterLookup: _a, ...r }) => r);
        const world: World = {
          trust: Object.fromEntries(PLATFORMS.map((p) => [p, 1])),
          group: Object.fromEntries(PLATFORMS.map((p) => [p, null])),
        };
        expect(evaluate(inWorld(records, world), NOW)).toStrictEqual(evaluate(plain, NOW));
      }),
      { numRuns: 300 },
    );
  });
});

// ---------------------------------------------------------------------------------------------
// The claim's photos (docs/scoring.md §3b)
// ---------------------------------------------------------------------------------------------

/** A few stored hashes, so matches of one photo often share one (grouped in the answer). */
const storedHashArb = fc.constantFrom(..."abcd".split("").map((c) => c.repeat(64)));

/** Refs that are the generated records' own (deduplicated) or other buyers' cases. */
const matchRefArb = fc.oneof(
  fc.constantFrom("rpt_000", "rpt_001", "rpt_002"),
  fc.integer({ min: 0, max: 20 }).map((i) => `rpt_other_${i}`),
);

function matchArb(
  options: {
    platform?: fc.Arbitrary<string>;
    ref?: fc.Arbitrary<string>;
    distance?: fc.Arbitrary<number>;
    age?: fc.Arbitrary<number>;
    deadline?: fc.Arbitrary<number | null>;
  } = {},
): fc.Arbitrary<PhotoMatchInput> {
  return fc
    .record({
      hash: storedHashArb,
      distance:
        options.distance ?? fc.oneof(fc.integer({ min: 0, max: 31 }), fc.integer({ min: 0, max: 64 })),
      ref: options.ref ?? matchRefArb,
      platformId: options.platform ?? platformArb,
      category: fc.constantFrom(...CATEGORIES),
      age:
        options.age ??
        fc.oneof(ageArb, fc.integer({ min: RETENTION_MS + 1, max: RETENTION_MS + 400 * DAY_MS })),
      deadline:
        options.deadline ??
        fc.oneof(
          { arbitrary: fc.constant(null), weight: 4 },
          { arbitrary: fc.integer({ min: -30 * DAY_MS, max: 20 * DAY_MS }).map((d) => NOW + d), weight: 1 },
        ),
    })
    .map(({ age, deadline, ...rest }) => ({ ...rest, incidentAt: NOW - age, disputeDeadlineAt: deadline }));
}

const photosArb = fc.array(fc.array(matchArb(), { maxLength: 5 }), { maxLength: 4 });

/** Whether a match counts, per docs/scoring.md §3b, written independently of the model. */
function photoCounts(m: PhotoMatchInput, ownRefs: ReadonlySet<string>): boolean {
  const overdue =
    m.disputeDeadlineAt !== null && m.disputeDeadlineAt !== undefined && NOW >= m.disputeDeadlineAt;
  return m.distance <= 31 && !ownRefs.has(m.ref) && m.incidentAt >= NOW - RETENTION_MS && !overdue;
}

describe("pixiu-score/2 properties: the claim's photos", () => {
  it("adding a photo match never lowers the score, and never touches the records' part", () => {
    fc.assert(
      fc.property(recordSet(12), photosArb, matchArb(), fc.nat(), (records, photos, added, which) => {
        const before = evaluate(records, NOW, M, undefined, photos);
        const more = photos.map((p) => [...p]);
        const target = which % (more.length + 1);
        if (target === more.length) {
          more.push([added]);
        } else {
          more[target]?.push(added);
        }
        const after = evaluate(records, NOW, M, undefined, more);
        expect(after.score).toBeGreaterThanOrEqual(before.score);
        expect(after.evidence).toBeGreaterThanOrEqual(before.evidence - 1e-12);
        expect(BAND_RANK[after.band]).toBeGreaterThanOrEqual(BAND_RANK[before.band]);
        expect(ACTION_RANK[after.action]).toBeGreaterThanOrEqual(ACTION_RANK[before.action]);
        expect(after.summary).toStrictEqual(before.summary);
        expect(after.records).toStrictEqual(before.records);
        // And photos at all, against none.
        expect(before.score).toBeGreaterThanOrEqual(evaluate(records, NOW).score);
      }),
      { numRuns: 1000 },
    );
  });

  it("without photo evidence that counts, the answer is the records-only one (plus empty `photos`)", () => {
    // Matches that cannot count: too far, the buyer's own records, past retention, overdue dispute.
    const excluded = fc.oneof(
      matchArb({ distance: fc.integer({ min: 32, max: 256 }) }),
      matchArb({ ref: fc.constantFrom("rpt_000", "rpt_001", "rpt_002") }),
      matchArb({ age: fc.integer({ min: RETENTION_MS + 1, max: RETENTION_MS + 3000 * DAY_MS }) }),
      matchArb({ deadline: fc.integer({ min: 0, max: 30 * DAY_MS }).map((past) => NOW - past) }),
    );
    fc.assert(
      fc.property(
        fc.array(countedDraft, { minLength: 3, maxLength: 12 }).map((ds) => withRefs(ds)),
        fc.array(fc.array(excluded, { maxLength: 5 }), { maxLength: 4 }),
        (records, photos) => {
          const alone = evaluate(records, NOW);
          expect(alone).not.toHaveProperty("photos");
          expect(evaluate(records, NOW, M, undefined, undefined)).toStrictEqual(alone);
          const { photos: shown, ...rest } = evaluate(records, NOW, M, undefined, photos);
          expect(rest).toStrictEqual(alone);
          expect(shown).toStrictEqual(photos.map((_, index) => ({ index, matches: [] })));
        },
      ),
      { numRuns: 1000 },
    );
  });

  it("one platform's records and photo matches together never reach high without police or a court", () => {
    const soloRecord = draftArb({
      platform: fc.constant("solo"),
      confirmation: fc.constantFrom(...WEAK),
      amount: fc.oneof(fc.constant(1_000_000_000_000), amountArb),
      age: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 90 * DAY_MS }), ageArb),
    });
    const soloMatch = matchArb({ platform: fc.constant("solo"), age: fc.oneof(fc.constant(0), ageArb) });
    fc.assert(
      fc.property(
        fc.array(soloRecord, { maxLength: 40 }).map((ds) => withRefs(ds)),
        fc.array(fc.array(soloMatch, { maxLength: 8 }), { minLength: 1, maxLength: 16 }),
        (records, photos) => {
          const e = evaluate(records, NOW, M, undefined, photos);
          expect(e.evidence).toBeLessThanOrEqual(M.platformCap);
          expect(e.score).toBeLessThanOrEqual(39);
          expect(BAND_RANK[e.band]).toBeLessThanOrEqual(BAND_RANK.medium);
          expect(e.action).not.toBe("require_return");
          if (records.length === 0) {
            // Its fingerprints alone: one photo match's weight at most.
            expect(e.evidence).toBeLessThanOrEqual(M.photoWeight);
            expect(e.score).toBeLessThanOrEqual(scoreOf(M.photoWeight));
          }
        },
      ),
      { numRuns: 1000 },
    );
  });

  it("with police or court records, one platform with its photo matches still stops at 63", () => {
    fc.assert(
      fc.property(
        fc.array(draftArb({ platform: fc.constant("solo") }), { minLength: 1, maxLength: 30 }),
        fc.array(fc.array(matchArb({ platform: fc.constant("solo") }), { maxLength: 8 }), { maxLength: 16 }),
        (drafts, photos) => {
          const e = evaluate(withRefs(drafts), NOW, M, undefined, photos);
          expect(e.evidence).toBeLessThanOrEqual(M.strongPlatformCap);
          expect(e.score).toBeLessThanOrEqual(63);
        },
      ),
      { numRuns: 500 },
    );
  });

  it("is bounded 0–100 with a consistent band: none exactly when no record and no photo match counts", () => {
    fc.assert(
      fc.property(recordSet(20), photosArb, (records, photos) => {
        const e = evaluate(records, NOW, M, undefined, photos);
        expect(Number.isInteger(e.score)).toBe(true);
        expect(e.score).toBeGreaterThanOrEqual(0);
        expect(e.score).toBeLessThanOrEqual(100);
        const own = new Set(records.map((r) => r.ref));
        const anything =
          records.some((r) => counts(r)) || photos.some((p) => p.some((m) => photoCounts(m, own)));
        expect(e.band === "none").toBe(!anything);
        expect(e.score === 0).toBe(!anything);
        expect(e.band).toBe(bandOf(e.score, anything));
        expect(e.action).toBe(actionOf(e.band));
        expect(e.photos?.map((p) => p.index)).toEqual(photos.map((_, i) => i));
        // A photo shows exactly the stored hashes of its matches that count.
        for (const [i, p] of photos.entries()) {
          const hashes = new Set(p.filter((m) => photoCounts(m, own)).map((m) => m.hash));
          expect(e.photos?.[i]?.matches).toHaveLength(hashes.size);
        }
        const codes = e.reasons.map((r) => r.code);
        expect(codes.includes("PHOTO_MATCH")).toBe(e.photos?.some((p) => p.matches.length > 0));
        expect(codes.includes("PHOTO_MATCH_NO_RECORDS")).toBe(
          codes.includes("PHOTO_MATCH") && !records.some((r) => counts(r)),
        );
      }),
      { numRuns: 1000 },
    );
  });

  it("is deterministic: same records, photos and time give an identical answer, in any order of records and matches", () => {
    fc.assert(
      fc.property(
        recordSet(20).chain((rs) =>
          fc.tuple(fc.constant(rs), fc.shuffledSubarray(rs, { minLength: rs.length, maxLength: rs.length })),
        ),
        photosArb.chain((ps) =>
          fc.tuple(
            fc.constant(ps),
            fc.tuple(...ps.map((p) => fc.shuffledSubarray(p, { minLength: p.length, maxLength: p.length }))),
          ),
        ),
        ([records, shuffledRecords], [photos, shuffledPhotos]) => {
          const snapshot = structuredClone({ records, photos });
          const first = evaluate(records, NOW, M, undefined, photos);
          expect({ records, photos }).toStrictEqual(snapshot);
          expect(evaluate(records, NOW, M, undefined, photos)).toStrictEqual(first);
          expect(evaluate(shuffledRecords, NOW, M, undefined, shuffledPhotos)).toStrictEqual(first);
        },
      ),
      { numRuns: 500 },
    );
  });

  it("one match weighs 0.75 whatever its age within retention, half under open dispute; per platform only its heaviest counts", () => {
    const m = (platformId: string, days: number, extra: Partial<PhotoMatchInput> = {}): PhotoMatchInput => ({
      hash: "e".repeat(64),
      distance: 6,
      ref: `rpt_${platformId}_${days}`,
      platformId,
      category: "edited_image",
      incidentAt: NOW - days * DAY_MS,
      ...extra,
    });
    expect(M.photoWeight).toBe(0.75);
    expect(M.photoMaxDistance).toBe(31);
    expect(evaluate([], NOW, M, undefined, [[m("A", 0)]]).evidence).toBe(0.75);
    expect(evaluate([], NOW, M, undefined, [[m("A", 1826)]]).evidence).toBe(0.75);
    expect(evaluate([], NOW, M, undefined, [[m("A", 1827)]]).evidence).toBe(0);
    expect(evaluate([], NOW, M, undefined, [[m("A", 0, { disputeDeadlineAt: NOW + DAY_MS })]]).evidence).toBe(
      0.375,
    );
    // Three matches of platform A over two photos: the heaviest only.
    const a = evaluate([], NOW, M, undefined, [
      [m("A", 0), m("A", 100)],
      [m("A", 10, { hash: "f".repeat(64) })],
    ]);
    expect(a.evidence).toBe(0.75);
    expect(a.photos?.map((p) => p.matches.length)).toEqual([1, 1]);
    expect(a.photos?.[0]?.matches[0]).toStrictEqual({
      distance: 6,
      platforms: 1,
      categories: ["edited_image"],
      firstSeenAt: "2026-08-17T00:00:00Z",
      lastSeenAt: "2026-11-25T00:00:00Z",
    });
    expect(a.reasons.map((r) => r.detail)).toContain(
      "photos 1 and 2 match photos confirmed forged on 1 platform (nearest distance 6)",
    );
    // 31 counts, 32 does not.
    expect(evaluate([], NOW, M, undefined, [[m("A", 0, { distance: 31 })]]).score).toBe(22);
    expect(evaluate([], NOW, M, undefined, [[m("A", 0, { distance: 32 })]]).score).toBe(0);
  });
});

// ---------------------------------------------------------------------------------------------
// Where the docs' "new platform beats one more report" claim does not hold
// ---------------------------------------------------------------------------------------------

describe("outside the conditions of the new-platform claim (docs/scoring.md §3)", () => {
  it("a police report lifts its own platform's cap, so it can be worth more there than on a new platform", () => {
    const base = [0, 8, 16].map((d, i) =>
      rec(`rpt_${i}`, "A", "platform_forensics", "ai_generated_image", 30_000, d),
    );
    const police = rec("rpt_police", "A", "police_report", "other_forgery", 30_000, 1460);
    const onA = evaluate([...base, police], NOW);
    const onB = evaluate([...base, { ...police, platformId: "B" }], NOW);
    expect(onA.score).toBe(63);
    expect(onA.band).toBe("high");
    expect(onB.score).toBe(54);
    expect(onB.score).toBeLessThan(onA.score);
  });

  it("a record heavier than 1.5 can be worth more on a platform at the strong cap than on a new one", () => {
    const old = 1780;
    const base = [
      rec("rpt_p", "A", "police_report", "other_forgery", 30_000, old),
      ...["B", "C", "D", "E"].map((p) => rec(`rpt_${p}`, p, "manual_review", "other_forgery", 30_000, old)),
    ];
    const heavy = rec("rpt_heavy", "A", "platform_forensics", "ai_generated_image", 50_000_000, 0);
    expect(recordWeight(heavy, NOW)).toBe(2);
    const onA = evaluate([...base, heavy], NOW);
    const onF = evaluate([...base, { ...heavy, platformId: "F" }], NOW);
    expect(onF.summary.platforms).toBe(6);
    expect(onF.evidence).toBeLessThan(onA.evidence);
    expect(onF.score).toBeLessThan(onA.score);
  });
});

// ---------------------------------------------------------------------------------------------
// docs/scoring.md §6, number for number
// ---------------------------------------------------------------------------------------------

describe("worked examples of docs/scoring.md §6 (evaluated on 2026-11-25)", () => {
  // The examples give days, not times of day; each must hold at any time on that date.
  const times = ["2026-11-25T00:00:00Z", "2026-11-25T12:00:00Z", "2026-11-25T23:59:59Z"].map(Date.parse);

  it("three platforms: 81, critical, require_return", () => {
    for (const now of times) {
      const a = rec("rpt_a", "A", "platform_forensics", "ai_generated_image", 129_900, 40, now);
      const b = rec("rpt_b", "B", "merchant_evidence", "ai_generated_image", 459_900, 12, now);
      const c = rec("rpt_c", "C", "manual_review", "edited_image", 25_900, 5, now);
      expect(decay(40 * DAY_MS)).toBeCloseTo(0.9269, 4);
      expect(decay(12 * DAY_MS)).toBeCloseTo(0.9775, 4);
      expect(decay(5 * DAY_MS)).toBeCloseTo(0.9905, 4);
      expect(recordWeight(a, now)).toBeCloseTo(0.9269, 4);
      expect(recordWeight(b, now)).toBeCloseTo(0.9775, 4);
      expect(recordWeight(c, now)).toBeCloseTo(0.5943, 4);
      const e = evaluate([a, b, c], now);
      expect(e.evidence).toBeCloseTo(4.9973, 4);
      expect(e.score).toBe(81);
      expect(e.band).toBe("critical");
      expect(e.action).toBe("require_return");
      expect(e.reasons).toStrictEqual([
        { code: "CONFIRMED_CASES", detail: "3 confirmed cases counted" },
        { code: "MULTI_PLATFORM", detail: "confirmed on 3 platforms" },
        { code: "LARGE_AMOUNT", detail: "largest case amount is CNY 3,000 or more (relatively large)" },
        { code: "RECENT", detail: "most recent incident 5 days ago" },
      ]);
      expect(e.records.map((r) => r.amountTier)).toEqual(["minor", "relatively_large", "minor"]);
      expect(e.summary).toMatchObject({
        reports: 3,
        platforms: 3,
        amounts: [{ currency: "CNY", value: 615_700 }],
      });
    }
  });

  it("§6 a report filed right after a look-up adds no consensus: 27 until cleared, then 53", () => {
    for (const now of times) {
      const a = rec("rpt_a", "A", "platform_forensics", "ai_generated_image", 129_900, 40, now);
      const b = { ...rec("rpt_b", "B", "manual_review", "edited_image", 25_900, 1, now), afterLookup: true };
      expect(recordWeight(b, now)).toBeCloseTo(0.5989, 4);
      expect(evaluate([a], now).score).toBe(27);
      const flagged = evaluate([a, b], now);
      expect(flagged.evidence).toBeCloseTo(0.9269, 4);
      expect(flagged.score).toBe(27);
      expect(flagged.band).toBe("medium");
      expect(codes(flagged)).toContain("AFTER_LOOKUP");
      expect(flagged.records.map((r) => r.afterLookup)).toEqual([true, false]);
      const cleared = evaluate([a, { ...b, afterLookup: false }], now);
      expect(cleared.evidence).toBeCloseTo(2.2886, 4);
      expect(cleared.score).toBe(53);
      expect(cleared.band).toBe("high");
    }
  });

  it("§6 two platforms of one collusion group count as one: 28, where unrelated they give 62", () => {
    for (const now of times) {
      const x = {
        ...rec("rpt_x", "X", "platform_forensics", "ai_generated_image", 129_900, 10, now),
        group: "X",
      };
      const y = {
        ...rec("rpt_y", "Y", "merchant_evidence", "ai_generated_image", 459_900, 12, now),
        group: "X",
      };
      const linked = evaluate([x, y], now);
      expect(linked.evidence).toBeCloseTo(0.9812, 4);
      expect(linked.score).toBe(28);
      expect(codes(linked)).toContain("LINKED_PLATFORMS");
      const apart = evaluate(
        [
          { ...x, group: null },
          { ...y, group: null },
        ],
        now,
      );
      expect(apart.evidence).toBeCloseTo(2.938, 3);
      expect(apart.score).toBe(62);
      expect(codes(apart)).not.toContain("LINKED_PLATFORMS");
    }
  });

  it("one platform, five reports: 39, medium, review", () => {
    for (const now of times) {
      const records = [1, 2, 3, 10, 30].map((d) =>
        rec(`rpt_${d}`, "A", "platform_forensics", "ai_generated_image", 30_000, d, now),
      );
      expect(decay(1 * DAY_MS) + decay(10 * DAY_MS) + decay(30 * DAY_MS)).toBeCloseTo(2.924, 3);
      const e = evaluate(records, now);
      expect(e.evidence).toBe(1.5);
      expect(e.score).toBe(39);
      expect(e.band).toBe("medium");
      expect(e.action).toBe("review");
      expect(codes(e)).toStrictEqual([
        "CONFIRMED_CASES",
        "SINGLE_PLATFORM",
        "PLATFORM_CAP",
        "BURST_MERGED",
        "RECENT",
      ]);
      expect(e.reasons[3]?.detail).toBe(
        "2 reports from the same platform within a 7-day window counted once",
      );
    }
  });

  it("one platform with police reports: 59, high", () => {
    for (const now of times) {
      const records = [10, 30].map((d) =>
        rec(`rpt_${d}`, "A", "police_report", "ai_generated_image", 30_000, d, now),
      );
      const e = evaluate(records, now);
      expect(e.evidence).toBeCloseTo(2.696, 3);
      expect(e.evidence / 3).toBeCloseTo(0.8987, 4);
      expect(e.score).toBe(59);
      expect(e.band).toBe("high");
      expect(e.action).toBe("require_return");
      expect(codes(e)).toStrictEqual(["CONFIRMED_CASES", "SINGLE_PLATFORM", "STRONG_CONFIRMATION", "RECENT"]);
    }
  });

  it("§6 a new account reusing a photo that two platforms confirmed: 53, high, require_return", () => {
    for (const now of times) {
      const photo: PhotoMatchInput[] = [
        {
          hash: "1".repeat(64),
          distance: 6,
          ref: "rpt_a",
          platformId: "A",
          category: "edited_image",
          incidentAt: now - 10 * DAY_MS,
        },
        {
          hash: "1".repeat(64),
          distance: 6,
          ref: "rpt_b",
          platformId: "B",
          category: "ai_generated_image",
          incidentAt: now - 40 * DAY_MS,
        },
      ];
      const e = evaluate([], now, M, undefined, [[], photo]);
      expect(e.evidence).toBe(2.25);
      expect(e.score).toBe(53);
      expect(e.band).toBe("high");
      expect(e.action).toBe("require_return");
      expect(e.reasons).toStrictEqual([
        {
          code: "PHOTO_MATCH_NO_RECORDS",
          detail:
            "no confirmed case counts for these subjects, but the claim's photos match photos confirmed forged: the score is about this claim",
        },
        {
          code: "PHOTO_MATCH",
          detail: "photo 2 matches a photo confirmed forged on 2 platforms (distance 6)",
        },
      ]);
      expect(e.summary).toMatchObject({ reports: 0, platforms: 0, firstReportedAt: null });
      // One platform's confirmation alone: review.
      const one = evaluate([], now, M, undefined, [photo.slice(0, 1)]);
      expect(one.score).toBe(22);
      expect(one.band).toBe("medium");
    }
  });

  it("§6 a record and a photo from one platform stop at its cap (39); the photo from a second platform brings consensus (68)", () => {
    for (const now of times) {
      const record = rec("rpt_own", "A", "platform_forensics", "ai_generated_image", 129_900, 10, now);
      const fromA: PhotoMatchInput = {
        hash: "2".repeat(64),
        distance: 4,
        ref: "rpt_other_account",
        platformId: "A",
        category: "ai_generated_image",
        incidentAt: now - 10 * DAY_MS,
      };
      const own: PhotoMatchInput = { ...fromA, ref: "rpt_own" };
      // The buyer's own case's photo counts once, as the record.
      const { photos: _p, ...deduped } = evaluate([record], now, M, undefined, [[own]]);
      expect(deduped).toStrictEqual(evaluate([record], now));
      const capped = evaluate([record], now, M, undefined, [[own, fromA]]);
      expect(recordWeight(record, now) + 0.75).toBeCloseTo(1.7312, 4);
      expect(capped.evidence).toBe(1.5);
      expect(capped.score).toBe(39);
      expect(capped.band).toBe("medium");
      expect(codes(capped)).toStrictEqual([
        "CONFIRMED_CASES",
        "SINGLE_PLATFORM",
        "PHOTO_MATCH",
        "PLATFORM_CAP",
        "RECENT",
      ]);
      const agreed = evaluate([record], now, M, undefined, [
        [own, fromA, { ...fromA, ref: "rpt_b", platformId: "B" }],
      ]);
      expect(agreed.evidence).toBe(3.375);
      expect(agreed.score).toBe(68);
      expect(agreed.band).toBe("high");
    }
  });

  it("§4: the normal cap maps to 39 (medium), the strong cap to 63 (high)", () => {
    expect(scoreOf(M.platformCap)).toBe(39);
    expect(bandOf(scoreOf(M.platformCap), true)).toBe("medium");
    expect(scoreOf(M.strongPlatformCap)).toBe(63);
    expect(bandOf(scoreOf(M.strongPlatformCap), true)).toBe("high");
  });
});

// ---------------------------------------------------------------------------------------------
// Model version
// ---------------------------------------------------------------------------------------------

describe("model version", () => {
  const defaults = {
    RETENTION_DAYS: 1826,
    SCORE_BANDS: undefined,
    SCORE_FX_RATES: undefined,
    MAX_MATCH_DISTANCE: 31,
  };

  it("is pixiu-score/2 with the documented defaults, fingerprinted when a default is overridden", () => {
    expect(MODEL_VERSION).toBe("pixiu-score/2");
    expect(configureModel(defaults).version).toBe("pixiu-score/2");
    expect(configureModel(defaults).model).toStrictEqual(M);
    const longer = configureModel({ ...defaults, RETENTION_DAYS: 3650 });
    expect(longer.version).toMatch(/^pixiu-score\/2\+[0-9a-f]{8}$/);
    expect(longer.model.retentionDays).toBe(3650);
    expect(configureModel({ ...defaults, RETENTION_DAYS: 3650 }).version).toBe(longer.version);
    const bands = configureModel({ ...defaults, SCORE_BANDS: [10, 40, 80] });
    const fx = configureModel({ ...defaults, SCORE_FX_RATES: { USD: 7.1 } });
    expect(bands.version).toMatch(/^pixiu-score\/2\+[0-9a-f]{8}$/);
    expect(fx.version).toMatch(/^pixiu-score\/2\+[0-9a-f]{8}$/);
    expect(new Set([longer.version, bands.version, fx.version]).size).toBe(3);
    expect(fx.model.fxToCny.USD).toBe(7.1);
    expect(fx.model.fxToCny.EUR).toBe(7.8);
    // Setting a value to its default is not an override: same model, same version.
    const b = M.bands;
    expect(configureModel({ ...defaults, SCORE_BANDS: [b.medium, b.high, b.critical] }).version).toBe(
      "pixiu-score/2",
    );
    expect(configureModel({ ...defaults, SCORE_FX_RATES: { USD: M.fxToCny.USD as number } }).version).toBe(
      "pixiu-score/2",
    );
  });

  it("is in the answer a platform receives, which agrees with the pure model", async () => {
    const platform = await newPlatform();
    const subjects = await newBuyer();
    const created = await callJson<{ incidentAt: string; createdAt: string; id: string }>("/v1/reports", {
      token: await platform.token(),
      body: reportBody(subjects, {
        incidentAt: daysAgo(40),
        confirmedAt: daysAgo(39),
        confirmation: "merchant_evidence",
        category: "reused_image",
        amount: { value: 459_900, currency: "CNY" },
      }),
    });
    expect(created.status).toBe(201);
    const answer = await callJson<Evaluation & { model: string; evaluatedAt: string }>("/v1/scores/query", {
      token: await platform.token(),
      body: { subjects, purpose: "refund_review" },
    });
    expect(answer.status).toBe(200);
    expect(answer.body.model).toBe("pixiu-score/2");
    const expected = evaluate(
      [
        {
          ref: created.body.id,
          platformId: platform.id,
          category: "reused_image",
          confirmation: "merchant_evidence",
          incidentAt: Date.parse(created.body.incidentAt),
          createdAt: Date.parse(created.body.createdAt),
          amountValue: 459_900,
          amountCurrency: "CNY",
          status: "active",
          disputeDeadlineAt: null,
        },
      ],
      Date.parse(answer.body.evaluatedAt),
    );
    expect(answer.body.score).toBe(expected.score);
    expect(answer.body.score).toBe(scoreOf(0.8 * 0.9 * 1.25 * 0.5 ** (40 / 365)));
    expect(answer.body.band).toBe(expected.band);
    expect(answer.body.action).toBe(expected.action);
    expect(answer.body.reasons).toStrictEqual(expected.reasons);
  });
});
