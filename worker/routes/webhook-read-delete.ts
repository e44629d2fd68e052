import { sql } from "drizzle-orm";
import type { DeliveryStatus, EventType } from "../../schema";
import type { App } from "../app";
import { abortUnlessChanged, all } from "../lib/batch";
import { notFoundResponse, ProblemError } from "../lib/problem";
import { authenticatedRoute } from "../lib/route";
import { toRfc3339, toRfc3339OrNull } from "../lib/time";
import { callerPlatform, guard } from "../middleware/auth";
import { WebhookSchema } from "../schemas/events";
import { requestAudit } from "../services/audit";
import { commit } from "../services/commit";

/** Deliveries GET /v1/webhook lists, newest first. */
export const RECENT_DELIVERIES = 20;

const get = authenticatedRoute({
  method: "get",
  path: "/v1/webhook",
  operationId: "getWebhook",
  tags: ["Events"],
  summary: "The caller's webhook, its latest deliveries and failures, and counts by status",
  description:
    "The signing secret is never shown again (PUT issues a new one). A delivery that keeps failing is retried with backoff and finally marked `dead`; nothing is disabled.",
  middleware: [guard("webhook.read", "reports:write", "disputes:write", "scores:read")] as const,
  responses: {
    200: { description: "The webhook", content: { "application/json": { schema: WebhookSchema } } },
    ...notFoundResponse,
  },
});

const remove = authenticatedRoute({
  method: "delete",
  path: "/v1/webhook",
  operationId: "deleteWebhook",
  tags: ["Events"],
  summary: "Remove the caller's webhook; undelivered deliveries are then marked dead",
  middleware: [guard("webhook.delete", "reports:write", "disputes:write", "scores:read")] as const,
  responses: {
    204: { description: "Removed" },
    ...notFoundResponse,
  },
});

interface WebhookRow {
  url: string;
  events: string;
  created_at: number;
  updated_at: number;
}

interface DeliveryRow {
  event_id: string;
  type: EventType | null;
  status: DeliveryStatus;
  attempts: number;
  last_attempt_at: number | null;
  last_status: number | null;
  last_error: string | null;
  delivered_at: number | null;
}

export function registerWebhookGet(app: App) {
  app.openapi(get, async (c) => {
    const platformId = callerPlatform(c);
    c.set("auditTarget", platformId);
    const [hook] = await all<WebhookRow>(
      c.var.db,
      sql`SELECT url, events, created_at, updated_at FROM webhooks WHERE platform_id = ${platformId}`,
    );
    if (!hook) {
      throw new ProblemError("not_found", "no webhook registered; PUT /v1/webhook registers one");
    }
    const [deliveries, counts] = await Promise.all([
      all<DeliveryRow>(
        c.var.db,
        sql`SELECT d.event_id, e.type, d.status, d.attempts, d.last_attempt_at, d.last_status, d.last_error,
              d.delivered_at
            FROM webhook_deliveries d LEFT JOIN events e ON e.id = d.event_id
            WHERE d.platform_id = ${platformId}
            ORDER BY d.created_at DESC, d.event_id DESC LIMIT ${RECENT_DELIVERIES}`,
      ),
      all<{ status: DeliveryStatus; n: number }>(
        c.var.db,
        sql`SELECT status, count(*) AS n FROM webhook_deliveries WHERE platform_id = ${platformId} GROUP BY status`,
      ),
    ]);
    const byStatus = { pending: 0, delivered: 0, failed: 0, dead: 0 };
    for (const { status, n } of counts) {
      byStatus[status] = n;
    }
    return c.json(
      {
        url: hook.url,
        events: JSON.parse(hook.events),
        createdAt: toRfc3339(hook.created_at),
        updatedAt: toRfc3339(hook.updated_at),
        deliveries: deliveries.map((d) => ({
          eventId: d.event_id,
          type: d.type,
          status: d.status,
          attempts: d.attempts,
          lastAttemptAt: toRfc3339OrNull(d.last_attempt_at),
          lastStatus: d.last_status,
          lastError: d.last_error,
          deliveredAt: toRfc3339OrNull(d.delivered_at),
        })),
        counts: byStatus,
      },
      200,
    );
  });
}

export function registerWebhookDelete(app: App) {
  app.openapi(remove, async (c) => {
    const platformId = callerPlatform(c);
    c.set("auditTarget", platformId);
    const [hook] = await all<{ url: string }>(
      c.var.db,
      sql`SELECT url FROM webhooks WHERE platform_id = ${platformId}`,
    );
    if (!hook) {
      throw new ProblemError("not_found", "no webhook registered");
    }
    await commit(c.var.scope, [
      sql`DELETE FROM webhooks WHERE platform_id = ${platformId}`,
      abortUnlessChanged(),
      // Nothing is left to deliver them to: say so rather than leave them pending.
      sql`UPDATE webhook_deliveries SET status = 'dead', last_error = 'the webhook was removed'
          WHERE platform_id = ${platformId} AND status IN ('pending', 'failed')`,
      requestAudit(c.var.scope, {
        target: platformId,
        outcome: "ok",
        details: { host: new URL(hook.url).host },
      }),
    ]);
    return c.body(null, 204);
  });
}
