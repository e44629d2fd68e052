import { z } from "@hono/zod-openapi";
import { reportStatuses } from "../../schema";
import { AmountSchema, freeText, PERSONAL_DATA, Rfc3339, SUBJECT_TYPES, subjectList } from "./common";

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

export const EvidenceSchema = z
  .object({ kind: z.enum(EVIDENCE_KINDS), value: z.string().min(1).max(256) })
  .strict()
  .openapi("Evidence");

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
    id: z.string().openapi({ example: "rpt_7QX4M2KD9B8RZJ0W5TNF3HCV6E" }),
    caseId: z.string(),
    platformId: z.string(),
    status: z.enum(reportStatuses),
    subjects: z.array(
      z.object({
        type: z.enum(SUBJECT_TYPES),
        key: z
          .string()
          .openapi({ description: "The ledger's peppered key for the subject (never the hash sent)" }),
      }),
    ),
    category: z.enum(CATEGORIES),
    incidentAt: z.string(),
    confirmedAt: z.string(),
    confirmation: z.enum(CONFIRMATIONS),
    amount: AmountSchema,
    evidence: z.array(EvidenceSchema),
    note: z.string().nullable(),
    subjectNotifiedAt: z.string().nullable(),
    statusReason: z.string().nullable(),
    statement: z.string().nullable().openapi({ description: "The buyer's latest statement from a dispute" }),
    disputeId: z
      .string()
      .nullable()
      .openapi({ description: "The record's open or latest dispute (`GET /v1/disputes/{id}`), or null" }),
    createdAt: z.string(),
    updatedAt: z.string(),
  })
  .openapi("Report");

export type Report = z.infer<typeof ReportSchema>;

export const ReasonBodySchema = z.object({ reason: freeText(500) }).strict();
