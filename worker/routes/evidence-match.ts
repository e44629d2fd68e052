import { z } from "@hono/zod-openapi";
import type { App } from "../app";
import { all } from "../lib/batch";
import { logUnavailableResponse } from "../lib/problem";
import { authenticatedRoute } from "../lib/route";
import { DAY_MS, toRfc3339 } from "../lib/time";
import { guard } from "../middleware/auth";
import { int } from "../schemas/common";
import { MAX_MATCH_PHOTOS, MAX_PHOTO_MATCHES, PhotoMatchSchema, PhotoSchema } from "../schemas/scores";
import {
  type CandidateRow,
  chunksOf,
  matchReadSql,
  nearestDistance,
  photoVariants,
  probePairsJson,
} from "../services/fingerprints";
import { logLookups, PURPOSES } from "../services/scores";

const MatchBodySchema = z
  .object({
    purpose: z.enum(PURPOSES),
    photos: z.array(PhotoSchema).min(1).max(MAX_MATCH_PHOTOS),
  })
  .strict()
  .openapi("EvidenceMatchQuery");

const MatchAnswerSchema = z
  .object({
    maxDistance: int(0, 256),
    photos: z
      .array(
        z.object({
          index: int(0, MAX_MATCH_PHOTOS - 1),
          matches: z.array(PhotoMatchSchema).max(MAX_PHOTO_MATCHES),
        }),
      )
      .max(MAX_MATCH_PHOTOS),
  })
  .openapi("EvidenceMatchAnswer");

type Match = z.infer<typeof PhotoMatchSchema>;

const route = authenticatedRoute({
  method: "post",
  path: "/v1/evidence/match",
  operationId: "matchEvidence",
  tags: ["Scores"],
  summary: "Match refund photos against confirmed fingerprints",
  description:
    "Per photo, the confirmed fingerprints (`image_pdq` evidence of active or disputed reports) within MAX_MATCH_DISTANCE, one entry per fingerprint hash: its distance, how many platforms confirmed a case with it, the categories and the incident times. Never the reporter, the case or the buyer. One read on the ledger database; the look-up is logged in the log store before the answer leaves (503 when it cannot be).",
  middleware: [guard("evidence.match", "scores:read")] as const,
  request: { body: { required: true, content: { "application/json": { schema: MatchBodySchema } } } },
  responses: {
    200: {
      description: "The matches, per photo",
      content: { "application/json": { schema: MatchAnswerSchema } },
    },
    ...logUnavailableResponse,
  },
});

export function registerEvidenceMatch(app: App) {
  app.openapi(route, async (c) => {
    const { purpose, photos } = c.req.valid("json");
    const maxDistance = c.var.config.MAX_MATCH_DISTANCE;
    const variants = photoVariants(photos);
    const chunksJson = probePairsJson(variants);
    const [candidates] = await Promise.all([
      // The request's session: a read replica may answer (READ_ONLY_POSTS).
      all<CandidateRow>(
        c.var.db,
        matchReadSql(chunksJson, {
          now: c.var.now,
          since: c.var.now - c.var.config.RETENTION_DAYS * DAY_MS,
        }),
      ),
      // Every hash probed is logged (erasable) and counts against the daily look-up cap.
      logLookups(c.var.scope, {
        purpose,
        buyers: [{ target: null, keys: [], photos: photos.flatMap((p) => [p.pdq, ...(p.dihedral ?? [])]) }],
        usage: { queries: 1 },
        details: { photos: photos.length, dihedral: photos.filter((p) => p.dihedral).length },
        cap: true,
      }),
    ]);
    const byHash = new Map<string, { chunks: number[]; rows: CandidateRow[] }>();
    for (const row of candidates) {
      const entry = byHash.get(row.hash) ?? { chunks: chunksOf(row.hash), rows: [] };
      entry.rows.push(row);
      byHash.set(row.hash, entry);
    }
    const answer = variants.map((hashes, index) => {
      const matches: Match[] = [];
      for (const { chunks, rows } of byHash.values()) {
        const distance = nearestDistance(hashes, chunks);
        if (distance > maxDistance) {
          continue;
        }
        const times = rows.map((r) => r.incident_at);
        matches.push({
          distance,
          platforms: new Set(rows.map((r) => r.platform_id)).size,
          categories: [...new Set(rows.map((r) => r.category as Match["categories"][number]))].sort(),
          firstSeenAt: toRfc3339(Math.min(...times)),
          lastSeenAt: toRfc3339(Math.max(...times)),
        });
      }
      matches.sort((a, b) => a.distance - b.distance || b.platforms - a.platforms);
      return { index, matches };
    });
    return c.json({ maxDistance, photos: answer }, 200);
  });
}
