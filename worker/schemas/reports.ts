import { z } from "@hono/zod-openapi";
import {
  isAiSourceType,
  PROVENANCE_LIMITS as LIMITS,
  LOCAL_DATE_TIME,
  PRINTABLE_TEXT,
  SOURCE_TYPE_URI,
  VISIBLE_ASCII,
} from "../../client/provenance-shape";
import { reportStatuses } from "../../schema";
import {
  AmountSchema,
  DateTime,
  freeText,
  Hex64,
  idOf,
  int,
  PERSONAL_DATA,
  PlatformRef,
  Rfc3339,
  SUBJECT_TYPES,
  subjectList,
  text,
} from "./common";

/** A closing reason: a retraction or void reason (500) or a dispute decision's note (1,000). */
export const MAX_STATUS_REASON = 1000;

export const CATEGORIES = [
  "ai_generated_image",
  "edited_image",
  "reused_image",
  "staged_damage",
  "other_forgery",
] as const;
export type Category = (typeof CATEGORIES)[number];

/** Weakest to strongest: the scoring model relies on this order. */
export const CONFIRMATIONS = [
  "manual_review",
  "merchant_evidence",
  "platform_forensics",
  "police_report",
  "court_ruling",
] as const;
export type Confirmation = (typeof CONFIRMATIONS)[number];

export const EVIDENCE_KINDS = [
  "image_sha256",
  "image_phash",
  "ai_label",
  "packing_video",
  "forensic_report",
  "other",
] as const;

/**
 * The lowest PDQ quality a fingerprint may have. PDQ's own authors treat hashes below 50 as
 * unreliable: flat, tiny or mostly blank images hash alike, so they would match unrelated photos.
 */
export const PDQ_MIN_QUALITY = 50;

/** A PDQ hash as `client/pdq.ts` prints it: 256 bits, 64 lower-case hex digits. */
export const PDQ_HASH = /^[0-9a-f]{64}$/;

/**
 * Bits set in a PDQ hash, at most: PDQ sets a bit where a DCT coefficient exceeds the lower
 * median of the 256, so no image's hash (nor any of its dihedral hashes) has more than 128.
 */
export const PDQ_MAX_BITS = 128;

/**
 * Bits set in a reported fingerprint, at least. Every photo and every picture with content in
 * both directions measured 127–128 (docs/evidence.md, "Degenerate hashes"); fewer bits mean
 * coefficients tied at the median, i.e. rounding noise rather than the picture: blank images
 * (0–41 bits, quality 0, all-zero below 5 pixels), pictures constant along one axis (23–80) or
 * exactly mirror-symmetric (61–65). 96 leaves 31 bits of margin under real photos, and keeps
 * every stored hash farther than any match distance (31) from the hashes of blank photos.
 */
export const PDQ_MIN_BITS = 96;

/**
 * Bits set in a hash asked about (a claim's photo), at most: 128 plus the widest match distance
 * (31, `MAX_EXACT_DISTANCE`). A hash with more is no PDQ hash and could not match any stored one.
 * Fewer bits are not refused there: the kit prints them for blank, tiny or symmetric photos, and
 * they match nothing stored.
 */
export const PDQ_PROBE_MAX_BITS = PDQ_MAX_BITS + 31;

/** Bits set in a 64-hex-digit hash (0–256). */
export function pdqBits(hash: string): number {
  let bits = 0;
  for (let i = 0; i < hash.length; i += 8) {
    let x = Number.parseInt(hash.slice(i, i + 8), 16) >>> 0;
    while (x !== 0) {
      x &= x - 1;
      bits++;
    }
  }
  return bits;
}

/** A claim's photo hash (match and score queries): the kit's format, at most `PDQ_PROBE_MAX_BITS` set. */
export const PdqHash = z
  .string()
  .regex(PDQ_HASH, "must be a PDQ hash: 64 lower-case hex digits")
  .refine(
    (h) => !PDQ_HASH.test(h) || pdqBits(h) <= PDQ_PROBE_MAX_BITS,
    `must be a PDQ hash: no PDQ hash has more than ${PDQ_MAX_BITS} bits set`,
  );

