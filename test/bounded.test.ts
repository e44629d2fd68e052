/**
 * Bounded work per buyer (docs/scoring.md, "Bounded work per buyer"): the score read takes at
 * most MAX_ACTIVE_REPORTS_PER_SUBJECT records per (subject key, platform) whatever the table
 * holds, a platform cannot hold more than that many counted reports about one subject key, and
 * the model itself copes with any number of records.
 */
import { env } from "cloudflare:workers";
import { SQLiteAsyncDialect } from "drizzle-orm/sqlite-core";
import { describe, expect, it } from "vitest";
import { loadConfig } from "../worker/env";
import { DAY_MS, toRfc3339 } from "../worker/lib/time";
import { evaluate, type ScoreRecord } from "../worker/scoring/model";
import { scoreReadSql } from "../worker/services/scores";
import {
  auditRows,
  call,
  callJson,
  countRows,
  createReport,
  hashOf,
  newBuyer,
  newPlatform,
  reportBody,
  scoreRowsBound,
  type TestPlatform,
  uniqueId,
} from "./harness";

type Subject = { type: string; hash: string };

const NOW = Date.parse("2026-11-25T00:00:00Z");

interface ScoreView {
  score: number;
  band: string;
  reasons: { code: string; detail: string }[];
  summary: { reports: number; platforms: number };
  records: { ref: string }[];
}

interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  errors?: { path: string; message: string }[];
}

interface BulkResult {
  index: number;
  status: number;
  id?: string;
  problem?: Problem;
}

const CAP = loadConfig(env).MAX_ACTIVE_REPORTS_PER_SUBJECT;

async function scoreOf(p: TestPlatform, subjects: Subject[]) {
  const res = await callJson<ScoreView>("/v1/scores/query", {
    token: await p.token(),
    body: { subjects, purpose: "refund_review" },
  });
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res.body;
}

async function bulk(p: TestPlatform, reports: unknown[]) {
  const res = await callJson<{ results: BulkResult[] }>("/v1/reports/bulk", {
    token: await p.token(),
    body: { reports },
  });
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res.body.results;
}

/** `n` reports about the buyer, in one bulk call, all expected 201. */
async function fill(p: TestPlatform, subjects: Subject[], n: number) {
  const results = await bulk(
    p,
    Array.from({ length: n }, () => reportBody(subjects)),
  );
  expect(results.map((r) => r.status)).toEqual(results.map(() => 201));
  return results.map((r) => r.id as string);
}

/** What a refused write must leave alone: the platform's reports and their links. */
async function footprint(p: TestPlatform) {
  return {
    reports: await countRows("reports", "platform_id = ?", p.id),
    links: await countRows("report_subjects", "platform_id = ?", p.id),
  };
}

/** The rows the score read reads for these keys, as the Worker asks (the cap plus one). */
async function measuredRead(keys: string[]) {
  const q = new SQLiteAsyncDialect().sqlToQuery(scoreReadSql(JSON.stringify(keys), CAP + 1));
  const res = await env.DB.prepare(q.sql)
    .bind(...q.params)
    .all();
  return { rows: res.results.length, rowsRead: res.meta.rows_read };
}

/**
 * Seeds `count` active reports on one subject key straight into D1, round-robin over the
 * platforms, one second apart (newest first from `newest`), with their links and copies, in
 * two INSERT … SELECT statements generating the rows in SQL.
 */
async function seedReports(key: string, platformIds: string[], count: number, newest: number) {
  const tag = uniqueId("seed");
  const platforms = JSON.stringify(platformIds);
  await env.DB.batch([
    env.DB.prepare(
      `WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < ?1 - 1)
       INSERT INTO reports (id, platform_id, case_id, status, category, confirmation, incident_at,
         confirmed_at, amount_value, amount_currency, evidence, note, subject_notified_at, content_hash,
         status_reason, created_at, updated_at)
       SELECT printf('rpt_%s_%08d', ?2, i), json_extract(?3, '$[' || (i % json_array_length(?3)) || ']'),
         printf('%s-%d', ?2, i), 'active', 'ai_generated_image', 'platform_forensics', ?4 - i * 1000,
         ?4 - i * 1000, 129900, 'CNY', '[]', NULL, NULL, ?2, NULL, ?4, ?4
       FROM n`,
    ).bind(count, tag, platforms, newest),
    env.DB.prepare(
      `WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < ?1 - 1)
       INSERT INTO report_subjects (subject_key, report_id, subject_type, platform_id, incident_at, counted)
       SELECT ?5, printf('rpt_%s_%08d', ?2, i), 'phone',
         json_extract(?3, '$[' || (i % json_array_length(?3)) || ']'), ?4 - i * 1000, 1
       FROM n`,
    ).bind(count, tag, platforms, newest, key),
  ]);
}

