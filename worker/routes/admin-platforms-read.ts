import { z } from "@hono/zod-openapi";
import { asc, gt } from "drizzle-orm";
import { platforms } from "../../schema";
import type { App } from "../app";
import { decodeCursor, pageOf } from "../lib/cursor";
import { orm } from "../lib/db";
import { notFoundResponse, ProblemError } from "../lib/problem";
import { authenticatedRoute } from "../lib/route";
import { guard } from "../middleware/auth";
import { CursorQuery, LimitQuery, page } from "../schemas/common";
import { PlatformParam, PlatformSchema } from "../schemas/platforms";
import { platformById, toPlatform } from "../services/platforms";

const list = authenticatedRoute({
  method: "get",
  path: "/v1/admin/platforms",
  operationId: "listAdminPlatforms",
  tags: ["Admin: platforms"],
  summary: "All member platforms, by id",
  middleware: [guard("platform.list", "admin")] as const,
  request: { query: z.object({ cursor: CursorQuery, limit: LimitQuery }) },
  responses: {
    200: {
      description: "A page of platforms",
      content: { "application/json": { schema: page(PlatformSchema, "PlatformPage") } },
    },
  },
});

const get = authenticatedRoute({
  method: "get",
  path: "/v1/admin/platforms/{id}",
  operationId: "getAdminPlatform",
  tags: ["Admin: platforms"],
  summary: "One member platform",
  middleware: [guard("platform.read", "admin")] as const,
  request: { params: PlatformParam },
  responses: {
    200: { description: "The platform", content: { "application/json": { schema: PlatformSchema } } },
    ...notFoundResponse,
  },
});

export function registerAdminPlatformsList(app: App) {
  app.openapi(list, async (c) => {
    const { cursor, limit } = c.req.valid("query");
    const after = decodeCursor(cursor, /^[a-z0-9][a-z0-9-]{1,62}$/);
    const rows = await orm(c.var.db)
      .select()
      .from(platforms)
      .where(after === null ? undefined : gt(platforms.id, after))
      .orderBy(asc(platforms.id))
      .limit(limit + 1);
    const { page: items, nextCursor } = pageOf(rows, limit, (r) => r.id);
    return c.json({ items: items.map(toPlatform), nextCursor }, 200);
  });
}

export function registerAdminPlatformsGet(app: App) {
  app.openapi(get, async (c) => {
    const { id } = c.req.valid("param");
    c.set("auditTarget", id);
    const [row] = await platformById(orm(c.var.db), id);
    if (!row) {
      throw new ProblemError("not_found", `no platform ${id}`);
    }
    return c.json(toPlatform(row), 200);
  });
}
