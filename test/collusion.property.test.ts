/**
 * The collusion test (worker/scoring/collusion.ts, docs/scoring.md §3d), pure: honest markets of
 * unequal platforms flag nothing, coalitions of two and three platforms and a coalition that
 * rotates its pairs are found as exactly their members, the answer does not depend on the order
 * of the input, and the Poisson tail agrees with known values.
 *
 * The markets come from test/collusion-market.ts: each buyer's reporters drawn at random by
 * platform size, either each platform on its own or one after the other.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { COLLUSION, findCollusion, poissonTail } from "../worker/scoring/collusion";
import { copies, exactly, honestMarket, type MarketOptions, random, shuffled } from "./collusion-market";

/** Generous: the suite runs files side by side, and one market is up to 100,000 buyers. */
const SLOW = 120_000;

const kind = fc.constantFrom<MarketOptions["kind"]>("independent", "draws");

/** Any honest market: 4–16 platforms of sizes up to e^5 apart, 100 to 100,000 shared buyers. */
const anyMarket = fc.record({
  seed: fc.integer({ min: 0, max: 2 ** 31 - 1 }),
  platforms: fc.integer({ min: 4, max: 16 }),
  spread: fc.double({ min: 0, max: 5, noNaN: true }),
  buyers: fc.double({ min: 2, max: 5, noNaN: true }).map((e) => Math.floor(10 ** e)),
  kind,
  reach: fc.double({ min: 0.5, max: 4, noNaN: true }),
});

/** A market a coalition hides in: 8–14 platforms, 10,000 to 50,000 shared buyers. */
const coalitionMarket = fc.record({
  seed: fc.integer({ min: 0, max: 2 ** 31 - 1 }),
  platforms: fc.integer({ min: 8, max: 14 }),
  spread: fc.double({ min: 1, max: 4, noNaN: true }),
  buyers: fc.double({ min: 4, max: 4.7, noNaN: true }).map((e) => Math.floor(10 ** e)),
  kind,
  reach: fc.double({ min: 0.5, max: 3.5, noNaN: true }),
});

/**
 * `size` members among the smaller half of the market whose honest overlap (buyers reported by
 * exactly them) is at most a quarter of `extra`: a few hundred more buyers are then beyond what
 * chance gives them. (Two large platforms' honest overlap can hold thousands of buyers; a few
 * hundred more are not beyond chance there, and the test rightly says nothing.)
 */
function coalitionIn(
  market: { bySize: string[]; buyers: string[][] },
  size: number,
  extra: number,
  seed: number,
  overlap: (members: string[]) => number,
): string[] | null {
  const next = random(seed);
  const small = market.bySize.slice(0, Math.ceil(market.bySize.length / 2));
  for (let attempt = 0; attempt < 50; attempt++) {
    const members = new Set<string>();
    while (members.size < size) {
      members.add(small[Math.floor(next() * small.length)] as string);
    }
    const sorted = [...members].sort();
    if (overlap(sorted) * 4 <= extra) {
      return sorted;
    }
  }
  return null;
}

const summary = (r: ReturnType<typeof findCollusion>) => ({
  sets: r.sets.map((s) => `${s.members.join(",")} ${s.observed}/${s.expected.toFixed(1)}`),
  groups: [...r.groups],
});

describe("poissonTail", () => {
  it("agrees with known values (60-digit sums), deep in the tail too", () => {
    const known: [number, number, number][] = [
      [10, 2, 4.64980750172638e-5],
      [1, 1, 0.6321205588285577],
      [5, 5, 0.5595067149347875],
      [40, 39.5, 0.4893902495328699],
      [20, 3, 8.314423588191699e-11],
      [50, 10, 1.854726883869799e-19],
      [100, 20, 3.488878669689653e-37],
    ];
    for (const [k, mu, p] of known) {
      expect(poissonTail(k, mu) / p, `P(X ≥ ${k} | ${mu})`).toBeCloseTo(1, 9);
    }
    expect(poissonTail(0, 5)).toBe(1);
    expect(poissonTail(3, 0)).toBe(0);
    expect(poissonTail(10_000, 10)).toBe(0);
  });
});

