/**
 * Honest markets of shared buyers for the collusion tests (test/collusion.property.test.ts): who
 * reports each buyer, drawn at random by platform size, seeded so that a failure reproduces. No
 * test framework here, so the same markets can be measured from a script.
 */

/** A seeded generator of uniform numbers in [0, 1) (mulberry32). */
export function random(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

export interface MarketOptions {
  seed: number;
  /** Platforms p00, p01, …; their sizes are e^(spread × U), U uniform: unequal. */
  platforms: number;
  spread: number;
  /** Shared buyers (two or more reporters) to draw. */
  buyers: number;
  /**
   * How reporters are drawn. `independent`: each platform reports each buyer on its own, with a
   * chance proportional to its size (at most 0.95; `reach` scales them all), and the buyers two
   * or more report are kept. `draws`: a number of reporters (2: 55%, 3: 25%, 4: 13%, 5: 7%),
   * then that many distinct platforms drawn one after the other by size.
   */
  kind: "independent" | "draws";
  reach?: number;
  /** The platforms' sizes as given instead (then `platforms` and `spread` are ignored). */
  sizes?: number[];
}

export const platformName = (i: number) => `p${String(i).padStart(2, "0")}`;

/** The market: its platforms by size (the names, largest last) and each buyer's reporters. */
export function honestMarket(o: MarketOptions): { bySize: string[]; buyers: string[][] } {
  const next = random(o.seed);
  const sizes = o.sizes ?? Array.from({ length: o.platforms }, () => Math.exp(next() * o.spread));
  const names = sizes.map((_, i) => platformName(i));
  const total = sizes.reduce((a, b) => a + b, 0);
  const buyers: string[][] = [];
  if (o.kind === "independent") {
    const chance = sizes.map((s) => Math.min(0.95, ((o.reach ?? 1.5) * s) / total));
    while (buyers.length < o.buyers) {
      const set = names.filter((_, i) => next() < (chance[i] as number));
      if (set.length >= 2) {
        buyers.push(set);
      }
    }
  } else {
    for (let b = 0; b < o.buyers; b++) {
      const u = next();
      const k = Math.min(sizes.length, u < 0.55 ? 2 : u < 0.8 ? 3 : u < 0.93 ? 4 : 5);
      const left = sizes.map((s, i) => ({ s, i }));
      const set: string[] = [];
      for (let j = 0; j < k; j++) {
        let x = next() * left.reduce((a, l) => a + l.s, 0);
        let at = 0;
        for (; at < left.length - 1; at++) {
          x -= (left[at] as { s: number }).s;
          if (x < 0) {
            break;
          }
        }
        set.push(names[(left[at] as { i: number }).i] as string);
        left.splice(at, 1);
      }
      buyers.push(set);
    }
  }
  const bySize = names.map((n, i) => ({ n, s: sizes[i] as number })).sort((a, b) => a.s - b.s);
  return { bySize: bySize.map((x) => x.n), buyers };
}

/** Buyers reported by exactly `members`, in the market. */
export const exactly = (buyers: readonly string[][], members: readonly string[]) =>
  buyers.filter((b) => b.length === members.length && members.every((m) => b.includes(m))).length;

/** `n` copies of one set of reporters: a coalition's shared buyers. */
export const copies = (n: number, members: readonly string[]) =>
  Array.from({ length: n }, () => [...members]);

/** A seeded shuffle (Fisher–Yates), each buyer's reporters shuffled too. */
export function shuffled(buyers: readonly string[][], seed: number): string[][] {
  const next = random(seed);
  const out = buyers.map((b) => [...b]);
  for (const b of out) {
    for (let i = b.length - 1; i > 0; i--) {
      const j = Math.floor(next() * (i + 1));
      [b[i], b[j]] = [b[j] as string, b[i] as string];
    }
  }
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(next() * (i + 1));
    [out[i], out[j]] = [out[j] as string[], out[i] as string[]];
  }
  return out;
}
