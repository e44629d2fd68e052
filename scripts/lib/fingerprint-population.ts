/**
 * A ledger's worth of PDQ fingerprints for `npm run bench:evidence` and the distance figure:
 * not only uniform random hashes (real photos' hashes are not uniform), but
 *
 * - **uniform** random hashes (one-off photos nobody copied), shaped as PDQ shapes them: 128 of
 *   the 256 bits set (PDQ thresholds at the median; the ledger refuses a reported hash with more
 *   than 128 or fewer than 96, `worker/schemas/reports.ts`), uniform otherwise,
 * - **clusters** of near copies: a forger's photo edited again and again, each copy the centre
 *   with 1–20 of its set bits swapped for unset ones (distance 2–40, still 128 bits set: two
 *   PDQ hashes of 128 bits always differ in an even number),
 * - **real** photos hashed with the real hasher (`client/pdq.ts`): the test fixtures as shipped,
 *   tiles of the bridge photo (each a picture of its own), chains of ordinary edits of both
 *   (`photos.ts`), and the bridge turned and mirrored.
 *
 * Half the real tiles stay out of the set: they, their dihedral hashes and the two fixtures PDQ
 * grades below 50 are the real photos a platform asks about that nobody reported. Seeded, so a
 * run reproduces.
 */
import { PDQ_MAX_BITS, PDQ_MIN_BITS, PDQ_MIN_QUALITY, pdqBits } from "../../worker/schemas/reports";
import { chunksOf } from "../../worker/services/fingerprints";
import { rng } from "./market";
import { dihedralCopies, editChain, fixtures, hashPhoto, type Photo, shrink, tiles } from "./photos";

export const CHUNK_COUNT = 16;

export type Origin = "uniform" | "cluster" | "real";
export const ORIGINS: Origin[] = ["uniform", "cluster", "real"];

/** Bits set in each 16-bit value: the brute-force distance sums 16 look-ups. */
const POPCOUNT16 = (() => {
  const t = new Uint8Array(65536);
  for (let i = 1; i < 65536; i++) {
    t[i] = (t[i >> 1] as number) + (i & 1);
  }
  return t;
})();

/** A hash as the index stores it: 16 chunks of 16 bits. */
export type Chunks = Uint16Array;

export const chunksOfHex = (hex: string): Chunks => Uint16Array.from(chunksOf(hex));
export const hexOfChunks = (c: ArrayLike<number>): string =>
  Array.from({ length: CHUNK_COUNT }, (_, k) => (c[k] as number).toString(16).padStart(4, "0")).join("");

/** A random hash with exactly 128 of its 256 bits set, as PDQ's median threshold makes them. */
export function randomChunks(random: () => number): Chunks {
  const bits = Array.from({ length: 256 }, (_, i) => i);
  const out = new Uint16Array(CHUNK_COUNT);
  for (let i = 0; i < 128; i++) {
    const j = i + Math.floor(random() * (256 - i));
    const b = bits[j] as number;
    bits[j] = bits[i] as number;
    bits[i] = b;
    out[b >> 4] = (out[b >> 4] as number) | (1 << (b & 15));
  }
  return out;
}

/** `hash` with `k` set bits cleared and `k` unset bits set: distance 2k, as many bits set. */
export function swapBits(hash: Chunks, k: number, random: () => number): Chunks {
  const out = Uint16Array.from(hash);
  const isSet = (b: number) => (((hash[b >> 4] as number) >> (b & 15)) & 1) === 1;
  const pick = (set: boolean) => {
    const chosen = new Set<number>();
    while (chosen.size < k) {
      const b = Math.floor(random() * 256);
      if (isSet(b) === set) {
        chosen.add(b);
      }
    }
    return chosen;
  };
  for (const b of [...pick(true), ...pick(false)]) {
    out[b >> 4] = (out[b >> 4] as number) ^ (1 << (b & 15));
  }
  return out;
}

