import { sql } from "drizzle-orm";
import { all, batch, type Statement } from "../lib/batch";
import type { Db } from "../lib/db";
import { orm } from "../lib/db";
import { type CollusionSet, findCollusion } from "../scoring/collusion";
import { TRUST } from "../scoring/trust";
import { auditInsert } from "./audit";

/** The collusion job runs at most this often (docs/operations.md). */
export const COLLUSION_EVERY_MS = 3_600_000;

/** Who writes the audit entry of a change of groups: the ledger's statistic, not whoever ran the job. */
export const COLLUSION_ACTOR = "system:collusion";

/**
 * A key absorbs at most this many other keys' report sets: one buyer's identifiers are a
 * handful (five types, a few values each), so a key named beside more is a link between buyers.
 */
const MAX_ABSORBED = 64;

/** One subject key shared by two or more platforms: its counted reports and their platforms. */
export interface SharedKey {
  /** The reports naming the key (any order, any identifiers: only equality matters). */
  reports: readonly number[];
  /** The platforms of those reports (any order, duplicates ignored). */
  platforms: readonly string[];
}

/**
 * Buyers, not subject keys (docs/scoring.md §3d): one buyer's keys (a phone and an email named by
 * the same reports) must count once. Each shared key stands for a buyer unless the reports naming
 * it all name another shared key too:
 *
 * 1. keys named by exactly the same reports are one (the phone and the email of every report);
 * 2. a key whose reports are a strict subset of another key's is that key's buyer (platforms A
 *    and B name a phone and an email, C the phone only: one buyer, reported by A, B and C, not
 *    an extra A–B buyer through the email);
 * 3. unless that other key links different buyers: when two of the keys it would absorb share
 *    no report (one device named beside several accounts' phones), or it would absorb more than
 *    `MAX_ABSORBED`, it absorbs none.
 *
 * Rule 3 is why keys are not simply grouped by connectedness: a coalition naming one shared key
 * in every report would otherwise merge all its victims into one buyer. What this cannot see: the
 * same buyer reported under disjoint keys (A names the phone, B only the email); nothing in the
 * ledger links them, and both the score and this count see two buyers.
 *
 * Returns each buyer's reporting platforms, sorted, in no particular order.
 *
 * @example buyersOf([{ reports: [1, 2], platforms: ["a", "b"] }, { reports: [1, 2], platforms: ["a", "b"] }])
 *   // [["a", "b"]]: a phone and an email named by the same two reports
 */
export function buyersOf(keys: Iterable<SharedKey>): string[][] {
  // Rule 1: one class per distinct set of reports.
  const classes = new Map<string, { reports: number[]; platforms: string[] }>();
  for (const key of keys) {
    const reports = [...new Set(key.reports)].sort((a, b) => a - b);
    const id = reports.join(",");
    if (!classes.has(id)) {
      classes.set(id, { reports, platforms: [...new Set(key.platforms)].sort() });
    }
  }
  const list = [...classes.values()];
  const byReport = new Map<number, number[]>();
  list.forEach((c, i) => {
    for (const r of c.reports) {
      const at = byReport.get(r) ?? [];
      at.push(i);
      byReport.set(r, at);
    }
  });
  const sets = list.map((c) => new Set(c.reports));
  // Rule 2: the classes whose reports strictly contain each class's (all of them name its first report).
  const containers = list.map(() => [] as number[]);
  const absorbs = list.map(() => [] as number[]);
  list.forEach((c, i) => {
    for (const j of byReport.get(c.reports[0] as number) ?? []) {
      const other = list[j] as (typeof list)[number];
      if (
        j !== i &&
        other.reports.length > c.reports.length &&
        c.reports.every((r) => (sets[j] as Set<number>).has(r))
      ) {
        (containers[i] as number[]).push(j);
        (absorbs[j] as number[]).push(i);
      }
    }
  });
  // Rule 3: a class that would absorb two report-disjoint classes links buyers, and absorbs none.
  const links = absorbs.map((inner) => {
    if (inner.length > MAX_ABSORBED) {
      return true;
    }
    for (let a = 0; a < inner.length; a++) {
      const mine = sets[inner[a] as number] as Set<number>;
      for (let b = a + 1; b < inner.length; b++) {
        if (!(list[inner[b] as number] as (typeof list)[number]).reports.some((r) => mine.has(r))) {
          return true;
        }
      }
    }
    return false;
  });
  return list
    .filter((_, i) => !(containers[i] as number[]).some((j) => !links[j]))
    .map((c) => c.platforms)
    .filter((platforms) => platforms.length >= 2);
}

/**
 * The one read of the job: every subject key that counted reports of two or more platforms name,
 * with those reports (by rowid) and their platforms. Only counted links (`counted = 1`: active or
 * disputed reports), and without reports flagged after their reporter's own look-up and not
 * cleared (docs/scoring.md §3c): a report that may come from the ledger's answer is no evidence
 * that its reporter overlaps with anyone. A full pass over the counted links, in key order along
 * `report_subjects_counted` (docs/operations.md has the measured cost).
 */
