import { createRoute, z } from "@hono/zod-openapi";
import type { App } from "../app";
import { publicAuditKeys } from "../audit/ledger";
import { docsHtml } from "../docs/page";
import { HEADER_COMPONENTS } from "../lib/headers";
import { internalErrorResponse } from "../lib/problem";
import { MODEL_VERSION } from "../scoring/model";

const health = createRoute({
  method: "get",
  path: "/healthz",
  operationId: "getHealth",
  security: [],
  tags: ["Meta"],
  summary: "Liveness: answers without touching the database",
  responses: {
    200: {
      description: "Alive",
      content: { "application/json": { schema: z.object({ ok: z.literal(true) }) } },
    },
    ...internalErrorResponse,
  },
});

export function registerHealth(app: App) {
  app.openapi(health, (c) => c.json({ ok: true as const }, 200));
}

/** A published audit key: an Ed25519 public JWK (worker/audit/ledger.ts, `publicAuditKeys`). */
/** The current audit signing key and at most 31 retired ones (`AUDIT_RETIRED_KEYS`). */
export const MAX_AUDIT_KEYS = 32;

const AuditKeySetSchema = z
  .object({
    keys: z
      .array(
        z.object({
          kty: z.literal("OKP"),
          crv: z.literal("Ed25519"),
          x: z.string().regex(/^[A-Za-z0-9_-]{43}$/),
          kid: z.string().min(1).max(128),
          alg: z.enum(["EdDSA"]),
          use: z.enum(["sig"]),
        }),
      )
      .max(MAX_AUDIT_KEYS),
  })
  .openapi("AuditKeySet");

const auditKeys = createRoute({
  method: "get",
  path: "/.well-known/pixiu-audit-keys.json",
  operationId: "getAuditKeys",
  security: [],
  tags: ["Meta"],
  summary: "The public keys that verify the audit log's signed checkpoints",
  responses: {
    200: {
      description: "A JSON Web Key Set",
      content: {
        "application/json": { schema: AuditKeySetSchema },
      },
    },
    ...internalErrorResponse,
  },
});

export function registerAuditKeys(app: App) {
  app.openapi(auditKeys, (c) => {
    c.header("cache-control", "public, max-age=300");
    const set = publicAuditKeys(c.var.config.AUDIT_SIGNING_JWK, c.var.config.AUDIT_RETIRED_KEYS);
    // The ledger module types alg and use as strings; the schema holds them to their one value.
    return c.json(AuditKeySetSchema.parse(set), 200);
  });
}

/** Where `npm start` and `npm run dev` serve the ledger. */
export const LOCAL_SERVER = "http://127.0.0.1:8787";

/**
 * The document's `info` and `servers`. The deployment's own URL comes from `PUBLIC_BASE_URL`
 * (wrangler.toml), not from the request: the same document whatever host or proxy it was fetched
 * through, and an SDK generated from production's document points at production. Unset (local
 * runs, tests), only the local server is listed.
 */
export function documentConfig(publicBaseUrl: string | undefined) {
  return {
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
        "",
        "Authenticated answers carry `RateLimit-Policy` (draft-ietf-httpapi-ratelimit-headers-11);",
        'a 429 adds `RateLimit` and `Retry-After` (docs/api.md, "Rate limits").',
      ].join("\n"),
      license: { name: "Proprietary", identifier: "LicenseRef-Pixiu" },
    },
    servers: [
      ...(publicBaseUrl ? [{ url: publicBaseUrl, description: "This deployment (PUBLIC_BASE_URL)" }] : []),
      { url: LOCAL_SERVER, description: "A local ledger (`npm start`)" },
    ],
  };
}

/** `/openapi.json` (generated from the same schemas that validate requests) and `/docs`. */
export function registerDocs(app: App) {
  for (const [name, header] of Object.entries(HEADER_COMPONENTS)) {
    app.openAPIRegistry.registerComponent("headers", name, header);
  }
  app.openAPIRegistry.registerComponent("securitySchemes", "bearer", {
    type: "http",
    scheme: "bearer",
    bearerFormat: "JWT",
    description: "ES256 or EdDSA, signed by the calling platform's own key (CONTRACT §2).",
  });
  app.doc31("/openapi.json", (c) => documentConfig(c.var.config.PUBLIC_BASE_URL));
  // The page only: its scripts and styles are static assets of the ledger itself (worker/docs/page.ts).
  app.get("/docs", (c) => {
    c.header("cache-control", "no-cache");
    return c.html(docsHtml());
  });
}