describe("the model at scale", () => {
  it("evaluate() scores 200,000 records without throwing (no spread into Math.min/max)", () => {
    const records: ScoreRecord[] = Array.from({ length: 200_000 }, (_, i) => ({
      ref: `rpt_${i.toString().padStart(26, "0")}`,
      platformId: `p-${i % 3}`,
      category: "ai_generated_image",
      confirmation: "platform_forensics",
      incidentAt: NOW - (i % 1000) * DAY_MS - i,
      createdAt: NOW - i,
      amountValue: 129_900,
      amountCurrency: "CNY",
      status: "active",
    }));
    const answer = evaluate(records, NOW);
    expect(answer.summary.reports).toBe(200_000);
    expect(answer.summary.platforms).toBe(3);
    expect(answer.summary.firstReportedAt).toBe(toRfc3339(NOW - 199_999));
    expect(answer.summary.lastReportedAt).toBe(toRfc3339(NOW));
    expect(answer.band).toBe("critical");
    expect(answer.reasons.map((r) => r.code)).toContain("RECENT");
  });
});

describe("the score read with 150,000 records on one subject key", () => {
  it("answers 200 from the newest records per platform, says RECORDS_CAPPED, and reads what a 10-record buyer reads", async () => {
    const platforms = [await newPlatform(), await newPlatform(), await newPlatform()];
    const asker = await newPlatform();
    const [a] = platforms as [TestPlatform];
    const buyer = await newBuyer();
    // One report through the API gives the buyer's ledger keys (and one record on the device).
    const first = await createReport(a, buyer);
    const phoneKey = first.subjects.find((s) => s.type === "phone")?.key as string;
    const keys = first.subjects.map((s) => s.key);
    await seedReports(
      phoneKey,
      platforms.map((p) => p.id),
      150_000,
      Date.now() - DAY_MS,
    );
    expect(await countRows("report_subjects", "subject_key = ?", phoneKey)).toBe(150_001);

    const answer = await scoreOf(asker, buyer);
    // The newest CAP per platform through the phone, and the API report through the device.
    expect(answer.summary.reports).toBe(3 * CAP + 1);
    expect(answer.summary.platforms).toBe(3);
    expect(answer.band).toBe("critical");
    const capped = answer.reasons.find((r) => r.code === "RECORDS_CAPPED");
    expect(capped?.detail).toContain(`${CAP} most recent records per platform and subject`);
    expect(answer.records.map((r) => r.ref)).toContain(first.id);

    // Rows read: within the bound of a buyer with a handful of records, nothing like 150,000.
    const big = await measuredRead(keys);
    expect(big.rows).toBe(3 * (CAP + 1) + 1);
    expect(big.rowsRead).toBeLessThanOrEqual(scoreRowsBound({ matches: big.rows, keys: 2, pairs: 4 }));

    const small = await newBuyer();
    await bulk(
      a,
      Array.from({ length: 5 }, () => reportBody(small)),
    );
    await bulk(
      platforms[1] as TestPlatform,
      Array.from({ length: 5 }, () => reportBody(small)),
    );
    const tenKeys = (await scoreOf(asker, small)).summary;
    expect(tenKeys.reports).toBe(10);
    const smallKeys = (
      await env.DB.prepare(
        "SELECT DISTINCT subject_key AS k FROM report_subjects WHERE report_id IN (SELECT id FROM reports WHERE platform_id = ? ORDER BY created_at DESC LIMIT 1)",
      )
        .bind(a.id)
        .all<{ k: string }>()
    ).results.map((r) => r.k);
    const ten = await measuredRead(smallKeys);
    expect(ten.rows).toBe(20); // 10 reports × 2 keys
    expect(ten.rowsRead).toBeLessThanOrEqual(scoreRowsBound({ matches: ten.rows, keys: 2, pairs: 4 }));
    // The 150,000-record buyer costs what (CAP + 1) records per platform cost, not more.
    expect(big.rowsRead).toBeLessThanOrEqual(
      scoreRowsBound({ matches: 3 * (CAP + 1) + 1, keys: 2, pairs: 4 }),
    );
    expect(big.rowsRead).toBeLessThan(1_000);
  }, 120_000);
});

describe("the score read with trust rows and collusion groups", () => {
  it("each (key, platform) pair probes the trust and group tables once: the bound holds with every row present", async () => {
    const [a, b] = [await newPlatform(), await newPlatform()];
    const buyer = await newBuyer();
    const first = await createReport(a, buyer);
    await createReport(b, buyer);
    const keys = first.subjects.map((s) => s.key);
    const without = await measuredRead(keys);
    expect(without.rows).toBe(4); // 2 reports × 2 keys
    await env.DB.prepare(
      "INSERT INTO platform_groups (platform_id, group_id, computed_at) VALUES (?1, ?1, 0), (?2, ?1, 0)",
    )
      .bind(a.id, b.id)
      .run();
    const grouped = await measuredRead(keys);
    expect(grouped.rows).toBe(4);
    // One group row per (key, platform) pair at most, and the documented bound still holds.
    expect(grouped.rowsRead - without.rowsRead).toBeLessThanOrEqual(4);
    expect(grouped.rowsRead).toBeLessThanOrEqual(
      scoreRowsBound({ matches: grouped.rows, keys: 2, pairs: 4 }),
    );
    await env.DB.prepare("DELETE FROM platform_groups WHERE platform_id IN (?1, ?2)").bind(a.id, b.id).run();
  });
});

