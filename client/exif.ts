/**
 * The few EXIF fields the client kit reads from a photo (issue 11), through ExifReader: the
 * orientation (to hash the photo as it is shown) and the camera and software fields recorded as
 * provenance. ExifReader finds the EXIF block in a JPEG (APP1), a PNG (eXIf or a raw-profile text
 * chunk) and a WebP (EXIF chunk), and runs in Node and in a Worker: it is given the bytes, never a
 * path or URL, and only EXIF is asked for (its XMP reader wants a DOM, which a Worker has not).
 * In a JPEG only the first `Exif` APP1 segment counts, as browsers read it: a second one added
 * later does not turn the photo as it is shown.
 *
 * @example exifFields(bytes)  // → { orientation: 6, make: "Canon", model: "EOS 5D", … }
 */
import ExifReader, { type ExpandedTags } from "exifreader";

export interface ExifFields {
  /** 1–8 (TIFF/EXIF Orientation); 1 when absent or out of range. */
  orientation: number;
  make: string | null;
  model: string | null;
  software: string | null;
  /** As EXIF writes it, `YYYY:MM:DD HH:MM:SS`, unchecked. */
  dateTimeOriginal: string | null;
  /** `±HH:MM`, the offset of `dateTimeOriginal` from UTC, unchecked. */
  offsetTimeOriginal: string | null;
}

const TAGS = ["Orientation", "Make", "Model", "Software", "DateTimeOriginal", "OffsetTimeOriginal"] as const;

export const NO_EXIF: ExifFields = {
  orientation: 1,
  make: null,
  model: null,
  software: null,
  dateTimeOriginal: null,
  offsetTimeOriginal: null,
};

/**
 * The EXIF fields of an image's bytes. Missing, truncated or malformed metadata yields what could
 * be read (`NO_EXIF` at worst): it must never stop a photo being hashed.
 */
export function exifFields(bytes: Uint8Array): ExifFields {
  let tags: ExpandedTags["exif"];
  try {
    const block = isJpeg(bytes) ? firstJpegExif(bytes) : bytes;
    if (block === undefined) {
      return NO_EXIF;
    }
    const view = new DataView(block.buffer, block.byteOffset, block.byteLength);
    tags = ExifReader.loadView(view, { expanded: true, includeTags: { exif: [...TAGS] } }).exif;
  } catch {
    return NO_EXIF; // no metadata at all (ExifReader throws MetadataMissingError), or unreadable
  }
  const text = (tag: { description?: unknown } | undefined) => {
    const description = tag?.description;
    return typeof description === "string" && description.length > 0 ? description : null;
  };
  const orientation = tags?.Orientation?.value;
  return {
    orientation:
      typeof orientation === "number" && Number.isInteger(orientation) && orientation >= 1 && orientation <= 8
        ? orientation
        : 1,
    make: text(tags?.Make),
    model: text(tags?.Model),
    software: text(tags?.Software),
    dateTimeOriginal: text(tags?.DateTimeOriginal),
    offsetTimeOriginal: text(tags?.OffsetTimeOriginal),
  };
}

function isJpeg(bytes: Uint8Array): boolean {
  return bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff;
}

/** The TIFF block of a JPEG's first `Exif\0\0` APP1 segment before the image data, if any. */
function firstJpegExif(bytes: Uint8Array): Uint8Array | undefined {
  const exif = [0x45, 0x78, 0x69, 0x66, 0, 0];
  let at = 2;
  while (at + 4 <= bytes.length && bytes[at] === 0xff) {
    const marker = bytes[at + 1] as number;
    if (marker === 0xda || marker === 0xd9) {
      return undefined; // start of scan: no more metadata
    }
    const length = ((bytes[at + 2] as number) << 8) | (bytes[at + 3] as number);
    if (marker === 0xe1 && exif.every((b, i) => bytes[at + 4 + i] === b)) {
      return bytes.subarray(at + 10, Math.min(bytes.length, at + 2 + length));
    }
    at += 2 + length;
  }
  return undefined;
}
