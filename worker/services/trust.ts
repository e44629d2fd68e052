import { sql } from "drizzle-orm";
import { all, batch } from "../lib/batch";
import type { Db } from "../lib/db";
import { DAY_MS } from "../lib/time";
import { TRUST, type TrustCounts, trustOf } from "../scoring/trust";

/**
 * A report that may corroborate or be corroborated: not flagged after its reporter's own look-up,
 * or cleared (docs/scoring.md §2a, §3c). An echo of the ledger's answer is not independent
 * confirmation, in either direction.
 */
const INDEPENDENT = (r: "r" | "x") =>
  sql.raw(`(${r}.after_lookup_at IS NULL OR ${r}.after_lookup_cleared_at IS NOT NULL)`);

/** Platforms whose trust one run recomputes at most; the rest wait for the next run. */
export const TRUST_CHUNK = 100;

/**
 * Recomputes the reporter trust of the platforms with no row or a row older than
 * `TRUST.recomputeMs` (docs/scoring.md §2a): counts their reports' outcomes in one read, applies
 * the pure rule, writes every row in one statement. Corroboration is an index probe per counted
 * report (`report_subjects` by report, then by key, then the other report by primary key): the
 * job's work, never a score query's. It counts buyers, not reports: a corroborated report counts
 * by its smallest corroborated subject key, each key once, so twenty reports about one buyer that
 * another member also reported corroborate once, not twenty times. A report flagged after its reporter's own look-up and not
 * cleared neither is corroborated nor corroborates another's (§3c), nor, while it counts, is it
 * one of the platform's `reports`: an echo of the ledger's answer says nothing of the member's own
 * care, so it neither dilutes the adverse rate nor takes the member off probation (overturned, it
 * counts as any report). A member of the platform's
 * own collusion group (§3d) does not corroborate it: a coalition cannot earn full trust by
 * confirming itself.
 */
export async function recomputeTrust(d1: Db, now: number): Promise<number> {
  const rows = await all<TrustCounts & { platform_id: string; created_at: number }>(
    d1,
    sql`WITH due AS (
        SELECT p.id, p.created_at FROM platforms p
        LEFT JOIN platform_trust t ON t.platform_id = p.id
        WHERE t.platform_id IS NULL OR t.computed_at < ${now - TRUST.recomputeMs}
        ORDER BY p.id LIMIT ${TRUST_CHUNK})
      SELECT due.id AS platform_id, due.created_at,
        (SELECT count(*) FROM reports r WHERE r.platform_id = due.id
          AND NOT (r.status IN ('active', 'disputed') AND NOT ${INDEPENDENT("r")})) AS reports,
        (SELECT count(*) FROM reports r WHERE r.platform_id = due.id AND r.status = 'voided') AS voided,
        (SELECT count(*) FROM reports r WHERE r.platform_id = due.id AND r.status = 'retracted'
          AND r.dispute_id IS NOT NULL) AS withdrawn,
        (SELECT count(*) FROM reports r WHERE r.platform_id = due.id AND r.status = 'retracted'
          AND r.dispute_id IS NULL) AS retracted,
        (SELECT count(DISTINCT (SELECT min(s.subject_key) FROM report_subjects s
            WHERE s.report_id = r.id AND EXISTS (SELECT 1 FROM report_subjects o
              CROSS JOIN reports x ON x.id = o.report_id
              WHERE o.subject_key = s.subject_key AND o.counted = 1 AND o.platform_id <> due.id
                AND ${INDEPENDENT("x")}
                AND NOT EXISTS (SELECT 1 FROM platform_groups mine CROSS JOIN platform_groups theirs
                  ON theirs.group_id = mine.group_id
                  WHERE mine.platform_id = due.id AND theirs.platform_id = o.platform_id))))
          FROM reports r WHERE r.platform_id = due.id AND r.status IN ('active', 'disputed')
            AND ${INDEPENDENT("r")}) AS corroborated
      FROM due`,
  );
  if (rows.length === 0) {
    return 0;
  }
  const json = JSON.stringify(rows.map((r) => ({ ...r, ...trustOf(r, (now - r.created_at) / DAY_MS) })));
  await batch(d1, [
    sql`INSERT INTO platform_trust (platform_id, trust, probation, reports, corroborated, voided, withdrawn,
        retracted, computed_at)
      SELECT j.value ->> 'platform_id', j.value ->> 'trust', j.value ->> 'probation', j.value ->> 'reports',
        j.value ->> 'corroborated', j.value ->> 'voided', j.value ->> 'withdrawn', j.value ->> 'retracted', ${now}
      FROM json_each(${json}) j WHERE true
      ON CONFLICT (platform_id) DO UPDATE SET trust = excluded.trust, probation = excluded.probation,
        reports = excluded.reports, corroborated = excluded.corroborated, voided = excluded.voided,
        withdrawn = excluded.withdrawn, retracted = excluded.retracted, computed_at = excluded.computed_at`,
  ]);
  return rows.length;
}
