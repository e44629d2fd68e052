/**
 * Image bytes → RGBA pixels, upright, for `pdqHash` (issue 11). Runs in Node and in a Worker
 * alike; the photo never leaves the platform. JPEG and PNG through pure JavaScript decoders
 * (jpeg-js, fast-png); WebP (lossy, lossless, and the first frame of an animation) through
 * Photon's WebAssembly build of the Rust `image` crate (`@cf-wasm/photon`), whose package loads
 * its module the way each runtime allows: a precompiled module import in workerd, the inlined
 * bytes in Node. The EXIF orientation (JPEG APP1, PNG eXIf, WebP EXIF chunk) is applied to the
 * pixel grid, so a photo hashes as it is shown, not as the camera's sensor stored it.
 *
 * @example
 *   const image = decodeImage(await readFile("photo.webp"));
 *   pdqHash(image.pixels)  // → { hash, quality, dihedral }
 */
import { PhotonImage } from "@cf-wasm/photon";
import { decode as decodePng } from "fast-png";
import { decode as decodeJpeg } from "jpeg-js";
import { exifFields } from "./exif.ts";
import type { Pixels } from "./pdq.ts";

export const IMAGE_FORMATS = ["jpeg", "png", "webp"] as const;
export type ImageFormat = (typeof IMAGE_FORMATS)[number];

export class ImageError extends Error {
  override readonly name = "ImageError";
}

export interface DecodedImage {
  format: ImageFormat;
  /** Upright: the EXIF orientation already applied. */
  pixels: Pixels;
  /** 1–8, the EXIF orientation that was applied (1 when there is none). */
  orientation: number;
}

/** Refuse decodes bigger than this (megapixels): the pixels alone would be 4 bytes each. */
const MAX_MEGAPIXELS = 50;

/** Recognises a format by its signature, not by a file name. */
export function sniffFormat(bytes: Uint8Array): ImageFormat | undefined {
  if (bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) {
    return "jpeg";
  }
  const png = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
  if (bytes.length >= 8 && png.every((b, i) => bytes[i] === b)) {
    return "png";
  }
  if (bytes.length >= 12 && ascii(bytes, 0, 4) === "RIFF" && ascii(bytes, 8, 4) === "WEBP") {
    return "webp";
  }
  return undefined;
}

/** Decodes a JPEG, PNG or WebP to upright RGBA; anything else throws an `ImageError` saying what it is. */
export function decodeImage(bytes: Uint8Array): DecodedImage {
  const format = sniffFormat(bytes);
  if (format === undefined) {
    throw new ImageError("not an image: expected a JPEG, PNG or WebP file (no known signature)");
  }
  let raw: Pixels;
  try {
    if (format === "jpeg") {
      const decoded = decodeJpeg(bytes, {
        useTArray: true,
        formatAsRGBA: true,
        maxResolutionInMP: MAX_MEGAPIXELS,
        maxMemoryUsageInMB: 1024,
      });
      raw = { width: decoded.width, height: decoded.height, data: decoded.data };
    } else if (format === "png") {
      raw = pngToRgba(decodePng(bytes));
    } else {
      raw = decodeWebp(bytes);
    }
  } catch (error) {
    if (error instanceof ImageError) {
      throw error;
    }
    throw new ImageError(
      `not a readable ${format === "webp" ? "WebP" : format.toUpperCase()}: ${describe(error)}`,
    );
  }
  const { orientation } = exifFields(bytes);
  return { format, pixels: orient(raw, orientation), orientation };
}

/**
 * A WebP's pixels (the first frame of an animation, on its canvas). The size is read from the
 * header first, so an oversized or truncated file is refused before the decoder allocates.
 */
function decodeWebp(bytes: Uint8Array): Pixels {
  const { width, height } = webpSize(bytes);
  if (width * height > MAX_MEGAPIXELS * 1_000_000) {
    throw new ImageError(`not a readable WebP: ${width}×${height} is over ${MAX_MEGAPIXELS} megapixels`);
  }
  const image = PhotonImage.new_from_byteslice(bytes);
  try {
    return { width: image.get_width(), height: image.get_height(), data: image.get_raw_pixels() };
  } finally {
    image.free();
  }
}

/**
 * A WebP's canvas size from its first chunk (RIFF container, "WebP Container Specification"):
 * `VP8X` (extended: 24-bit width and height minus one), `VP8 ` (lossy: a key frame's 14-bit
 * sizes after the start code 9d 01 2a) or `VP8L` (lossless: 14-bit sizes minus one after 0x2f).
 */
