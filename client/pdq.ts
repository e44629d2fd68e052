/**
 * PDQ perceptual hashing (issue 11), run on the platform's side: pixels in, a 256-bit hash, its
 * quality and the hashes of the image's seven rotations and flips out. The photo never leaves
 * the platform; only these hashes do. Pure: no decoder, no I/O, runs in Node and in a Worker.
 *
 * Written from Meta's reference implementation, the spec of PDQ: ThreatExchange `pdq/cpp/hashing/
 * pdqhashing.cpp`, `pdq/cpp/downscaling/downscaling.cpp`, `pdq/cpp/common/pdqhashtypes.{h,cpp}`
 * and the Python port `pdq/python/pdqhashing/` (Copyright (c) Meta Platforms, Inc. and
 * affiliates; BSD licence, text in test/fixtures/pdq/LICENSE). The steps, constants, bit order
 * and hex format are the reference's; the one deliberate difference is how the 2-D DCT is
 * summed (see `dct64To16`), which changes no value beyond rounding.
 *
 * @example
 *   const { hash, quality, dihedral } = pdqHash({ width, height, data: rgba });
 *   if (quality >= 50 && hammingDistance(hash, other) <= PDQ_MATCH_THRESHOLD) { … }
 */

/** RGBA, 8 bits a channel, row-major, as `ImageData` and the decoders give it. Alpha is ignored. */
export interface Pixels {
  width: number;
  height: number;
  data: Uint8Array | Uint8ClampedArray;
}

/**
 * The reference's order of the dihedral hashes (`pdqDihedralHash256esFromFloatLuma`), each the
 * hash of the image so transformed: rotate90 turns it a quarter anticlockwise (EXIF orientation
 * 8), rotate270 clockwise (6); flipX mirrors it top to bottom (4), flipY left to right (2);
 * flipPlus1 transposes it (5), flipMinus1 transposes it about the other diagonal (7).
 */
export const DIHEDRAL = [
  "original",
  "rotate90",
  "rotate180",
  "rotate270",
  "flipX",
  "flipY",
  "flipPlus1",
  "flipMinus1",
] as const;
export type Dihedral = (typeof DIHEDRAL)[number];

export interface PdqResult {
  /** 64 lower-case hex digits, formatted as the reference formats a Hash256. */
  hash: string;
  /** 0–100: how much gradient the image has; the PDQ authors discard hashes below 50. */
  quality: number;
  /** Eight hashes in `DIHEDRAL` order; `dihedral[0] === hash`. */
  dihedral: string[];
}

/** Meta's suggested match threshold: hashes this close are the same picture. */
export const PDQ_MATCH_THRESHOLD = 31;

/** Smaller images hash to all zeros with quality 0, as in the reference. */
const MIN_HASHABLE_DIM = 5;
/** BT.601 luma ("From Wikipedia: standard RGB to luminance"), as float32 like the reference. */
const LUMA_R = Math.fround(0.299);
const LUMA_G = Math.fround(0.587);
const LUMA_B = Math.fround(0.114);
/** Two X,Y pairs of box filters make a tent filter (Jarosz, "Fast Image Convolutions", 2001). */
const JAROSZ_XY_PASSES = 2;

/**
 * The 16 rows of the 64-point DCT-II used (frequencies 1..16), halved: row i's entry at 63−k is
 * (−1)^(i+1) times its entry at k, so only k < 32 is stored and the fold in `dct64To16` uses the
 * sign. Scaled by √(2/64) like the C++ (the Python leaves it out; the sign test is unaffected).
 */
const DCT_HALF = (() => {
  const m = new Float64Array(16 * 32);
  const scale = Math.sqrt(2 / 64);
  for (let i = 0; i < 16; i++) {
    for (let k = 0; k < 32; k++) {
      m[i * 32 + k] = scale * Math.cos((Math.PI / 2 / 64) * (i + 1) * (2 * k + 1));
    }
  }
  return m;
})();

