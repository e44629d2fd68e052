/**
 * What a photo says about where it came from (issue 11), read on the platform's side from the
 * image bytes; nothing is sent anywhere. Three indicators, none of them proof:
 *
 * - **C2PA**: whether a manifest store is embedded (JPEG APP11 JUMBF segments, PNG `caBX`, WebP
 *   `C2PA`), the IPTC `digitalSourceType`s its actions assertions declare, and the active
 *   manifest's claim generator. Signatures are not validated: a manifest can be forged or copied,
 *   and stripping one leaves no trace.
 * - **GB 45438-2025**'s implicit AI-content label, China's mandatory metadata label since
 *   2025-09-01: in XMP, the property `AIGC` of namespace `http://www.tc260.org.cn/ns/AIGC/1.0/`
 *   holding Annex E's seven fields as a JSON object (element or attribute form); some writers put
 *   the fields in that namespace directly, or a JSON object in a PNG text chunk named `AIGC`.
 * - **EXIF** make, model, software and `DateTimeOriginal` (through ExifReader, `client/exif.ts`).
 *
 * Liberal in what it reads (any carrier, any prefix, `https` IPTC URIs, JSON numbers), strict in
 * what it prints: every value is cut or dropped to the bounds of `client/provenance-shape.ts`,
 * which the ledger's `image_provenance` evidence schema enforces. Malformed metadata never
 * throws: what cannot be read is absent.
 *
 * @example
 *   readProvenance(await readFile("photo.jpg"))
 *   // → { c2pa: { present: true, digitalSourceTypes: ["http://cv.iptc.org/…/trainedAlgorithmicMedia"],
 *   //            aiGenerated: true, claimGenerator: "…" }, aiLabel: null, exif: null }
 */
import { decode as decodeCbor } from "cborg";
import { XMLParser } from "fast-xml-parser";
import { unzlibSync } from "fflate";
import { exifFields } from "./exif.ts";
import { sniffFormat } from "./images.ts";
import {
  type AiLabelProvenance,
  type C2paProvenance,
  type ExifProvenance,
  IPTC_DIGITAL_SOURCE_TYPE,
  isAiSourceType,
  isSourceTypeUri,
  PROVENANCE_LIMITS as LIMITS,
  LOCAL_DATE_TIME,
  type Provenance,
  VISIBLE_ASCII,
} from "./provenance-shape.ts";

export type { Provenance } from "./provenance-shape.ts";

/** The namespace of GB 45438-2025's XMP label (TC260's implementation guide). */
export const TC260_AIGC_NAMESPACE = "http://www.tc260.org.cn/ns/AIGC/1.0/";

/** Annex E's field names, as the JSON object spells them, and the keys the kit prints. */
const AI_LABEL_FIELDS = [
  ["Label", "label"],
  ["ContentProducer", "contentProducer"],
  ["ProduceID", "produceId"],
  ["ReservedCode1", "reservedCode1"],
  ["ContentPropagator", "contentPropagator"],
  ["PropagateID", "propagateId"],
  ["ReservedCode2", "reservedCode2"],
] as const;

/** Work bounds for hostile files: boxes looked at, their nesting, a CBOR payload decoded, actions read. */
const MAX_BOXES = 4096;
const MAX_BOX_DEPTH = 8;
const MAX_CBOR_BYTES = 1 << 20;
const MAX_ACTIONS = 256;
/** XMP packets (and extended parts) read per photo, and the longest one parsed. */
const MAX_XMP_PACKETS = 8;
const MAX_XMP_CHARS = 1 << 20;

/** The metadata blocks of one file, by carrier, before any of them is interpreted. */
interface Carriers {
  /** Each a whole JUMBF superbox (JPEG APP11 packets already joined). */
  jumbf: Uint8Array[];
  xmp: string[];
  /** PNG text chunks named `AIGC`. */
  aigcText: string[];
}

/**
 * The provenance indicators of an image file (JPEG, PNG or WebP; anything else has none).
 *
 * @example readProvenance(bytes).c2pa.aiGenerated
 */
