/**
 * Collusion groups (pixiu-score/2, docs/scoring.md §3d): platforms that report the same buyers,
 * buyers no other platform reports, more often than chance explains. A pure function of the
 * exact sets of reporters of shared buyers; the scheduled job feeds it from the ledger and the
 * simulation from its market, so both find the same groups the same way.
 *
 * The test, per exact set S of k reporters (2 ≤ k ≤ `maxSetSize`): of the M_k buyers with exactly
 * k reporters, O_S have exactly the reporters S. Chance predicts, from each platform's share of
 * the OTHER such buyers (those whose set is not S, so that a set cannot inflate its own
 * expectation):
 *
 *   d'_p = buyers with k reporters including p, other than S's;  M' = M_k − O_S
 *   π'_p = d'_p / (k × M')                   (Σ π'_p = 1)
 *   μ_S  = M_k × Π_{p∈S} π'_p / e_k(π')      (e_k: the sum of Π π' over every k-set of platforms)
 *
 * S is a collusion set when O_S ≥ `minShared`, O_S ≥ `minRatio` × μ_S and the Poisson upper tail
 * P(X ≥ O_S | μ_S) < `alpha`. Platforms of overlapping collusion sets form one group. With
 * fewer than k + 1 platforms among the other buyers (M' = 0 or too few platforms), chance cannot
 * be told from collusion, and no set is flagged.
 */

export const COLLUSION = {
  /** A set needs at least this many shared buyers before it can be a collusion set. */
  minShared: 20,
  /** …at least this many times what chance predicts… */
  minRatio: 3,
  /** …and a Poisson upper tail below this (about 5 standard deviations). */
  alpha: 1e-6,
  /** Sets of more reporters than this are not tested (and such buyers are not counted). */
  maxSetSize: 5,
} as const;

export type CollusionParams = typeof COLLUSION;

/** One exact set of reporters found beyond chance. */
export interface CollusionSet {
  /** The member platform ids, sorted. */
  members: string[];
  /** Buyers reported by exactly these platforms. */
  observed: number;
  /** What chance predicts (μ_S above). */
  expected: number;
  /** P(X ≥ observed) for X ~ Poisson(expected). */
  pValue: number;
}

export interface CollusionResult {
  sets: CollusionSet[];
  /** Each platform in a group → the group's id, its smallest member id. */
  groups: Map<string, string>;
}

/** ln Γ(x) for x > 0 (Lanczos, g = 7): accurate to about 1e-13, enough for a tail test. */
function lnGamma(x: number): number {
  const c = [
    0.9999999999998099, 676.5203681218851, -1259.1392167224028, 771.3234287776531, -176.6150291621406,
    12.507343278686905, -0.13857109526572012, 9.984369578019572e-6, 1.5056327351493116e-7,
  ];
  if (x < 0.5) {
    return Math.log(Math.PI / Math.sin(Math.PI * x)) - lnGamma(1 - x);
  }
  const z = x - 1;
  let a = c[0] as number;
  const t = z + 7.5;
  for (let i = 1; i < 9; i++) {
    a += (c[i] as number) / (z + i);
  }
  return 0.5 * Math.log(2 * Math.PI) + (z + 0.5) * Math.log(t) - t + Math.log(a);
}

/**
 * P(X ≥ k) for X ~ Poisson(mu): 1 for k ≤ 0; for mu = 0, 0 when k ≥ 1. Summed from k upward in
 * log space (the terms fall geometrically once past mu), so it stays accurate far into the tail.
 *
 * @example poissonTail(10, 2) // ≈ 4.65e-5
 */
export function poissonTail(k: number, mu: number): number {
  if (k <= 0) {
    return 1;
  }
  if (mu <= 0) {
    return 0;
  }
  if (k <= mu) {
    // Below the mean: 1 − P(X < k), summed over the few terms under k.
    let below = 0;
    for (let i = 0; i < k; i++) {
      below += Math.exp(-mu + i * Math.log(mu) - lnGamma(i + 1));
    }
    return Math.min(1, Math.max(0, 1 - below));
  }
  let term = Math.exp(-mu + k * Math.log(mu) - lnGamma(k + 1));
  let sum = 0;
  for (let i = k; term > 0 && i < k + 100_000; i++) {
    sum += term;
    if (term < sum * 1e-17) {
      break;
    }
    term *= mu / (i + 1);
  }
  return Math.min(1, sum);
}

/** e_k(π): the sum over every k-set of the product of its π, by the usual O(n × k) recurrence. */
function elementarySymmetric(values: readonly number[], k: number): number {
  const e = new Array<number>(k + 1).fill(0);
  e[0] = 1;
  for (const v of values) {
    for (let j = k; j >= 1; j--) {
      e[j] = (e[j] as number) + (e[j - 1] as number) * v;
    }
  }
  return e[k] as number;
}

interface SizeClass {
  /** Buyers per exact set of reporters (members sorted, comma-joined). */
  sets: Map<string, number>;
  /** Per platform, the buyers of this size it reports. */
  degree: Map<string, number>;
  /** Buyers with this many reporters. */
  total: number;
}

