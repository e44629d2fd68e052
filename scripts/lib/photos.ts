/**
 * Real photos and the edits a forger makes to them, for measuring PDQ matching (issue 11): the
 * fixture photos of test/fixtures/pdq, cut into tiles that share no pixel (each a photo of its
 * own), and chains of ordinary edits — crops, resizes, JPEG re-encodes, brightness, contrast,
 * blur, noise, a watermark, a slight turn — each hashed with the real hasher (`client/pdq.ts`).
 * Used by `npm run bench:evidence` and `npm run figures`. Seeded, so runs reproduce.
 *
 * @example
 *   const random = rng(11);
 *   const copy = editChain(photo.pixels, random, 3);   // e.g. ["crop 8%", "jpeg q40", "brightness +20"]
 *   hammingDistance(pdqHash(copy.pixels).hash, photo.hash)
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { decode as decodeJpeg, encode as encodeJpeg } from "jpeg-js";
import { decodeImage, orient } from "../../client/images";
import { type Pixels, pdqHash } from "../../client/pdq";
import { ROOT } from "./local";

export const FIXTURES = join(ROOT, "test", "fixtures", "pdq");

export interface Photo {
  name: string;
  pixels: Pixels;
  hash: string;
  quality: number;
  dihedral: string[];
}

export function hashPhoto(name: string, pixels: Pixels): Photo {
  return { name, pixels, ...pdqHash(pixels) };
}

function readFixture(name: string): Photo {
  return hashPhoto(name, decodeImage(new Uint8Array(readFileSync(join(FIXTURES, name)))).pixels);
}

/**
 * The fixtures as shipped: the two originals a platform could report (quality ≥ 50), the two
 * edited copies and the turned copy of the bridge, and the two flat images PDQ grades below 50
 * (a platform cannot report those; they are still photos a refund may carry).
 */
export function fixtures() {
  return {
    originals: ["bridge-original.jpg", "wee.jpg"].map(readFixture),
    copies: ["variants/blur-a-little.jpg", "variants/square-256x256.jpg", "bridge-rotate-90.jpg"].map(
      readFixture,
    ),
    lowQuality: ["q0003.jpg", "q0004.jpg"].map(readFixture),
  };
}

/** `cols` × `rows` tiles of a photo, sharing no pixel: different pictures as PDQ sees them. */
export function tiles(photo: Photo, cols: number, rows: number): Photo[] {
  const { width, height } = photo.pixels;
  const w = Math.floor(width / cols);
  const h = Math.floor(height / rows);
  const out: Photo[] = [];
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      out.push(hashPhoto(`${photo.name} tile ${c},${r}`, crop(photo.pixels, c * w, r * h, w, h)));
    }
  }
  return out;
}

// ── pixel edits ─────────────────────────────────────────────────────────────────────────────

const clamp = (v: number) => (v < 0 ? 0 : v > 255 ? 255 : Math.round(v));

function crop({ width, data }: Pixels, x0: number, y0: number, w: number, h: number): Pixels {
  const out = new Uint8Array(w * h * 4);
  for (let y = 0; y < h; y++) {
    out.set(data.subarray(((y0 + y) * width + x0) * 4, ((y0 + y) * width + x0 + w) * 4), y * w * 4);
  }
  return { width: w, height: h, data: out };
}

/** Bilinear resampling to `w` × `h`. */
function resize({ width, height, data }: Pixels, w: number, h: number): Pixels {
  const out = new Uint8Array(w * h * 4);
  for (let y = 0; y < h; y++) {
    const fy = Math.min(height - 1, Math.max(0, ((y + 0.5) * height) / h - 0.5));
    const y1 = Math.floor(fy);
    const y2 = Math.min(height - 1, y1 + 1);
    const ty = fy - y1;
    for (let x = 0; x < w; x++) {
      const fx = Math.min(width - 1, Math.max(0, ((x + 0.5) * width) / w - 0.5));
      const x1 = Math.floor(fx);
      const x2 = Math.min(width - 1, x1 + 1);
      const tx = fx - x1;
      for (let ch = 0; ch < 4; ch++) {
        const a = data[(y1 * width + x1) * 4 + ch] as number;
        const b = data[(y1 * width + x2) * 4 + ch] as number;
        const c = data[(y2 * width + x1) * 4 + ch] as number;
        const d = data[(y2 * width + x2) * 4 + ch] as number;
        out[(y * w + x) * 4 + ch] = clamp((a * (1 - tx) + b * tx) * (1 - ty) + (c * (1 - tx) + d * tx) * ty);
      }
    }
  }
  return { width: w, height: h, data: out };
}

