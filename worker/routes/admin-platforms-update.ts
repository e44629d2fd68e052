import { eq } from "drizzle-orm";
import type { Context } from "hono";
import { platforms } from "../../schema";
import type { App, AppEnv } from "../app";
import { evictPlatform } from "../auth/principal";
import { orm } from "../lib/db";
import { notFoundResponse, ProblemError } from "../lib/problem";
import { authenticatedRoute } from "../lib/route";
import { guard } from "../middleware/auth";
import { JwksSchema, PlatformParam, PlatformPatchSchema, PlatformSchema } from "../schemas/platforms";
import { requestAudit } from "../services/audit";
import { commit } from "../services/commit";
import { platformById, toPlatform } from "../services/platforms";

const patch = authenticatedRoute({
  method: "patch",
  path: "/v1/admin/platforms/{id}",
  operationId: "updateAdminPlatform",
  tags: ["Admin: platforms"],
  summary: "Suspend or reactivate a platform, rename it, change its scopes",
  description: "Takes effect at once in this isolate and within PLATFORM_CACHE_TTL_SECONDS everywhere.",
  middleware: [guard("platform.update", "admin")] as const,
  request: {
    params: PlatformParam,
    body: { required: true, content: { "application/json": { schema: PlatformPatchSchema } } },
  },
  responses: {
    200: { description: "The platform", content: { "application/json": { schema: PlatformSchema } } },
    ...notFoundResponse,
  },
});

const keys = authenticatedRoute({
  method: "put",
  path: "/v1/admin/platforms/{id}/keys",
  operationId: "replaceAdminPlatformKeys",
  tags: ["Admin: platforms"],
  summary: "Replace a platform's key set (rotation)",
  description:
    "Publish the new key alongside the old one first, then remove the old one once no token uses it.",
  middleware: [guard("platform.keys", "admin")] as const,
  request: {
    params: PlatformParam,
    body: { required: true, content: { "application/json": { schema: JwksSchema } } },
  },
  responses: {
    200: { description: "The platform", content: { "application/json": { schema: PlatformSchema } } },
    ...notFoundResponse,
  },
});

/** Updates one platform and audits it in one batch; 404 when there is no such platform. */
async function updatePlatform(
  c: Context<AppEnv>,
  id: string,
  changes: Partial<typeof platforms.$inferInsert>,
  details: Record<string, unknown>,
) {
  const { now } = c.var;
  const db = orm(c.var.db);
  c.set("auditTarget", id);
  const [existing] = await platformById(db, id);
  if (!existing) {
    throw new ProblemError("not_found", `no platform ${id}`);
  }
  await commit(c.var.scope, [
    db
      .update(platforms)
      .set({ ...changes, updatedAt: now })
      .where(eq(platforms.id, id)),
    requestAudit(c.var.scope, { target: id, outcome: "ok", details }),
  ]);
  evictPlatform(id);
  const [row] = await platformById(db, id);
  return toPlatform(row ?? existing);
}

export function registerAdminPlatformsPatch(app: App) {
  app.openapi(patch, async (c) => {
    const { id } = c.req.valid("param");
    const body = c.req.valid("json");
    return c.json(await updatePlatform(c, id, body, { changes: body }), 200);
  });
}

export function registerAdminPlatformsKeys(app: App) {
  app.openapi(keys, async (c) => {
    const { id } = c.req.valid("param");
    const jwks = c.req.valid("json");
    return c.json(await updatePlatform(c, id, { jwks }, { kids: jwks.keys.map((k) => k.kid) }), 200);
  });
}
