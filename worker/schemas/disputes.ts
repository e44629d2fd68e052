import { z } from "@hono/zod-openapi";
import { disputeStatuses } from "../../schema";
import { DateTime, freeText, idOf, PlatformRef, subjectList, text } from "./common";

export const DisputeOpenSchema = z
  .object({
    reportRef: z
      .string()
      .regex(/^rpt_[0-9A-HJKMNP-TV-Z]{26}$/, "must be a record ref (rpt_…) from a score answer"),
    subjects: subjectList(8),
    reason: freeText(1000).openapi({ description: "The buyer's own statement; stays with the record" }),
  })
  .strict()
  .openapi("DisputeOpen");

export const DisputeRespondSchema = z
  .object({ decision: z.enum(["uphold", "withdraw"]), note: freeText(1000) })
  .strict()
  .openapi("DisputeRespond");

export const DisputeEscalateSchema = z
  .object({
    reason: freeText(1000).openapi({ description: "Why the buyer contests the reporter's uphold" }),
  })
  .strict()
  .openapi("DisputeEscalate");

export const DisputeResolveSchema = z
  .object({ outcome: z.enum(["report_upheld", "report_voided"]), note: freeText(1000) })
  .strict()
  .openapi("DisputeResolve");

export const DisputeSchema = z
  .object({
    id: idOf("dsp"),
    status: z.enum(disputeStatuses),
    reportRef: idOf("rpt"),
    openedAt: DateTime,
    deadlineAt: DateTime,
    reason: text(1000),
    responseNote: text(1000).nullable(),
    decidedAt: DateTime.nullable(),
    escalatedAt: DateTime.nullable().openapi({
      description: "When the opening platform escalated the reporter's uphold to the admins",
    }),
    escalationReason: text(1000).nullable(),
    /** Admins only: who opened it and whose report it is. */
    openedBy: PlatformRef.optional(),
    reportPlatformId: PlatformRef.optional(),
  })
  .openapi("Dispute");
