import { z } from "@hono/zod-openapi";
import type { App } from "../app";
import { logUnavailableResponse } from "../lib/problem";
import { authenticatedRoute } from "../lib/route";
import { guard } from "../middleware/auth";
import { MAX_BATCH_QUERIES, ScoreAnswerSchema, ScoreBatchBodySchema } from "../schemas/scores";
import { scoreBuyers } from "../services/scores";

const route = authenticatedRoute({
  method: "post",
  path: "/v1/scores/batch",
  operationId: "scoreBatch",
  tags: ["Scores"],
  summary: "Score up to 100 buyers",
  description:
    "One D1 round trip for the whole batch; results in the order of `queries`. Each query may carry `evidence` (up to 16 photos), at most MAX_BATCH_PHOTOS (64) photos over the whole batch.",
  middleware: [guard("score.query", "scores:read")] as const,
  request: { body: { required: true, content: { "application/json": { schema: ScoreBatchBodySchema } } } },
  responses: {
    200: {
      description: "One answer per query",
      content: {
        "application/json": {
          schema: z.object({
            results: z
              .array(ScoreAnswerSchema.extend({ ref: z.string().min(1).max(128) }))
              .max(MAX_BATCH_QUERIES),
          }),
        },
      },
    },
    ...logUnavailableResponse,
  },
});

export function registerScoresBatch(app: App) {
  app.openapi(route, async (c) => {
    const { purpose, queries } = c.req.valid("json");
    const answers = await scoreBuyers(c.var.scope, purpose, queries);
    return c.json({ results: answers.map((a, i) => ({ ref: queries[i]?.ref ?? "", ...a })) }, 200);
  });
}