/**
 * Hashes an image: luma, Jarosz tent filter, decimation to 64×64, quality, 16×16 DCT, median
 * threshold; then the seven other dihedral hashes from the same DCT by the reference's sign flips
 * and transpositions, which equal hashing the rotated or flipped image.
 */
export function pdqHash(pixels: Pixels): PdqResult {
  const { width, height, data } = pixels;
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 0 || height < 0) {
    throw new RangeError(`bad image size ${width}×${height}`);
  }
  if (data.length < width * height * 4) {
    throw new RangeError(`${width}×${height} RGBA needs ${width * height * 4} bytes, got ${data.length}`);
  }
  if (width < MIN_HASHABLE_DIM || height < MIN_HASHABLE_DIM) {
    const zero = "0".repeat(64);
    return { hash: zero, quality: 0, dihedral: DIHEDRAL.map(() => zero) };
  }
  const luma = lumaFromRgba(pixels);
  const scratch = new Float32Array(width * height);
  jaroszFilter(luma, scratch, height, width, windowSize(width), windowSize(height));
  const small = decimate(luma, height, width);
  const quality = qualityMetric(small);
  const dct = dct64To16(small);
  const dihedral = DIHEDRAL.map((d) => bitsToHex(dihedralDct(dct, d)));
  return { hash: dihedral[0] as string, quality, dihedral };
}

/**
 * Bits that differ between two PDQ hashes (0–256).
 *
 * @example hammingDistance("00…0f", "00…01") → 3
 */
export function hammingDistance(a: string, b: string): number {
  if (!HEX64.test(a) || !HEX64.test(b)) {
    throw new RangeError("a PDQ hash is 64 hex digits");
  }
  let distance = 0;
  for (let i = 0; i < 64; i += 8) {
    let x = (Number.parseInt(a.slice(i, i + 8), 16) ^ Number.parseInt(b.slice(i, i + 8), 16)) >>> 0;
    while (x !== 0) {
      x &= x - 1;
      distance++;
    }
  }
  return distance;
}

const HEX64 = /^[0-9a-fA-F]{64}$/;

function lumaFromRgba({ width, height, data }: Pixels): Float32Array {
  const luma = new Float32Array(width * height);
  for (let p = 0, q = 0; p < luma.length; p++, q += 4) {
    luma[p] =
      LUMA_R * (data[q] as number) + LUMA_G * (data[q + 1] as number) + LUMA_B * (data[q + 2] as number);
  }
  return luma;
}

/**
 * Per-pass box window for one dimension: 1/128 of it rounded up, so two passes cover the 1/64
 * of the image that becomes one of the 64×64 samples (`computeJaroszFilterWindowSize(n, 64)`).
 */
function windowSize(dimension: number): number {
  return Math.floor((dimension + 2 * 64 - 1) / (2 * 64));
}

/** In place on `buffer1` (numRows × numCols, row-major); `buffer2` is scratch. */
function jaroszFilter(
  buffer1: Float32Array,
  buffer2: Float32Array,
  numRows: number,
  numCols: number,
  windowAlongRows: number,
  windowAlongCols: number,
): void {
  for (let pass = 0; pass < JAROSZ_XY_PASSES; pass++) {
    for (let i = 0; i < numRows; i++) {
      box1D(buffer1, buffer2, i * numCols, numCols, 1, windowAlongRows);
    }
    for (let j = 0; j < numCols; j++) {
      box1D(buffer2, buffer1, j, numRows, numCols, windowAlongCols);
    }
  }
}

/**
 * The reference's running-sum box filter, phase for phase: a window of w reaches back
 * w − ⌊(w+2)/2⌋ and forward ⌊(w+2)/2⌋ − 1 (so even windows lean forward), shrinking at the ends.
 */
