/**
 * Builders for provenance test photos (issue 11): metadata spliced into a real JPEG, PNG or WebP
 * the way writers embed it: EXIF (a TIFF block), XMP packets, and C2PA manifest stores as JUMBF
 * boxes with CBOR assertions (ISO 19566-5, C2PA 2.1 §11). Written from the specifications, not
 * from the reader, so a reader that misplaces a byte fails on them.
 */
import { encode as encodeCbor } from "cborg";
import { zlibSync } from "fflate";

const te = new TextEncoder();

export function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

const u16be = (n: number) => new Uint8Array([n >> 8, n & 0xff]);
const u32be = (n: number) => new Uint8Array([n >>> 24, (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff]);
const u32le = (n: number) => new Uint8Array([n & 0xff, (n >> 8) & 0xff, (n >> 16) & 0xff, n >>> 24]);

// ─── EXIF ──────────────────────────────────────────────────────────────────────────────────────

export interface ExifInput {
  make?: string;
  model?: string;
  software?: string;
  orientation?: number;
  dateTimeOriginal?: string;
  offsetTimeOriginal?: string;
}

/**
 * A big-endian TIFF block: IFD0 (Make 0x010f, Model 0x0110, Orientation 0x0112, Software
 * 0x0131, ExifIFD pointer 0x8769) and an Exif IFD (DateTimeOriginal 0x9003, OffsetTimeOriginal
 * 0x9011). Strings are ASCII, NUL-terminated, stored after the IFDs.
 */
export function tiff(input: ExifInput): Uint8Array {
  const ifd0: [number, number, string | number][] = [];
  const exifIfd: [number, number, string | number][] = [];
  const ascii: [keyof ExifInput, number, typeof ifd0][] = [
    ["make", 0x010f, ifd0],
    ["model", 0x0110, ifd0],
    ["software", 0x0131, ifd0],
    ["dateTimeOriginal", 0x9003, exifIfd],
    ["offsetTimeOriginal", 0x9011, exifIfd],
  ];
  for (const [key, tag, ifd] of ascii) {
    const value = input[key];
    if (value !== undefined) {
      ifd.push([tag, 2, value]);
    }
  }
  if (input.orientation !== undefined) {
    ifd0.push([0x0112, 3, input.orientation]);
  }
  const hasExif = exifIfd.length > 0;
  const ifd0Count = ifd0.length + (hasExif ? 1 : 0);
  const ifd0Size = 2 + ifd0Count * 12 + 4;
  const exifOffset = 8 + ifd0Size;
  const exifSize = hasExif ? 2 + exifIfd.length * 12 + 4 : 0;
  let dataAt = exifOffset + exifSize;
  const data: Uint8Array[] = [];
  const entries = (list: [number, number, string | number][]) =>
    list.map(([tag, type, value]) => {
      if (typeof value === "number") {
        return concat(u16be(tag), u16be(type), u32be(1), u16be(value), u16be(0));
      }
      const bytes = concat(te.encode(value), new Uint8Array([0]));
      if (bytes.length <= 4) {
        const inline = new Uint8Array(4);
        inline.set(bytes);
        return concat(u16be(tag), u16be(type), u32be(bytes.length), inline);
      }
      const entry = concat(u16be(tag), u16be(type), u32be(bytes.length), u32be(dataAt));
      data.push(bytes);
      dataAt += bytes.length;
      return entry;
    });
  const ifd0Entries = entries(ifd0);
  if (hasExif) {
    ifd0Entries.push(concat(u16be(0x8769), u16be(4), u32be(1), u32be(exifOffset)));
  }
  const exifEntries = entries(exifIfd);
  return concat(
    te.encode("MM"),
    u16be(42),
    u32be(8),
    u16be(ifd0Count),
    ...ifd0Entries.sort(
      (a, b) => (a[0] as number) * 256 + (a[1] as number) - ((b[0] as number) * 256 + (b[1] as number)),
    ),
    u32be(0),
    ...(hasExif ? [u16be(exifIfd.length), ...exifEntries, u32be(0)] : []),
    ...data,
  );
}

// ─── XMP ───────────────────────────────────────────────────────────────────────────────────────

export const TC260 = "http://www.tc260.org.cn/ns/AIGC/1.0/";

const xmlEscape = (s: string) =>
  s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");

/** An XMP packet around `description`'s attributes and body (an rdf:Description). */
export function xmpPacket(attributes: string, body = ""): string {
  return `<?xpacket begin="\uFEFF" id="W5M0MpCehiHzreSzNTczkc9d"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about="" ${attributes}>${body}</rdf:Description>
 </rdf:RDF>
</x:xmpmeta>
<?xpacket end="w"?>`;
}

/** GB 45438-2025's label as most writers put it: `<TC260:AIGC>` holding Annex E's JSON, escaped. */
export function aigcElementXmp(label: Record<string, unknown>, prefix = "TC260"): string {
  return xmpPacket(
    `xmlns:${prefix}="${TC260}" xmlns:dc="http://purl.org/dc/elements/1.1/"`,
    `<dc:format>image/jpeg</dc:format><${prefix}:AIGC>${xmlEscape(JSON.stringify(label))}</${prefix}:AIGC>`,
  );
}

/** The attribute form: `TC260:AIGC="{…}"` on the rdf:Description. */
export function aigcAttributeXmp(label: Record<string, unknown>): string {
  return xmpPacket(`xmlns:tc260="${TC260}" tc260:AIGC="${xmlEscape(JSON.stringify(label))}"`);
}

// ─── C2PA: JUMBF boxes ─────────────────────────────────────────────────────────────────────────

export function box(type: string, payload: Uint8Array): Uint8Array {
  return concat(u32be(8 + payload.length), te.encode(type), payload);
}

/** A JUMBF content-type UUID: four ASCII characters then C2PA's 0011-0010-8000-00AA00389B71. */
function jumbfUuid(fourcc: string): Uint8Array {
  return concat(
    te.encode(fourcc),
    new Uint8Array([0x00, 0x11, 0x00, 0x10, 0x80, 0x00, 0x00, 0xaa, 0x00, 0x38, 0x9b, 0x71]),
  );
}

/** A `jumb` superbox: a `jumd` description (UUID, toggles 0x03 = requestable + label, label) then content. */
export function superbox(fourcc: string, label: string, ...content: Uint8Array[]): Uint8Array {
  const jumd = box(
    "jumd",
    concat(jumbfUuid(fourcc), new Uint8Array([0x03]), te.encode(label), new Uint8Array([0])),
  );
  return box("jumb", concat(jumd, ...content));
}

export interface ManifestInput {
  label?: string;
  /** Each an actions assertion's `actions` array. */
  actions?: Record<string, unknown>[][];
  actionsLabel?: string;
  claim?: Record<string, unknown>;
}

/** One manifest: an assertion store with CBOR actions assertions, a claim and a signature box. */
export function manifest(input: ManifestInput): Uint8Array {
  const assertions = (input.actions ?? []).map((actions, i) =>
    superbox(
      "cbor",
      `${input.actionsLabel ?? "c2pa.actions.v2"}${i > 0 ? `__${i}` : ""}`,
      box("cbor", encodeCbor({ actions })),
    ),
  );
  return superbox(
    "c2ma",
    input.label ?? "urn:c2pa:3fa1c0de-8d3e-4b0e-9d39-5c2a8b1e7f10",
    superbox("c2as", "c2pa.assertions", ...assertions),
    superbox("c2cl", "c2pa.claim.v2", box("cbor", encodeCbor(input.claim ?? {}))),
    superbox("c2cs", "c2pa.signature", box("cbor", encodeCbor(new Uint8Array([0xd2, 0x84])))),
  );
}

/** A manifest store (label `c2pa`), the active manifest last. */
export function manifestStore(...manifests: Uint8Array[]): Uint8Array {
  return superbox("c2pa", "c2pa", ...manifests);
}

export const TRAINED = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia";

// ─── JPEG ──────────────────────────────────────────────────────────────────────────────────────

function segment(marker: number, body: Uint8Array): Uint8Array {
  return concat(new Uint8Array([0xff, marker]), u16be(body.length + 2), body);
}

export const jpegExif = (input: ExifInput) => segment(0xe1, concat(te.encode("Exif\0\0"), tiff(input)));

export const jpegXmp = (xmp: string) =>
  segment(0xe1, concat(te.encode("http://ns.adobe.com/xap/1.0/\0"), te.encode(xmp)));

/**
 * Extended XMP (XMP part 3, 1.1.3.1) as APP1 segments of at most `part` bytes each, last part
 * first: the signature, the GUID, the full length and each part's offset. The main packet names
 * the GUID in `xmpNote:HasExtendedXMP`; `total` may claim more than the parts hold.
 */
export function jpegExtendedXmp(guid: string, xmp: string, part = 100, total?: number): Uint8Array[] {
  const bytes = te.encode(xmp);
  const segments: Uint8Array[] = [];
  for (let offset = 0; offset < bytes.length; offset += part) {
    const head = concat(te.encode("http://ns.adobe.com/xmp/extension/\0"), te.encode(guid));
    const data = bytes.subarray(offset, offset + part);
    segments.unshift(segment(0xe1, concat(head, u32be(total ?? bytes.length), u32be(offset), data)));
  }
  return segments;
}

/** A main XMP packet naming its extended XMP's GUID, as Photoshop writes it. */
export const hasExtendedXmp = (guid: string) =>
  xmpPacket(`xmlns:xmpNote="http://ns.adobe.com/xmp/note/" xmpNote:HasExtendedXMP="${guid}"`);

/**
 * A JUMBF superbox as JPEG XT APP11 segments (ISO 18477-3): each `JP`, instance `en`, sequence
 * from 1, then the box; every packet after the first repeats the box's LBox and TBox before
 * continuing its payload. `packet` bytes of payload per segment.
 */
export function jpegJumbf(jumbf: Uint8Array, packet = 60_000, en = 1): Uint8Array {
  const header = jumbf.subarray(0, 8);
  const payload = jumbf.subarray(8);
  const segments: Uint8Array[] = [];
  for (let at = 0, z = 1; at < payload.length || z === 1; at += packet, z++) {
    const prefix = concat(te.encode("JP"), u16be(en), u32be(z));
    segments.push(segment(0xeb, concat(prefix, header, payload.subarray(at, at + packet))));
  }
  return concat(...segments);
}

/** `segments` spliced into a JPEG right after its SOI marker. */
export function spliceJpeg(jpeg: Uint8Array, ...segments: Uint8Array[]): Uint8Array {
  return concat(jpeg.subarray(0, 2), ...segments, jpeg.subarray(2));
}

// ─── PNG ───────────────────────────────────────────────────────────────────────────────────────

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) {
    c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  }
  return c >>> 0;
});

