/**
 * PDQ inside workerd (issue 11): the client kit's hasher and decoders run in a Worker as they do
 * in Node. The dihedral hashes are checked against hashing the turned or mirrored pixels
 * themselves, bit for bit; the reference-compatibility test on real photos is in
 * test/node/pdq.test.ts (it reads the fixtures from disk).
 */
import { env } from "cloudflare:workers";
import fc from "fast-check";
import { encode as encodePng } from "fast-png";
import { describe, expect, it } from "vitest";
import { decodeImage, ImageError, orient, sniffFormat, webpSize } from "../client/images";
import { DIHEDRAL, type Dihedral, hammingDistance, type Pixels, pdqHash } from "../client/pdq";

/** EXIF orientation that produces each dihedral transform (see `DIHEDRAL`). */
const ORIENTATION_OF: Record<Dihedral, number> = {
  original: 1,
  rotate90: 8,
  rotate180: 3,
  rotate270: 6,
  flipX: 4,
  flipY: 2,
  flipPlus1: 5,
  flipMinus1: 7,
};

/**
 * 64×64 images, the size at which PDQ's downsampling is the identity, so a turned image is the
 * same samples turned: random noise, and blocky images of few grey levels (many equal DCT
 * coefficients, where a rounding difference would show in the median).
 */
const image64 = fc.oneof(
  fc.uint8Array({ minLength: 64 * 64 * 4, maxLength: 64 * 64 * 4 }),
  fc
    .tuple(
      fc.array(fc.integer({ min: 0, max: 255 }), { minLength: 1, maxLength: 4 }),
      fc.integer({ min: 1, max: 16 }),
      fc.nat(),
    )
    .map(([levels, block, seed]) => {
      const data = new Uint8Array(64 * 64 * 4);
      for (let y = 0; y < 64; y++) {
        for (let x = 0; x < 64; x++) {
          const cell = Math.floor(y / block) * 97 + Math.floor(x / block) * 31 + seed;
          data.fill(levels[cell % levels.length] as number, (y * 64 + x) * 4, (y * 64 + x) * 4 + 4);
        }
      }
      return data;
    }),
);

function gradient(width: number, height: number): Pixels {
  const data = new Uint8Array(width * height * 4);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const p = (y * width + x) * 4;
      data.set([(x * 7 + y * 3) % 256, (x * y) % 256, (y * 11) % 256, 255], p);
    }
  }
  return { width, height, data };
}

describe("pdqHash", () => {
  it("gives each dihedral hash exactly as hashing the turned or mirrored image does", () => {
    fc.assert(
      fc.property(image64, (data) => {
        const base = pdqHash({ width: 64, height: 64, data });
        expect(base.dihedral).toHaveLength(8);
        expect(base.dihedral[0]).toBe(base.hash);
        DIHEDRAL.forEach((name, i) => {
          const turned = pdqHash(orient({ width: 64, height: 64, data }, ORIENTATION_OF[name]));
          expect(turned.hash, name).toBe(base.dihedral[i]);
          expect(turned.quality, name).toBe(base.quality);
        });
      }),
      { numRuns: 40 },
    );
  });

  it("formats 64 lower-case hex digits, with about half the bits set, and grades quality 0–100", () => {
    const { hash, quality, dihedral } = pdqHash(gradient(300, 200));
    expect(hash).toMatch(/^[0-9a-f]{64}$/);
    expect(hammingDistance(hash, "0".repeat(64))).toBeGreaterThanOrEqual(120);
    expect(hammingDistance(hash, "0".repeat(64))).toBeLessThanOrEqual(128);
    expect(quality).toBeGreaterThanOrEqual(0);
    expect(quality).toBeLessThanOrEqual(100);
    expect(new Set(dihedral).size).toBe(8);
  });

  it("hashes an image under 5 pixels a side to zeros of quality 0, as the reference does", () => {
    const zero = "0".repeat(64);
    expect(pdqHash(gradient(4, 100))).toEqual({ hash: zero, quality: 0, dihedral: Array(8).fill(zero) });
  });

  it("refuses pixel data shorter than its size says", () => {
    expect(() => pdqHash({ width: 10, height: 10, data: new Uint8Array(399) })).toThrow(RangeError);
  });
});

describe("hammingDistance", () => {
  const hex64 = fc
    .uint8Array({ minLength: 32, maxLength: 32 })
    .map((b) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join(""));

  it("counts differing bits: zero to itself, symmetric, 256 to the complement", () => {
    fc.assert(
      fc.property(hex64, hex64, (a, b) => {
        const complement = a.replace(/./g, (c) => (15 - Number.parseInt(c, 16)).toString(16));
        expect(hammingDistance(a, a)).toBe(0);
        expect(hammingDistance(a, b)).toBe(hammingDistance(b, a));
        expect(hammingDistance(a, complement)).toBe(256);
        expect(hammingDistance(a.toUpperCase(), b)).toBe(hammingDistance(a, b));
      }),
    );
    expect(hammingDistance(`${"0".repeat(62)}0f`, `${"0".repeat(62)}01`)).toBe(3);
  });

  it("refuses what is not 64 hex digits", () => {
    expect(() => hammingDistance("abc", "0".repeat(64))).toThrow(RangeError);
  });
});

