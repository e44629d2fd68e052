/**
 * The shape of a photo's provenance as the client kit prints it and the ledger stores it
 * (issue 11): `client/provenance.ts` cuts what it reads to these bounds, and the ledger's
 * `image_provenance` evidence schema (`worker/schemas/reports.ts`) refuses anything past them, so
 * what the kit prints is what the ledger accepts. No dependencies: the Worker imports this file.
 */

/** Longest value of each field, in UTF-16 code units (what a JSON string's `length` counts). */
export const PROVENANCE_LIMITS = {
  /** Distinct C2PA digital source types kept per photo. */
  digitalSourceTypes: 8,
  digitalSourceType: 200,
  claimGenerator: 200,
  label: 16,
  /** `contentProducer`, `contentPropagator`: a service's name or registration code. */
  party: 128,
  /** `produceId`, `propagateId`: the producer's or propagator's id of the content. */
  contentId: 128,
  /** `reservedCode1`, `reservedCode2`: a signature or digest, hex or base64. */
  reservedCode: 256,
  make: 64,
  model: 64,
  software: 128,
} as const;

/** The IPTC "Digital Source Type" vocabulary's namespace, as C2PA actions cite it. */
export const IPTC_DIGITAL_SOURCE_TYPE = "http://cv.iptc.org/newscodes/digitalsourcetype/";

/**
 * The IPTC terms that mean the picture was made by a trained model: wholly
 * (`trainedAlgorithmicMedia`) or in part (`compositeWithTrainedAlgorithmicMedia`).
 */
export const AI_SOURCE_TYPES = ["trainedAlgorithmicMedia", "compositeWithTrainedAlgorithmicMedia"] as const;

/**
 * Whether a digital source type names AI generation: its last path segment is one of
 * `AI_SOURCE_TYPES`, whatever the case (some writers cite the IPTC term under `https:` or with
 * other casing).
 *
 * @example isAiSourceType("http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia") // true
 */
export function isAiSourceType(value: string): boolean {
  const term = value.replace(/\/+$/, "").split("/").pop()?.toLowerCase() ?? "";
  return AI_SOURCE_TYPES.some((t) => t.toLowerCase() === term);
}

/**
 * What a digital source type may be: an http(s) URI (host, optional port, then path, query or
 * fragment in visible ASCII), as the IPTC vocabulary's
 * `http://cv.iptc.org/newscodes/digitalsourcetype/<term>` and other published vocabularies are,
 * or a URN (`urn:<namespace>:<name>`, RFC 8141). No other scheme (`mailto:`, `tel:`…) and no user
 * information before the host.
 */
export const SOURCE_TYPE_URI =
  /^(?:https?:\/\/[A-Za-z0-9.-]+(?::\d{1,5})?(?:[/?#][!-~]*)?|urn:[A-Za-z0-9][A-Za-z0-9-]{0,31}:[!-~]+)$/;

/**
 * Patterns of personal data (an e-mail address, a mainland mobile number, a resident ID number),
 * the ledger's own (worker/schemas/common.ts, PERSONAL_DATA; test/node/client-rows.test.ts holds
 * them equal): refused in notes and in provenance fields that name tools or vocabularies.
 */
export const PERSONAL_DATA = [
  /[^\s@]+@[^\s@]+\.[^\s@]+/,
  /(?<!\d)1[3-9]\d{9}(?!\d)/,
  /(?<!\d)\d{17}[\dXx](?![\dXx])/,
];

/**
 * Whether a digital source type is one the ledger takes: an http(s) URI or a URN
 * (`SOURCE_TYPE_URI`) of at most `PROVENANCE_LIMITS.digitalSourceType` characters, holding no
 * personal data.
 *
 * @example isSourceTypeUri("http://cv.iptc.org/newscodes/digitalsourcetype/digitalCapture") // true
 * @example isSourceTypeUri("mailto:zhang.san@example.com") // false
 */
export function isSourceTypeUri(value: string): boolean {
  return (
    value.length <= PROVENANCE_LIMITS.digitalSourceType &&
    SOURCE_TYPE_URI.test(value) &&
    !PERSONAL_DATA.some((re) => re.test(value))
  );
}

/** Visible ASCII, no spaces: what an identifier, a URI or a code may hold. */
export const VISIBLE_ASCII = /^[!-~]+$/;

/** Text a person could read: no control characters, no whitespace at either end. */
export const PRINTABLE_TEXT = /^(?!\s)[^\p{Cc}\p{Cf}\p{Zl}\p{Zp}]*(?<!\s)$/u;

/** `DateTimeOriginal` as the kit prints it: RFC 3339 local time, with the EXIF offset when one is given. */
export const LOCAL_DATE_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:[+-]\d{2}:\d{2})?$/;

export interface C2paProvenance {
  /** A C2PA manifest store is embedded (JPEG APP11, PNG `caBX`, WebP `C2PA`). Not validated. */
  present: boolean;
  /** The distinct `digitalSourceType` values of the store's actions assertions, in order found. */
  digitalSourceTypes: string[];
  /** One of the digital source types names AI generation (`isAiSourceType`). */
  aiGenerated: boolean;
  /** The active manifest's claim generator, or null. */
  claimGenerator: string | null;
}

/** The implicit AI-content label of GB 45438-2025 (Annex E's seven fields), each null when absent. */
export interface AiLabelProvenance {
  label: string | null;
  contentProducer: string | null;
  produceId: string | null;
  reservedCode1: string | null;
  contentPropagator: string | null;
  propagateId: string | null;
  reservedCode2: string | null;
}

export interface ExifProvenance {
  make: string | null;
  model: string | null;
  software: string | null;
  dateTimeOriginal: string | null;
}

export interface Provenance {
  c2pa: C2paProvenance;
  /** Null when the photo carries no such label. */
  aiLabel: AiLabelProvenance | null;
  /** Null when the photo has none of the four EXIF fields. */
  exif: ExifProvenance | null;
}