function box1D(
  input: Float32Array,
  output: Float32Array,
  start: number,
  length: number,
  stride: number,
  window: number,
): void {
  const half = Math.floor((window + 2) / 2);
  const phase1 = half - 1;
  const phase2 = window - half + 1;
  const phase3 = length - window;
  const phase4 = half - 1;
  let li = start;
  let ri = start;
  let oi = start;
  let sum = 0;
  let size = 0;
  for (let n = 0; n < phase1; n++) {
    sum += input[ri] as number;
    size++;
    ri += stride;
  }
  for (let n = 0; n < phase2; n++) {
    sum += input[ri] as number;
    size++;
    output[oi] = sum / size;
    ri += stride;
    oi += stride;
  }
  for (let n = 0; n < phase3; n++) {
    sum += input[ri] as number;
    sum -= input[li] as number;
    output[oi] = sum / size;
    li += stride;
    ri += stride;
    oi += stride;
  }
  for (let n = 0; n < phase4; n++) {
    sum -= input[li] as number;
    size--;
    output[oi] = sum / size;
    li += stride;
    oi += stride;
  }
}

/** 64×64 samples at the centres of a 64×64 grid over the filtered image. */
function decimate(input: Float32Array, numRows: number, numCols: number): Float64Array {
  const out = new Float64Array(64 * 64);
  for (let i = 0; i < 64; i++) {
    const ini = Math.floor(((i + 0.5) * numRows) / 64);
    for (let j = 0; j < 64; j++) {
      const inj = Math.floor(((j + 0.5) * numCols) / 64);
      out[i * 64 + j] = input[ini * numCols + inj] as number;
    }
  }
  return out;
}

/** The reference's heuristic: significant neighbour differences, summed, over 90, at most 100. */
function qualityMetric(a: Float64Array): number {
  let gradientSum = 0;
  for (let i = 0; i < 63; i++) {
    for (let j = 0; j < 64; j++) {
      gradientSum += Math.abs(
        Math.trunc((((a[i * 64 + j] as number) - (a[(i + 1) * 64 + j] as number)) * 100) / 255),
      );
    }
  }
  for (let i = 0; i < 64; i++) {
    for (let j = 0; j < 63; j++) {
      gradientSum += Math.abs(
        Math.trunc((((a[i * 64 + j] as number) - (a[i * 64 + j + 1] as number)) * 100) / 255),
      );
    }
  }
  return Math.min(100, Math.trunc(gradientSum / 90));
}

/**
 * B = D A Dᵀ (16×16) for the 16×64 DCT matrix D, as the reference defines it, but summed so
 * that the dihedral identities hold bit for bit: hashing a rotated or flipped 64×64 image gives
 * exactly the sign-flipped or transposed B (`dihedralDct`), not merely up to rounding.
 *
 * A's four mirror images of each (k, l), k, l < 32, are folded first, with the signs of D's
 * symmetry, pairing diagonal corners ((k,l) with (63−k,63−l)); every symmetry of the square maps
 * diagonal pairs to diagonal pairs, so the fold is exact under all eight. The 32×32 double sum
 * then visits (k,l) and (l,k) together, so a transposition changes no rounding either.
 */