/** `hash` with `d` distinct random bits flipped (0–255, spread as chance has it). */
export function flipRandom(hash: Chunks, d: number, random: () => number): Chunks {
  const out = Uint16Array.from(hash);
  const bits = new Set<number>();
  while (bits.size < d) {
    bits.add(Math.floor(random() * 256));
  }
  for (const b of bits) {
    out[b >> 4] = (out[b >> 4] as number) ^ (1 << (b & 15));
  }
  return out;
}

/**
 * `hash` with `d` bits flipped spread as evenly as possible over the 16 chunks, the worst case
 * for the index: at 31 every chunk but one differs in two bits, and only that one is probed.
 */
export function flipSpread(hash: Chunks, d: number, random: () => number): Chunks {
  const out = Uint16Array.from(hash);
  const order = Array.from({ length: CHUNK_COUNT }, (_, k) => k).sort(() => random() - 0.5);
  for (const [i, k] of order.entries()) {
    const n = Math.floor(d / CHUNK_COUNT) + (i < d % CHUNK_COUNT ? 1 : 0);
    const bits = new Set<number>();
    while (bits.size < Math.min(16, n)) {
      bits.add(Math.floor(random() * 16));
    }
    for (const b of bits) {
      out[k] = (out[k] as number) ^ (1 << b);
    }
  }
  return out;
}

export function distance(a: ArrayLike<number>, b: ArrayLike<number>, offsetB = 0): number {
  let d = 0;
  for (let k = 0; k < CHUNK_COUNT; k++) {
    d += POPCOUNT16[((a[k] as number) ^ (b[offsetB + k] as number)) & 0xffff] as number;
  }
  return d;
}

/** A real photo's hash for the set, with where it came from. */
export interface RealHash {
  name: string;
  hash: string;
  quality: number;
  /** The photo it was made from, and the distance to it (nearest over its dihedral hashes). */
  source: string;
  toSource: number;
  /** The original itself, an edited copy (chains and the shipped variants), or turned/mirrored. */
  kind: "original" | "edited" | "turned";
  edit: string;
}

export interface RealPhotos {
  /** Real hashes a platform can report (quality ≥ 50): originals, shipped copies, edits. */
  inSet: RealHash[];
  /** Real photos nobody reported: held-out tiles and the two flat fixtures, with dihedrals. */
  heldOut: Photo[];
  /** Every original of the set with its own eight hashes (for the figure). */
  originals: Photo[];
}

/**
 * The real photos: the fixtures, 6 × 4 bridge tiles (every other one held out) and `chains`
 * edit chains of 1–4 edits per original (more of the bridge itself), all hashed with pdqHash.
 */
export function realPhotos(seed: number, chains = 12): RealPhotos {
  const random = rng(seed);
  const f = fixtures();
  const [bridge] = f.originals as [Photo, Photo];
  const grid = tiles(bridge, 6, 4).filter((t) => t.quality >= 50);
  const originals = [...f.originals, ...grid.filter((_, i) => i % 2 === 0)];
  const heldOut = [...grid.filter((_, i) => i % 2 === 1), ...f.lowQuality];
  const nearest = (of: Photo, hash: string) => {
    const q = chunksOfHex(hash);
    return Math.min(...of.dihedral.map((d) => distance(chunksOfHex(d), q)));
  };
  const inSet: RealHash[] = [];
  const add = (source: Photo, name: string, kind: RealHash["kind"], edit: string, p: Photo) => {
    // What the ledger accepts on a report: quality ≥ 50 and 96–128 bits set.
    const bits = pdqBits(p.hash);
    if (p.quality >= PDQ_MIN_QUALITY && bits >= PDQ_MIN_BITS && bits <= PDQ_MAX_BITS) {
      const toSource = nearest(source, p.hash);
      inSet.push({ name, hash: p.hash, quality: p.quality, source: source.name, toSource, kind, edit });
    }
  };
  for (const o of originals) {
    add(o, o.name, "original", "original", o);
  }
  for (const c of f.copies) {
    const turned = c.name.includes("rotate");
    add(bridge, c.name, turned ? "turned" : "edited", turned ? "turned 90° (shipped)" : "shipped copy", c);
  }
  for (const d of dihedralCopies(shrink(bridge.pixels))) {
    add(bridge, `${bridge.name} ${d.name}`, "turned", d.name, hashPhoto(d.name, d.pixels));
  }
  for (const o of originals) {
    const start = shrink(o.pixels);
    const n = o === bridge ? chains * 4 : chains;
    for (let k = 0; k < n; k++) {
      const e = editChain(start, random, 1 + Math.floor(random() * 4));
      add(o, `${o.name}: ${e.name}`, "edited", e.name, hashPhoto(e.name, e.pixels));
    }
  }
  return { inSet, heldOut, originals };
}

