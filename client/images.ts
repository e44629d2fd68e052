/**
 * Image bytes → RGBA pixels, upright, for `pdqHash` (issue 11). Pure JavaScript decoders (jpeg-js,
 * fast-png), so it runs in Node and in a Worker alike; the photo never leaves the platform.
 * The EXIF orientation (JPEG APP1, PNG eXIf) is applied to the pixel grid, so a photo hashes as
 * it is shown, not as the camera's sensor stored it. WebP is recognised and refused for now.
 *
 * @example
 *   const image = decodeImage(await readFile("photo.jpg"));
 *   pdqHash(image.pixels)  // → { hash, quality, dihedral }
 */
import { decode as decodePng } from "fast-png";
import { decode as decodeJpeg } from "jpeg-js";
import type { Pixels } from "./pdq";

export const IMAGE_FORMATS = ["jpeg", "png", "webp"] as const;
export type ImageFormat = (typeof IMAGE_FORMATS)[number];

export class ImageError extends Error {
  override readonly name = "ImageError";
}

/** The few EXIF fields worth recording about where a photo came from. */
export interface ExifSummary {
  /** 1–8 (TIFF/EXIF Orientation); 1 when absent or out of range. */
  orientation: number;
  make?: string;
  model?: string;
  software?: string;
  dateTime?: string;
}

export interface DecodedImage {
  format: ImageFormat;
  /** Upright: the EXIF orientation already applied. */
  pixels: Pixels;
  exif: ExifSummary;
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

/** Decodes a JPEG or PNG to upright RGBA; anything else throws an `ImageError` saying what it is. */
export function decodeImage(bytes: Uint8Array): DecodedImage {
  const format = sniffFormat(bytes);
  if (format === undefined) {
    throw new ImageError("not an image: expected a JPEG, PNG or WebP file (no known signature)");
  }
  if (format === "webp") {
    throw new ImageError("WebP is not supported yet: convert the photo to JPEG or PNG first");
  }
  let raw: Pixels;
  let exif: ExifSummary = { orientation: 1 };
  try {
    if (format === "jpeg") {
      const tiff = jpegExif(bytes);
      exif = tiff ? readExif(tiff) : exif;
      const decoded = decodeJpeg(bytes, {
        useTArray: true,
        formatAsRGBA: true,
        maxResolutionInMP: MAX_MEGAPIXELS,
        maxMemoryUsageInMB: 1024,
      });
      raw = { width: decoded.width, height: decoded.height, data: decoded.data };
    } else {
      const tiff = pngExif(bytes);
      exif = tiff ? readExif(tiff) : exif;
      raw = pngToRgba(decodePng(bytes));
    }
  } catch (error) {
    if (error instanceof ImageError) {
      throw error;
    }
    throw new ImageError(`not a readable ${format.toUpperCase()}: ${(error as Error).message}`);
  }
  return { format, pixels: orient(raw, exif.orientation), exif };
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

/** The TIFF block of a JPEG's `Exif\0\0` APP1 segment, if it has one. */
function jpegExif(bytes: Uint8Array): Uint8Array | undefined {
  let at = 2;
  while (at + 4 <= bytes.length && bytes[at] === 0xff) {
    const marker = bytes[at + 1] as number;
    if (marker === 0xda || marker === 0xd9) {
      return undefined; // start of scan: no more metadata
    }
    const length = ((bytes[at + 2] as number) << 8) | (bytes[at + 3] as number);
    if (marker === 0xe1 && ascii(bytes, at + 4, 6) === "Exif\0\0") {
      return bytes.subarray(at + 10, at + 2 + length);
    }
    at += 2 + length;
  }
  return undefined;
}

/** The TIFF block of a PNG's eXIf chunk, if it has one before the image data. */
function pngExif(bytes: Uint8Array): Uint8Array | undefined {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let at = 8;
  while (at + 8 <= bytes.length) {
    const length = view.getUint32(at);
    const type = ascii(bytes, at + 4, 4);
    if (type === "eXIf") {
      return bytes.subarray(at + 8, at + 8 + length);
    }
    if (type === "IDAT" || type === "IEND") {
      return undefined;
    }
    at += 12 + length;
  }
  return undefined;
}

const TAG_MAKE = 0x010f;
const TAG_MODEL = 0x0110;
const TAG_ORIENTATION = 0x0112;
const TAG_SOFTWARE = 0x0131;
const TAG_DATETIME = 0x0132;

/**
 * Orientation, make, model, software and date from IFD0 of a TIFF block. Malformed metadata
 * yields what could be read (orientation 1 at worst): it must never stop a photo being hashed.
 */
export function readExif(tiff: Uint8Array): ExifSummary {
  const summary: ExifSummary = { orientation: 1 };
  try {
    const view = new DataView(tiff.buffer, tiff.byteOffset, tiff.byteLength);
    const order = ascii(tiff, 0, 2);
    if (order !== "II" && order !== "MM") {
      return summary;
    }
    const le = order === "II";
    const ifd = view.getUint32(4, le);
    const count = view.getUint16(ifd, le);
    for (let n = 0; n < count; n++) {
      const entry = ifd + 2 + n * 12;
      const tag = view.getUint16(entry, le);
      const type = view.getUint16(entry + 2, le);
      const items = view.getUint32(entry + 4, le);
      if (tag === TAG_ORIENTATION && type === 3) {
        const value = view.getUint16(entry + 8, le);
        summary.orientation = value >= 1 && value <= 8 ? value : 1;
      } else if (
        type === 2 &&
        items <= 256 &&
        [TAG_MAKE, TAG_MODEL, TAG_SOFTWARE, TAG_DATETIME].includes(tag)
      ) {
        const offset = items <= 4 ? entry + 8 : view.getUint32(entry + 8, le);
        const text = ascii(tiff, offset, items).replace(/\0+$/, "").trim();
        if (text.length > 0) {
          const key = ({ [TAG_MAKE]: "make", [TAG_MODEL]: "model", [TAG_SOFTWARE]: "software" } as const)[
            tag as number
          ];
          summary[key ?? "dateTime"] = text;
        }
      }
    }
  } catch {
    // A truncated block: keep what was read.
  }
  return summary;
}

function ascii(bytes: Uint8Array, from: number, length: number): string {
  if (from + length > bytes.length) {
    throw new RangeError("past the end");
  }
  return String.fromCharCode(...bytes.subarray(from, from + length));
}