describe("per-subject cap on writes", () => {
  it("single POST: the report past the cap is 422 naming the subject's place and type, never its key; nothing written", async () => {
    const p = await newPlatform();
    const buyer = await newBuyer();
    await fill(p, buyer, CAP);
    const before = await footprint(p);

    // A new phone, the same device: the device (subjects.1) is the one over the cap.
    const phone = await hashOf(
      "phone",
      `+86138${Math.floor(Math.random() * 1e8)
        .toString()
        .padStart(8, "0")}`,
    );
    const device = buyer.find((s) => s.type === "device") as Subject;
    const res = await call("/v1/reports", { token: await p.token(), body: reportBody([phone, device]) });
    expect(res.status).toBe(422);
    expect(res.headers.get("content-type")).toMatch(/^application\/problem\+json/);
    const problem = (await res.json()) as Problem;
    expect(problem.errors).toEqual([{ path: "subjects.1.hash", message: expect.stringContaining(`${CAP}`) }]);
    expect(problem.errors?.[0]?.message).toContain("device");
    expect(problem.detail).toContain(`${CAP}`);
    expect(problem.detail).toContain("device");
    const text = JSON.stringify(problem);
    const keys = (
      await env.DB.prepare("SELECT DISTINCT subject_key AS k FROM report_subjects WHERE platform_id = ?")
        .bind(p.id)
        .all<{ k: string }>()
    ).results.map((r) => r.k);
    for (const k of keys) {
      expect(text).not.toContain(k);
    }
    expect(text).not.toContain(device.hash);
    expect(await footprint(p)).toEqual(before);
    const rows = await auditRows(res.headers.get("x-request-id"));
    expect(rows.map((r) => [r.target, r.outcome])).toEqual([[null, "invalid"]]);
    expect(JSON.parse(rows[0]?.details ?? "{}")).toMatchObject({ error: "over_cap", cap: CAP });

    // The cap is per platform: another platform may still report the buyer.
    const other = await newPlatform();
    await createReport(other, buyer);
    // At the cap the score reads every record: no RECORDS_CAPPED.
    const answer = await scoreOf(other, buyer);
    expect(answer.summary.reports).toBe(CAP + 1);
    expect(answer.reasons.map((r) => r.code)).not.toContain("RECORDS_CAPPED");
  });

  it("a replay of a held caseId still answers 200 at the cap; a retraction frees a slot", async () => {
    const p = await newPlatform();
    const buyer = await newBuyer();
    const body = reportBody(buyer);
    const created = await callJson<{ id: string }>("/v1/reports", { token: await p.token(), body });
    expect(created.status).toBe(201);
    const first = created.body;
    await fill(p, buyer, CAP - 1);

    const replay = await callJson<{ id: string }>("/v1/reports", { token: await p.token(), body });
    expect(replay.status, JSON.stringify(replay.body)).toBe(200);
    expect(replay.body.id).toBe(first.id);
    const full = await callJson("/v1/reports", { token: await p.token(), body: reportBody(buyer) });
    expect(full.status).toBe(422);

    const retracted = await callJson(`/v1/reports/${first.id}/retract`, {
      token: await p.token(),
      body: { reason: "Filed against the wrong account." },
    });
    expect(retracted.status).toBe(200);
    await createReport(p, buyer);
    expect((await callJson("/v1/reports", { token: await p.token(), body: reportBody(buyer) })).status).toBe(
      422,
    );
    // The retracted case replayed is still a replay, not a new report over the cap.
    const again = await callJson<{ id: string; status: string }>("/v1/reports", {
      token: await p.token(),
      body,
    });
    expect(again.status).toBe(200);
    expect(again.body).toMatchObject({ id: first.id, status: "retracted" });
  });

  it("bulk: an item past the cap (counting earlier items of the same call) is 422 alone; the others are written", async () => {
    const p = await newPlatform();
    const buyer = await newBuyer();
    await fill(p, buyer, CAP - 2);
    const before = await footprint(p);
    const elsewhere = await newBuyer();
    const held = reportBody(buyer);
    const results = await bulk(p, [
      reportBody(buyer),
      reportBody(elsewhere),
      held,
      reportBody(buyer),
      reportBody(elsewhere),
    ]);
    expect(results.map((r) => r.status)).toEqual([201, 201, 201, 422, 201]);
    expect(results[3]?.problem).toMatchObject({ status: 422 });
    expect(results[3]?.problem?.errors?.[0]?.path).toMatch(/^subjects\.[01]\.hash$/);
    expect(await footprint(p)).toEqual({
      reports: before.reports + 4,
      links: before.links + 8,
    });
    // Replaying the whole call: the held items answer 200, the refused one is still 422.
    const replayed = await bulk(p, [reportBody(buyer), held]);
    expect(replayed.map((r) => r.status)).toEqual([422, 200]);
    expect(await footprint(p)).toEqual({ reports: before.reports + 4, links: before.links + 8 });
  });
});
