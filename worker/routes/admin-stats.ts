import { z } from "@hono/zod-openapi";
import { sql } from "drizzle-orm";
import type { App } from "../app";
import { readableLog } from "../audit/ledger";
import { batch, rowsOf } from "../lib/batch";
import { authenticatedRoute } from "../lib/route";
import { DAY_MS } from "../lib/time";
import { everyShard } from "../log/client";
import { guard } from "../middleware/auth";
import { count, DateTime, int, PlatformRef } from "../schemas/common";
import { CollusionGroupSchema, MAX_LISTED_PLATFORMS } from "../schemas/platforms";
import { COLLUSION } from "../scoring/collusion";
import { utcDay } from "../services/usage";

/** Days of usage the stats cover. */
export const STATS_DAYS = 30;

const counts = z.record(z.string().max(32), count());

/** Platforms the usage table lists at most (the most suspicious first): a ceiling, not enforced. */
const MAX_STATS_PLATFORMS = MAX_LISTED_PLATFORMS;

/** Collusion sets the stats list at most, the strongest evidence first. */
export const MAX_STATS_COLLUSION_SETS = 1000;

const route = authenticatedRoute({
  method: "get",
  path: "/v1/admin/stats",
  operationId: "getAdminStats",
  tags: ["Admin: audit"],
  summary:
    "Counts by status, queries per day, each platform's look-ups against its reports, and collusion groups",
  description:
    "`usage` lists, per platform over the last 30 days, score queries, subject keys looked up and reports filed. A platform that looks up far more buyers than it reports (`lookupsPerReport`) may be enumerating the ledger. Beside them, its subject-access pages (`subjectAccess`) and the disputes it opened (`disputesOpened`): buyers' own requests, which a platform could otherwise use to read files without a score query.",
  middleware: [guard("admin.stats", "admin")] as const,
  responses: {
    200: {
      description: "Statistics",
      content: {
        "application/json": {
          schema: z
            .object({
              platforms: counts,
              reports: counts,
              disputes: counts,
              queriesPerDay: z
                .array(z.object({ day: z.iso.date(), queries: count(), subjects: count() }))
                .max(STATS_DAYS),
              lookupDailyCap: int(1, 100_000_000).openapi({
                description: "LOOKUP_DAILY_CAP: distinct subject keys a platform may look up per UTC day",
              }),
              usage: z
                .array(
                  z.object({
                    platformId: PlatformRef,
                    queries: count(),
                    subjects: count(),
                    reports: count(),
                    lookupsPerReport: z.number().min(0).nullable(),
                    subjectAccess: count().openapi({ description: "Subject-access pages answered" }),
                    disputesOpened: count().openapi({ description: "Disputes this platform opened" }),
                    distinctSubjectsToday: count().openapi({
                      description: "Distinct subject keys looked up today (UTC), against `lookupDailyCap`",
                    }),
                  }),
                )
                .max(MAX_STATS_PLATFORMS),
              collusion: z
                .object({
                  computedAt: DateTime.nullable().openapi({
                    description: "When the collusion job last ran (at most once an hour); null: never",
                  }),
                  sets: z
                    .array(
                      z.object({
                        members: z
                          .array(PlatformRef)
                          .min(2)
                          .max(COLLUSION.maxSetSize)
                          .openapi({ description: "Sorted" }),
                        observed: count().openapi({
                          description: "Buyers reported by exactly these platforms",
                        }),
                        expected: z
                          .number()
                          .min(0)
                          .openapi({ description: "What chance predicts, at its most cautious" }),
                        pValue: z.number().min(0).max(1).openapi({
                          description: "Poisson P(X ≥ observed) at `expected`",
                        }),
                        computedAt: DateTime,
                      }),
                    )
                    .max(MAX_STATS_COLLUSION_SETS)
                    .openapi({
                      description: `Exact sets of reporters whose shared buyers (reported by these platforms and no other) are beyond chance, the smallest p-value first, at most ${MAX_STATS_COLLUSION_SETS}`,
                    }),
                  groups: z.array(CollusionGroupSchema).max(MAX_STATS_PLATFORMS).openapi({
                    description:
                      "Platforms of overlapping sets: each group counts as one platform in the consensus",
                  }),
                })
                .openapi({
                  description:
                    "Collusion (docs/scoring.md §3d): platforms whose reports overlap on buyers no other platform reports, beyond what chance explains. Such overlap does not multiply the consensus.",
                }),
              audit: z.object({
                entries: count().openapi({
                  description:
                    "Audit entries written: the ledger chain's, every log shard's, and those in the outbox",
                }),
                unsealed: count().openapi({
                  description:
                    "Entries written but not yet chained: the ledger chain's unsealed tail (its closed legacy prefix) plus outbox rows not yet drained to the log shards",
                }),
                lastCheckpoint: z.object({ seq: count(), at: DateTime }).nullable(),
              }),
            })
            .openapi("Stats"),
        },
      },
    },
  },
});