export function webpSize(bytes: Uint8Array): { width: number; height: number } {
  const chunk = bytes.length >= 30 ? ascii(bytes, 12, 4) : "";
  const at = 20;
  const u24 = (i: number) =>
    (bytes[i] as number) | ((bytes[i + 1] as number) << 8) | ((bytes[i + 2] as number) << 16);
  const u14 = (i: number) => ((bytes[i] as number) | ((bytes[i + 1] as number) << 8)) & 0x3fff;
  if (chunk === "VP8X") {
    return { width: u24(at + 4) + 1, height: u24(at + 7) + 1 };
  }
  if (chunk === "VP8 " && bytes[at + 3] === 0x9d && bytes[at + 4] === 0x01 && bytes[at + 5] === 0x2a) {
    return { width: u14(at + 6), height: u14(at + 8) };
  }
  if (chunk === "VP8L" && bytes[at] === 0x2f) {
    const bits =
      (bytes[at + 1] as number) |
      ((bytes[at + 2] as number) << 8) |
      ((bytes[at + 3] as number) << 16) |
      ((bytes[at + 4] as number) << 24);
    return { width: (bits & 0x3fff) + 1, height: ((bits >>> 14) & 0x3fff) + 1 };
  }
  throw new ImageError("not a readable WebP: no VP8X, VP8 or VP8L header where the format puts it");
}

/**
 * An error's message, whatever was thrown. The WebAssembly decoder traps on data it cannot read
 * (a Rust panic surfaces as `RuntimeError: unreachable`), which says nothing to a reader.
 */
function describe(error: unknown): string {
  if (error instanceof WebAssembly.RuntimeError) {
    return "the decoder stopped on malformed data";
  }
  return error instanceof Error ? error.message : String(error);
}

/**
 * The upright image for an EXIF orientation (1–8): what a viewer shows. 6 turns a quarter
 * clockwise, 8 a quarter anticlockwise, 3 a half; 2 and 4 mirror left-right and top-bottom;
 * 5 transposes, 7 transposes the other diagonal.
 *
 * @example orient(pixels, 6)  // a portrait photo stored sideways, turned upright
 */
export function orient(pixels: Pixels, orientation: number): Pixels {
  const { width: w, height: h, data } = pixels;
  if (orientation < 2 || orientation > 8) {
    return pixels;
  }
  const swap = orientation >= 5;
  const ow = swap ? h : w;
  const oh = swap ? w : h;
  const out = new Uint8Array(ow * oh * 4);
  for (let y = 0; y < oh; y++) {
    for (let x = 0; x < ow; x++) {
      let sx: number;
      let sy: number;
      switch (orientation) {
        case 2:
          [sx, sy] = [w - 1 - x, y];
          break;
        case 3:
          [sx, sy] = [w - 1 - x, h - 1 - y];
          break;
        case 4:
          [sx, sy] = [x, h - 1 - y];
          break;
        case 5:
          [sx, sy] = [y, x];
          break;
        case 6:
          [sx, sy] = [y, h - 1 - x];
          break;
        case 7:
          [sx, sy] = [w - 1 - y, h - 1 - x];
          break;
        default:
          [sx, sy] = [w - 1 - y, x];
          break;
      }
      const from = (sy * w + sx) * 4;
      out.set(data.subarray(from, from + 4), (y * ow + x) * 4);
    }
  }
  return { width: ow, height: oh, data: out };
}

/** Any PNG (grey, grey+alpha, RGB, RGBA, indexed; 1–16 bits) as 8-bit RGBA. */
function pngToRgba(png: ReturnType<typeof decodePng>): Pixels {
  const { width, height, channels, depth, palette } = png;
  const out = new Uint8Array(width * height * 4);
  if (palette) {
    for (let p = 0; p < width * height; p++) {
      const index = packedSample(png.data, p, depth, width);
      const [r = 0, g = 0, b = 0, a = 255] = palette[index] ?? [];
      out.set([r, g, b, a], p * 4);
    }
    return { width, height, data: out };
  }
  const max = 2 ** depth - 1;
  for (let p = 0; p < width * height; p++) {
    const sample = (c: number) =>
      Math.round((packedSample(png.data, p * channels + c, depth, width * channels) * 255) / max);
    const grey = channels <= 2;
    const r = sample(0);
    out[p * 4] = r;
    out[p * 4 + 1] = grey ? r : sample(1);
    out[p * 4 + 2] = grey ? r : sample(2);
    out[p * 4 + 3] = channels === 2 || channels === 4 ? sample(channels - 1) : 255;
  }
  return { width, height, data: out };
}

/**
 * Sample n of a PNG's data: one element a sample at 8 and 16 bits; below 8, packed MSB first
 * in rows that start on a byte (fast-png leaves them packed).
 */
function packedSample(
  data: ArrayLike<number>,
  n: number,
  depth: number,
  samplesPerRow = Number.POSITIVE_INFINITY,
): number {
  if (depth >= 8) {
    return data[n] as number;
  }
  const perRow = Number.isFinite(samplesPerRow) ? samplesPerRow : n + 1;
  const row = Math.floor(n / perRow);
  const col = n % perRow;
  const bytesPerRow = Math.ceil((perRow * depth) / 8);
  const bit = col * depth;
  const byte = data[row * bytesPerRow + (bit >> 3)] as number;
  return (byte >> (8 - depth - (bit & 7))) & ((1 << depth) - 1);
}

function ascii(bytes: Uint8Array, from: number, length: number): string {
  if (from + length > bytes.length) {
    throw new RangeError("past the end");
  }
  return String.fromCharCode(...bytes.subarray(from, from + length));
}