describe("decodeImage in a Worker", () => {
  it("decodes a PNG to the pixels it was made from, and they hash the same", () => {
    const pixels = gradient(150, 90);
    const png = encodePng({ width: 150, height: 90, data: pixels.data, channels: 4, depth: 8 });
    const decoded = decodeImage(png);
    expect(decoded.format).toBe("png");
    expect(decoded.orientation).toBe(1);
    expect(decoded.pixels.width).toBe(150);
    expect(Array.from(decoded.pixels.data)).toEqual(Array.from(pixels.data));
    expect(pdqHash(decoded.pixels)).toEqual(pdqHash(pixels));
  });

  it("reads grey PNGs as grey RGB", () => {
    const grey = new Uint8Array(8 * 6).map((_, i) => i * 5);
    const decoded = decodeImage(encodePng({ width: 8, height: 6, data: grey, channels: 1, depth: 8 }));
    expect(Array.from(decoded.pixels.data.subarray(4 * 7, 4 * 8))).toEqual([35, 35, 35, 255]);
  });

  it("says what is wrong with a file that is not a JPEG, PNG or WebP", () => {
    expect(() => decodeImage(new TextEncoder().encode("hello, not a photo\n"))).toThrow(ImageError);
    expect(() => decodeImage(new TextEncoder().encode("hello"))).toThrow(/not an image/);
    const webp = new TextEncoder().encode("RIFF\0\0\0\0WEBPVP8 ");
    expect(sniffFormat(webp)).toBe("webp");
    expect(() => decodeImage(webp)).toThrow(/not a readable WebP/);
    expect(() => decodeImage(new Uint8Array([0xff, 0xd8, 0xff, 0xe0, 0, 2]))).toThrow(/not a readable JPEG/);
  });
});

/** A fixture photo's bytes (bound by vitest.config.ts: a Worker cannot read the disk). */
function fixture(path: string): Uint8Array {
  const base64 = env.TEST_IMAGES[path];
  if (base64 === undefined) {
    throw new Error(`no fixture ${path}`);
  }
  return Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
}

describe("WebP in a Worker", () => {
  const same = (a: Pixels, b: Pixels) =>
    a.width === b.width && a.height === b.height && a.data.every((v, i) => v === b.data[i]);

  it.each([
    ["webp/square-lossy.webp", "pdq/variants/square-256x256.jpg", 256, 256],
    ["webp/wee-lossless.webp", "pdq/wee.jpg", 34, 42],
  ])("decodes %s (cwebp from %s) to a hash within a few bits of the original's", (webp, original, w, h) => {
    const decoded = decodeImage(fixture(webp));
    expect(decoded.format).toBe("webp");
    expect([decoded.pixels.width, decoded.pixels.height]).toEqual([w, h]);
    expect(decoded.pixels.data).toHaveLength(w * h * 4);
    expect(webpSize(fixture(webp))).toEqual({ width: w, height: h });
    const distance = hammingDistance(
      pdqHash(decoded.pixels).hash,
      pdqHash(decodeImage(fixture(original)).pixels).hash,
    );
    console.log(`pdq ${webp}: distance ${distance} to ${original} (workerd)`);
    expect(distance).toBeLessThanOrEqual(8);
  });

  it("decodes an animation to its first frame, not a later one", () => {
    const animated = decodeImage(fixture("webp/wee-animated.webp"));
    expect(same(animated.pixels, decodeImage(fixture("webp/wee-lossless.webp")).pixels)).toBe(true);
  });

  it("applies the orientation of the WebP's EXIF chunk (written by exiftool)", () => {
    const plain = decodeImage(fixture("webp/wee-lossless.webp"));
    const tagged = decodeImage(fixture("webp/wee-orientation-6.webp"));
    expect(tagged.orientation).toBe(6);
    expect(same(tagged.pixels, orient(plain.pixels, 6))).toBe(true);
  });

  it("refuses a truncated or oversized WebP with a reason, and decodes the next one", () => {
    const whole = fixture("webp/square-lossy.webp");
    expect(() => decodeImage(whole.subarray(0, 20))).toThrow(
      /not a readable WebP: no VP8X, VP8 or VP8L header/,
    );
    // The header is whole, the data is not: the WebAssembly decoder traps, and recovers.
    expect(() => decodeImage(whole.subarray(0, 200))).toThrow(
      /not a readable WebP: the decoder stopped on malformed data/,
    );
    const huge = new Uint8Array(whole.subarray(0, 30));
    huge.set(new TextEncoder().encode("VP8X"), 12);
    huge.set([10, 0, 0, 0, 0, 0, 0, 0, 0xff, 0x3f, 0, 0xff, 0x3f, 0], 16); // 16384 × 16384
    expect(() => decodeImage(huge)).toThrow(/over 50 megapixels/);
    expect(decodeImage(whole).pixels.width).toBe(256);
  });
});