/** A reported fingerprint's hash: the kit's format, `PDQ_MIN_BITS`–`PDQ_MAX_BITS` bits set. */
export const ReportedPdqHash = z
  .string()
  .regex(PDQ_HASH, "must be a PDQ hash: 64 lower-case hex digits")
  .refine((h) => {
    const bits = PDQ_HASH.test(h) ? pdqBits(h) : PDQ_MAX_BITS;
    return bits >= PDQ_MIN_BITS && bits <= PDQ_MAX_BITS;
  }, `must be the PDQ hash of a photo of quality ${PDQ_MIN_QUALITY} or more: ${PDQ_MIN_BITS}–${PDQ_MAX_BITS} bits set (a blank, tiny, flat or symmetric picture's hash has fewer; none has more); leave this fingerprint out`);

/** An image fingerprint (`npm run -s fingerprint -- <image>`), indexed for `POST /v1/evidence/match`. */
const PdqEvidenceSchema = z
  .object({
    kind: z.literal("image_pdq"),
    value: ReportedPdqHash,
    quality: int(0, 100).refine(
      (q) => q >= PDQ_MIN_QUALITY,
      `quality below ${PDQ_MIN_QUALITY}: the image is too flat or too small for its PDQ hash to tell it from unrelated images; leave this fingerprint out`,
    ),
  })
  .strict();

/**
 * Text read from a photo's metadata for people to read (a camera, a program, a producer's name):
 * printable, no whitespace at either end. With `personal`, refused when it looks like an e-mail,
 * phone or ID number, as notes are: these fields are tools' names and never legitimately hold one
 * (a producer's registration code may be 18 digits, so the label's fields are not checked so).
 */
const metadataText = (max: number, personal = false) => {
  const text = z
    .string()
    .min(1)
    .max(max)
    .regex(PRINTABLE_TEXT, "must be printable text, trimmed")
    // zod-to-openapi would write the regex's flags into the pattern (`…$/u`); JSON Schema patterns
    // are Unicode-aware without them.
    .openapi({ pattern: PRINTABLE_TEXT.source });
  return (
    personal
      ? text.refine((s) => !PERSONAL_DATA.some((re) => re.test(s)), "must not contain personal data")
      : text
  ).nullable();
};

/** Whether `YYYY-MM-DDTHH:MM:SS…` names a real date and time (no 30 February, no hour 24). */
function isCalendarDateTime(value: string): boolean {
  const [y, mo, d, h, mi, s] = (value.match(/\d+/g) ?? []).map(Number) as number[];
  const at = new Date(Date.UTC(y ?? 0, (mo ?? 0) - 1, d ?? 0, h ?? 0, mi ?? 0, s ?? 0));
  return (
    at.getUTCMonth() === (mo ?? 0) - 1 &&
    at.getUTCDate() === d &&
    (h ?? 0) < 24 &&
    (mi ?? 0) < 60 &&
    (s ?? 0) < 60
  );
}

/** An identifier, code or URI read from metadata: visible ASCII, no spaces. */
const metadataCode = (max: number) =>
  z.string().min(1).max(max).regex(VISIBLE_ASCII, "must be visible ASCII without spaces").nullable();

/**
 * What `client/provenance.ts` reads from a photo (`npm run -s fingerprint`, `provenance`): C2PA
 * (unvalidated), the GB 45438-2025 label and four EXIF fields. Indicators a reviewer weighs, not
 * proof; stored with the report and shown with it, never matched or scored.
 */