export function sharedKeysSql() {
  return sql`WITH flagged AS (
      SELECT id FROM reports WHERE after_lookup_at IS NOT NULL AND after_lookup_cleared_at IS NULL),
    shared AS (
      SELECT subject_key FROM report_subjects
      WHERE counted = 1 AND report_id NOT IN flagged
      GROUP BY subject_key HAVING count(DISTINCT platform_id) >= 2)
    SELECT group_concat(r.rowid) AS reports, group_concat(DISTINCT s.platform_id) AS platforms
    FROM shared
    JOIN report_subjects s ON s.subject_key = shared.subject_key AND s.counted = 1
    JOIN reports r ON r.id = s.report_id
    WHERE s.report_id NOT IN flagged
    GROUP BY shared.subject_key`;
}

/** What one run of the collusion job found (docs/scoring.md §3d). */
export interface CollusionRun {
  /** Shared buyers counted (two or more reporting platforms). */
  buyers: number;
  /** Collusion sets found. */
  sets: number;
  /** Platforms in a collusion group. */
  grouped: number;
  /** Whether the groups changed (then audited as `collusion.groups`). */
  changed: boolean;
}

const groupList = (groups: ReadonlyMap<string, string>) => {
  const byGroup = new Map<string, string[]>();
  for (const [platform, group] of [...groups].sort(([a], [b]) => (a < b ? -1 : 1))) {
    byGroup.set(group, [...(byGroup.get(group) ?? []), platform]);
  }
  return [...byGroup].map(([id, members]) => ({ id, members }));
};

/**
 * The collusion job (docs/scoring.md §3d, docs/operations.md): at most once an hour, counts the
 * shared buyers by their exact sets of reporters, finds the collusion sets and groups, and
 * replaces `collusion_sets` and `platform_groups` in one batch. When the groups change, the same
 * batch writes a `collusion.groups` audit entry and makes the trust of every platform whose group
 * changed due now, so the trust recompute that follows in the same run no longer counts (or
 * counts again) corroboration inside a group. Null when the job is not due.
 */
export async function recomputeCollusion(
  d1: Db,
  run: { now: number; requestId: string },
): Promise<CollusionRun | null> {
  // Claim the run first: two overlapping scheduled runs never both make the full pass.
  const claimed = await all<{ ran_at: number }>(
    d1,
    sql`INSERT INTO job_runs (job, ran_at) VALUES ('collusion', ${run.now})
      ON CONFLICT (job) DO UPDATE SET ran_at = excluded.ran_at
      WHERE job_runs.ran_at <= ${run.now - COLLUSION_EVERY_MS}
      RETURNING ran_at`,
  );
  if (claimed.length === 0) {
    return null;
  }
  const [before, rows] = await Promise.all([
    all<{ platform_id: string; group_id: string }>(
      d1,
      sql`SELECT platform_id, group_id FROM platform_groups`,
    ),
    all<{ reports: string; platforms: string }>(d1, sharedKeysSql()),
  ]);
  const buyers = buyersOf(
    rows.map((r) => ({ reports: r.reports.split(",").map(Number), platforms: r.platforms.split(",") })),
  );
  const { sets, groups } = findCollusion(buyers);
  const old = new Map(before.map((g) => [g.platform_id, g.group_id]));
  const moved = [...new Set([...old.keys(), ...groups.keys()])]
    .filter((p) => old.get(p) !== groups.get(p))
    .sort();
  const changed = moved.length > 0;
  const setsJson = JSON.stringify(sets.map((s: CollusionSet) => ({ ...s, members: s.members.join(",") })));
  const groupsJson = JSON.stringify([...groups].map(([platform, group]) => ({ platform, group })));
  const statements: Statement[] = [
    sql`DELETE FROM platform_groups`,
    sql`INSERT INTO platform_groups (platform_id, group_id, computed_at)
      SELECT j.value ->> 'platform', j.value ->> 'group', ${run.now} FROM json_each(${groupsJson}) j`,
    sql`DELETE FROM collusion_sets`,
    sql`INSERT INTO collusion_sets (members, observed, expected, p_value, computed_at)
      SELECT j.value ->> 'members', j.value ->> 'observed', j.value ->> 'expected', j.value ->> 'pValue', ${run.now}
      FROM json_each(${setsJson}) j`,
  ];
  if (changed) {
    statements.push(
      auditInsert(
        orm(d1),
        { requestId: run.requestId, now: run.now },
        {
          actor: COLLUSION_ACTOR,
          action: "collusion.groups",
          outcome: "ok",
          details: {
            groups: groupList(groups),
            before: groupList(old),
            moved,
            sets: sets.map((s) => ({
              members: s.members,
              observed: s.observed,
              expected: s.expected,
              pValue: s.pValue,
            })),
          },
        },
      ),
      // Due now: the trust recompute that follows counts corroboration by the new groups.
      sql`UPDATE platform_trust SET computed_at = ${run.now - TRUST.recomputeMs - 1}
        WHERE platform_id IN (SELECT value FROM json_each(${JSON.stringify(moved)}))
          AND computed_at > ${run.now - TRUST.recomputeMs - 1}`,
    );
  }
  await batch(d1, statements);
  return { buyers: buyers.length, sets: sets.length, grouped: groups.size, changed };
}
