/**
 * Collusion groups (pixiu-score/2, docs/scoring.md §3d): platforms that report the same buyers,
 * buyers no other platform reports, more often than chance explains. A pure function of the
 * exact sets of reporters of shared buyers; the scheduled job feeds it from the ledger and the
 * simulation from its market, so both find the same groups the same way.
 *
 * The test runs per size k (2 ≤ k ≤ `maxSetSize`), among the buyers with exactly k reporters,
 * one cell per exact set of reporters. Chance is independent reporting: each platform p has its
 * own reach θ_p, and a buyer that k platforms report has the exact set T with probability
 * Π θ_T / z (z: Π θ summed over every allowed k-set, whether a buyer has it or not). θ is the
 * maximum-likelihood fit (iterative scaling) to the **background**: every cell but the set under
 * test and the sets already taken out, which become impossible ("structural zeros"), so that a
 * coalition neither inflates its own expectation nor hides another's. For a set S observed O_S
 * times:
 *
 *   μ_S  = n_B × Π θ_S / z                      (n_B: the background's buyers)
 *   S is beyond chance at face value when O_S ≥ minShared, O_S ≥ minRatio × μ_S and
 *   P(X ≥ O_S | Poisson(μ_S)) < alpha; it then leaves the background (a suspect).
 *   μ°_S = max(μ_S × e^(fitMargin × sd(ln μ_S)),  (d_p + O_S) × s_p°  for each thin member p)
 *   S is reported (a collusion set) when the same holds at μ°_S.
 *
 * sd(ln μ_S) comes from the fit's Fisher information: a background that knows a product only
 * through a few small cells gives a wide margin, however many buyers it holds. A member is thin
 * when it has fewer than `minShared` buyers in the background: its reach cannot be told there,
 * so its own buyers speak: of its d_p + O_S buyers of this size, chance gives the share s_p =
 * Π θ_{S∖p} / Σ_{allowed T∋p} Π θ_{T∖p} the other reporters S∖p (s_p° with the same margin).
 *
 * A set is tested alone, and in each of its groups: S with, for one more platform q, the other
 * k-sets within S ∪ {q}, when every one of them holds `minShared` buyers, all left out of the
 * background together. A coalition rotating its members (a with b, b with c, a with c) is only
 * seen so: alone, each set's background keeps the others, whose excess inflates the very reaches
 * that predict it. A group is reported as a whole when its buyers together are beyond chance at
 * their most cautious.
 *
 * Sets leave the background one view at a time, the view whose removal leaves the rest best
 * explained first (least Poisson deviance of what remains): taking out an honest set that a
 * coalition distorted leaves the distortion, taking out the coalition's removes it. After each,
 * every set out is tested again against the others' background: put back for good when no view
 * finds it beyond chance, no longer reported when the background cannot tell any more. Each set
 * leaves at most once, so this ends. The background cannot tell (and nothing of that size is
 * flagged) with fewer than k + 2 platforms in it, fewer than two allowed k-sets per platform, or
 * allowed k-sets that do not determine every reach. Platforms of overlapping collusion sets form
 * one group.
 */

export const COLLUSION = {
  /** A set needs at least this many shared buyers before it can be a collusion set. */
  minShared: 20,
  /** …at least this many times what chance predicts… */
  minRatio: 3,
  /** …and a tail probability below this (about 5 standard deviations). */
  alpha: 1e-6,
  /** Sets of more reporters than this are not tested (and such buyers are not counted). */
  maxSetSize: 5,
  /**
   * What chance predicts is taken this many standard errors (of its fit, on the log scale)
   * above the fit before the tests: the background's own uncertainty does not make a set look
   * beyond chance.
   */
  fitMargin: 3,
} as const;

export type CollusionParams = typeof COLLUSION;