const ProvenanceEvidenceSchema = z
  .object({
    kind: z.literal("image_provenance"),
    c2pa: z
      .object({
        present: z.boolean(),
        digitalSourceTypes: z
          .array(
            z
              .string()
              .min(1)
              .max(LIMITS.digitalSourceType)
              .regex(
                SOURCE_TYPE_URI,
                "must be an http(s) URI, such as http://cv.iptc.org/newscodes/digitalsourcetype/<term>, or a URN",
              )
              .refine((s) => !PERSONAL_DATA.some((re) => re.test(s)), "must not contain personal data"),
          )
          .max(LIMITS.digitalSourceTypes)
          .refine((types) => new Set(types).size === types.length, "must not repeat a source type"),
        aiGenerated: z.boolean(),
        claimGenerator: metadataText(LIMITS.claimGenerator, true),
      })
      .strict()
      .superRefine((c2pa, ctx) => {
        if (!c2pa.present && (c2pa.digitalSourceTypes.length > 0 || c2pa.claimGenerator !== null)) {
          ctx.addIssue({
            code: "custom",
            path: ["present"],
            message: "must be true when source types or a claim generator are given",
          });
        }
        if (c2pa.aiGenerated !== c2pa.digitalSourceTypes.some(isAiSourceType)) {
          ctx.addIssue({
            code: "custom",
            path: ["aiGenerated"],
            message:
              "must be true exactly when a digital source type is trainedAlgorithmicMedia or compositeWithTrainedAlgorithmicMedia",
          });
        }
      }),
    aiLabel: z
      .object({
        label: metadataCode(LIMITS.label),
        contentProducer: metadataText(LIMITS.party),
        produceId: metadataCode(LIMITS.contentId),
        reservedCode1: metadataCode(LIMITS.reservedCode),
        contentPropagator: metadataText(LIMITS.party),
        propagateId: metadataCode(LIMITS.contentId),
        reservedCode2: metadataCode(LIMITS.reservedCode),
      })
      .strict()
      .nullable(),
    exif: z
      .object({
        make: metadataText(LIMITS.make, true),
        model: metadataText(LIMITS.model, true),
        software: metadataText(LIMITS.software, true),
        dateTimeOriginal: z
          .string()
          .regex(LOCAL_DATE_TIME, "must be YYYY-MM-DDTHH:MM:SS, with ±HH:MM when the offset is known")
          .refine(isCalendarDateTime, "must be a date and time that exists")
          .nullable(),
      })
      .strict()
      .nullable(),
  })
  .strict()
  .openapi("ProvenanceEvidence", {
    example: {
      kind: "image_provenance",
      c2pa: {
        present: true,
        digitalSourceTypes: ["http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"],
        aiGenerated: true,
        claimGenerator: "Example Image Generator/1.0",
      },
      aiLabel: null,
      exif: null,
    },
  });

export const EvidenceSchema = z
  .discriminatedUnion("kind", [
    PdqEvidenceSchema,
    ProvenanceEvidenceSchema,
    z.object({ kind: z.enum(EVIDENCE_KINDS), value: z.string().min(1).max(256) }).strict(),
  ])
  .openapi("Evidence");

export type Evidence = z.infer<typeof EvidenceSchema>;

/** The bands a look-up may have answered for a report filed after it to be flagged (§3c). */
export const AFTER_LOOKUP_BANDS = ["medium", "high", "critical"] as const;
export type AfterLookupBand = (typeof AFTER_LOOKUP_BANDS)[number];

/** Confirmations a consortium admin verifies before they weigh as strong (docs/scoring.md §2). */
export const STRONG_CONFIRMATIONS: readonly Confirmation[] = ["police_report", "court_ruling"];

/** A police report's or court ruling's reference: printable, trimmed, never personal data. */
const ConfirmationRef = z
  .string()
  .min(1)
  .max(128)
  .regex(PRINTABLE_TEXT, "must be printable text, trimmed")
  .openapi({ pattern: PRINTABLE_TEXT.source })
  .refine((s) => !PERSONAL_DATA.some((re) => re.test(s)), "must not contain personal data");

