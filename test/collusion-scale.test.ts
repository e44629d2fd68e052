/**
 * The collusion job at scale (docs/operations.md, "Collusion job"): 100,000 reports by ten
 * platforms of unequal sizes about 70,000 buyers (two subject keys each), written straight into
 * the local D1, plus a coalition of two platforms reporting 300 buyers nobody else reports. The
 * job's one read and the whole job are timed (printed), and must find exactly the coalition.
 * Its own file, so its 100,000 reports share a database with no other test.
 */
import { env } from "cloudflare:workers";
import { SQLiteAsyncDialect } from "drizzle-orm/sqlite-core";
import { describe, expect, it } from "vitest";
import { recomputeCollusion, sharedKeysSql } from "../worker/services/collusion";

const REPORTS = 100_000;
const BUYERS = 70_000;
const COALITION = 300;

/** Ten platforms; report i's platform from a multiplicative hash of i, by their weights (‰). */
const WEIGHTS = [300, 200, 150, 100, 80, 60, 40, 30, 25, 15];
const platformOf = (hash: string) => {
  let at = 0;
  const cases = WEIGHTS.map((w, p) => {
    at += w;
    return `WHEN ${hash} < ${at} THEN 'scale-p${p}'`;
  });
  return `CASE ${cases.join(" ")} END`;
};

async function seed(now: number) {
  // Reports 0…69,999: one per buyer; 70,000…99,999: a second report about an earlier buyer, by
  // a platform drawn again (the same platform now and then: one platform reporting twice).
  const buyer = `CASE WHEN i < ${BUYERS} THEN i ELSE (i * 7919) % ${BUYERS} END`;
  const hash = "((i * 2654435761) % 4294967296) % 1000";
  const seq = `WITH RECURSIVE seq(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM seq WHERE i < ${REPORTS - 1})`;
  await env.DB.batch([
    env.DB.prepare(
      `${seq} INSERT INTO reports (id, platform_id, case_id, status, category, confirmation, incident_at,
         confirmed_at, amount_value, amount_currency, evidence, content_hash, created_at, updated_at)
       SELECT 'rpt_scale' || i, ${platformOf(hash)}, 'case-' || i, 'active', 'ai_generated_image',
         'platform_forensics', ${now - 10 * 86_400_000}, ${now - 9 * 86_400_000}, 29900, 'CNY', '[]', 'h', ${now}, ${now}
       FROM seq`,
    ),
    env.DB.prepare(
      `${seq}, kinds(kind) AS (VALUES ('phone'), ('device'))
       INSERT INTO report_subjects (subject_key, report_id, subject_type, platform_id, incident_at, counted)
       SELECT kind || '-' || (${buyer}), 'rpt_scale' || i, kind, ${platformOf(hash)}, ${now - 10 * 86_400_000}, 1
       FROM seq, kinds`,
    ),
    // The coalition: 300 fresh buyers, each reported by both its members.
    env.DB.prepare(
      `WITH RECURSIVE seq(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM seq WHERE i < ${2 * COALITION - 1})
       INSERT INTO reports (id, platform_id, case_id, status, category, confirmation, incident_at,
         confirmed_at, amount_value, amount_currency, evidence, content_hash, created_at, updated_at)
       SELECT 'rpt_coal' || i, CASE WHEN i % 2 = 0 THEN 'scale-c0' ELSE 'scale-c1' END, 'coal-' || i, 'active',
         'ai_generated_image', 'platform_forensics', ${now - 10 * 86_400_000}, ${now - 9 * 86_400_000}, 29900, 'CNY',
         '[]', 'h', ${now}, ${now}
       FROM seq`,
    ),
    env.DB.prepare(
      `WITH RECURSIVE seq(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM seq WHERE i < ${2 * COALITION - 1}),
         kinds(kind) AS (VALUES ('phone'), ('device'))
       INSERT INTO report_subjects (subject_key, report_id, subject_type, platform_id, incident_at, counted)
       SELECT kind || '-coal-' || (i / 2), 'rpt_coal' || i, kind, CASE WHEN i % 2 = 0 THEN 'scale-c0' ELSE 'scale-c1' END,
         ${now - 10 * 86_400_000}, 1
       FROM seq, kinds`,
    ),
  ]);
}

describe("the collusion job at 100,000 reports", () => {
  it("reads the shared buyers in one statement and finds exactly the coalition", async () => {
    const now = Date.now();
    let t = performance.now();
    await seed(now);
    const seeded = performance.now() - t;
    const links = await env.DB.prepare("SELECT count(*) AS n FROM report_subjects").first<{ n: number }>();
    expect(links?.n).toBe(2 * (REPORTS + 2 * COALITION));

    const q = new SQLiteAsyncDialect().sqlToQuery(sharedKeysSql());
    t = performance.now();
    const read = await env.DB.prepare(q.sql)
      .bind(...q.params)
      .all<{ reports: string; platforms: string }>();
    const readMs = performance.now() - t;
    const bytes = JSON.stringify(read.results).length;

    t = performance.now();
    const run = await recomputeCollusion(env.DB, { now, requestId: "req_scale" });
    const jobMs = performance.now() - t;
    console.log(
      JSON.stringify({
        reports: REPORTS + 2 * COALITION,
        links: links?.n,
        seededMs: Math.round(seeded),
        sharedKeys: read.results.length,
        readMs: Math.round(readMs),
        readRowsRead: read.meta.rows_read,
        resultBytes: bytes,
        jobMs: Math.round(jobMs),
        run,
      }),
    );
    expect(run).toMatchObject({ sets: 1, grouped: 2, changed: true });
    const sets = await env.DB.prepare("SELECT members, observed FROM collusion_sets").all();
    expect(sets.results).toEqual([{ members: "scale-c0,scale-c1", observed: COALITION }]);
    // The phone and the device of one buyer are one buyer: twice as many shared keys as buyers.
    expect(read.results.length).toBe(2 * (run?.buyers ?? 0));
  }, 300_000);
});