function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of bytes) {
    c = (CRC_TABLE[(c ^ b) & 0xff] as number) ^ (c >>> 8);
  }
  return (c ^ 0xffffffff) >>> 0;
}

export function pngChunk(type: string, data: Uint8Array): Uint8Array {
  const typed = concat(te.encode(type), data);
  return concat(u32be(data.length), typed, u32be(crc32(typed)));
}

/** An iTXt chunk (keyword, compression flag and method, empty language and translated keyword, text). */
export function pngItxt(keyword: string, text: string, compressed = false): Uint8Array {
  const body = compressed ? zlibSync(te.encode(text)) : te.encode(text);
  return pngChunk("iTXt", concat(te.encode(keyword), new Uint8Array([0, compressed ? 1 : 0, 0, 0, 0]), body));
}

/** `chunks` spliced into a PNG right after IHDR (8-byte signature, 25-byte IHDR chunk). */
export function splicePng(png: Uint8Array, ...chunks: Uint8Array[]): Uint8Array {
  return concat(png.subarray(0, 33), ...chunks, png.subarray(33));
}

// ─── WebP ──────────────────────────────────────────────────────────────────────────────────────

function riffChunk(type: string, data: Uint8Array): Uint8Array {
  return concat(te.encode(type), u32le(data.length), data, new Uint8Array(data.length & 1));
}