/** A size class without the buyers of the sets already flagged: the background of the next test. */
function excluded(size: SizeClass, flagged: ReadonlySet<string>): SizeClass {
  const degree = new Map(size.degree);
  let total = size.total;
  for (const key of flagged) {
    const observed = size.sets.get(key);
    if (observed === undefined) {
      continue;
    }
    total -= observed;
    for (const p of key.split(",")) {
      degree.set(p, (degree.get(p) ?? 0) - observed);
    }
  }
  return { sets: size.sets, degree, total };
}

/**
 * μ_S: what chance predicts for the exact set `members` among the `size.total` buyers with k
 * reporters, from each platform's share of the background's buyers other than the set's own
 * (`background`: the size class without the flagged sets). Null when the background cannot
 * tell: no other buyer, or fewer than k + 1 platforms among them.
 */
function expectedCount(
  size: SizeClass,
  background: SizeClass,
  k: number,
  members: readonly string[],
  observed: number,
): number | null {
  const others = background.total - observed;
  if (others <= 0) {
    return null;
  }
  const shares: number[] = [];
  let product = 1;
  for (const [p, degree] of [...background.degree].sort(([a], [b]) => (a < b ? -1 : 1))) {
    const mine = members.includes(p);
    const share = (degree - (mine ? observed : 0)) / (k * others);
    if (share > 0) {
      shares.push(share);
    }
    if (mine) {
      product *= Math.max(0, share);
    }
  }
  if (shares.length < k + 1) {
    return null;
  }
  const ek = elementarySymmetric(shares, k);
  return ek > 0 ? (size.total * product) / ek : 0;
}

/**
 * Finds the collusion sets and groups among shared buyers. `reporterSets`: for each buyer that
 * two or more platforms report, the platforms that report it (in any order, duplicates
 * ignored); buyers with one reporter may be included and are skipped. Deterministic: the result
 * does not depend on the order of the input.
 *
 * @example findCollusion([["a", "b"], ["a", "b"], ["b", "c"]]).sets // [] (far too few buyers)
 */
export function findCollusion(
  reporterSets: Iterable<readonly string[]>,
  params: CollusionParams = COLLUSION,
): CollusionResult {
  // Per size k: buyers per exact set, and per platform the buyers it shares.
  const bySize = new Map<number, SizeClass>();
  for (const raw of reporterSets) {
    const members = [...new Set(raw)].sort();
    const k = members.length;
    if (k < 2 || k > params.maxSetSize) {
      continue;
    }
    const size = bySize.get(k) ?? { sets: new Map(), degree: new Map(), total: 0 };
    const key = members.join(",");
    size.sets.set(key, (size.sets.get(key) ?? 0) + 1);
    for (const p of members) {
      size.degree.set(p, (size.degree.get(p) ?? 0) + 1);
    }
    size.total++;
    bySize.set(k, size);
  }

  // Flag one set at a time, the most excessive first, and take each flagged set's buyers out of
  // the background of the next round: a coalition's thousands of shared buyers must not make
  // honest platforms' ordinary overlap look like collusion by shrinking what chance predicts.
  const sets: CollusionSet[] = [];
  const flagged = new Set<string>();
  for (;;) {
    let best: (CollusionSet & { ratio: number; key: string }) | undefined;
    for (const [k, size] of bySize) {
      const out = excluded(size, flagged);
      for (const [key, observed] of size.sets) {
        if (flagged.has(key) || observed < params.minShared) {
          continue;
        }
        const members = key.split(",");
        const expected = expectedCount(size, out, k, members, observed);
        if (expected === null || observed < params.minRatio * expected) {
          continue;
        }
        const pValue = poissonTail(observed, expected);
        if (pValue >= params.alpha) {
          continue;
        }
        const ratio = expected > 0 ? observed / expected : Number.POSITIVE_INFINITY;
        if (
          !best ||
          ratio > best.ratio ||
          (ratio === best.ratio && (pValue < best.pValue || (pValue === best.pValue && key < best.key)))
        ) {
          best = { members, observed, expected, pValue, ratio, key };
        }
      }
    }
    if (!best) {
      break;
    }
    flagged.add(best.key);
    sets.push({
      members: best.members,
      observed: best.observed,
      expected: best.expected,
      pValue: best.pValue,
    });
  }
  sets.sort((a, b) => a.members.length - b.members.length || (a.members.join() < b.members.join() ? -1 : 1));

  // Overlapping sets form one group (union-find); its id is its smallest member id.
  const parent = new Map<string, string>();
  const find = (p: string): string => {
    let root = p;
    while (parent.get(root) !== root) {
      root = parent.get(root) as string;
    }
    parent.set(p, root);
    return root;
  };
  for (const s of sets) {
    for (const p of s.members) {
      if (!parent.has(p)) {
        parent.set(p, p);
      }
    }
    const [first, ...rest] = s.members;
    for (const p of rest) {
      const a = find(first as string);
      const b = find(p);
      if (a !== b) {
        // The smaller id becomes the root, so a group's id is its smallest member's.
        const [root, child] = a < b ? [a, b] : [b, a];
        parent.set(child, root);
      }
    }
  }
  const groups = new Map<string, string>();
  for (const p of [...parent.keys()].sort()) {
    groups.set(p, find(p));
  }
  return { sets, groups };
}
