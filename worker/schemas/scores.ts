import { z } from "@hono/zod-openapi";
import { reportStatuses } from "../../schema";
import { PURPOSES } from "../services/scores";
import { count, DateTime, idOf, int, subjectList, text } from "./common";
import { CATEGORIES, CONFIRMATIONS, PdqHash } from "./reports";

export const MAX_BATCH_QUERIES = 100;

/** Photos in one `POST /v1/evidence/match` or in one score query's `evidence`. */
export const MAX_MATCH_PHOTOS = 16;

/**
 * Photos over all the queries of one `POST /v1/scores/batch`: four single queries' worth at
 * their largest (each photo may bring eight dihedral hashes, and each hash costs the read 288
 * index probes; docs/evidence.md, "Cost").
 */
export const MAX_BATCH_PHOTOS = 64;

/**
 * Ceilings of a score answer's data-bounded lists, which no request bound caps: records are at
 * most MAX_ACTIVE_REPORTS_PER_SUBJECT (≤ 500) + 1 per subject key (≤ 8) and platform, and
 * `MAX_SCORED_PLATFORMS` platforms are far beyond any consortium; a photo's matches are the
 * confirmed fingerprints within MAX_MATCH_DISTANCE. Documentation ceilings, not enforced.
 */
export const MAX_SCORED_PLATFORMS = 10_000;
export const MAX_SCORE_RECORDS = 8 * 501 * MAX_SCORED_PLATFORMS;
export const MAX_PHOTO_MATCHES = 100_000;

/** A refund claim's photo, by its PDQ fingerprint (`npm run -s fingerprint -- <image>`). */
export const PhotoSchema = z
  .object({
    pdq: PdqHash,
    dihedral: z.array(PdqHash).min(8).max(8).optional().openapi({
      description:
        "The photo's eight dihedral hashes (`npm run -s fingerprint` prints them), the first the photo's own (`pdq`): a copy turned or mirrored matches too; the best distance over them counts.",
    }),
  })
  .strict()
  // The kit prints the photo's own hash first; any other first hash would be one more hash
  // probed under a photo it is not.
  .refine((photo) => photo.dihedral === undefined || photo.dihedral[0] === photo.pdq, {
    path: ["dihedral", 0],
    message: "must be the photo's own hash (`pdq`): the kit prints it first",
  })
  .openapi("Photo");

export type Photo = z.infer<typeof PhotoSchema>;

/** One confirmed fingerprint hash near a photo. Never the reporter, the case, the buyer or the hash. */
export const PhotoMatchSchema = z
  .object({
    distance: int(0, 256).openapi({ description: "Bits of 256 that differ from the nearest hash given" }),
    platforms: count().openapi({ description: "Distinct platforms that confirmed a case with it" }),
    categories: z.array(z.enum(CATEGORIES)).max(CATEGORIES.length),
    firstSeenAt: DateTime,
    lastSeenAt: DateTime,
  })
  .openapi("PhotoMatch");

const photoEvidence = z
  .array(PhotoSchema)
  .max(MAX_MATCH_PHOTOS)
  .openapi({
    description: `The claim's photos (0–${MAX_MATCH_PHOTOS}), matched against confirmed fingerprints in the same read (docs/scoring.md §3b).`,
  });

export const ScoreQueryBodySchema = z
  .object({ subjects: subjectList(8), purpose: z.enum(PURPOSES), evidence: photoEvidence.optional() })
  .strict()
  .openapi("ScoreQuery");

export const ScoreBatchBodySchema = z
  .object({
    purpose: z.enum(PURPOSES),
    queries: z
      .array(
        z
          .object({
            ref: z.string().min(1).max(128),
            subjects: subjectList(8),
            evidence: photoEvidence.optional(),
          })
          .strict(),
      )
      .min(1)
      .max(MAX_BATCH_QUERIES)
      .superRefine((queries, ctx) => {
        const photos = queries.reduce((n, q) => n + (q.evidence?.length ?? 0), 0);
        if (photos > MAX_BATCH_PHOTOS) {
          ctx.addIssue({
            code: "custom",
            path: [],
            message: `at most ${MAX_BATCH_PHOTOS} photos over all queries of a batch (this one has ${photos}); split the batch`,
          });
        }
      }),
  })
  .strict()
  .openapi("ScoreBatch");

export const ScoreAnswerSchema = z
  .object({
    score: int(0, 100),
    band: z.enum(["none", "low", "medium", "high", "critical"]),
    action: z.enum(["allow", "review", "require_return"]),
    reasons: z
      .array(z.object({ code: z.string().regex(/^[A-Z][A-Z0-9_]{0,63}$/), detail: z.string().max(500) }))
      .max(32),
    summary: z.object({
      reports: count(),
      platforms: count(),
      disputed: count(),
      firstReportedAt: DateTime.nullable(),
      lastReportedAt: DateTime.nullable(),
      amounts: z
        .array(z.object({ currency: z.string().regex(/^[A-Z]{3}$/), value: count() }))
        .max(MAX_SCORE_RECORDS),
    }),
    records: z
      .array(
        z.object({
          ref: idOf("rpt"),
          category: z.enum(CATEGORIES),
          confirmation: z.enum(CONFIRMATIONS),
          incidentAt: DateTime,
          amountTier: z.enum(["minor", "relatively_large", "huge", "especially_huge", "unknown_currency"]),
          status: z.enum(reportStatuses),
          counted: z.boolean(),
          disputed: z.boolean(),
          verified: z.boolean().nullable().openapi({
            description:
              "For a police_report or court_ruling: whether a consortium admin verified it (unverified, it weighs as platform_forensics and lifts no cap); null for other confirmations",
          }),
          afterLookup: z.boolean().openapi({
            description:
              "Filed right after its reporter's own look-up of this buyer answered review or worse, and not yet cleared by a consortium admin: it adds no consensus weight (docs/scoring.md §3c)",
          }),
          statement: text(1000).nullable(),
        }),
      )
      .max(MAX_SCORE_RECORDS),
    photos: z
      .array(
        z.object({
          index: int(0, MAX_MATCH_PHOTOS - 1),
          matches: z.array(PhotoMatchSchema).max(MAX_PHOTO_MATCHES),
        }),
      )
      .max(MAX_MATCH_PHOTOS)
      .optional()
      .openapi({
        description:
          "Only when the query sent `evidence`: per photo in request order, the confirmed fingerprints that count towards the score (not those of this buyer's own records, nor of a case whose dispute is past its deadline), nearest first.",
      }),
    model: z
      .string()
      .max(40)
      .regex(/^pixiu-score\/\d+(\.\d+)?(\+[0-9a-f]{8})?$/)
      .openapi({ example: "pixiu-score/2" }),
    evaluatedAt: DateTime,
  })
  .openapi("ScoreAnswer");
