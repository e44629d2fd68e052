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

/**
 * Collusion groups (docs/scoring.md §3d): platforms whose reports overlap on buyers no other
 * platform reports, beyond what chance explains, as the scheduled job last found them. The score
 * read takes a platform's group by primary key in its one statement; platforms of one group count
 * as one in the consensus. A platform in no group has no row.
 */
export const platformGroups = sqliteTable("platform_groups", {
  platformId: text("platform_id").primaryKey(),
  /** Stable for the same members: the smallest member id. */
  groupId: text("group_id").notNull(),
  computedAt: epochMs("computed_at").notNull(),
});

/**
 * The sets of platforms the collusion job found (docs/scoring.md §3d), for the admins' stats:
 * each exact set of reporters whose shared buyers, reported by these platforms and no other,
 * are more than chance explains. Replaced whole by each run.
 */
export const collusionSets = sqliteTable("collusion_sets", {
  /** The member platform ids, sorted, comma-separated. */
  members: text("members").primaryKey(),
  /** Buyers reported by exactly these platforms (docs/scoring.md §3d: how buyers are counted). */
  observed: integer("observed").notNull(),
  /** How many chance would give them (§3d), at its most cautious. */
  expected: real("expected").notNull(),
  /** Poisson upper tail P(X ≥ observed) at `expected`. */
  pValue: real("p_value").notNull(),
  computedAt: epochMs("computed_at").notNull(),
});

/**
 * When each job that runs less often than the Cron Trigger last ran (docs/operations.md): the
 * collusion job claims its run here, at most once an hour, before its full pass over the shared
 * buyers, so two overlapping runs never both make it.
 */
export const jobRuns = sqliteTable("job_runs", {
  job: text("job").primaryKey(),
  ranAt: epochMs("ran_at").notNull(),
});
