import { z } from "@hono/zod-openapi";

const INT32_MAX = 2_147_483_647;

/**
 * An integer with both bounds and its OpenAPI format (int32 when it fits, int64 otherwise), so
 * the document says what the ledger accepts or sends.
 *
 * @example int(0, 100) // { type: integer, format: int32, minimum: 0, maximum: 100 }
 */
export function int(min: number, max: number) {
  const format = min >= -INT32_MAX - 1 && max <= INT32_MAX ? "int32" : "int64";
  return z.number().int().min(min).max(max).openapi({ format });
}

export const SUBJECT_TYPES = ["phone", "email", "national_id", "device", "payment_account"] as const;
export type SubjectType = (typeof SUBJECT_TYPES)[number];

export const SubjectSchema = z
  .object({
    type: z.enum(SUBJECT_TYPES),
    hash: z
      .string()
      .regex(/^[0-9a-f]{64}$/, "must be 64 lower-case hex characters: HMAC-SHA256 with the consortium key"),
  })
  .strict()
  .openapi("Subject", {
    example: { type: "phone", hash: "5e8f0c2a9d4b7e1f3a6c8b0d2e4f6a8c1b3d5e7f9a0c2e4b6d8f0a1c3e5b7d9f" },
  });

export type Subject = z.infer<typeof SubjectSchema>;

/** 1–`max` subjects, no duplicate (type, hash) pair. */
export function subjectList(max: number) {
  return z
    .array(SubjectSchema)
    .min(1)
    .max(max)
    .superRefine((subjects, ctx) => {
      const seen = new Set<string>();
      subjects.forEach((s, i) => {
        const key = `${s.type}:${s.hash}`;
        if (seen.has(key)) {
          ctx.addIssue({ code: "custom", path: [i], message: "duplicate subject" });
        }
        seen.add(key);
      });
    });
}

/** RFC 3339 with an explicit offset; stored as epoch milliseconds. */
export const Rfc3339 = z.iso.datetime({ offset: true }).openapi({ example: "2026-11-05T16:30:00Z" });

export const AmountSchema = z
  .object({
    value: int(1, 1_000_000_000_000),
    currency: z.string().regex(/^[A-Z]{3}$/, "must be an ISO 4217 code: three upper-case letters"),
  })
  .strict()
  .openapi("Amount", { example: { value: 129900, currency: "CNY" } });

/** A count, a sequence number or an epoch time in milliseconds: 0 up to 2^53 − 1. */
export const count = () => int(0, Number.MAX_SAFE_INTEGER);

/** A time the ledger sends: RFC 3339 in UTC (`toRfc3339`). */
export const DateTime = z.iso.datetime().openapi({ example: "2026-11-24T08:00:00Z" });

/** 64 lower-case hex digits: SHA-256 hashes, HMAC subject keys, chain hashes. */
export const Hex64 = z.string().regex(/^[0-9a-f]{64}$/);

/** Readable ids (`worker/lib/ids.ts`): the prefix and 26 Crockford base32 characters. */
export const idOf = (prefix: "rpt" | "dsp" | "evt" | "req") =>
  z
    .string()
    .regex(new RegExp(`^${prefix}_[0-9A-HJKMNP-TV-Z]{26}$`))
    .openapi({ example: `${prefix}_01JD3X5Z8YQ4W2E6R7T9V0B1N2` });

/** A platform id as the ledger stores it (PLATFORM_ID_PATTERN). */
export const PlatformRef = z.string().regex(/^[a-z0-9][a-z0-9-]{1,62}$/);

/** An opaque cursor the API issued; sent back as `cursor` (200 characters at most). */
export const NextCursor = z
  .string()
  .max(200)
  .regex(/^[A-Za-z0-9_-]+$/)
  .nullable();

/** Text the ledger sends back as it was given (notes, reasons, statements): at most `max` characters. */
export const text = (max: number) => z.string().max(max);

export const IdParam = (prefix: string) =>
  z.object({
    id: z
      .string()
      .max(64)
      .openapi({ param: { name: "id", in: "path" }, example: `${prefix}_01JD3X5Z8YQ4W2E6R7T9V0B1N2` }),
  });

/** The most items a list page holds. */
export const MAX_PAGE = 200;

export const LimitQuery = z.coerce
  .number()
  .int()
  .min(1)
  .max(MAX_PAGE)
  .default(50)
  .openapi({ example: 50, format: "int32" });

export const CursorQuery = z.string().max(200).optional();

export function page<T extends z.ZodTypeAny>(item: T, name: string) {
  return z.object({ items: z.array(item).max(MAX_PAGE), nextCursor: NextCursor }).openapi(name);
}

/**
 * Patterns that mark a note as carrying personal data (an e-mail address, a mainland mobile
 * number, a resident ID number). Notes travel to other platforms, so they are refused.
 */
export const PERSONAL_DATA = [
  /[^\s@]+@[^\s@]+\.[^\s@]+/,
  /(?<!\d)1[3-9]\d{9}(?!\d)/,
  /(?<!\d)\d{17}[\dXx](?![\dXx])/,
];

/** Free text that other platforms or the buyer will read: trimmed, bounded, no identifiers. */
export const freeText = (max: number) =>
  z
    .string()
    .trim()
    .min(1)
    .max(max)
    .refine((s) => !PERSONAL_DATA.some((re) => re.test(s)), "must not contain personal data");