function mapChannels(pixels: Pixels, f: (v: number) => number): Pixels {
  const out = new Uint8Array(pixels.data.length);
  for (let i = 0; i < out.length; i++) {
    out[i] = i % 4 === 3 ? 255 : clamp(f(pixels.data[i] as number));
  }
  return { ...pixels, data: out };
}

function jpeg(pixels: Pixels, quality: number): Pixels {
  const encoded = encodeJpeg({ width: pixels.width, height: pixels.height, data: pixels.data }, quality);
  const decoded = decodeJpeg(encoded.data, { useTArray: true, formatAsRGBA: true });
  return { width: decoded.width, height: decoded.height, data: decoded.data };
}

/** A box blur of radius `r`, horizontal then vertical. */
function blur(pixels: Pixels, r: number): Pixels {
  const pass = ({ width, height, data }: Pixels, horizontal: boolean): Pixels => {
    const out = new Uint8Array(data.length);
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        for (let ch = 0; ch < 3; ch++) {
          let sum = 0;
          let n = 0;
          for (let k = -r; k <= r; k++) {
            const sx = horizontal ? x + k : x;
            const sy = horizontal ? y : y + k;
            if (sx >= 0 && sx < width && sy >= 0 && sy < height) {
              sum += data[(sy * width + sx) * 4 + ch] as number;
              n++;
            }
          }
          out[(y * width + x) * 4 + ch] = clamp(sum / n);
        }
        out[(y * width + x) * 4 + 3] = 255;
      }
    }
    return { width, height, data: out };
  };
  return pass(pass(pixels, true), false);
}

/** Turns by `degrees` about the centre (nearest neighbour), keeping the size; corners go black. */
function turn(pixels: Pixels, degrees: number): Pixels {
  const { width, height, data } = pixels;
  const out = new Uint8Array(data.length);
  const cos = Math.cos((degrees * Math.PI) / 180);
  const sin = Math.sin((degrees * Math.PI) / 180);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const dx = x - width / 2;
      const dy = y - height / 2;
      const sx = Math.round(cos * dx + sin * dy + width / 2);
      const sy = Math.round(-sin * dx + cos * dy + height / 2);
      if (sx >= 0 && sx < width && sy >= 0 && sy < height) {
        out.set(data.subarray((sy * width + sx) * 4, (sy * width + sx) * 4 + 4), (y * width + x) * 4);
      } else {
        out[(y * width + x) * 4 + 3] = 255;
      }
    }
  }
  return { width, height, data: out };
}

/** A semi-transparent bar with a pattern, as a watermark or a caption would lie on the photo. */
function watermark(pixels: Pixels, random: () => number): Pixels {
  const { width, height } = pixels;
  const data = Uint8Array.from(pixels.data);
  const h = Math.max(1, Math.round(height * (0.06 + 0.08 * random())));
  const y0 = Math.floor(random() * (height - h));
  const shade = random() < 0.5 ? 255 : 0;
  for (let y = y0; y < y0 + h; y++) {
    for (let x = 0; x < width; x++) {
      const letter = ((x >> 2) + (y >> 2)) % 3 === 0 ? 0.7 : 0.35;
      for (let ch = 0; ch < 3; ch++) {
        const i = (y * width + x) * 4 + ch;
        data[i] = clamp((data[i] as number) * (1 - letter) + shade * letter);
      }
    }
  }
  return { width, height, data };
}

