import { integer, real, sqliteTable, text } from "drizzle-orm/sqlite-core";
import { epochMs } from "./columns";

/**
 * Each member's reporter trust and the outcome counts behind it, recomputed by the scheduled job
 * (worker/services/trust.ts, rule in worker/scoring/trust.ts). The score read takes `trust` by
 * primary key in its one statement; admins see the row, other members never do.
 */
export const platformTrust = sqliteTable("platform_trust", {
  platformId: text("platform_id").primaryKey(),
  trust: real("trust").notNull(),
  probation: integer("probation").notNull(),
  reports: integer("reports").notNull(),
  corroborated: integer("corroborated").notNull(),
  voided: integer("voided").notNull(),
  withdrawn: integer("withdrawn").notNull(),
  retracted: integer("retracted").notNull(),
  computedAt: epochMs("computed_at").notNull(),
});
