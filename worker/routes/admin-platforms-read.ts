import { z } from "@hono/zod-openapi";
import { asc, eq, gt, sql } from "drizzle-orm";
import { platformGroups, platforms, platformTrust } from "../../schema";
import type { App } from "../app";
import { decodeCursor, pageOf } from "../lib/cursor";
import { orm } from "../lib/db";
import { notFoundResponse, ProblemError } from "../lib/problem";
import { authenticatedRoute } from "../lib/route";
import { toRfc3339 } from "../lib/time";
import { guard } from "../middleware/auth";
import { CursorQuery, count, DateTime, LimitQuery, page } from "../schemas/common";
import { CollusionGroupSchema, PlatformParam, PlatformSchema } from "../schemas/platforms";
import { TRUST } from "../scoring/trust";
import { platformById, toPlatform } from "../services/platforms";

/** Reporter trust as admins see it (docs/scoring.md §2a); never shown to other members. */
const AdminPlatformSchema = PlatformSchema.extend({
  trust: z
    .object({
      trust: z.number().min(0).max(1),
      probation: z.boolean(),
      computedAt: DateTime.nullable().openapi({
        description: "When the job last computed it; null: not yet",
      }),
      counts: z
        .object({
          reports: count(),
          corroborated: count(),
          voided: count(),
          withdrawn: count(),
          retracted: count(),
        })
        .nullable(),
    })
    .openapi({
      description:
        "The platform's reporter trust and the outcome counts behind it, recomputed by the scheduled job",
    }),
  group: CollusionGroupSchema.nullable().openapi({
    description:
      "The platform's collusion group (docs/scoring.md §3d), as the scheduled job last found it; null: in none",
  }),
}).openapi("AdminPlatform");

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
    200: {
      description: "The platform, with its reporter trust and collusion group (admins only)",
      content: { "application/json": { schema: AdminPlatformSchema } },
    },
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
    const db = orm(c.var.db);
    const [row] = await platformById(db, id);
    if (!row) {
      throw new ProblemError("not_found", `no platform ${id}`);
    }
    const [[t], members] = await Promise.all([
      db.select().from(platformTrust).where(eq(platformTrust.platformId, id)),
      // The platform's group, every member of it (none when it is in no group).
      db
        .select({ platformId: platformGroups.platformId, groupId: platformGroups.groupId })
        .from(platformGroups)
        .where(
          sql`${platformGroups.groupId} = (SELECT group_id FROM platform_groups WHERE platform_id = ${id})`,
        )
        .orderBy(asc(platformGroups.platformId)),
    ]);
    const trust = t
      ? {
          trust: t.trust,
          probation: t.probation === 1,
          computedAt: toRfc3339(t.computedAt),
          counts: {
            reports: t.reports,
            corroborated: t.corroborated,
            voided: t.voided,
            withdrawn: t.withdrawn,
            retracted: t.retracted,
          },
        }
      : { trust: TRUST.probationTrust, probation: true, computedAt: null, counts: null };
    const group =
      members.length > 0
        ? { id: (members[0] as (typeof members)[number]).groupId, members: members.map((m) => m.platformId) }
        : null;
    return c.json({ ...toPlatform(row), trust, group }, 200);
  });
}
