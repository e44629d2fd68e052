import { createRoute, z } from "@hono/zod-openapi";
import type { App } from "../app";
import { publicAuditKeys } from "../audit/ledger";
import { docsHtml } from "../docs/page";
import { MODEL_VERSION } from "../scoring/model";

const health = createRoute({
  method: "get",
  path: "/healthz",
  tags: ["Meta"],
  summary: "Liveness: answers without touching the database",
  responses: {
    200: {
      description: "Alive",
      content: { "application/json": { schema: z.object({ ok: z.literal(true) }) } },
    },
  },
});

export function registerHealth(app: App) {
  app.openapi(health, (c) => c.json({ ok: true as const }, 200));
}

const auditKeys = createRoute({
  method: "get",
  path: "/.well-known/pixiu-audit-keys.json",
  tags: ["Meta"],
  summary: "The public keys that verify the audit log's signed checkpoints",
  responses: {
    200: {
      description: "A JSON Web Key Set",
      content: {
        "application/json": { schema: z.object({ keys: z.array(z.record(z.string(), z.unknown())) }) },
      },
    },
  },
});

export function registerAuditKeys(app: App) {
  app.openapi(auditKeys, (c) => {
    c.header("cache-control", "public, max-age=300");
    return c.json(publicAuditKeys(c.var.config.AUDIT_SIGNING_JWK, c.var.config.AUDIT_RETIRED_KEYS), 200);
  });
}

/** `/openapi.json` (generated from the same schemas that validate requests) and `/docs`. */
export function registerDocs(app: App) {
  app.openAPIRegistry.registerComponent("securitySchemes", "bearer", {
    type: "http",
    scheme: "bearer",
    bearerFormat: "JWT",
    description: "ES256 or EdDSA, signed by the calling platform's own key (CONTRACT §2).",
  });
  app.doc31("/openapi.json", {
    openapi: "3.1.0",
    info: {
      title: "Pixiu ledger API",
      version: "1.0.0",
      description: [
        `Shared ledger of confirmed refund fraud. Scoring model: ${MODEL_VERSION}.`,
        "",
        "Every answer carries `X-Request-Id`. Answers that touched the database also carry",
        "`Pixiu-Bookmark` (a D1 Sessions bookmark); send it back as a request header on a later read",
        "to see at least what that answer saw (read-your-writes under read replication). A malformed",
        "bookmark is a 422 naming `header/pixiu-bookmark`.",
      ].join("\n"),
    },
  });
  // The page only: its scripts and styles are static assets of the ledger itself (worker/docs/page.ts).
  app.get("/docs", (c) => {
    c.header("cache-control", "no-cache");
    return c.html(docsHtml());
  });
}
