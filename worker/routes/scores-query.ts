import type { App } from "../app";
import { logUnavailableResponse } from "../lib/problem";
import { authenticatedRoute } from "../lib/route";
import { guard } from "../middleware/auth";
import { ScoreAnswerSchema, ScoreQueryBodySchema } from "../schemas/scores";
import { scoreBuyers } from "../services/scores";

const route = authenticatedRoute({
  method: "post",
  path: "/v1/scores/query",
  operationId: "queryScore",
  tags: ["Scores"],
  summary: "Score one buyer",
  description:
    "All subjects are one buyer: a report matching any of them counts once. With `evidence` (the claim's photos, as `POST /v1/evidence/match` takes them), confirmed fingerprints near the photos move the score by the rules of docs/scoring.md §3b and are listed in `photos`. One read on the ledger database; the look-up is logged in the log store, with the photos' hashes, before the answer leaves (503 when it cannot be).",
  middleware: [guard("score.query", "scores:read")] as const,
  request: { body: { required: true, content: { "application/json": { schema: ScoreQueryBodySchema } } } },
  responses: {
    200: {
      description: "The buyer's shared risk score",
      content: { "application/json": { schema: ScoreAnswerSchema } },
    },
    ...logUnavailableResponse,
  },
});

export function registerScoresQuery(app: App) {
  app.openapi(route, async (c) => {
    const { purpose, subjects, evidence } = c.req.valid("json");
    const [answer] = await scoreBuyers(c.var.scope, purpose, [{ subjects, evidence }]);
    return c.json(answer as NonNullable<typeof answer>, 200);
  });
}
