import { lt } from "drizzle-orm";
import type { DrizzleD1Database } from "drizzle-orm/d1";
import { tokenUses } from "../../schema";

/**
 * Short-lived rows past their use: token ids whose tokens have expired can never be replayed
 * (an expired token is refused anyway), so they are deleted. Idempotent.
 */
export async function purgeExpiredTokenUses(db: DrizzleD1Database, now: number): Promise<number> {
  const result = await db.delete(tokenUses).where(lt(tokenUses.expiresAt, now)).run();
  return result.meta.changes ?? 0;
}
