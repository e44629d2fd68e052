import { platforms } from "../../schema";
import type { App } from "../app";
import { evictPlatform } from "../auth/principal";
import { isUniqueViolation } from "../lib/batch";
import { orm } from "../lib/db";
import { conflictResponse, ProblemError } from "../lib/problem";
import { authenticatedRoute } from "../lib/route";
import { guard } from "../middleware/auth";
import { PlatformCreateSchema, PlatformSchema } from "../schemas/platforms";
import { requestAudit } from "../services/audit";
import { commit } from "../services/commit";
import { platformById, toPlatform } from "../services/platforms";

const route = authenticatedRoute({
  method: "post",
  path: "/v1/admin/platforms",
  operationId: "createAdminPlatform",
  tags: ["Admin: platforms"],
  summary: "Register a member platform with its public keys",
  middleware: [guard("platform.create", "admin")] as const,
  request: { body: { required: true, content: { "application/json": { schema: PlatformCreateSchema } } } },
  responses: {
    201: { description: "Registered", content: { "application/json": { schema: PlatformSchema } } },
    ...conflictResponse,
  },
});

export function registerAdminPlatformsCreate(app: App) {
  app.openapi(route, async (c) => {
    const body = c.req.valid("json");
    const { now } = c.var;
    const db = orm(c.var.db);
    c.set("auditTarget", body.id);
    const [existing] = await platformById(db, body.id);
    if (existing) {
      throw new ProblemError("conflict", `platform ${body.id} already exists`);
    }
    try {
      await commit(c.var.scope, [
        db.insert(platforms).values({ ...body, status: "active", createdAt: now, updatedAt: now }),
        requestAudit(c.var.scope, {
          target: body.id,
          outcome: "created",
          details: { name: body.name, scopes: body.scopes, kids: body.jwks.keys.map((k) => k.kid) },
        }),
      ]);
    } catch (err) {
      if (isUniqueViolation(err, "platforms.id")) {
        throw new ProblemError("conflict", `platform ${body.id} already exists`);
      }
      throw err;
    }
    evictPlatform(body.id);
    const [row] = await platformById(db, body.id);
    if (!row) {
      throw new Error(`platform ${body.id} vanished after it was created`);
    }
    return c.json(toPlatform(row), 201);
  });
}