export function readProvenance(bytes: Uint8Array): Provenance {
  const format = sniffFormat(bytes);
  const carriers: Carriers = { jumbf: [], xmp: [], aigcText: [] };
  try {
    if (format === "jpeg") {
      jpegCarriers(bytes, carriers);
    } else if (format === "png") {
      pngCarriers(bytes, carriers);
    } else if (format === "webp") {
      webpCarriers(bytes, carriers);
    }
  } catch {
    // A truncated container: keep the blocks found before the damage.
  }
  if (format !== undefined && carriers.xmp.length === 0) {
    // Some writers append an XMP packet where no reader of the format looks for one.
    const packet = scanForXmp(bytes);
    if (packet !== undefined) {
      carriers.xmp.push(packet);
    }
  }
  return {
    c2pa: c2paOf(carriers.jumbf),
    aiLabel: aiLabelOf(carriers),
    exif: format === undefined ? null : exifOf(bytes),
  };
}

// ─── Containers ────────────────────────────────────────────────────────────────────────────────

const XMP_APP1 = "http://ns.adobe.com/xap/1.0/\0";
const XMP_EXTENSION_APP1 = "http://ns.adobe.com/xmp/extension/\0";
const XMP_KEYWORD = "XML:com.adobe.xmp";

/**
 * JPEG markers up to the start of scan: APP1 XMP (standard and extended, ISO 16684 / XMP part 3)
 * and APP11 JPEG XT packets (ISO 18477-3: "JP", box instance En, sequence Z, then the box; a
 * continuation repeats the box's LBox/TBox header, which is dropped when joining).
 */
function jpegCarriers(bytes: Uint8Array, out: Carriers): void {
  const packets = new Map<number, { z: number; data: Uint8Array }[]>();
  const extended = new Map<string, { total: number; parts: { offset: number; data: Uint8Array }[] }>();
  let at = 2;
  while (at + 4 <= bytes.length && bytes[at] === 0xff) {
    const marker = bytes[at + 1] as number;
    if (marker === 0xff) {
      at += 1; // fill byte
      continue;
    }
    if (marker === 0xda || marker === 0xd9) {
      break;
    }
    if (marker === 0x01 || (marker >= 0xd0 && marker <= 0xd7)) {
      at += 2; // markers without a length
      continue;
    }
    const length = u16be(bytes, at + 2);
    const body = bytes.subarray(at + 4, Math.min(bytes.length, at + 2 + length));
    if (marker === 0xe1 && startsWith(body, XMP_APP1)) {
      out.xmp.push(utf8(body.subarray(XMP_APP1.length)));
    } else if (
      marker === 0xe1 &&
      startsWith(body, XMP_EXTENSION_APP1) &&
      body.length >= XMP_EXTENSION_APP1.length + 40
    ) {
      const head = XMP_EXTENSION_APP1.length;
      const guid = latin1(body.subarray(head, head + 32)).toUpperCase();
      const total = u32be(body, head + 32);
      const part = extended.get(guid) ?? { total, parts: [] };
      if (part.total === total) {
        part.parts.push({ offset: u32be(body, head + 36), data: body.subarray(head + 40) });
      }
      extended.set(guid, part);
    } else if (marker === 0xeb && body.length >= 16 && body[0] === 0x4a && body[1] === 0x50) {
      const en = u16be(body, 2);
      const list = packets.get(en) ?? [];
      list.push({ z: u32be(body, 4), data: body.subarray(8) });
      packets.set(en, list);
    }
    at += 2 + length;
  }
  // Extended XMP (XMP part 3, 1.1.3.1): only the GUID the main packet names in
  // `xmpNote:HasExtendedXMP` is read, and only once its parts cover the whole of its `total`;
  // so the bytes allocated and decoded never exceed the file's own (a hostile file claiming
  // 4 MiB per 79-byte segment under many GUIDs costs nothing).
  const named = out.xmp.map(extendedGuidOf).find((guid) => guid !== undefined);
  const part = named === undefined ? undefined : extended.get(named);
  if (part && part.total <= MAX_XMP_CHARS * 4 && covers(part.parts, part.total)) {
    const joined = new Uint8Array(part.total);
    for (const { offset, data } of part.parts) {
      if (offset < part.total) {
        joined.set(data.subarray(0, part.total - offset), offset);
      }
    }
    out.xmp.push(utf8(joined));
  }
  for (const list of packets.values()) {
    list.sort((a, b) => a.z - b.z);
    const [first, ...rest] = list;
    if (!first) {
      continue;
    }
    const chunks = [first.data];
    for (const { data } of rest) {
      chunks.push(data.subarray(u32be(data, 0) === 1 ? 16 : 8));
    }
    out.jumbf.push(concat(chunks));
  }
}