/**
 * An extended WebP (RIFF "WEBP", a VP8X header with the EXIF and XMP flags set as needed, the
 * simple WebP's image chunk, then EXIF, XMP and C2PA chunks) around a simple (VP8L) WebP.
 */
export function extendedWebp(
  simple: Uint8Array,
  {
    width,
    height,
    exif,
    xmp,
    c2pa,
  }: { width: number; height: number; exif?: Uint8Array; xmp?: string; c2pa?: Uint8Array },
): Uint8Array {
  const image = simple.subarray(12);
  const flags = (exif ? 0x08 : 0) | (xmp ? 0x04 : 0);
  const size = (n: number) => new Uint8Array([(n - 1) & 0xff, ((n - 1) >> 8) & 0xff, ((n - 1) >> 16) & 0xff]);
  const vp8x = riffChunk("VP8X", concat(new Uint8Array([flags, 0, 0, 0]), size(width), size(height)));
  const body = concat(
    te.encode("WEBP"),
    vp8x,
    image,
    ...(exif ? [riffChunk("EXIF", exif)] : []),
    ...(xmp ? [riffChunk("XMP ", te.encode(xmp))] : []),
    ...(c2pa ? [riffChunk("C2PA", c2pa)] : []),
  );
  return concat(te.encode("RIFF"), u32le(body.length), body);
}
