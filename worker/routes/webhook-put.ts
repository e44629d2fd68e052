import { sql } from "drizzle-orm";
import type { App } from "../app";
import { rowsOf } from "../lib/batch";
import { ProblemError } from "../lib/problem";
import { authenticatedRoute } from "../lib/route";
import { toRfc3339 } from "../lib/time";
import { callerPlatform, guard } from "../middleware/auth";
import { WebhookCreatedSchema, WebhookPutSchema } from "../schemas/events";
import { requestAudit } from "../services/audit";
import { commit } from "../services/commit";
import { webhookSecret, webhookUrlProblem } from "../services/webhooks";

const route = authenticatedRoute({
  method: "put",
  path: "/v1/webhook",
  operationId: "putWebhook",
  tags: ["Events"],
  summary: "Register (or replace) the caller's webhook endpoint; answers its signing secret once",
  description:
    "Deliveries carry the feed's event JSON, signed per Standard Webhooks (`webhook-id`, `webhook-timestamp`, `webhook-signature`). The URL must be https, without user info or fragment, at most 2,048 characters, and not name localhost or a private, loopback or link-local address. Every PUT issues a new secret: the previous one stops signing at once.",
  middleware: [guard("webhook.put", "reports:write", "disputes:write", "scores:read")] as const,
  request: { body: { required: true, content: { "application/json": { schema: WebhookPutSchema } } } },
  responses: {
    200: {
      description: "Registered; `secret` is shown only here",
      content: { "application/json": { schema: WebhookCreatedSchema } },
    },
  },
});

export function registerWebhookPut(app: App) {
  app.openapi(route, async (c) => {
    const platformId = callerPlatform(c);
    const { url, events } = c.req.valid("json");
    const { config, now } = c.var;
    c.set("auditTarget", platformId);
    const refused = webhookUrlProblem(url, config.WEBHOOK_ALLOW_LOOPBACK);
    if (refused !== null) {
      throw new ProblemError("validation", `The webhook URL ${refused}.`, {
        errors: [{ path: "url", message: refused }],
      });
    }
    const nonce = crypto.randomUUID();
    const [saved] = await commit(c.var.scope, [
      sql`INSERT INTO webhooks (platform_id, url, events, secret_nonce, created_at, updated_at)
          VALUES (${platformId}, ${url}, ${JSON.stringify(events)}, ${nonce}, ${now}, ${now})
          ON CONFLICT (platform_id) DO UPDATE SET url = excluded.url, events = excluded.events,
            secret_nonce = excluded.secret_nonce, updated_at = excluded.updated_at
          RETURNING created_at, updated_at`,
      requestAudit(c.var.scope, {
        target: platformId,
        outcome: "ok",
        // The host only: a receiver's path or query may carry its own access token.
        details: { host: new URL(url).host, events, secretRotated: true },
      }),
    ]);
    const [row] = rowsOf<{ created_at: number; updated_at: number }>(saved);
    if (!row) {
      throw new Error(`webhook of ${platformId} vanished after it was saved`);
    }
    return c.json(
      {
        url,
        events,
        secret: await webhookSecret(config.LEDGER_PEPPER, platformId, nonce),
        createdAt: toRfc3339(row.created_at),
        updatedAt: toRfc3339(row.updated_at),
      },
      200,
    );
  });
}