interface ShardUsage {
  day: string;
  platform_id: string;
  queries: number;
  subjects: number;
  subject_access: number;
}

const grouped = (rows: { k: string; n: number }[]) => Object.fromEntries(rows.map((r) => [r.k, r.n]));

export function registerAdminStats(app: App) {
  app.openapi(route, async (c) => {
    const since = utcDay(c.var.now - (STATS_DAYS - 1) * DAY_MS);
    const sinceMs = Date.parse(`${since}T00:00:00Z`);
    const today = utcDay(c.var.now);
    // Look-ups are counted in the log store, reports (and look-ups before it) in D1: both are summed.
    const logged = everyShard(await readableLog(c.var.db, c.var.config), async (stub) => ({
      usage: (await stub.usage(since)) as unknown as ShardUsage[],
      today: (await stub.lookupCounts(today)) as unknown as { platform_id: string; n: number }[],
      head: (await stub.headOf()).seq,
    }));
    const [platforms, reports, disputes, days, usage, opened, audit, cp, sets, groups, ran] = await batch(
      c.var.db,
      [
        sql`SELECT status AS k, count(*) AS n FROM platforms GROUP BY status`,
        sql`SELECT status AS k, count(*) AS n FROM reports GROUP BY status`,
        sql`SELECT status AS k, count(*) AS n FROM disputes GROUP BY status`,
        sql`SELECT day, sum(queries) AS queries, sum(subjects) AS subjects FROM usage_daily
          WHERE day >= ${since} GROUP BY day ORDER BY day`,
        sql`SELECT platform_id, sum(queries) AS queries, sum(subjects) AS subjects, sum(reports) AS reports,
            sum(subject_access) AS subject_access
          FROM usage_daily WHERE day >= ${since} GROUP BY platform_id`,
        sql`SELECT opened_by AS platform_id, count(*) AS n FROM disputes WHERE opened_at >= ${sinceMs}
          GROUP BY opened_by`,
        // The ledger chain (closed legacy prefix) and its unsealed tail; the outbox's rows are
        // written but not yet chained in a shard.
        sql`SELECT (SELECT max(seq) FROM audit_log) AS entries,
            (SELECT count(*) FROM audit_log WHERE seq > coalesce((SELECT max(seq) FROM audit_log WHERE hash IS NOT NULL), 0)) AS unsealed,
            (SELECT count(*) FROM audit_outbox) AS outbox`,
        // The latest signed tree checkpoint, by its ledger-chain leaf (shard −1).
        sql`SELECT json_extract(h.value, '$.seq') AS seq, c.at FROM log_checkpoints c, json_each(c.heads) h
          WHERE c.id = (SELECT max(id) FROM log_checkpoints) AND json_extract(h.value, '$.shard') = -1`,
        sql`SELECT members, observed, expected, p_value, computed_at FROM collusion_sets
          ORDER BY p_value, members LIMIT ${MAX_STATS_COLLUSION_SETS}`,
        sql`SELECT platform_id, group_id FROM platform_groups ORDER BY group_id, platform_id`,
        sql`SELECT ran_at FROM job_runs WHERE job = 'collusion'`,
      ],
    );
    const shards = await logged;
    const a = rowsOf<{ entries: number | null; unsealed: number; outbox: number }>(audit)[0];
    const chainedInShards = shards.reduce((n, s) => n + s.head, 0);
    const last = rowsOf<{ seq: number; at: number }>(cp)[0];
    const disputesOpened = new Map(
      rowsOf<{ platform_id: string; n: number }>(opened).map((d) => [d.platform_id, d.n]),
    );
    const counters = rowsOf<{
      platform_id: string;
      queries: number;
      subjects: number;
      reports: number;
      subject_access: number;
    }>(usage);
    const counter = (platformId: string) => {
      let row = counters.find((u) => u.platform_id === platformId);
      if (!row) {
        row = { platform_id: platformId, queries: 0, subjects: 0, reports: 0, subject_access: 0 };
        counters.push(row);
      }
      return row;
    };
    const perDay = new Map(
      rowsOf<{ day: string; queries: number; subjects: number }>(days).map((d) => [d.day, { ...d }]),
    );
    const distinctToday = new Map<string, number>();
    for (const shard of shards) {
      for (const u of shard.usage) {
        const row = counter(u.platform_id);
        row.queries += u.queries;
        row.subjects += u.subjects;
        row.subject_access += u.subject_access;
        const day = perDay.get(u.day) ?? { day: u.day, queries: 0, subjects: 0 };
        day.queries += u.queries;
        day.subjects += u.subjects;
        perDay.set(u.day, day);
      }
      for (const t of shard.today) {
        distinctToday.set(t.platform_id, (distinctToday.get(t.platform_id) ?? 0) + t.n);
      }
    }
    // A platform that only opened disputes has no usage row yet; it is listed all the same.
    for (const platformId of disputesOpened.keys()) {
      if (!counters.some((u) => u.platform_id === platformId)) {
        counters.push({ platform_id: platformId, queries: 0, subjects: 0, reports: 0, subject_access: 0 });
      }
    }
    const lastRun = rowsOf<{ ran_at: number }>(ran)[0];
    const byGroup = new Map<string, string[]>();
    for (const g of rowsOf<{ platform_id: string; group_id: string }>(groups)) {
      byGroup.set(g.group_id, [...(byGroup.get(g.group_id) ?? []), g.platform_id]);
    }
    const usageRows = counters
      .map((u) => ({
        platformId: u.platform_id,
        queries: u.queries,
        subjects: u.subjects,
        reports: u.reports,
        lookupsPerReport: u.reports === 0 ? null : Math.round((u.subjects / u.reports) * 10) / 10,
        subjectAccess: u.subject_access,
        disputesOpened: disputesOpened.get(u.platform_id) ?? 0,
        distinctSubjectsToday: distinctToday.get(u.platform_id) ?? 0,
      }))
      .sort(
        (x, y) =>
          (y.lookupsPerReport ?? Number.POSITIVE_INFINITY) -
            (x.lookupsPerReport ?? Number.POSITIVE_INFINITY) || y.subjects - x.subjects,
      );
    return c.json(
      {
        platforms: grouped(rowsOf(platforms)),
        reports: grouped(rowsOf(reports)),
        disputes: grouped(rowsOf(disputes)),
        queriesPerDay: [...perDay.values()].sort((x, y) => (x.day < y.day ? -1 : 1)),
        lookupDailyCap: c.var.config.LOOKUP_DAILY_CAP,
        usage: usageRows,
        collusion: {
          computedAt: lastRun ? new Date(lastRun.ran_at).toISOString() : null,
          sets: rowsOf<{
            members: string;
            observed: number;
            expected: number;
            p_value: number;
            computed_at: number;
          }>(sets).map((r) => ({
            members: r.members.split(","),
            observed: r.observed,
            expected: r.expected,
            pValue: r.p_value,
            computedAt: new Date(r.computed_at).toISOString(),
          })),
          groups: [...byGroup].map(([id, members]) => ({ id, members })),
        },
        audit: {
          entries: (a?.entries ?? 0) + chainedInShards + (a?.outbox ?? 0),
          unsealed: (a?.unsealed ?? 0) + (a?.outbox ?? 0),
          lastCheckpoint: last ? { seq: last.seq, at: new Date(last.at).toISOString() } : null,
        },
      },
      200,
    );
  });
}
