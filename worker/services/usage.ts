import { sql } from "drizzle-orm";

/** `2026-11-25`: the UTC day of an instant. */
export function utcDay(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}

/**
 * Adds to one platform's counters for one day; goes in the batch of the request it counts.
 * `subjectAccess` counts subject-access pages answered.
 */
export function usageUpsert(u: {
  day: string;
  platformId: string;
  queries: number;
  subjects: number;
  subjectAccess?: number;
}) {
  return sql`INSERT INTO usage_daily (day, platform_id, queries, subjects, reports, subject_access)
    VALUES (${u.day}, ${u.platformId}, ${u.queries}, ${u.subjects}, 0, ${u.subjectAccess ?? 0})
    ON CONFLICT (day, platform_id) DO UPDATE SET queries = queries + excluded.queries,
      subjects = subjects + excluded.subjects, subject_access = subject_access + excluded.subject_access`;
}