export const ReportBodySchema = z
  .object({
    caseId: z
      .string()
      .regex(/^[A-Za-z0-9._:-]{1,128}$/, "must be 1–128 characters of A–Z a–z 0–9 . _ : -")
      .openapi({ example: "JD-2026-000123" }),
    subjects: subjectList(8),
    category: z.enum(CATEGORIES),
    incidentAt: Rfc3339,
    confirmedAt: Rfc3339,
    confirmation: z.enum(CONFIRMATIONS),
    confirmationRef: ConfirmationRef.nullish().openapi({
      description:
        "With `police_report` or `court_ruling` only: the report's or ruling's reference, which the consortium verifies before the record weighs as a strong confirmation (docs/scoring.md §2)",
      example: "京公(朝)立字[2026]1234号",
    }),
    amount: AmountSchema,
    evidence: z.array(EvidenceSchema).max(16).default([]),
    note: z
      .string()
      .max(500)
      .refine((s) => !PERSONAL_DATA.some((re) => re.test(s)), "must not contain personal data")
      .nullish(),
    subjectNotifiedAt: Rfc3339.nullish(),
  })
  .strict()
  .openapi("ReportBody");

export type ReportBody = z.infer<typeof ReportBodySchema>;

export const ReportSchema = z
  .object({
    id: idOf("rpt"),
    caseId: z.string().regex(/^[A-Za-z0-9._:-]{1,128}$/),
    platformId: PlatformRef,
    status: z.enum(reportStatuses),
    subjects: z
      .array(
        z.object({
          type: z.enum(SUBJECT_TYPES),
          key: Hex64.openapi({
            description: "The ledger's peppered key for the subject (never the hash sent)",
          }),
        }),
      )
      .max(8),
    category: z.enum(CATEGORIES),
    incidentAt: DateTime,
    confirmedAt: DateTime,
    confirmation: z.enum(CONFIRMATIONS),
    confirmationRef: text(128)
      .nullable()
      .openapi({ description: "The police report's or court ruling's reference, when given" }),
    confirmationVerifiedAt: DateTime.nullable().openapi({
      description:
        "When a consortium admin verified the police report or court ruling; null until then (it then weighs as platform forensics)",
    }),
    amount: AmountSchema,
    evidence: z.array(EvidenceSchema).max(16),
    note: text(500).nullable(),
    subjectNotifiedAt: DateTime.nullable(),
    statusReason: text(MAX_STATUS_REASON)
      .nullable()
      .openapi({ description: "Why it was closed: the retraction or void reason, or the ledger's own" }),
    statement: text(1000).nullable().openapi({ description: "The buyer's latest statement from a dispute" }),
    disputeId: idOf("dsp")
      .nullable()
      .openapi({ description: "The record's open or latest dispute (`GET /v1/disputes/{id}`), or null" }),
    afterLookup: z
      .object({
        lookedUpAt: DateTime.openapi({
          description: "When the reporting platform's own look-up of one of the report's subjects was made",
        }),
        band: z
          .enum(AFTER_LOOKUP_BANDS)
          .openapi({ description: "What that look-up answered (reconstructed)" }),
        clearedAt: DateTime.nullable().openapi({
          description:
            "When a consortium admin cleared the flag (the record then counts as any other); null until then",
        }),
      })
      .nullable()
      .openapi("AfterLookupFlag", {
        description:
          "Set when the report was filed within AFTER_LOOKUP_WINDOW_DAYS after the reporting platform's own look-up of one of its subjects answered `review` or worse: until an admin clears it, the record counts as its platform's own evidence but adds no consensus weight (docs/scoring.md §3c). Null when not flagged.",
      }),
    createdAt: DateTime,
    updatedAt: DateTime,
  })
  .openapi("Report");

export type Report = z.infer<typeof ReportSchema>;

export const ReasonBodySchema = z.object({ reason: freeText(500) }).strict();
