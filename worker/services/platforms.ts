import { eq } from "drizzle-orm";
import type { DrizzleD1Database } from "drizzle-orm/d1";
import { platforms } from "../../schema";
import { toRfc3339 } from "../lib/time";

export type PlatformRow = typeof platforms.$inferSelect;

export function toPlatform(row: PlatformRow) {
  return {
    id: row.id,
    name: row.name,
    status: row.status,
    scopes: row.scopes,
    jwks: row.jwks,
    createdAt: toRfc3339(row.createdAt),
    updatedAt: toRfc3339(row.updatedAt),
  };
}

export function platformById(db: DrizzleD1Database, id: string) {
  return db.select().from(platforms).where(eq(platforms.id, id));
}