/** One exact set of reporters found beyond chance. */
export interface CollusionSet {
  /** The member platform ids, sorted. */
  members: string[];
  /** Buyers reported by exactly these platforms. */
  observed: number;
  /** What chance predicts, at its most cautious (μ°_S above). */
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

/** e_0..e_k(θ): the sums over every j-set of the product of its θ, by the usual O(n × k) recurrence. */
function elementarySymmetric(values: ArrayLike<number>, k: number): number[] {
  const e = new Array<number>(k + 1).fill(0);
  e[0] = 1;
  for (let i = 0; i < values.length; i++) {
    const v = values[i] as number;
    for (let j = k; j >= 1; j--) {
      e[j] = (e[j] as number) + (e[j - 1] as number) * v;
    }
  }
  return e;
}

/** e_{k−1}(θ without p), from e(θ): f_j = e_j − θ_p × f_{j−1}. */
function withoutOne(e: readonly number[], thetaP: number, k: number): number {
  let f = 1;
  for (let j = 1; j < k; j++) {
    f = (e[j] as number) - thetaP * f;
  }
  return f;
}

/** Π θ over `members`, leaving out `skip`. */
function product(theta: Float64Array, members: readonly number[], skip = -1): number {
  let x = 1;
  for (const p of members) {
    if (p !== skip) {
      x *= theta[p] as number;
    }
  }
  return x;
}

interface Cell {
  /** The member platform ids, sorted, comma-joined. */
  key: string;
  /** The members, by index into the size class's `platforms`. */
  members: number[];
  /** Buyers with exactly this set of reporters. */
  count: number;
}

/** The buyers with exactly k reporters: per exact set (a cell), how many. */
interface SizeClass {
  k: number;
  /** The platforms among these buyers, sorted; cells name them by index. */
  platforms: string[];
  /** One per exact set of reporters, sorted by key. */
  cells: Cell[];
  /** Cell index by key. */
  index: Map<string, number>;
}

/** Iterative scaling stops when every platform's expected buyers are this close to its own (relative)… */
const FIT_TOLERANCE = 1e-9;
/** …or after this many rounds (tens suffice from a warm start on every market we measured). */
const FIT_MAX_ROUNDS = 2000;

/** The chance model fitted to a background (see `fitBackground`). */
interface Fit {
  /** Each platform's reach θ_p (summing to 1); 0 for a platform with no buyer in the background. */
  theta: Float64Array;
  /** Σ over the allowed k-sets T of Π θ_T: e_k(θ) less the excluded sets' products. */
  z: number;
  /** Buyers in the background. */
  n: number;
  /** Per platform, its buyers in the background. */
  degree: Float64Array;
  /** Platforms with a buyer in the background. */
  active: number;
  /**
   * Whether the background determines the fit: iterative scaling converged, and the k-sets
   * allowed among the active platforms determine every θ (up to scale), so any prediction is
   * the data's and not the starting point's.
   */
  determined: boolean;
  /**
   * The k-sets of the active platforms not excluded: the background needs at least two per
   * active platform, twice as many checks as reaches to fit, to tell a coalition from chance.
   */
  allowed: number;
}

/**
 * Fits the chance model to the background of a size class: the buyers of every cell except
 * `excluded` (flagged sets and the set under test, whose k-sets become impossible: "structural
 * zeros"). θ is the maximum-likelihood fit, where each platform's expected buyers equal its
 * observed ones, found by iterative scaling (θ_p ← θ_p × observed_p / expected_p), from `warm`
 * if given. Every k-set of platforms not excluded is allowed, whether or not a buyer has it.
 */
function fitBackground(size: SizeClass, excluded: ReadonlySet<number>, warm?: Float64Array): Fit {
  const count = size.platforms.length;
  const k = size.k;
  const degree = new Float64Array(count);
  let n = 0;
  size.cells.forEach((cell, i) => {
    if (!excluded.has(i)) {
      n += cell.count;
      for (const p of cell.members) {
        degree[p] = (degree[p] as number) + cell.count;
      }
    }
  });
  const theta = new Float64Array(count);
  let active = 0;
  for (let p = 0; p < count; p++) {
    const d = degree[p] as number;
    if (d > 0) {
      active++;
      const w = warm?.[p] ?? 0;
      theta[p] = w > 0 ? w : d / n;
    }
  }
  const out = [...excluded].sort((a, b) => a - b).map((i) => (size.cells[i] as Cell).members);
  const partners = new Float64Array(count);
  const scale = new Float64Array(count);
  let z = 0;
  let converged = false;
  for (let round = 0; round < FIT_MAX_ROUNDS && n > 0; round++) {
    let sum = 0;
    for (let p = 0; p < count; p++) {
      sum += theta[p] as number;
    }
    for (let p = 0; p < count; p++) {
      theta[p] = (theta[p] as number) / sum;
    }
    const e = elementarySymmetric(theta, k);
    z = e[k] as number;
    // Per platform p: Σ over the allowed k-sets T ∋ p of Π θ_{T∖p}.
    for (let p = 0; p < count; p++) {
      partners[p] = withoutOne(e, theta[p] as number, k);
    }
    for (const members of out) {
      z -= product(theta, members);
      for (const p of members) {
        partners[p] = (partners[p] as number) - product(theta, members, p);
      }
    }
    let worst = 0;
    for (let p = 0; p < count; p++) {
      const d = degree[p] as number;
      if (d === 0) {
        continue;
      }
      const expected = (n * (theta[p] as number) * (partners[p] as number)) / z;
      worst = Math.max(worst, Math.abs(d - expected) / d);
      scale[p] = expected > 0 ? d / expected : 1;
    }
    if (worst < FIT_TOLERANCE) {
      converged = true;
      break;
    }
    for (let p = 0; p < count; p++) {
      if ((degree[p] as number) > 0) {
        theta[p] = (theta[p] as number) * (scale[p] as number);
      }
    }
  }
  const inside = out.filter((members) => members.every((p) => (degree[p] as number) > 0));
  const determined = converged && fullRank(degree, k, inside);
  return { theta, z, n, degree, active, determined, allowed: choose(active, k) - inside.length };
}

/** C(n, r). */
function choose(n: number, r: number): number {
  if (r < 0 || r > n) {
    return 0;
  }
  let c = 1;
  for (let i = 1; i <= r; i++) {
    c = (c * (n - r + i)) / i;
  }
  return c;
}

/**
 * Whether the k-sets of the active platforms (degree > 0), less `excluded`, span every
 * platform: then θ is determined up to scale. Their Gram matrix is
 * C(n−2, k−1) I + C(n−2, k−2) J − Σ_excluded 1_T 1_Tᵀ; its smallest eigenvalue is at least
 * C(n−2, k−1) − k × |excluded|, so only a small market with many sets excluded needs the
 * elimination (a rotating coalition's sets and the flagged ones left out of five platforms'
 * pairs can leave a bipartite background, which cannot tell a × b from c × d).
 */
function fullRank(degree: Float64Array, k: number, excluded: readonly number[][]): boolean {
  const active: number[] = [];
  degree.forEach((d, p) => {
    if (d > 0) {
      active.push(p);
    }
  });
  const n = active.length;
  if (n <= k) {
    return false;
  }
  const diagonal = choose(n - 2, k - 1);
  const off = choose(n - 2, k - 2);
  if (diagonal > k * excluded.length) {
    return true;
  }
  const at = new Map(active.map((p, i) => [p, i]));
  const g = active.map((_, i) => active.map((__, j) => (i === j ? diagonal + off : off)));
  for (const members of excluded) {
    for (const a of members) {
      for (const b of members) {
        const row = g[at.get(a) as number] as number[];
        const j = at.get(b) as number;
        row[j] = (row[j] as number) - 1;
      }
    }
  }
  // Gaussian elimination with partial pivoting; the entries are small integers.
  let rank = 0;
  for (let col = 0; col < n && rank < n; col++) {
    let pivot = rank;
    for (let r = rank + 1; r < n; r++) {
      if (Math.abs((g[r] as number[])[col] as number) > Math.abs((g[pivot] as number[])[col] as number)) {
        pivot = r;
      }
    }
    if (Math.abs((g[pivot] as number[])[col] as number) < 1e-9) {
      continue;
    }
    [g[rank], g[pivot]] = [g[pivot] as number[], g[rank] as number[]];
    const top = g[rank] as number[];
    for (let r = rank + 1; r < n; r++) {
      const row = g[r] as number[];
      const f = (row[col] as number) / (top[col] as number);
      for (let c = col; c < n; c++) {
        row[c] = (row[c] as number) - f * (top[c] as number);
      }
    }
    rank++;
  }
  return rank === n;
}

/** What the test found for one set beyond chance at face value. */
interface Verdict {
  /** What chance predicts: μ°_S when reported, else μ_S. */
  expected: number;
  /** P(X ≥ O_S) for X ~ Poisson(expected). */
  pValue: number;
  /**
   * How badly the fit explains the rest: the Poisson deviance of every set other than this
   * view's and those already out. The view whose removal explains the rest best goes first.
   */
  misfit: number;
  /**
   * Whether the set is beyond chance at its most cautious too: then it is a collusion set;
   * else only a suspect, kept out of the background but not reported.
   */
  reported: boolean;
  /** μ°_S: μ at its most cautious (see `judge`), what reporting is decided on. */
  cautious: number;
}

/**
 * The standard deviation of log Π θ_members (so of log μ for a set of these members) under the
 * fit: 1ᵀ I⁻¹ 1 over the active members, where I is the Fisher information of the Poisson
 * log-linear model log μ_T = Σ_{p∈T} u_p over the allowed k-sets T: I_pq = Σ_{T∋p,q} μ_T. A
 * background thin where it matters (a product known only through a few small cells) gives a
 * wide interval, whatever its total size. Infinite when I is singular there.
 */
function logSd(fit: Fit, size: SizeClass, excluded: ReadonlySet<number>, members: readonly number[]): number {
  const { theta } = fit;
  const k = size.k;
  const active: number[] = [];
  theta.forEach((t, p) => {
    if (t > 0) {
      active.push(p);
    }
  });
  const at = new Map(active.map((p, i) => [p, i]));
  const target = members.filter((p) => at.has(p));
  if (target.length === 0) {
    return 0;
  }
  const m = active.length;
  const scale = fit.n / fit.z;
  const e = elementarySymmetric(theta, k);
  const out = [...excluded].map((i) => (size.cells[i] as Cell).members);
  const info = active.map(() => new Float64Array(m));
  for (let i = 0; i < m; i++) {
    const p = active[i] as number;
    // e_j(θ without p), j < k.
    const f = new Array<number>(k).fill(0);
    f[0] = 1;
    for (let j = 1; j < k; j++) {
      f[j] = (e[j] as number) - (theta[p] as number) * (f[j - 1] as number);
    }
    (info[i] as Float64Array)[i] = scale * (theta[p] as number) * (f[k - 1] as number);
    for (let jj = i + 1; jj < m; jj++) {
      const q = active[jj] as number;
      // e_{k−2}(θ without p and q).
      let g = 1;
      for (let j = 1; j <= k - 2; j++) {
        g = (f[j] as number) - (theta[q] as number) * g;
      }
      const both = scale * (theta[p] as number) * (theta[q] as number) * (k >= 2 ? g : 0);
      (info[i] as Float64Array)[jj] = both;
      (info[jj] as Float64Array)[i] = both;
    }
  }
  for (const t of out) {
    const mu = scale * product(theta, t);
    for (const p of t) {
      const i = at.get(p);
      if (i === undefined) {
        continue;
      }
      for (const q of t) {
        const j = at.get(q);
        if (j !== undefined) {
          (info[i] as Float64Array)[j] = ((info[i] as Float64Array)[j] as number) - mu;
        }
      }
    }
  }
  // Solve I x = 1_target by Gaussian elimination with partial pivoting; variance = 1ᵀ x.
  const a = info.map((row) => Array.from(row));
  const b: number[] = active.map((p) => (target.includes(p) ? 1 : 0));
  let largest = 0;
  for (let i = 0; i < m; i++) {
    largest = Math.max(largest, Math.abs((a[i] as number[])[i] as number));
  }
  for (let col = 0; col < m; col++) {
    let pivot = col;
    for (let r = col + 1; r < m; r++) {
      if (Math.abs((a[r] as number[])[col] as number) > Math.abs((a[pivot] as number[])[col] as number)) {
        pivot = r;
      }
    }
    const top = a[pivot] as number[];
    if (!(Math.abs(top[col] as number) > 1e-12 * largest)) {
      return Number.POSITIVE_INFINITY;
    }
    [a[col], a[pivot]] = [top, a[col] as number[]];
    [b[col], b[pivot]] = [b[pivot] as number, b[col] as number];
    for (let r = col + 1; r < m; r++) {
      const row = a[r] as number[];
      const factor = (row[col] as number) / (top[col] as number);
      if (factor !== 0) {
        for (let c = col; c < m; c++) {
          row[c] = (row[c] as number) - factor * (top[c] as number);
        }
        b[r] = (b[r] as number) - factor * (b[col] as number);
      }
    }
  }
  const x = new Array<number>(m).fill(0);
  for (let r = m - 1; r >= 0; r--) {
    const row = a[r] as number[];
    let v = b[r] as number;
    for (let c = r + 1; c < m; c++) {
      v -= (row[c] as number) * (x[c] as number);
    }
    x[r] = v / (row[r] as number);
  }
  let variance = 0;
  for (const p of target) {
    variance += x[at.get(p) as number] as number;
  }
  return variance > 0 ? Math.sqrt(variance) : Number.POSITIVE_INFINITY;
}

/**
 * The fit cannot be trusted to tell chance from collusion: no buyer, fewer than k + 2 platforms,
 * or a background that does not determine every reach.
 */
function unusable(fit: Fit, k: number): boolean {
  return fit.n === 0 || fit.active < k + 2 || !(fit.z > 0) || !fit.determined || fit.allowed < 2 * fit.active;
}

/**
 * Judges cell `index` under `fit`, a fit of the background without `others` and the cell itself
 * (the module's comment has the statistic). A verdict when the set is beyond chance at face
 * value (reported or only a suspect), else null. `misfit` is left for the caller.
 */
function judge(
  size: SizeClass,
  fit: Fit,
  others: ReadonlySet<number>,
  index: number,
  params: CollusionParams,
): Verdict | null {
  const cell = size.cells[index] as Cell;
  const observed = cell.count;
  if (observed < params.minShared) {
    return null;
  }
  const { theta } = fit;
  // At face value: the fit's μ. A set beyond chance only there is a suspect.
  const point = (fit.n * product(theta, cell.members)) / fit.z;
  const pointTail = poissonTail(observed, point);
  if (observed < params.minRatio * point || pointTail >= params.alpha) {
    return null;
  }
  // At its most cautious: μ raised by `fitMargin` standard errors of the fit (its own
  // uncertainty), and at least what each member the background cannot tell
  // (fewer than `minShared` buyers in it) predicts from its own buyers: of its d_p buyers of
  // this size (S's included), the share s_p whose other reporters chance makes exactly S∖p.
  const excluded = new Set(others).add(index);
  const z = params.fitMargin;
  let cautious = point * Math.exp(z * logSd(fit, size, excluded, cell.members));
  const e = elementarySymmetric(theta, size.k);
  for (const p of cell.members) {
    if ((fit.degree[p] as number) >= params.minShared) {
      continue;
    }
    // Σ over the k-sets T ∋ p allowed with S back in.
    let partners = withoutOne(e, theta[p] as number, size.k);
    for (const i of others) {
      const members = (size.cells[i] as Cell).members;
      if (members.includes(p)) {
        partners -= product(theta, members, p);
      }
    }
    const rest = cell.members.filter((q) => q !== p);
    const share =
      partners > 0
        ? Math.min(1, (product(theta, rest) / partners) * Math.exp(z * logSd(fit, size, excluded, rest)))
        : 1;
    cautious = Math.max(cautious, ((fit.degree[p] as number) + observed) * share);
  }
  const tail = poissonTail(observed, cautious);
  const reported = observed >= params.minRatio * cautious && tail < params.alpha;
  return {
    expected: reported ? cautious : point,
    pValue: reported ? tail : pointTail,
    misfit: 0,
    reported,
    cautious,
  };
}

/**
 * The Poisson deviance, under `fit`, of every k-set not in `excluded`: 2 Σ (n ln(n/μ) − n + μ)
 * over the observed ones, 2 Σ μ over the rest. How badly the fit explains what is left.
 */
function misfitOf(size: SizeClass, fit: Fit, excluded: ReadonlySet<number>): number {
  const scale = fit.n / fit.z;
  let allowed = elementarySymmetric(fit.theta, size.k)[size.k] as number;
  for (const i of excluded) {
    allowed -= product(fit.theta, (size.cells[i] as Cell).members);
  }
  let deviance = 2 * scale * Math.max(0, allowed);
  size.cells.forEach((cell, i) => {
    if (excluded.has(i)) {
      return;
    }
    const mu = scale * product(fit.theta, cell.members);
    deviance += mu > 0 ? 2 * (cell.count * Math.log(cell.count / mu) - cell.count) : Number.POSITIVE_INFINITY;
  });
  return deviance;
}

/**
 * The views of a set: alone, and in each of its groups, the sets of its size within its members
 * and one more platform q, when all of them hold `minShared` buyers or more. A coalition that
 * rotates its members (a with b, b with c, a with c) is seen only as a group: tested one by one,
 * each set's background keeps the others, whose excess inflates the very members' reach that
 * predicts it. Each view lists cell indices, the set's own first.
 */
function viewsOf(size: SizeClass, index: number, params: CollusionParams): number[][] {
  const cell = size.cells[index] as Cell;
  const views = [[index]];
  const names = cell.key.split(",");
  for (const q of size.platforms) {
    if (names.includes(q)) {
      continue;
    }
    const group = [index];
    for (const leave of names) {
      const i = size.index.get([...names.filter((p) => p !== leave), q].sort().join(","));
      if (i === undefined || (size.cells[i] as Cell).count < params.minShared) {
        break;
      }
      group.push(i);
    }
    if (group.length === names.length + 1) {
      views.push(group);
    }
  }
  return views;
}

/**
 * Tests a view (a set, or a group of sets) against the background without `taken` and the
 * view: one fit, each set judged under it. The verdicts, in the view's order (all beyond chance
 * at face value), with the misfit of the rest; null when one of them is not beyond chance,
 * undefined when the background cannot tell. A group is reported as a whole when its buyers
 * together are beyond chance at their most cautious: each of a rotating coalition's sets may
 * hold too few buyers to tell alone.
 */
function testView(
  size: SizeClass,
  taken: ReadonlySet<number>,
  view: readonly number[],
  params: CollusionParams,
  warm?: Float64Array,
): Verdict[] | null | undefined {
  const excluded = new Set(taken);
  for (const i of view) {
    excluded.add(i);
  }
  const fit = fitBackground(size, excluded, warm);
  if (unusable(fit, size.k)) {
    return undefined;
  }
  const verdicts: Verdict[] = [];
  for (const i of view) {
    const others = new Set(excluded);
    others.delete(i);
    const verdict = judge(size, fit, others, i, params);
    if (!verdict) {
      return null;
    }
    verdicts.push(verdict);
  }
  const misfit = misfitOf(size, fit, excluded);
  let observed = 0;
  let cautious = 0;
  view.forEach((i, j) => {
    observed += (size.cells[i] as Cell).count;
    cautious += (verdicts[j] as Verdict).cautious;
  });
  const tail = poissonTail(observed, cautious);
  const together = view.length > 1 && observed >= params.minRatio * cautious && tail < params.alpha;
  view.forEach((i, j) => {
    const v = verdicts[j] as Verdict;
    v.misfit = misfit;
    if (together && !v.reported) {
      // Each set's own numbers at their most cautious; the group's test is what reports them.
      v.reported = true;
      v.expected = v.cautious;
      v.pValue = poissonTail((size.cells[i] as Cell).count, v.cautious);
    }
  });
  return verdicts;
}

/** Of two verdicts on one set: a reported one before one that is not, then the better fit of the rest. */
function stronger(a: Verdict, b: Verdict | null | undefined): boolean {
  return !b || (a.reported !== b.reported ? a.reported : a.misfit < b.misfit);
}

/**
 * Tests one set already out again, in each of its views, against the background without the
 * other sets out: its best verdict, null when no view finds it beyond chance, undefined when
 * none can tell.
 */
function retest(
  size: SizeClass,
  taken: ReadonlySet<number>,
  index: number,
  params: CollusionParams,
): Verdict | null | undefined {
  let best: Verdict | null | undefined;
  for (const view of viewsOf(size, index, params)) {
    const others = new Set(taken);
    for (const i of view) {
      others.delete(i);
    }
    const verdicts = testView(size, others, view, params);
    if (verdicts === undefined) {
      continue;
    }
    const verdict = verdicts ? (verdicts[0] as Verdict) : null;
    if (best === undefined || (verdict && stronger(verdict, best))) {
      best = verdict;
    }
  }
  return best;
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
  // Per size k: buyers per exact set.
  const counts = new Map<number, Map<string, number>>();
  for (const raw of reporterSets) {
    const members = [...new Set(raw)].sort();
    const k = members.length;
    if (k < 2 || k > params.maxSetSize) {
      continue;
    }
    const sets = counts.get(k) ?? new Map<string, number>();
    const key = members.join(",");
    sets.set(key, (sets.get(key) ?? 0) + 1);
    counts.set(k, sets);
  }
  const sizes: SizeClass[] = [...counts]
    .sort(([a], [b]) => a - b)
    .map(([k, sets]) => {
      const keys = [...sets.keys()].sort();
      const platforms = [...new Set(keys.flatMap((key) => key.split(",")))].sort();
      const index = new Map(platforms.map((p, i) => [p, i]));
      return {
        k,
        platforms,
        cells: keys.map((key) => ({
          key,
          members: key.split(",").map((p) => index.get(p) as number),
          count: sets.get(key) as number,
        })),
        index: new Map(keys.map((key, i) => [key, i])),
      };
    });

  // Take sets out of the background one unit at a time (a set, or a group of them), the unit
  // whose removal explains the rest best first, each leaving the background of the next: a
  // coalition's many shared buyers must not make honest platforms' ordinary overlap look like
  // collusion, nor hide another coalition. After each, every set out is tested again against
  // the others' background and put back for good when no view finds it beyond chance any more
  // (when the background can no longer tell, it stays out as it was): each set is taken out at
  // most once, so this ends. A set out is reported, or only kept out of the background
  // (`Verdict.reported`).
  const out = sizes.map(() => new Map<number, Verdict>());
  const dropped = sizes.map(() => new Set<number>());
  const recheck = () => {
    for (let changed = true; changed; ) {
      changed = false;
      sizes.forEach((size, s) => {
        const mine = out[s] as Map<number, Verdict>;
        for (const index of [...mine.keys()].sort((a, b) => a - b)) {
          const verdict = retest(size, new Set(mine.keys()), index, params);
          if (verdict === null) {
            mine.delete(index);
            (dropped[s] as Set<number>).add(index);
            changed = true;
          } else if (verdict !== undefined) {
            changed ||= verdict.reported !== (mine.get(index) as Verdict).reported;
            mine.set(index, verdict);
          } else if ((mine.get(index) as Verdict).reported) {
            // The background can no longer tell: the set stays out, but is no longer reported.
            mine.set(index, { ...(mine.get(index) as Verdict), reported: false });
            changed = true;
          }
        }
      });
    }
  };
  for (;;) {
    let best: { size: number; unit: number[]; verdicts: Verdict[]; misfit: number; key: string } | undefined;
    sizes.forEach((size, s) => {
      const mine = out[s] as Map<number, Verdict>;
      const gone = dropped[s] as Set<number>;
      const taken = new Set(mine.keys());
      const seen = new Set<string>();
      let warm: Float64Array | undefined;
      size.cells.forEach((cell, index) => {
        if (mine.has(index) || gone.has(index) || cell.count < params.minShared) {
          return;
        }
        for (const view of viewsOf(size, index, params)) {
          const id = [...view].sort((x, y) => x - y).join(",");
          if (seen.has(id) || view.some((i) => gone.has(i))) {
            continue;
          }
          seen.add(id);
          const others = new Set(taken);
          for (const i of view) {
            others.delete(i);
          }
          warm ??= fitBackground(size, taken).theta;
          const verdicts = testView(size, others, view, params, warm);
          if (!verdicts) {
            continue;
          }
          const misfit = (verdicts[0] as Verdict).misfit;
          const key = view.map((i) => (size.cells[i] as Cell).key).join(";");
          if (!best || misfit < best.misfit || (misfit === best.misfit && key < best.key)) {
            best = { size: s, unit: view, verdicts, misfit, key };
          }
        }
      });
    });
    if (!best) {
      break;
    }
    const { unit, verdicts } = best;
    const mine = out[best.size] as Map<number, Verdict>;
    unit.forEach((i, j) => {
      mine.set(i, verdicts[j] as Verdict);
    });
    recheck();
  }

  const sets: CollusionSet[] = [];
  sizes.forEach((size, s) => {
    for (const [index, verdict] of out[s] as Map<number, Verdict>) {
      if (verdict.reported) {
        const cell = size.cells[index] as Cell;
        sets.push({
          members: cell.key.split(","),
          observed: cell.count,
          expected: verdict.expected,
          pValue: verdict.pValue,
        });
      }
    }
  });
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