/** The GUID of the extended XMP a main packet names (`xmpNote:HasExtendedXMP`, attribute or element). */
function extendedGuidOf(xmp: string): string | undefined {
  const m = /HasExtendedXMP\s*(?:=\s*["']|>\s*)([0-9A-Fa-f]{32})\b/.exec(xmp.slice(0, MAX_XMP_CHARS));
  return m?.[1]?.toUpperCase();
}

/**
 * Whether parts (views into the file, nothing copied) cover every byte of `[0, total)`: checked
 * before `total` bytes are allocated, so a claimed length no part backs is never allocated.
 */
function covers(parts: { offset: number; data: Uint8Array }[], total: number): boolean {
  const sorted = [...parts].sort((a, b) => a.offset - b.offset);
  let covered = 0;
  for (const { offset, data } of sorted) {
    if (offset > covered) {
      return false;
    }
    covered = Math.max(covered, offset + data.length);
  }
  return covered >= total;
}

/** PNG chunks up to IEND: `caBX` (C2PA), XMP in iTXt/tEXt/zTXt, and text chunks named `AIGC`. */
function pngCarriers(bytes: Uint8Array, out: Carriers): void {
  let at = 8;
  while (at + 8 <= bytes.length) {
    const length = u32be(bytes, at);
    const type = latin1(bytes.subarray(at + 4, at + 8));
    const data = bytes.subarray(at + 8, Math.min(bytes.length, at + 8 + length));
    if (type === "caBX") {
      out.jumbf.push(data);
    } else if (type === "tEXt" || type === "zTXt" || type === "iTXt") {
      const text = pngText(type, data);
      if (text?.keyword === XMP_KEYWORD) {
        out.xmp.push(text.text);
      } else if (text?.keyword.toUpperCase() === "AIGC") {
        out.aigcText.push(text.text);
      }
    } else if (type === "IEND") {
      break;
    }
    at += 12 + length;
  }
}

/** A PNG text chunk's keyword and text (zlib-inflated where the chunk says so), or undefined. */
function pngText(type: string, data: Uint8Array): { keyword: string; text: string } | undefined {
  const nul = data.indexOf(0);
  if (nul < 1) {
    return undefined;
  }
  const keyword = latin1(data.subarray(0, nul));
  if (keyword !== XMP_KEYWORD && keyword.toUpperCase() !== "AIGC") {
    return undefined; // only these are inflated: a hostile chunk costs nothing otherwise
  }
  try {
    if (type === "tEXt") {
      return { keyword, text: utf8OrLatin1(data.subarray(nul + 1)) };
    }
    if (type === "zTXt") {
      return { keyword, text: utf8OrLatin1(inflate(data.subarray(nul + 2))) };
    }
    // iTXt: keyword, compression flag, method, language tag NUL, translated keyword NUL, text.
    const compressed = data[nul + 1] === 1;
    const language = data.indexOf(0, nul + 3);
    const translated = language < 0 ? -1 : data.indexOf(0, language + 1);
    if (translated < 0) {
      return undefined;
    }
    const text = data.subarray(translated + 1);
    return { keyword, text: utf8(compressed ? inflate(text) : text) };
  } catch {
    return undefined;
  }
}

/** zlib data inflated into at most `MAX_XMP_CHARS` bytes: a deflate bomb is cut there, unread. */
function inflate(data: Uint8Array): Uint8Array {
  return unzlibSync(data, { out: new Uint8Array(MAX_XMP_CHARS) });
}

/** RIFF chunks of a WebP: `C2PA`, `XMP `. */
function webpCarriers(bytes: Uint8Array, out: Carriers): void {
  const end = Math.min(bytes.length, 8 + u32le(bytes, 4));
  let at = 12;
  while (at + 8 <= end) {
    const type = latin1(bytes.subarray(at, at + 4));
    const length = u32le(bytes, at + 4);
    const data = bytes.subarray(at + 8, Math.min(end, at + 8 + length));
    if (type === "C2PA") {
      out.jumbf.push(data);
    } else if (type === "XMP ") {
      out.xmp.push(utf8(data));
    }
    at += 8 + length + (length & 1);
  }
}

/** The first `<x:xmpmeta …>…</x:xmpmeta>` anywhere in the bytes, if any. */
function scanForXmp(bytes: Uint8Array): string | undefined {
  const start = indexOfAscii(bytes, "<x:xmpmeta", 0);
  if (start < 0) {
    return undefined;
  }
  const close = "</x:xmpmeta>";
  const end = indexOfAscii(bytes, close, start);
  if (end < 0 || end - start > MAX_XMP_CHARS) {
    return undefined;
  }
  return utf8(bytes.subarray(start, end + close.length));
}

// ─── C2PA ──────────────────────────────────────────────────────────────────────────────────────

interface Box {
  type: string;
  /** For a `jumb` superbox: its description's label (null when it has none). */
  label: string | null;
  payload: Uint8Array;
  children: Box[];
}

/**
 * The C2PA indicators of the JUMBF superboxes found. A store is recognised by its description's
 * label `c2pa` (C2PA 2.1 §11.1); every manifest's actions assertions (`c2pa.actions`,
 * `c2pa.actions.v2`, with any `__N` instance suffix) contribute their digital source types,
 * including ingredients' manifests (an AI picture edited afterwards keeps its origin there); the
 * claim generator is the active manifest's, the store's last.
 */
function c2paOf(superboxes: Uint8Array[]): C2paProvenance {
  const absent: C2paProvenance = {
    present: false,
    digitalSourceTypes: [],
    aiGenerated: false,
    claimGenerator: null,
  };
  const budget = { boxes: MAX_BOXES };
  const stores = superboxes
    .map((bytes) => readBoxes(bytes, 0, budget)[0])
    .filter((box): box is Box => box?.type === "jumb" && box.label === "c2pa");
  if (stores.length === 0) {
    return absent;
  }
  const types: string[] = [];
  let claimGenerator: string | null = null;
  for (const store of stores) {
    const manifests = store.children.filter((c) => c.type === "jumb");
    for (const manifest of manifests) {
      for (const assertions of manifest.children.filter((c) => c.label === "c2pa.assertions")) {
        for (const assertion of assertions.children) {
          if (/^c2pa\.actions(\.v2)?(__\d+)?$/.test(assertion.label ?? "")) {
            types.push(...actionSourceTypes(cborContent(assertion)));
          }
        }
      }
    }
    const active = manifests.at(-1);
    const claim = active?.children.find((c) => /^c2pa\.claim(\.v2)?$/.test(c.label ?? ""));
    claimGenerator = claimGeneratorOf(claim ? cborContent(claim) : undefined) ?? claimGenerator;
  }
  const digitalSourceTypes = [...new Set(types.map(canonicalSourceType).filter((t) => t !== null))].slice(
    0,
    LIMITS.digitalSourceTypes,
  );
  return {
    present: true,
    digitalSourceTypes,
    aiGenerated: digitalSourceTypes.some(isAiSourceType),
    claimGenerator: claimGenerator === null ? null : text(claimGenerator, LIMITS.claimGenerator),
  };
}

/**
 * ISO 19566-5 boxes in `bytes`: LBox (u32; 1 means a u64 XLBox follows, 0 to the end), TBox,
 * payload. A `jumb` superbox's payload is boxes again, the first a `jumd` description: a UUID,
 * toggles, and (toggle 0x02) a NUL-terminated UTF-8 label.
 */
function readBoxes(bytes: Uint8Array, depth: number, budget: { boxes: number }): Box[] {
  const boxes: Box[] = [];
  let at = 0;
  while (at + 8 <= bytes.length && budget.boxes-- > 0) {
    let length = u32be(bytes, at);
    let header = 8;
    if (length === 1) {
      if (at + 16 > bytes.length || u32be(bytes, at + 8) !== 0) {
        break; // over 4 GiB: not in a photo
      }
      length = u32be(bytes, at + 12);
      header = 16;
    } else if (length === 0) {
      length = bytes.length - at;
    }
    if (length < header || at + length > bytes.length) {
      break;
    }
    const type = latin1(bytes.subarray(at + 4, at + 8));
    const payload = bytes.subarray(at + header, at + length);
    const box: Box = { type, label: null, payload, children: [] };
    if (type === "jumb" && depth < MAX_BOX_DEPTH) {
      box.children = readBoxes(payload, depth + 1, budget);
      const description = box.children[0];
      if (
        description?.type === "jumd" &&
        description.payload.length > 17 &&
        (description.payload[16] as number) & 2
      ) {
        const end = description.payload.indexOf(0, 17);
        box.label = utf8(description.payload.subarray(17, end < 0 ? undefined : end));
      }
    }
    boxes.push(box);
    at += length;
  }
  return boxes;
}

/** The decoded CBOR content box of an assertion or claim superbox, or undefined. */
function cborContent(superbox: Box): unknown {
  const content = superbox.children.find((c) => c.type === "cbor");
  if (!content || content.payload.length > MAX_CBOR_BYTES) {
    return undefined;
  }
  try {
    return decodeCbor(content.payload, { tags: ANY_TAG, useMaps: false, rejectDuplicateMapKeys: false });
  } catch {
    return undefined; // non-string map keys, truncation, nesting past the stack: unreadable
  }
}

/** Tag decoders for every tag number: a tagged item reads as its content (a date, a URI…). */
const ANY_TAG = new Proxy([], {
  get: (target, key) =>
    typeof key === "string" && /^\d+$/.test(key)
      ? (control: { decode: () => unknown }) => control.decode()
      : Reflect.get(target, key),
});

/**
 * The `digitalSourceType`s of an actions assertion: on each action (C2PA 1.3+), in an action's
 * `parameters` (some 1.x writers), and on v2 action templates.
 */
function actionSourceTypes(assertion: unknown): string[] {
  if (!isRecord(assertion)) {
    return [];
  }
  const items = [assertion.actions, assertion.templates]
    .filter(Array.isArray)
    .flat()
    .slice(0, MAX_ACTIONS)
    .filter(isRecord);
  return items
    .flatMap((action) => [
      action.digitalSourceType,
      isRecord(action.parameters) ? action.parameters.digitalSourceType : undefined,
    ])
    .filter((t): t is string => typeof t === "string");
}

/** A claim's generator: `claim_generator` (C2PA 1.x), else `claim_generator_info`'s name and version. */
function claimGeneratorOf(claim: unknown): string | null {
  if (!isRecord(claim)) {
    return null;
  }
  if (typeof claim.claim_generator === "string") {
    return claim.claim_generator;
  }
  const info = Array.isArray(claim.claim_generator_info)
    ? claim.claim_generator_info[0]
    : claim.claim_generator_info;
  if (isRecord(info) && typeof info.name === "string") {
    return typeof info.version === "string" ? `${info.name}/${info.version}` : info.name;
  }
  return null;
}

/** IPTC terms in their published casing, to print a source type the one way. */
const IPTC_TERMS = [
  "digitalCapture",
  "computationalCapture",
  "negativeFilm",
  "positiveFilm",
  "print",
  "humanEdits",
  "compositeCapture",
  "algorithmicallyEnhanced",
  "dataDrivenMedia",
  "digitalArt",
  "virtualRecording",
  "compositeSynthetic",
  "trainedAlgorithmicMedia",
  "compositeWithTrainedAlgorithmicMedia",
  "algorithmicMedia",
  "screenCapture",
];

/**
 * A digital source type as printed: an IPTC one (http or https, any casing) as
 * `http://cv.iptc.org/newscodes/digitalsourcetype/<term>`; any other as found if the ledger takes
 * it (`isSourceTypeUri`: a bounded http(s) URI or URN without personal data), otherwise dropped.
 */
function canonicalSourceType(value: string): string | null {
  const iptc = /^https?:\/\/cv\.iptc\.org\/newscodes\/digitalsourcetype\/([A-Za-z]+)\/?$/i.exec(value.trim());
  if (iptc) {
    const term = iptc[1] as string;
    return (
      IPTC_DIGITAL_SOURCE_TYPE + (IPTC_TERMS.find((t) => t.toLowerCase() === term.toLowerCase()) ?? term)
    );
  }
  const uri = identifier(value, LIMITS.digitalSourceType);
  return uri !== null && isSourceTypeUri(uri) ? uri : null;
}

// ─── GB 45438-2025 ─────────────────────────────────────────────────────────────────────────────

const xmlParser = new XMLParser({
  ignoreAttributes: false,
  attributeNamePrefix: "@",
  parseTagValue: false,
  parseAttributeValue: false,
  trimValues: true,
  ignoreDeclaration: true,
  ignorePiTags: true,
  processEntities: true,
  htmlEntities: false,
});

/**
 * The label in the XMP packets or PNG `AIGC` text chunks, the first readable one winning: the
 * `AIGC` property's JSON object, else Annex E's fields found directly in the TC260 namespace.
 * A label that is there but unreadable is present with every field null.
 */
function aiLabelOf(carriers: Carriers): AiLabelProvenance | null {
  let found = false;
  for (const value of carriers.aigcText) {
    found = true;
    const label = labelFromJson(value);
    if (label) {
      return label;
    }
  }
  for (const xmp of carriers.xmp.slice(0, MAX_XMP_PACKETS)) {
    // Only packets that could hold the label are parsed, and none that declares entities.
    if (xmp.length > MAX_XMP_CHARS || !/tc260|aigc/i.test(xmp) || /<!(DOCTYPE|ENTITY)/i.test(xmp)) {
      continue;
    }
    let tree: unknown;
    try {
      tree = xmlParser.parse(xmp);
    } catch {
      continue;
    }
    const { aigc, fields } = tc260Properties(tree);
    for (const value of aigc) {
      found = true;
      const label = labelFromJson(value);
      if (label) {
        return label;
      }
    }
    if (fields.size > 0) {
      return labelFromFields((name) => fields.get(name.toLowerCase()));
    }
  }
  return found ? labelFromFields(() => undefined) : null;
}

/**
 * The values of TC260-namespace properties in a parsed XMP tree, as elements or attributes: the
 * `AIGC` property's, and Annex E's fields by lower-cased name. A prefix counts when it is bound to
 * the TC260 namespace (with or without its trailing slash, any scheme or case) or, where a writer
 * forgot the binding, when it is `TC260` itself.
 */
function tc260Properties(tree: unknown): { aigc: string[]; fields: Map<string, string> } {
  const aigc: string[] = [];
  const fields = new Map<string, string>();
  const names = new Set(AI_LABEL_FIELDS.map(([name]) => name.toLowerCase()));
  const isTc260 = (uri: string | undefined) =>
    uri !== undefined &&
    uri
      .replace(/^https?:\/\//i, "")
      .replace(/\/$/, "")
      .toLowerCase() === "www.tc260.org.cn/ns/aigc/1.0";
  const visit = (node: unknown, scope: Map<string, string>, depth: number) => {
    if (depth > 32 || node === null || typeof node !== "object") {
      return;
    }
    if (Array.isArray(node)) {
      for (const item of node) {
        visit(item, scope, depth + 1);
      }
      return;
    }
    const entries = Object.entries(node as Record<string, unknown>);
    let inner = scope;
    for (const [key, value] of entries) {
      if (key.startsWith("@xmlns:") && typeof value === "string") {
        inner = inner === scope ? new Map(scope) : inner;
        inner.set(key.slice("@xmlns:".length), value);
      }
    }
    for (const [key, value] of entries) {
      const name = key.startsWith("@") ? key.slice(1) : key;
      const colon = name.indexOf(":");
      if (colon < 1 || name.startsWith("xmlns:")) {
        visit(value, inner, depth + 1);
        continue;
      }
      const prefix = name.slice(0, colon);
      const local = name.slice(colon + 1).toLowerCase();
      const ours = isTc260(inner.get(prefix)) || (!inner.has(prefix) && prefix.toLowerCase() === "tc260");
      if (ours && (local === "aigc" || names.has(local))) {
        const textValue = textOf(value);
        if (textValue !== undefined) {
          if (local === "aigc") {
            aigc.push(textValue);
          } else if (!fields.has(local)) {
            fields.set(local, textValue);
          }
        }
      } else {
        visit(value, inner, depth + 1);
      }
    }
  };
  visit(tree, new Map(), 0);
  return { aigc, fields };
}

/** A property's text: a string, an element's `#text`, or the first `rdf:li` of an `rdf:Alt`/`Seq`/`Bag`. */
function textOf(value: unknown, depth = 0): string | undefined {
  if (typeof value === "string" || typeof value === "number") {
    return String(value);
  }
  if (depth > 4 || value === null || typeof value !== "object") {
    return undefined;
  }
  if (Array.isArray(value)) {
    return textOf(value[0], depth + 1);
  }
  const record = value as Record<string, unknown>;
  if ("#text" in record) {
    return textOf(record["#text"], depth + 1);
  }
  const inner = Object.entries(record).find(([key]) => !key.startsWith("@"));
  return inner ? textOf(inner[1], depth + 1) : undefined;
}

/** Annex E's JSON object (keys matched whatever their case), or undefined when it is not one. */
function labelFromJson(value: string): AiLabelProvenance | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(value.trim());
  } catch {
    return undefined;
  }
  if (!isRecord(parsed)) {
    return undefined;
  }
  const byName = new Map(Object.entries(parsed).map(([k, v]) => [k.toLowerCase(), v]));
  return labelFromFields((name) => {
    const v = byName.get(name.toLowerCase());
    return typeof v === "string" || typeof v === "number" ? String(v) : undefined;
  });
}

function labelFromFields(get: (name: string) => string | undefined): AiLabelProvenance {
  const value = (name: string) => get(name) ?? null;
  return {
    label: identifier(value("Label"), LIMITS.label),
    contentProducer: text(value("ContentProducer"), LIMITS.party),
    produceId: identifier(value("ProduceID"), LIMITS.contentId),
    reservedCode1: identifier(value("ReservedCode1"), LIMITS.reservedCode),
    contentPropagator: text(value("ContentPropagator"), LIMITS.party),
    propagateId: identifier(value("PropagateID"), LIMITS.contentId),
    reservedCode2: identifier(value("ReservedCode2"), LIMITS.reservedCode),
  };
}

// ─── EXIF ──────────────────────────────────────────────────────────────────────────────────────

function exifOf(bytes: Uint8Array): ExifProvenance | null {
  const fields = exifFields(bytes);
  const exif: ExifProvenance = {
    make: text(fields.make, LIMITS.make),
    model: text(fields.model, LIMITS.model),
    software: text(fields.software, LIMITS.software),
    dateTimeOriginal: localDateTime(fields.dateTimeOriginal, fields.offsetTimeOriginal),
  };
  return Object.values(exif).some((v) => v !== null) ? exif : null;
}

/**
 * EXIF's `YYYY:MM:DD HH:MM:SS` as RFC 3339 local time (`YYYY-MM-DDTHH:MM:SS`), with the
 * `OffsetTimeOriginal` appended when it is a valid `±HH:MM`; null for a date that does not exist
 * (cameras without a set clock write `0000:00:00 00:00:00`).
 */
function localDateTime(value: string | null, offset: string | null): string | null {
  const m = value === null ? null : /^(\d{4}):(\d{2}):(\d{2})[ T](\d{2}):(\d{2}):(\d{2})/.exec(value.trim());
  if (!m) {
    return null;
  }
  const [, y, mo, d, h, mi, s] = m.map(Number) as [number, number, number, number, number, number, number];
  const date = new Date(Date.UTC(y, mo - 1, d, h, mi, s));
  if (y < 1900 || date.getUTCMonth() !== mo - 1 || date.getUTCDate() !== d || h > 23 || mi > 59 || s > 59) {
    return null;
  }
  const local = `${m[1]}-${m[2]}-${m[3]}T${m[4]}:${m[5]}:${m[6]}`;
  const zone = offset?.trim() ?? "";
  const result = /^[+-](?:[01]\d|2[0-3]):[0-5]\d$/.test(zone) ? local + zone : local;
  return LOCAL_DATE_TIME.test(result) ? result : null;
}

// ─── Output: strict ────────────────────────────────────────────────────────────────────────────

/**
 * Text for a person to read: control and format characters removed, whitespace runs made one
 * space, trimmed, cut to `max` UTF-16 units without splitting a character; null when empty.
 */
function text(value: string | null, max: number): string | null {
  if (value === null) {
    return null;
  }
  const cleaned = value
    .normalize("NFC")
    .replace(/[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/gu, " ")
    .replace(/\s+/g, " ")
    .trim();
  let out = "";
  for (const char of cleaned) {
    if (out.length + char.length > max) {
      break;
    }
    out += char;
  }
  out = out.trimEnd();
  return out.length > 0 ? out : null;
}

/**
 * An identifier, code or URI: trimmed; null unless it is visible ASCII without spaces and at most
 * `max` long. Never cut: a shortened id or signature would be a wrong one.
 */
function identifier(value: string | null, max: number): string | null {
  const trimmed = value?.trim() ?? "";
  return trimmed.length > 0 && trimmed.length <= max && VISIBLE_ASCII.test(trimmed) ? trimmed : null;
}

// ─── Bytes ─────────────────────────────────────────────────────────────────────────────────────

function isRecord(value: unknown): value is Record<string, unknown> {
  return (
    value !== null && typeof value === "object" && !Array.isArray(value) && !(value instanceof Uint8Array)
  );
}

function u16be(bytes: Uint8Array, at: number): number {
  return (((bytes[at] ?? 0) << 8) | (bytes[at + 1] ?? 0)) >>> 0;
}

function u32be(bytes: Uint8Array, at: number): number {
  return (
    (((bytes[at] ?? 0) << 24) |
      ((bytes[at + 1] ?? 0) << 16) |
      ((bytes[at + 2] ?? 0) << 8) |
      (bytes[at + 3] ?? 0)) >>>
    0
  );
}

function u32le(bytes: Uint8Array, at: number): number {
  return (
    (((bytes[at + 3] ?? 0) << 24) |
      ((bytes[at + 2] ?? 0) << 16) |
      ((bytes[at + 1] ?? 0) << 8) |
      (bytes[at] ?? 0)) >>>
    0
  );
}

function latin1(bytes: Uint8Array): string {
  let out = "";
  for (let i = 0; i < bytes.length; i += 8192) {
    out += String.fromCharCode(...bytes.subarray(i, i + 8192));
  }
  return out;
}

const UTF8 = new TextDecoder();

/** UTF-8 text, malformed sequences as U+FFFD. */
function utf8(bytes: Uint8Array): string {
  return UTF8.decode(bytes);
}

const STRICT_UTF8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false });

/**
 * A tEXt or zTXt chunk's text: Latin-1 by the PNG specification, but writers put UTF-8 JSON
 * there, so well-formed UTF-8 is read as UTF-8.
 */
function utf8OrLatin1(bytes: Uint8Array): string {
  try {
    return STRICT_UTF8.decode(bytes);
  } catch {
    return latin1(bytes);
  }
}

function startsWith(bytes: Uint8Array, prefix: string): boolean {
  return bytes.length >= prefix.length && latin1(bytes.subarray(0, prefix.length)) === prefix;
}

function indexOfAscii(bytes: Uint8Array, needle: string, from: number): number {
  const first = needle.charCodeAt(0);
  for (
    let i = bytes.indexOf(first, from);
    i >= 0 && i + needle.length <= bytes.length;
    i = bytes.indexOf(first, i + 1)
  ) {
    let j = 1;
    while (j < needle.length && bytes[i + j] === needle.charCodeAt(j)) {
      j++;
    }
    if (j === needle.length) {
      return i;
    }
  }
  return -1;
}

function concat(chunks: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const chunk of chunks) {
    out.set(chunk, at);
    at += chunk.length;
  }
  return out;
}