/** Gaussian-ish noise of the given spread (sum of three uniforms). */
function noise(pixels: Pixels, spread: number, random: () => number): Pixels {
  return mapChannels(pixels, (v) => v + spread * (random() + random() + random() - 1.5));
}

export interface Edit {
  name: string;
  pixels: Pixels;
}

/**
 * One ordinary edit, chosen at random with its strength: what a photo goes through between a
 * forger's phone and a refund form. Never a quarter turn or a mirror (those the dihedral hashes
 * cover: `dihedralCopies`).
 */
export function randomEdit(pixels: Pixels, random: () => number): Edit {
  const { width, height } = pixels;
  const kind = Math.floor(random() * 9);
  switch (kind) {
    case 0: {
      const share = 0.02 + 0.13 * random();
      const w = Math.max(8, Math.round(width * (1 - share)));
      const h = Math.max(8, Math.round(height * (1 - share)));
      const x0 = Math.floor(random() * (width - w + 1));
      const y0 = Math.floor(random() * (height - h + 1));
      return { name: `crop ${Math.round(100 * share)}%`, pixels: crop(pixels, x0, y0, w, h) };
    }
    case 1: {
      const scale = 0.25 + 0.6 * random();
      const w = Math.max(8, Math.round(width * scale));
      const h = Math.max(8, Math.round(height * scale));
      return { name: `resize ×${scale.toFixed(2)}`, pixels: resize(pixels, w, h) };
    }
    case 2: {
      const quality = 15 + Math.floor(70 * random());
      return { name: `jpeg q${quality}`, pixels: jpeg(pixels, quality) };
    }
    case 3: {
      const delta = Math.round((random() < 0.5 ? -1 : 1) * (10 + 40 * random()));
      return {
        name: `brightness ${delta > 0 ? "+" : ""}${delta}`,
        pixels: mapChannels(pixels, (v) => v + delta),
      };
    }
    case 4: {
      const c = 0.6 + 0.8 * random();
      return { name: `contrast ×${c.toFixed(2)}`, pixels: mapChannels(pixels, (v) => 128 + (v - 128) * c) };
    }
    case 5: {
      const r = 1 + Math.floor(random() * Math.max(1, Math.min(width, height) / 200));
      return { name: `blur r${r}`, pixels: blur(pixels, r) };
    }
    case 6: {
      const spread = 8 + 30 * random();
      return { name: `noise ±${spread.toFixed(0)}`, pixels: noise(pixels, spread, random) };
    }
    case 7:
      return { name: "watermark", pixels: watermark(pixels, random) };
    default: {
      const degrees = (random() < 0.5 ? -1 : 1) * (1 + 4 * random());
      return { name: `turn ${degrees.toFixed(1)}°`, pixels: turn(pixels, degrees) };
    }
  }
}

/** `steps` random edits in a row: a photo edited again and again. */
export function editChain(pixels: Pixels, random: () => number, steps: number): Edit {
  let current: Edit = { name: "", pixels };
  const names: string[] = [];
  for (let s = 0; s < steps; s++) {
    current = randomEdit(current.pixels, random);
    names.push(current.name);
  }
  return { name: names.join(", "), pixels: current.pixels };
}

/** The photo turned and mirrored: the seven copies only a dihedral hash matches. */
export function dihedralCopies(pixels: Pixels): Edit[] {
  const names = [
    "mirror",
    "turn 180°",
    "mirror top-bottom",
    "transpose",
    "turn 90° cw",
    "transverse",
    "turn 90° ccw",
  ];
  return [2, 3, 4, 5, 6, 7, 8].map((o, i) => ({ name: names[i] as string, pixels: orient(pixels, o) }));
}

/** Pixels a little smaller, so chains of edits run fast: PDQ sees 64×64 anyway. */
export function shrink(pixels: Pixels, longest = 512): Pixels {
  const scale = longest / Math.max(pixels.width, pixels.height);
  if (scale >= 1) {
    return pixels;
  }
  return resize(pixels, Math.round(pixels.width * scale), Math.round(pixels.height * scale));
}