describe("findCollusion", () => {
  it("nothing among too few buyers, nor in an empty ledger (the doc's example)", () => {
    expect(findCollusion([]).sets).toEqual([]);
    expect(
      findCollusion([
        ["a", "b"],
        ["a", "b"],
        ["b", "c"],
      ]).sets,
    ).toEqual([]);
    expect(findCollusion([["a"], ["b"]]).groups.size).toBe(0);
  });

  it("reproduces the worked example of docs/scoring.md §3d", () => {
    const all = ["a", "b", "c", "d", "e", "f", "x", "y"];
    const pairs = all.flatMap((p, i) => all.slice(i + 1).map((q) => [p, q]));
    const market = pairs.flatMap((pair) => copies(10, pair));
    const r = findCollusion([...market, ...copies(50, ["x", "y"])]);
    expect(r.sets).toHaveLength(1);
    const [set] = r.sets;
    expect(set?.members).toEqual(["x", "y"]);
    expect(set?.observed).toBe(60);
    // μ = 270 / 27 = 10; sd(ln μ) = 0.2; μ° = 10 e^0.6.
    expect(set?.expected).toBeCloseTo(10 * Math.exp(0.6), 6);
    expect(set?.pValue).toBeCloseTo(9.0e-15, 16);
    expect([...r.groups]).toEqual([
      ["x", "x"],
      ["y", "x"],
    ]);
    // 30 more instead: beyond chance at face value (40 ≥ 3 × 10), not at its most cautious.
    expect(findCollusion([...market, ...copies(30, ["x", "y"])]).sets).toEqual([]);
  });

  it("never flags a set with fewer than minShared buyers, whatever the rest", () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            members: fc.uniqueArray(fc.constantFrom("a", "b", "c", "d", "e", "f", "g"), {
              minLength: 2,
              maxLength: 5,
            }),
            count: fc.integer({ min: 1, max: COLLUSION.minShared - 1 }),
          }),
          { maxLength: 40 },
        ),
        (cells) => {
          // Each exact set at most minShared − 1 times in all.
          const seen = new Map<string, number>();
          const buyers: string[][] = [];
          for (const { members, count } of cells) {
            const key = [...members].sort().join();
            const room = COLLUSION.minShared - 1 - (seen.get(key) ?? 0);
            const n = Math.min(count, room);
            seen.set(key, (seen.get(key) ?? 0) + n);
            buyers.push(...copies(n, members));
          }
          expect(findCollusion(buyers).sets).toEqual([]);
        },
      ),
      { numRuns: 200 },
    );
  });

  it(
    "does not depend on the order of the buyers nor of their reporters (duplicates ignored)",
    () => {
      fc.assert(
        fc.property(coalitionMarket, fc.integer(), (o, seed) => {
          const market = honestMarket({ ...o, buyers: 3000 });
          const small = market.bySize.slice(0, 3);
          const buyers = [
            ...market.buyers,
            ...copies(120, small.slice(0, 2)),
            ...copies(60, [small[0] as string, small[0] as string, small[2] as string]),
          ];
          const a = findCollusion(buyers);
          const b = findCollusion(shuffled(buyers, seed));
          expect(summary(b)).toEqual(summary(a));
          expect(b).toEqual(a);
        }),
        { numRuns: 15 },
      );
    },
    SLOW,
  );

  it(
    "flags nothing where platforms differ much in size (the first version flagged every one of these)",
    () => {
      // Each platform's share of the shared buyers, less the set's own, predicted a fifth of two
      // large platforms' honest overlap (10,468 buyers against 2,215) and next to nothing of a
      // dominant platform's pairs (4,909 against 2.0): a set's own buyers are much of its members'
      // reach. The fitted reaches (the model of independent reporting) predict them.
      const markets: number[][] = [
        [10, 10, 1, 1, 1, 1, 1],
        [100, 1, 1, 1, 1],
        [50, 20, 10, 5, 5, 5, 3, 2],
      ];
      for (const sizes of markets) {
        for (const k of ["independent", "draws"] as const) {
          const o = {
            seed: 7,
            platforms: sizes.length,
            spread: 0,
            buyers: 20_000,
            kind: k,
            reach: 1.2,
            sizes,
          };
          expect(summary(findCollusion(honestMarket(o).buyers)), `${sizes} ${k}`).toEqual({
            sets: [],
            groups: [],
          });
        }
      }
    },
    SLOW,
  );

  it(
    "flags nothing on honest markets of unequal platforms, up to 100,000 shared buyers",
    () => {
      fc.assert(
        fc.property(anyMarket, (o) => {
          const r = findCollusion(honestMarket(o).buyers);
          expect(summary(r), JSON.stringify(o)).toEqual({ sets: [], groups: [] });
        }),
        { numRuns: 100 },
      );
      // The largest market, both ways of drawing, a wide spread of sizes.
      for (const k of ["independent", "draws"] as const) {
        const o = { seed: 20261125, platforms: 12, spread: 4, buyers: 100_000, kind: k, reach: 2 };
        expect(summary(findCollusion(honestMarket(o).buyers)), k).toEqual({ sets: [], groups: [] });
      }
    },
    SLOW,
  );

  for (const size of [2, 3]) {
    it(
      `finds a coalition of ${size} reporting the same few hundred buyers, as exactly its members`,
      () => {
        fc.assert(
          fc.property(coalitionMarket, fc.integer({ min: 200, max: 500 }), fc.integer(), (o, extra, seed) => {
            const market = honestMarket(o);
            const members = coalitionIn(market, size, extra, seed, (m) => exactly(market.buyers, m));
            fc.pre(members !== null);
            const r = findCollusion([...market.buyers, ...copies(extra, members as string[])]);
            expect(
              summary(r).sets.map((s) => s.split(" ")[0]),
              JSON.stringify({ o, members, extra }),
            ).toEqual([(members as string[]).join(",")]);
            const id = (members as string[])[0];
            expect(r.groups).toEqual(new Map((members as string[]).map((p) => [p, id])));
            const set = r.sets[0] as (typeof r.sets)[number];
            expect(set.observed).toBe(extra + exactly(market.buyers, members as string[]));
            expect(set.observed).toBeGreaterThanOrEqual(COLLUSION.minRatio * set.expected);
            expect(set.pValue).toBeLessThan(COLLUSION.alpha);
          }),
          { numRuns: 30 },
        );
      },
      SLOW,
    );
  }

  it(
    "finds a coalition that rotates its pairs ({a,b}, {b,c}, {a,c}) as one group",
    () => {
      fc.assert(
        fc.property(coalitionMarket, fc.integer({ min: 150, max: 300 }), fc.integer(), (o, extra, seed) => {
          const market = honestMarket(o);
          const pairs = (m: string[]) =>
            [
              [m[0], m[1]],
              [m[1], m[2]],
              [m[0], m[2]],
            ] as string[][];
          const trio = coalitionIn(market, 3, extra, seed, (m) =>
            Math.max(...pairs(m).map((p) => exactly(market.buyers, p))),
          );
          fc.pre(trio !== null);
          const r = findCollusion([
            ...market.buyers,
            ...pairs(trio as string[]).flatMap((p) => copies(extra, p)),
          ]);
          const id = (trio as string[])[0];
          expect(r.groups, JSON.stringify({ o, trio, extra, ...summary(r) })).toEqual(
            new Map((trio as string[]).map((p) => [p, id])),
          );
        }),
        { numRuns: 30 },
      );
    },
    SLOW,
  );
});
