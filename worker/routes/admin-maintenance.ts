import { z } from "@hono/zod-openapi";
import type { App } from "../app";
import { authenticatedRoute } from "../lib/route";
import { guard } from "../middleware/auth";
import { count, Hex64, int } from "../schemas/common";
import { claimToken } from "../services/commit";
import { scheduledJob } from "../services/maintenance";

const route = authenticatedRoute({
  method: "post",
  path: "/v1/admin/maintenance/run",
  operationId: "runAdminMaintenance",
  tags: ["Admin: maintenance"],
  summary:
    "Run the scheduled job now: retention purge, overdue disputes, expired rows, webhook re-sends, collusion groups, reporter trust, audit checkpoint",
  description:
    "Idempotent; the same job the Cron Trigger runs every minute. Send `{}`. Claims the token's `jti` like every admin write: a replayed token is a 401 and runs nothing.",
  middleware: [guard("maintenance.trigger", "admin")] as const,
  request: { body: { required: true, content: { "application/json": { schema: z.object({}).strict() } } } },
  responses: {
    200: {
      description: "What the run did",
      content: {
        "application/json": {
          schema: z.object({
            reportsPurged: count(),
            inquiriesPurged: count(),
            tokenUsesPurged: count(),
            disputesMarkedOverdue: count(),
            eventsPurged: count(),
            webhooksResent: count(),
            trustRecomputed: count().openapi({
              description: "Platforms whose reporter trust this run recomputed (docs/scoring.md §2a)",
            }),
            collusion: z
              .object({
                buyers: count().openapi({
                  description: "Shared buyers counted (two or more reporting platforms)",
                }),
                sets: count().openapi({ description: "Collusion sets found" }),
                grouped: count().openapi({ description: "Platforms in a collusion group" }),
                changed: z
                  .boolean()
                  .openapi({ description: "Whether the groups changed (audited as `collusion.groups`)" }),
              })
              .nullable()
              .openapi({
                description:
                  "The collusion job (docs/scoring.md §3d); null when it ran within the last hour (docs/operations.md)",
              }),
            complete: z.boolean(),
            log: z.object({ keysErased: count(), inquiriesPurged: count() }),
            outbox: z.object({ drained: count(), failed: count() }).openapi({
              description: "Audit outbox rows this run moved to the log shards, and those left for the next",
            }),
            archived: z
              .object({
                segments: z
                  .array(
                    z
                      .string()
                      .max(64)
                      .regex(/^log\/shard-\d{3}\/\d{12}-\d{12}\.ndjson$/),
                  )
                  .max(1000),
                entries: count(),
              })
              .openapi({ description: "Log segments moved to the R2 archive by this run" }),
            checkpoint: z
              .object({
                seq: count(),
                hash: Hex64,
                at: count().openapi({ description: "Epoch milliseconds" }),
                root: Hex64,
                heads: z.array(z.object({ shard: int(-1, 63), seq: count(), hash: Hex64 })).max(65),
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
  },
});

export function registerAdminMaintenance(app: App) {
  app.openapi(route, async (c) => {
    const { config, now, requestId, principal } = c.var;
    // An admin write like any other: a replayed token runs nothing.
    await claimToken(c.var.scope);
    const result = await scheduledJob(config, { actor: principal.actor, requestId, now }, c.var.db);
    // The job writes its own entries (maintenance.run, retention.purge, collusion.groups) under this request id.
    c.set("audited", true);
    return c.json(result, 200);
  });
}