function dct64To16(a: Float64Array): Float64Array {
  // fold[parity][k*32+l], parity = 2·(row sign is −) + (column sign is −).
  const fold = [0, 1, 2, 3].map(() => new Float64Array(32 * 32));
  for (let k = 0; k < 32; k++) {
    for (let l = 0; l < 32; l++) {
      const p00 = a[k * 64 + l] as number;
      const p11 = a[(63 - k) * 64 + (63 - l)] as number;
      const p10 = a[(63 - k) * 64 + l] as number;
      const p01 = a[k * 64 + (63 - l)] as number;
      const at = k * 32 + l;
      // Row frequency i has sign (−1)^(i+1): even i → −, odd i → +.
      for (let parity = 0; parity < 4; parity++) {
        const sr = parity & 2 ? -1 : 1;
        const sc = parity & 1 ? -1 : 1;
        (fold[parity] as Float64Array)[at] = p00 + sr * sc * p11 + (sr * p10 + sc * p01);
      }
    }
  }
  const b = new Float64Array(16 * 16);
  for (let i = 0; i < 16; i++) {
    for (let j = 0; j < 16; j++) {
      const f = fold[(i % 2 === 0 ? 2 : 0) + (j % 2 === 0 ? 1 : 0)] as Float64Array;
      let sum = 0;
      for (let k = 0; k < 32; k++) {
        const dik = DCT_HALF[i * 32 + k] as number;
        const djk = DCT_HALF[j * 32 + k] as number;
        sum += dik * djk * (f[k * 32 + k] as number);
        for (let l = k + 1; l < 32; l++) {
          const dil = DCT_HALF[i * 32 + l] as number;
          const djl = DCT_HALF[j * 32 + l] as number;
          sum += dik * djl * (f[k * 32 + l] as number) + dil * djk * (f[l * 32 + k] as number);
        }
      }
      b[i * 16 + j] = sum;
    }
  }
  return b;
}

/**
 * The reference's `dct16OriginalTo*`: each dihedral transform of the image is a sign pattern
 * on the DCT, with a transposition for those that swap the axes.
 */
function dihedralDct(a: Float64Array, d: Dihedral): Float64Array {
  const b = new Float64Array(256);
  for (let i = 0; i < 16; i++) {
    for (let j = 0; j < 16; j++) {
      const v = a[i * 16 + j] as number;
      switch (d) {
        case "original":
          b[i * 16 + j] = v;
          break;
        case "rotate90":
          b[j * 16 + i] = j & 1 ? v : -v;
          break;
        case "rotate180":
          b[i * 16 + j] = (i + j) & 1 ? -v : v;
          break;
        case "rotate270":
          b[j * 16 + i] = i & 1 ? v : -v;
          break;
        case "flipX":
          b[i * 16 + j] = i & 1 ? v : -v;
          break;
        case "flipY":
          b[i * 16 + j] = j & 1 ? v : -v;
          break;
        case "flipPlus1":
          b[j * 16 + i] = v;
          break;
        case "flipMinus1":
          b[j * 16 + i] = (i + j) & 1 ? -v : v;
          break;
      }
    }
  }
  return b;
}

/**
 * Bit i·16+j is set when B[i][j] exceeds the median (Torben's, as the reference takes it); the
 * hash is the sixteen 16-bit words from the last to the first, four hex digits each.
 */
function bitsToHex(b: Float64Array): string {
  const median = torben(b);
  let hex = "";
  for (let i = 15; i >= 0; i--) {
    let word = 0;
    for (let j = 0; j < 16; j++) {
      if ((b[i * 16 + j] as number) > median) {
        word |= 1 << j;
      }
    }
    hex += word.toString(16).padStart(4, "0");
  }
  return hex;
}

/** Torben's median as in the reference: the lower median for an even count. */
function torben(m: Float64Array): number {
  const midn = Math.floor((m.length + 1) / 2);
  let min = m[0] as number;
  let max = m[0] as number;
  for (const v of m) {
    min = Math.min(min, v);
    max = Math.max(max, v);
  }
  for (;;) {
    const guess = (min + max) / 2;
    let less = 0;
    let greater = 0;
    let equal = 0;
    let maxLtGuess = min;
    let minGtGuess = max;
    for (const v of m) {
      if (v < guess) {
        less++;
        if (v > maxLtGuess) {
          maxLtGuess = v;
        }
      } else if (v > guess) {
        greater++;
        if (v < minGtGuess) {
          minGtGuess = v;
        }
      } else {
        equal++;
      }
    }
    if (less <= midn && greater <= midn) {
      if (less >= midn) {
        return maxLtGuess;
      }
      return less + equal >= midn ? guess : minGtGuess;
    }
    if (less > greater) {
      max = maxLtGuess;
    } else {
      min = minGtGuess;
    }
  }
}
