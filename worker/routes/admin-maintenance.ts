import { createRoute, z } from "@hono/zod-openapi";
import type { App } from "../app";
import { problemResponses } from "../lib/problem";
import { guard } from "../middleware/auth";
import { claimToken } from "../services/commit";
import { scheduledJob } from "../services/maintenance";

const route = createRoute({
  method: "post",
  path: "/v1/admin/maintenance/run",
  tags: ["Admin: maintenance"],
  summary:
    "Run the scheduled job now: retention purge, overdue disputes, expired rows, webhook re-sends, audit checkpoint",
  description:
    "Idempotent; the same job the Cron Trigger runs every minute. Send `{}`. Claims the token's `jti` like every admin write: a replayed token is a 401 and runs nothing.",
  security: [{ bearer: [] }],
  middleware: [guard("maintenance.trigger", "admin")] as const,
  request: { body: { required: true, content: { "application/json": { schema: z.object({}).strict() } } } },
  responses: {
    200: {
      description: "What the run did",
      content: {
        "application/json": {
          schema: z.object({
            reportsPurged: z.number().int(),
            inquiriesPurged: z.number().int(),
            tokenUsesPurged: z.number().int(),
            disputesMarkedOverdue: z.number().int(),
            eventsPurged: z.number().int(),
            webhooksResent: z.number().int(),
            complete: z.boolean(),
            log: z.object({ keysErased: z.number().int(), inquiriesPurged: z.number().int() }),
            outbox: z.object({ drained: z.number().int(), failed: z.number().int() }).openapi({
              description: "Audit outbox rows this run moved to the log shards, and those left for the next",
            }),
            archived: z
              .object({ segments: z.array(z.string()), entries: z.number().int() })
              .openapi({ description: "Log segments moved to the R2 archive by this run" }),
            checkpoint: z
              .object({
                seq: z.number().int(),
                hash: z.string(),
                at: z.number().int(),
                root: z.string(),
                heads: z.array(
                  z.object({ shard: z.number().int(), seq: z.number().int(), hash: z.string() }),
                ),
              })
              .nullable()
              .openapi({
                description:
                  "The tree checkpoint signed, if any head moved: `seq`/`hash` the ledger chain's head, `heads` every leaf (the ledger as shard −1)",
              }),
          }),
        },
      },
    },
    ...problemResponses,
  },
});

export function registerAdminMaintenance(app: App) {
  app.openapi(route, async (c) => {
    const { config, now, requestId, principal } = c.var;
    // An admin write like any other: a replayed token runs nothing.
    await claimToken(c.var.scope);
    const result = await scheduledJob(config, { actor: principal.actor, requestId, now }, c.var.db);
    // The job writes its own entries (maintenance.run, retention.purge) under this request id.
    c.set("audited", true);
    return c.json(result, 200);
  });
}