/**
 * Fingerprints in arrival order, 16 chunks each, with their origin. Reports group consecutive
 * fingerprints (1–4 photos each), so a cluster's copies sit in a few reports, as a forger's
 * claims would.
 */
export class Population {
  chunks: Uint16Array;
  origin: Uint8Array;
  quality: Uint8Array;
  size = 0;
  private clustered = 0;

  constructor(readonly capacity: number) {
    this.chunks = new Uint16Array(capacity * CHUNK_COUNT);
    this.origin = new Uint8Array(capacity);
    this.quality = new Uint8Array(capacity);
  }

  push(hash: ArrayLike<number>, origin: Origin, quality = 90): void {
    if (this.size >= this.capacity) {
      throw new RangeError("population full");
    }
    this.chunks.set(hash, this.size * CHUNK_COUNT);
    this.origin[this.size] = ORIGINS.indexOf(origin);
    this.quality[this.size] = quality;
    this.size++;
  }

  at(i: number): Chunks {
    return this.chunks.subarray(i * CHUNK_COUNT, (i + 1) * CHUNK_COUNT);
  }

  hex(i: number): string {
    return hexOfChunks(this.at(i));
  }

  originOf(i: number): Origin {
    return ORIGINS[this.origin[i] as number] as Origin;
  }

  /**
   * Grows to `target` fingerprints: a `clusterShare` of them (by count) in clusters of 2–40
   * near copies (mean ≈ 9) of a random centre, each copy 2–40 bits from it (`swapBits`); the
   * rest uniform random (128 bits set).
   */
  grow(target: number, random: () => number, clusterShare = 0.5): void {
    while (this.size < target) {
      if (this.clustered < clusterShare * (this.size + 1)) {
        const center = randomChunks(random);
        const size = Math.min(40, 2 + Math.floor(-Math.log(1 - random()) * 7), target - this.size);
        // Distinct copies: one report never carries the same hash twice.
        const seen = new Set([hexOfChunks(center)]);
        this.push(center, "cluster");
        while (seen.size < size) {
          const copy = swapBits(center, 1 + Math.floor(random() * 20), random);
          if (!seen.has(hexOfChunks(copy))) {
            seen.add(hexOfChunks(copy));
            this.push(copy, "cluster");
          }
        }
        this.clustered += size;
      } else {
        this.push(randomChunks(random), "uniform");
      }
    }
  }

  /** Every fingerprint within `max` of `query`, by brute force: distinct hashes and their distance. */
  within(query: ArrayLike<number>, max: number): Map<string, number> {
    const found = new Map<string, number>();
    const c = this.chunks;
    for (let i = 0; i < this.size; i++) {
      const o = i * CHUNK_COUNT;
      let d = 0;
      for (let k = 0; k < CHUNK_COUNT && d <= max; k++) {
        d += POPCOUNT16[((query[k] as number) ^ (c[o + k] as number)) & 0xffff] as number;
      }
      if (d <= max) {
        found.set(this.hex(i), d);
      }
    }
    return found;
  }
}
