import { z } from "@hono/zod-openapi";
import { reportStatuses } from "../../schema";
import { PURPOSES } from "../services/scores";
import { subjectList } from "./common";
import { CATEGORIES, CONFIRMATIONS } from "./reports";

export const MAX_BATCH_QUERIES = 100;

export const ScoreQueryBodySchema = z
  .object({ subjects: subjectList(8), purpose: z.enum(PURPOSES) })
  .strict()
  .openapi("ScoreQuery");

export const ScoreBatchBodySchema = z
  .object({
    purpose: z.enum(PURPOSES),
    queries: z
      .array(z.object({ ref: z.string().min(1).max(128), subjects: subjectList(8) }).strict())
      .min(1)
      .max(MAX_BATCH_QUERIES),
  })
  .strict()
  .openapi("ScoreBatch");

export const ScoreAnswerSchema = z
  .object({
    score: z.number().int().min(0).max(100),
    band: z.enum(["none", "low", "medium", "high", "critical"]),
    action: z.enum(["allow", "review", "require_return"]),
    reasons: z.array(z.object({ code: z.string(), detail: z.string() })),
    summary: z.object({
      reports: z.number().int(),
      platforms: z.number().int(),
      disputed: z.number().int(),
      firstReportedAt: z.string().nullable(),
      lastReportedAt: z.string().nullable(),
      amounts: z.array(z.object({ currency: z.string(), value: z.number().int() })),
    }),
    records: z.array(
      z.object({
        ref: z.string(),
        category: z.enum(CATEGORIES),
        confirmation: z.enum(CONFIRMATIONS),
        incidentAt: z.string(),
        amountTier: z.enum(["minor", "relatively_large", "huge", "especially_huge", "unknown_currency"]),
        status: z.enum(reportStatuses),
        counted: z.boolean(),
        disputed: z.boolean(),
        statement: z.string().nullable(),
      }),
    ),
    model: z.string(),
    evaluatedAt: z.string(),
  })
  .openapi("ScoreAnswer");
