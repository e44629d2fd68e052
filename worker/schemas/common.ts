import { z } from "@hono/zod-openapi";

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
  .openapi("Subject", { example: { type: "phone", hash: "5e8f…" } });

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
    value: z.number().int().min(1).max(1_000_000_000_000),
    currency: z.string().regex(/^[A-Z]{3}$/, "must be an ISO 4217 code: three upper-case letters"),
  })
  .strict()
  .openapi("Amount", { example: { value: 129900, currency: "CNY" } });

export const IdParam = (prefix: string) =>
  z.object({
    id: z
      .string()
      .max(64)
      .openapi({ param: { name: "id", in: "path" }, example: `${prefix}_01JD3X5Z8YQ4W2E6R7T9V0B1N2` }),
  });

export const LimitQuery = z.coerce.number().int().min(1).max(200).default(50).openapi({ example: 50 });

export const CursorQuery = z.string().max(200).optional();

export function page<T extends z.ZodTypeAny>(item: T, name: string) {
  return z.object({ items: z.array(item), nextCursor: z.string().nullable() }).openapi(name);
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
