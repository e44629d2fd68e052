/**
 * Score queries through the HTTP API (CONTRACT §5, docs/scoring.md): single and batch answers,
 * reason codes, what records may reveal, purpose, the inquiry log and audit entries; plus the
 * query plans and rows read of the hot SQL, run on the local D1 exactly as the Worker sends it.
 */
import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import type { SQL } from "drizzle-orm";
import { SQLiteAsyncDialect } from "drizzle-orm/sqlite-core";
import { describe, expect, it } from "vitest";
import { loadConfig } from "../worker/env";
import { app } from "../worker/index";
import { photoVariants, probePairsJson } from "../worker/services/fingerprints";
import { reportByIdSql } from "../worker/services/report-queries";
import { prepareReport, reportWriteStatements } from "../worker/services/reports";
import { scoreReadSql, scoreWithPhotosReadSql } from "../worker/services/scores";
import {
  adminToken,
  auditRows,
  BASE,
  call,
  callJson,
  createReport,
  daysAgo,
  errorPaths,
  logCount,
  logQuery,
  newBuyer,
  newPlatform,
  reportBody,
  scoreRowsBound,
  type TestPlatform,
  uniqueId,
} from "./harness";

type Subject = { type: string; hash: string };

interface ScoreRecordView {
  ref: string;
  category: string;
  confirmation: string;
  incidentAt: string;
  amountTier: string;
  status: string;
  counted: boolean;
  disputed: boolean;
  verified: boolean | null;
  statement: string | null;
}

interface ScoreAnswer {
  score: number;
  band: string;
  action: string;
  reasons: { code: string; detail: string }[];
  summary: {
    reports: number;
    platforms: number;
    disputed: number;
    firstReportedAt: string | null;
    lastReportedAt: string | null;
    amounts: { currency: string; value: number }[];
  };
  records: ScoreRecordView[];
  model: string;
  evaluatedAt: string;
}

const dialect = new SQLiteAsyncDialect();
const RFC3339_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{3})?Z$/;

async function query(p: TestPlatform, subjects: Subject[], purpose = "refund_review") {
  return callJson<ScoreAnswer>("/v1/scores/query", { token: await p.token(), body: { subjects, purpose } });
}

async function score(p: TestPlatform, subjects: Subject[], purpose = "refund_review") {
  const res = await query(p, subjects, purpose);
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res.body;
}

/** The score docs/scoring.md §4 gives for total evidence E. */
function expectedScore(evidence: number) {
  return Math.max(1, Math.round(100 * (1 - Math.exp(-evidence / 3))));
}

const decay = (days: number) => 0.5 ** (days / 365);

function codes(answer: ScoreAnswer) {
  return answer.reasons.map((r) => r.code);
}

describe("POST /v1/scores/query", () => {
  it("an unknown buyer: score 0, band none, action allow, NO_RECORDS, empty summary", async () => {
    const p = await newPlatform();
    const before = Date.now();
    const res = await query(p, await newBuyer());
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^application\/json/);
    const { evaluatedAt, ...rest } = res.body;
    expect(rest).toEqual({
      score: 0,
      band: "none",
      action: "allow",
      reasons: [{ code: "NO_RECORDS", detail: "no confirmed case counts for these subjects" }],
      summary: {
        reports: 0,
        platforms: 0,
        disputed: 0,
        firstReportedAt: null,
        lastReportedAt: null,
        amounts: [{ currency: "CNY", value: 0 }],
      },
      records: [],
      model: "pixiu-score/2",
    });
    expect(evaluatedAt).toMatch(RFC3339_UTC);
    expect(Date.parse(evaluatedAt)).toBeGreaterThanOrEqual(before - 1000);
    expect(Date.parse(evaluatedAt)).toBeLessThanOrEqual(Date.now() + 1000);
  });

  it("one record from one platform: the documented weight, medium/review, CONFIRMED_CASES SINGLE_PLATFORM RECENT", async () => {
    const reporter = await newPlatform();
    const asker = await newPlatform();
    const buyer = await newBuyer();
    const r = await createReport(reporter, buyer, {
      incidentAt: daysAgo(10),
      confirmedAt: daysAgo(8),
      confirmation: "platform_forensics",
      category: "ai_generated_image",
      amount: { value: 129900, currency: "CNY" },
    });
    const a = await score(asker, buyer);
    const expected = expectedScore(decay(10));
    expect(a.score).toBe(expected);
    expect(a.score).toBe(28);
    expect(a.band).toBe("medium");
    expect(a.action).toBe("review");
    expect(codes(a)).toEqual(["CONFIRMED_CASES", "SINGLE_PLATFORM", "RECENT"]);
    expect(a.reasons[0]?.detail).toBe("1 confirmed case counted");
    expect(a.reasons[2]?.detail).toMatch(/^most recent incident (9|10) days ago$/);
    expect(a.summary).toEqual({
      reports: 1,
      platforms: 1,
      disputed: 0,
      firstReportedAt: r.createdAt,
      lastReportedAt: r.createdAt,
      amounts: [{ currency: "CNY", value: 129900 }],
    });
    expect(a.records).toHaveLength(1);
    expect(a.records[0]).toEqual({
      ref: r.id,
      category: "ai_generated_image",
      confirmation: "platform_forensics",
      incidentAt: expect.stringMatching(RFC3339_UTC),
      amountTier: "minor",
      status: "active",
      counted: true,
      disputed: false,
      verified: null,
      afterLookup: false,
      statement: null,
    });
  });

  it("the three-platform worked example of docs/scoring.md §6 scores 81, critical, require_return", async () => {
    const [a, b, c, asker] = await Promise.all([newPlatform(), newPlatform(), newPlatform(), newPlatform()]);
    const buyer = await newBuyer();
    await createReport(a as TestPlatform, [buyer[0] as Subject], {
      confirmation: "platform_forensics",
      category: "ai_generated_image",
      amount: { value: 129900, currency: "CNY" },
      incidentAt: daysAgo(40),
      confirmedAt: daysAgo(39),
    });
    await createReport(b as TestPlatform, [buyer[1] as Subject], {
      confirmation: "merchant_evidence",
      category: "ai_generated_image",
      amount: { value: 459900, currency: "CNY" },
      incidentAt: daysAgo(12),
      confirmedAt: daysAgo(11),
    });
    await createReport(c as TestPlatform, buyer, {
      confirmation: "manual_review",
      category: "edited_image",
      amount: { value: 25900, currency: "CNY" },
      incidentAt: daysAgo(5),
      confirmedAt: daysAgo(4),
    });
    const answer = await score(asker as TestPlatform, buyer);
    const e = (decay(40) + 0.8 * 1.25 * decay(12) + 0.6 * decay(5)) * 2;
    expect(answer.score).toBe(expectedScore(e));
    expect(answer.score).toBe(81);
    expect(answer.band).toBe("critical");
    expect(answer.action).toBe("require_return");
    expect(codes(answer)).toEqual(["CONFIRMED_CASES", "MULTI_PLATFORM", "LARGE_AMOUNT", "RECENT"]);
    expect(answer.reasons[1]?.detail).toBe("confirmed on 3 platforms");
    expect(answer.summary).toMatchObject({
      reports: 3,
      platforms: 3,
      disputed: 0,
      amounts: [{ currency: "CNY", value: 129900 + 459900 + 25900 }],
    });
    // Newest incident first.
    expect(answer.records.map((r) => r.amountTier)).toEqual(["minor", "relatively_large", "minor"]);
  });

  it("five reports from one platform: burst merge and the per-platform cap hold it at 39, medium", async () => {
    const reporter = await newPlatform();
    const buyer = await newBuyer();
    for (const days of [1, 2, 3, 10, 30]) {
      await createReport(reporter, buyer, {
        amount: { value: 30000, currency: "CNY" },
        incidentAt: daysAgo(days),
        confirmedAt: daysAgo(days - 0.5),
      });
    }
    const answer = await score(reporter, buyer);
    expect(answer.score).toBe(39);
    expect(answer.band).toBe("medium");
    expect(answer.action).toBe("review");
    expect(codes(answer)).toEqual([
      "CONFIRMED_CASES",
      "SINGLE_PLATFORM",
      "PLATFORM_CAP",
      "BURST_MERGED",
      "RECENT",
    ]);
    expect(answer.summary.reports).toBe(5);
    expect(answer.summary.platforms).toBe(1);
    expect(answer.summary.amounts).toEqual([{ currency: "CNY", value: 150000 }]);
  });

  it("police reports lift one platform's cap once verified: 59, high, STRONG_CONFIRMATION", async () => {
    const reporter = await newPlatform();
    const buyer = await newBuyer();
    for (const days of [10, 30]) {
      const r = await createReport(reporter, buyer, {
        confirmation: "police_report",
        confirmationRef: `POLICE-${uniqueId("ref")}`,
        amount: { value: 30000, currency: "CNY" },
        incidentAt: daysAgo(days),
        confirmedAt: daysAgo(days - 1),
      });
      const verified = await call(`/v1/admin/reports/${r.id}/verify-confirmation`, {
        token: await adminToken(),
        body: { note: "Reference confirmed with the issuing police station." },
      });
      expect(verified.status).toBe(200);
    }
    const answer = await score(reporter, buyer);
    expect(answer.score).toBe(expectedScore(1.4 * (decay(10) + decay(30))));
    expect(answer.score).toBe(59);
    expect(answer.band).toBe("high");
    expect(answer.action).toBe("require_return");
    expect(codes(answer)).toEqual(["CONFIRMED_CASES", "SINGLE_PLATFORM", "STRONG_CONFIRMATION", "RECENT"]);
    expect(answer.reasons[2]?.detail).toBe("2 cases confirmed by a police report or court ruling");
  });

  it("amount tiers per record, LARGE_AMOUNT, no RECENT beyond 90 days, amounts summed per currency", async () => {
    const reporter = await newPlatform();
    const buyer = await newBuyer();
    // Incidents 8 days apart so no two share a burst window; all older than 90 days.
    const cases: [number, string, string][] = [
      [299_999, "CNY", "minor"],
      [300_000, "CNY", "relatively_large"],
      [3_000_000, "CNY", "huge"],
      [50_000_000, "CNY", "especially_huge"],
      [100_000, "USD", "relatively_large"],
      [100_000, "JPY", "relatively_large"],
      [100_000, "ZZZ", "unknown_currency"],
    ];
    const refs = new Map<string, string>();
    for (const [i, [value, currency, tier]] of cases.entries()) {
      const r = await createReport(reporter, buyer, {
        amount: { value, currency },
        incidentAt: daysAgo(100 + 8 * i),
        confirmedAt: daysAgo(99 + 8 * i),
      });
      refs.set(r.id, tier);
    }
    const answer = await score(reporter, buyer);
    expect(answer.records).toHaveLength(cases.length);
    for (const r of answer.records) {
      expect(r.amountTier, r.ref).toBe(refs.get(r.ref));
    }
    expect(codes(answer)).toEqual(["CONFIRMED_CASES", "SINGLE_PLATFORM", "PLATFORM_CAP", "LARGE_AMOUNT"]);
    expect(answer.reasons.find((r) => r.code === "LARGE_AMOUNT")?.detail).toBe(
      "largest case amount is CNY 500,000 or more (especially huge)",
    );
    expect(answer.summary.amounts).toEqual([
      { currency: "CNY", value: 299_999 + 300_000 + 3_000_000 + 50_000_000 },
      { currency: "JPY", value: 100_000 },
      { currency: "USD", value: 100_000 },
      { currency: "ZZZ", value: 100_000 },
    ]);
  });

  it("all subjects are one buyer: a record matching several of them counts once", async () => {
    const reporter = await newPlatform();
    const buyer = await newBuyer();
    const both = await createReport(reporter, buyer);
    const onlyDevice = await createReport(reporter, [buyer[1] as Subject], {
      incidentAt: daysAgo(60),
      confirmedAt: daysAgo(59),
    });
    const answer = await score(reporter, buyer);
    expect(answer.summary.reports).toBe(2);
    expect(answer.records.map((r) => r.ref).sort()).toEqual([both.id, onlyDevice.id].sort());
    const phoneOnly = await score(reporter, [buyer[0] as Subject]);
    expect(phoneOnly.records.map((r) => r.ref)).toEqual([both.id]);
  });

  it("the answer never reveals the reporting platform or its caseId", async () => {
    const reporter = await newPlatform();
    const asker = await newPlatform();
    const buyer = await newBuyer();
    const r = await createReport(reporter, buyer);
    const res = await call("/v1/scores/query", {
      token: await asker.token(),
      body: { subjects: buyer, purpose: "refund_review" },
    });
    expect(res.status).toBe(200);
    const text = await res.text();
    const body = JSON.parse(text) as ScoreAnswer;
    expect(body.records.map((x) => x.ref)).toEqual([r.id]);
    expect(Object.keys(body.records[0] ?? {}).sort()).toEqual([
      "afterLookup",
      "amountTier",
      "category",
      "confirmation",
      "counted",
      "disputed",
      "incidentAt",
      "ref",
      "statement",
      "status",
      "verified",
    ]);
    for (const secret of [
      reporter.id,
      `Platform ${reporter.id}`,
      r.caseId,
      "platformId",
      "caseId",
      "platform_id",
    ]) {
      expect(text).not.toContain(secret);
    }
    // Nor the hashes the platform sent.
    for (const s of buyer) {
      expect(text).not.toContain(s.hash);
    }
  });

  it("purpose is required and must be one of the three", async () => {
    const p = await newPlatform();
    const buyer = await newBuyer();
    for (const purpose of ["refund_review", "account_review", "dispute_handling"]) {
      expect((await query(p, buyer, purpose)).status, purpose).toBe(200);
    }
    for (const body of [
      { subjects: buyer },
      { subjects: buyer, purpose: "marketing" },
      { subjects: buyer, purpose: "" },
      { subjects: buyer, purpose: null },
    ]) {
      const res = await callJson("/v1/scores/query", { token: await p.token(), body });
      expect(res.status, JSON.stringify(body)).toBe(422);
      expect(res.headers.get("content-type")).toMatch(/^application\/problem\+json/);
      expect(errorPaths(res.body)).toContain("purpose");
    }
  });

  it("subjects are validated (1–8, no duplicates, known type, 64 lower-case hex); no inquiry is logged", async () => {
    const p = await newPlatform();
    const [phone, device] = (await newBuyer()) as [Subject, Subject];
    const nine = await Promise.all(Array.from({ length: 9 }, () => newBuyer().then((b) => b[0] as Subject)));
    const cases: [unknown, string][] = [
      [[], "subjects"],
      [nine, "subjects"],
      [[phone, phone], "subjects.1"],
      [[{ type: "ip", hash: phone.hash }], "subjects.0.type"],
      [[{ type: "phone", hash: phone.hash.toUpperCase() }], "subjects.0.hash"],
      [[{ type: "phone", hash: phone.hash.slice(1) }], "subjects.0.hash"],
      [[{ type: "phone", hash: `${phone.hash.slice(1)}g` }], "subjects.0.hash"],
      [[{ ...device, extra: 1 }], "subjects.0"],
      [undefined, "subjects"],
    ];
    for (const [subjects, path] of cases) {
      const res = await callJson("/v1/scores/query", {
        token: await p.token(),
        body: { subjects, purpose: "refund_review" },
      });
      expect(res.status, path).toBe(422);
      expect(errorPaths(res.body), path).toContain(path);
    }
    const unknown = await callJson("/v1/scores/query", {
      token: await p.token(),
      body: { subjects: [phone], purpose: "refund_review", platform: "x" },
    });
    expect(unknown.status).toBe(422);
    // Eight is the limit, not an error.
    const eight = await callJson("/v1/scores/query", {
      token: await p.token(),
      body: { subjects: nine.slice(0, 8), purpose: "refund_review" },
    });
    expect(eight.status).toBe(200);
    expect(await logCount("inquiries", "platform_id = ?", p.id)).toBe(8);
  });

  it("needs scores:read (403 otherwise) and a valid token (401)", async () => {
    const writer = await newPlatform({ scopes: ["reports:write"] });
    const buyer = await newBuyer();
    expect((await query(writer, buyer)).status).toBe(403);
    const narrowed = await newPlatform();
    const res = await callJson("/v1/scores/query", {
      token: await narrowed.token({ scope: "reports:write" }),
      body: { subjects: buyer, purpose: "refund_review" },
    });
    expect(res.status).toBe(403);
    const anon = await call("/v1/scores/query", { body: { subjects: buyer, purpose: "refund_review" } });
    expect(anon.status).toBe(401);
    expect(anon.headers.get("www-authenticate")).toMatch(/^Bearer/);
    // Admins score nobody: the route is for platforms.
    const admin = await callJson("/v1/scores/query", {
      token: await adminToken(),
      body: { subjects: buyer, purpose: "refund_review" },
    });
    expect(admin.status).toBe(403);
  });

  it("each query is audited once with its purpose and subject keys, and logged per key as an inquiry", async () => {
    const reporter = await newPlatform();
    const asker = await newPlatform();
    const buyer = await newBuyer();
    const r = await createReport(reporter, buyer);
    const keys = r.subjects.map((s) => s.key).sort();
    const res = await call("/v1/scores/query", {
      token: await asker.token(),
      body: { subjects: buyer, purpose: "account_review" },
    });
    expect(res.status).toBe(200);
    const requestId = res.headers.get("x-request-id");
    expect(requestId).toMatch(/^req_/);
    const rows = await auditRows(requestId);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ actor: `platform:${asker.id}`, action: "score.query", outcome: "ok" });
    const details = JSON.parse(rows[0]?.details ?? "{}") as { purpose: string; subjectKeys: string[] };
    expect(details.purpose).toBe("account_review");
    expect([...details.subjectKeys].sort()).toEqual(keys);
    for (const s of buyer) {
      expect(rows[0]?.details).not.toContain(s.hash);
    }
    const inquiries = await logQuery<{ subject_key: string; platform_id: string; purpose: string }>(
      "SELECT subject_key, platform_id, purpose FROM inquiries WHERE request_id = ? ORDER BY subject_key",
      requestId,
    );
    expect(inquiries).toEqual(
      keys.map((k) => ({ subject_key: k, platform_id: asker.id, purpose: "account_review" })),
    );
  });
});

describe("POST /v1/scores/batch", () => {
  it("answers each query in order with its ref, the same answer as a single query", async () => {
    const reporter = await newPlatform();
    const asker = await newPlatform();
    const known = await newBuyer();
    const other = await newBuyer();
    const unknown = await newBuyer();
    await createReport(reporter, known);
    await createReport(reporter, [other[1] as Subject], { confirmation: "court_ruling" });
    const res = await callJson<{ results: (ScoreAnswer & { ref: string })[] }>("/v1/scores/batch", {
      token: await asker.token(),
      body: {
        purpose: "refund_review",
        queries: [
          { ref: "order-3", subjects: known },
          { ref: "order-1", subjects: unknown },
          { ref: "order-2", subjects: other },
        ],
      },
    });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body.results.map((r) => r.ref)).toEqual(["order-3", "order-1", "order-2"]);
    const singles = [await score(asker, known), await score(asker, unknown), await score(asker, other)];
    for (const [i, single] of singles.entries()) {
      const { ref: _ref, evaluatedAt: _a, ...batched } = res.body.results[i] as ScoreAnswer & { ref: string };
      const { evaluatedAt: _b, ...alone } = single;
      expect(batched).toEqual(alone);
    }
    expect(res.body.results[1]?.band).toBe("none");
    expect(res.body.results[0]?.band).not.toBe("none");
    // Unverified, the court ruling weighs as platform forensics (docs/scoring.md §2).
    expect(codes(res.body.results[2] as ScoreAnswer)).toContain("UNVERIFIED_CONFIRMATION");
  });

  it("audits one entry per query with its ref and purpose", async () => {
    const asker = await newPlatform();
    const [b1, b2] = [await newBuyer(), await newBuyer()];
    const res = await call("/v1/scores/batch", {
      token: await asker.token(),
      body: {
        purpose: "dispute_handling",
        queries: [
          { ref: "a-1", subjects: b1 },
          { ref: "a-2", subjects: [b2[0]] },
        ],
      },
    });
    expect(res.status).toBe(200);
    const rows = await auditRows(res.headers.get("x-request-id"));
    expect(rows.map((r) => [r.action, r.target, r.actor])).toEqual([
      ["score.query", "a-1", `platform:${asker.id}`],
      ["score.query", "a-2", `platform:${asker.id}`],
    ]);
    const details = rows.map(
      (r) => JSON.parse(r.details ?? "{}") as { purpose: string; subjectKeys: string[] },
    );
    expect(details.map((d) => d.purpose)).toEqual(["dispute_handling", "dispute_handling"]);
    expect(details.map((d) => d.subjectKeys.length)).toEqual([2, 1]);
    expect(
      await logCount(
        "inquiries",
        "request_id = ? AND purpose = 'dispute_handling'",
        res.headers.get("x-request-id"),
      ),
    ).toBe(3);
  });

  it("100 queries are fine; 101, none, a missing or over-long ref, or no purpose are 422 and log nothing", async () => {
    const asker = await newPlatform();
    const buyer = await newBuyer();
    const queries = Array.from({ length: 101 }, (_, i) => ({ ref: `order-${i}`, subjects: buyer }));
    const ok = await callJson<{ results: { ref: string }[] }>("/v1/scores/batch", {
      token: await asker.token(),
      body: { purpose: "refund_review", queries: queries.slice(0, 100) },
    });
    expect(ok.status).toBe(200);
    expect(ok.body.results.map((r) => r.ref)).toEqual(queries.slice(0, 100).map((q) => q.ref));

    const bad: [unknown, string][] = [
      [{ purpose: "refund_review", queries }, "queries"],
      [{ purpose: "refund_review", queries: [] }, "queries"],
      [{ purpose: "refund_review", queries: [{ subjects: buyer }] }, "queries.0.ref"],
      [{ purpose: "refund_review", queries: [{ ref: "", subjects: buyer }] }, "queries.0.ref"],
      [{ purpose: "refund_review", queries: [{ ref: "x".repeat(129), subjects: buyer }] }, "queries.0.ref"],
      [{ purpose: "refund_review", queries: [{ ref: "x", subjects: [] }] }, "queries.0.subjects"],
      [{ queries: [{ ref: "x", subjects: buyer }] }, "purpose"],
      [{ purpose: "curiosity", queries: [{ ref: "x", subjects: buyer }] }, "purpose"],
    ];
    for (const [body, path] of bad) {
      const res = await callJson("/v1/scores/batch", { token: await asker.token(), body });
      expect(res.status, path).toBe(422);
      expect(errorPaths(res.body), path).toContain(path);
      expect(await logCount("inquiries", "request_id = ?", res.headers.get("x-request-id")), path).toBe(0);
    }
  });
});

// ---------------------------------------------------------------------------------------------
// The hot SQL: query plans and rows read on the local D1.

interface PlanRow {
  id: number;
  parent: number;
  detail: string;
}

async function planOf(q: { sql: string; params: unknown[] }): Promise<string[]> {
  const { results } = await env.DB.prepare(`EXPLAIN QUERY PLAN ${q.sql}`)
    .bind(...q.params)
    .all<PlanRow>();
  return results.map((r) => r.detail);
}

function planOfSql(statement: SQL): Promise<string[]> {
  return planOf(dialect.sqlToQuery(statement));
}

/**
 * Scans that are not of a table: json_each (a bound JSON parameter), a subquery in FROM, and
 * the statements' own CTEs (the score read's platform walk, the write cap's per-item rows).
 */
const NOT_A_TABLE =
  /VIRTUAL TABLE|^SCAN \(subquery-\d+\)$|^SCAN (platforms|fresh|named|named_keys|held|reasons|refused|probes|candidates)$/;

/** No full scan of a real table: every SCAN step is over something that is not a table. */
function expectIndexedOnly(plan: string[], label: string) {
  expect(plan.length, label).toBeGreaterThan(0);
  for (const step of plan) {
    if (step.startsWith("SCAN ")) {
      expect(step, `${label}: ${plan.join(" | ")}`).toMatch(NOT_A_TABLE);
    }
  }
}

function stepIndex(plan: string[], pattern: RegExp, label: string): number {
  const i = plan.findIndex((s) => pattern.test(s));
  expect(i, `${label}: no step ${pattern} in ${plan.join(" | ")}`).toBeGreaterThanOrEqual(0);
  return i;
}

/**
 * A D1 that forwards everything to the real one and records each statement the Worker prepares,
 * on the database itself or on any session it opens (the Worker reads through D1 sessions).
 */
function recordingDb(log: { sql: string; params: unknown[] }[]): D1Database {
  const recording = <T extends D1Database | D1DatabaseSession>(db: T): T =>
    new Proxy(db, {
      get(target, prop) {
        if (prop === "prepare") {
          return (query: string): D1PreparedStatement => {
            const entry = { sql: query, params: [] as unknown[] };
            log.push(entry);
            const stmt = target.prepare(query);
            const bind = stmt.bind.bind(stmt);
            stmt.bind = (...values: unknown[]) => {
              entry.params = values;
              return bind(...values);
            };
            return stmt;
          };
        }
        if (prop === "withSession") {
          return (constraint?: string) => recording((target as D1Database).withSession(constraint));
        }
        const value = Reflect.get(target, prop, target);
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
  return recording(env.DB);
}

/** Sends one request through the Worker with the recording D1; returns the response and the SQL. */
async function recorded(path: string, token: string, body?: unknown) {
  const log: { sql: string; params: unknown[] }[] = [];
  const ctx = createExecutionContext();
  const res = await app.fetch(
    new Request(BASE + path, {
      method: body === undefined ? "GET" : "POST",
      headers: {
        authorization: `Bearer ${token}`,
        ...(body === undefined ? {} : { "content-type": "application/json" }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    }),
    { ...env, DB: recordingDb(log) },
    ctx,
  );
  await waitOnExecutionContext(ctx);
  return { status: res.status, body: (await res.json()) as Record<string, unknown>, log };
}

/** What the Worker asks for per (subject key, platform): the cap, plus one to see if it bit. */
const READ_LIMIT = loadConfig(env).MAX_ACTIVE_REPORTS_PER_SUBJECT + 1;

const TOUCHES_HOT_TABLES = /\b(reports|report_subjects|disputes)\b/;

describe("query plans of the hot SQL", () => {
  it("scoreReadSql hops platform to platform on the counted index, reads the newest links per platform in index order, then reports by primary key", async () => {
    const p = await newPlatform();
    const buyer = await newBuyer();
    const r = await createReport(p, buyer);
    const plan = await planOfSql(scoreReadSql(JSON.stringify(r.subjects.map((s) => s.key)), 51));
    expectIndexedOnly(plan, "score read");
    const text = plan.join(" | ");
    // The platform walk: the first platform per key, then the next one after each, one seek each.
    stepIndex(plan, /^SEARCH s USING COVERING INDEX report_subjects_counted \(subject_key=\?\)$/, "first");
    stepIndex(
      plan,
      /^SEARCH s USING COVERING INDEX report_subjects_counted \(subject_key=\? AND platform_id>\?\)$/,
      "next platform",
    );
    const byId = stepIndex(plan, /^SEARCH r USING INDEX sqlite_autoindex_reports_1 \(id=\?\)$/, "score read");
    const newest = stepIndex(
      plan,
      /^SEARCH s USING COVERING INDEX report_subjects_counted \(subject_key=\? AND platform_id=\?\)$/,
      "newest links",
    );
    // The per-platform list feeds the primary-key probes; the index order is the ORDER BY.
    expect(byId, text).toBeLessThan(newest);
    expect(text).not.toMatch(/TEMP B-TREE/);
    expect(text).not.toMatch(/report_subjects_key_report|reports_status/);
  });

  it("scoreWithPhotosReadSql is the score read and the match read side by side: the same index walks, each photo candidate's report by primary key", async () => {
    const p = await newPlatform();
    const r = await createReport(p, await newBuyer());
    const keys = JSON.stringify(r.subjects.map((s) => s.key));
    const photo = { pdq: "5a".repeat(32), dihedral: Array.from({ length: 8 }, (_, i) => `${i}f`.repeat(32)) };
    const plan = await planOfSql(scoreWithPhotosReadSql(keys, 51, probePairsJson(photoVariants([photo]))));
    expectIndexedOnly(plan, "score read with photos");
    const union = stepIndex(plan, /^UNION ALL$/, "two reads");
    // Before the union: every step of the score read alone, in its order (subqueries renumbered).
    const unnumbered = (steps: string[]) => steps.map((step) => step.replace(/SUBQUERY \d+$/, "SUBQUERY"));
    const records = unnumbered(plan.slice(0, union));
    let at = 0;
    for (const step of unnumbered(await planOfSql(scoreReadSql(keys, 51)))) {
      at = records.indexOf(step, at);
      expect(at, `${step} in ${records.join(" | ")}`).toBeGreaterThanOrEqual(0);
    }
    // After it: the chunk probes by seek, candidates and their reports by primary key.
    const text = plan.slice(union).join(" | ");
    expect(text).toMatch(
      /SEARCH c USING (PRIMARY KEY|COVERING INDEX sqlite_autoindex_fingerprint_chunks_1) \(chunk=\? AND value=\?\)/,
    );
    expect(text).toMatch(/SEARCH f USING INTEGER PRIMARY KEY \(rowid=\?\)/);
    expect(text).toMatch(/SEARCH r USING INDEX sqlite_autoindex_reports_1 \(id=\?\)/);
    expect(text).not.toMatch(/SCAN (c|f|r)\b/);
  });

  it("the report write statements find a case by (platform_id, case_id) and subjects by report_id", async () => {
    const p = await newPlatform();
    const body = reportBody(await newBuyer());
    const prepared = await prepareReport(body as Parameters<typeof prepareReport>[0], env.LEDGER_PEPPER);
    const statements = reportWriteStatements(
      {
        platformId: p.id,
        actor: `platform:${p.id}`,
        action: "report.create",
        requestId: "req_plan",
        now: Date.now(),
        cap: 50,
      },
      [prepared],
    );
    const plans = await Promise.all(
      Object.values(statements)
        .flat()
        .map((s) => planOfSql(s)),
    );
    plans.forEach((plan, i) => {
      expectIndexedOnly(plan, `write statement ${i}`);
    });
    // The cap: per key, the platform's counted links off the partial index, at most the cap.
    stepIndex(
      plans[0] as string[],
      /^SEARCH rs USING COVERING INDEX report_subjects_counted \(subject_key=\? AND platform_id=\?\)$/,
      "over cap",
    );
    // Audit and read-back: one index probe per item on the idempotency key.
    for (const i of [3, 4]) {
      stepIndex(
        plans[i] as string[],
        /^SEARCH r USING INDEX reports_platform_case \(platform_id=\? AND case_id=\?\)( LEFT-JOIN)?$/,
        `write statement ${i}`,
      );
    }
    stepIndex(
      plans[4] as string[],
      /^SEARCH s USING INDEX report_subjects_report \(report_id=\?\)$/,
      "read-back",
    );
    stepIndex(
      plans[2] as string[],
      /^SEARCH r USING (COVERING )?INDEX sqlite_autoindex_reports_1 \(id=\?\)$/,
      "links",
    );
  });

  it("one report by id, with and without the tenant, is a primary-key probe", async () => {
    for (const tenant of ["p-some-platform", null]) {
      const plan = await planOfSql(reportByIdSql("rpt_01JD3X5Z8YQ4W2E6R7T9V0B1N2", tenant));
      expectIndexedOnly(plan, `report by id (${tenant})`);
      stepIndex(
        plan,
        /^SEARCH r USING INDEX (sqlite_autoindex_reports_1 \(id=\?\)|reports_platform_\w+ \(platform_id=\? AND .*)/,
        "by id",
      );
    }
  });

  it("every statement of the hot requests, as the Worker sends them, uses an index", async () => {
    const reporter = await newPlatform();
    const opener = await newPlatform();
    const buyer = await newBuyer();
    const created = await recorded("/v1/reports", await reporter.token(), reportBody(buyer));
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const id = created.body.id as string;
    await createReport(reporter, buyer, { category: "edited_image" });
    const requests = [
      created,
      await recorded("/v1/scores/query", await opener.token(), { subjects: buyer, purpose: "refund_review" }),
      await recorded("/v1/scores/batch", await opener.token(), {
        purpose: "refund_review",
        queries: [
          { ref: "o-1", subjects: buyer },
          { ref: "o-2", subjects: await newBuyer() },
        ],
      }),
      await recorded("/v1/scores/query", await opener.token(), {
        subjects: buyer,
        purpose: "refund_review",
        evidence: [{ pdq: "c3".repeat(32) }],
      }),
      await recorded("/v1/scores/batch", await opener.token(), {
        purpose: "refund_review",
        queries: [
          { ref: "o-1", subjects: buyer, evidence: [{ pdq: "3c".repeat(32) }] },
          { ref: "o-2", subjects: await newBuyer() },
        ],
      }),
      await recorded(`/v1/reports/${id}`, await reporter.token()),
      await recorded("/v1/reports?limit=1", await reporter.token()),
      await recorded("/v1/reports?status=active&limit=1", await reporter.token()),
      await recorded("/v1/disputes", await opener.token(), {
        reportRef: id,
        subjects: buyer,
        reason: "The parcel never arrived.",
      }),
    ];
    // A look-up reads the ledger once, with or without photos: the photo candidates are in the
    // same statement as the records.
    for (const i of [1, 2, 3, 4]) {
      const reads = requests[i]?.log.filter((stmt) => TOUCHES_HOT_TABLES.test(stmt.sql)) ?? [];
      expect(reads, JSON.stringify(requests[i]?.log.map((stmt) => stmt.sql.slice(0, 60)))).toHaveLength(1);
      expect(reads[0]?.sql).toMatch(
        i >= 3 ? /UNION ALL[\s\S]*fingerprint_chunks/ : /^(?![\s\S]*fingerprint)/,
      );
    }
    const opened = requests[requests.length - 1];
    expect(opened?.status, JSON.stringify(opened?.body)).toBe(201);
    const page = requests[6];
    const cursor = page?.body.nextCursor as string;
    expect(cursor).toEqual(expect.any(String));
    requests.push(
      await recorded(`/v1/reports?cursor=${cursor}&limit=1`, await reporter.token()),
      await recorded(`/v1/disputes/${opened?.body.id as string}`, await reporter.token()),
      await recorded("/v1/subject-access", await opener.token(), { requestRef: "T-1", subjects: buyer }),
      await recorded(`/v1/reports/${id}/retract`, await reporter.token(), { reason: "Filed in error." }),
    );
    let checked = 0;
    for (const req of requests) {
      expect(req.status, JSON.stringify(req.body)).toBeLessThan(300);
      for (const stmt of req.log) {
        if (
          !TOUCHES_HOT_TABLES.test(stmt.sql) ||
          /^\s*insert into\s+\S+\s*\([^)]*\)\s*values/i.test(stmt.sql)
        ) {
          continue;
        }
        const plan = await planOf(stmt);
        expectIndexedOnly(plan, stmt.sql);
        expect(plan.join(" | "), stmt.sql).not.toMatch(/SEARCH r USING INDEX reports_status_\w+/);
        checked++;
      }
    }
    expect(checked).toBeGreaterThanOrEqual(12);
  });
});

describe("rows read by the score query", () => {
  it("follow the buyer's own records (≤ 3 × matches + 4 × keys + 5 × (key, platform) pairs) and not the table size", async () => {
    const reporter = await newPlatform();
    const other = await newPlatform();
    const buyer = await newBuyer();
    let keys: string[] = [];
    for (let i = 0; i < 6; i++) {
      const r = await createReport(reporter, buyer, {
        incidentAt: daysAgo(10 + i),
        confirmedAt: daysAgo(9 + i),
      });
      keys = r.subjects.map((s) => s.key);
    }
    for (let i = 0; i < 5; i++) {
      await createReport(other, await newBuyer());
    }
    const q = dialect.sqlToQuery(scoreReadSql(JSON.stringify(keys), READ_LIMIT));
    const run = () =>
      env.DB.prepare(q.sql)
        .bind(...q.params)
        .all();
    const first = await run();
    const matches = first.results.length;
    expect(matches).toBe(12); // 6 reports × 2 subject keys
    const bound = scoreRowsBound({ matches, keys: 2, pairs: 2 });
    expect(first.meta.rows_read).toBeLessThanOrEqual(bound);

    // 200 unrelated reports, active, from another platform.
    const bulk = await callJson<{ results: { status: number }[] }>("/v1/reports/bulk", {
      token: await other.token(),
      body: {
        reports: await Promise.all(Array.from({ length: 200 }, async () => reportBody(await newBuyer()))),
      },
    });
    expect(bulk.status).toBe(200);
    expect(bulk.body.results.every((r) => r.status === 201)).toBe(true);
    const second = await run();
    expect(second.results.length).toBe(matches);
    expect(second.meta.rows_read).toBeLessThanOrEqual(bound);
    // At most one more row per key: the index entry just past a range, which the walk reads to
    // stop, may now exist. Nothing proportional to the 200 new reports.
    expect(second.meta.rows_read - first.meta.rows_read).toBeGreaterThanOrEqual(0);
    expect(second.meta.rows_read - first.meta.rows_read).toBeLessThanOrEqual(keys.length);
  });

  it("a buyer with no record reads (almost) nothing: a few rows per key", async () => {
    const keys = [uniqueId("nokey"), uniqueId("nokey")];
    const q = dialect.sqlToQuery(scoreReadSql(JSON.stringify(keys), READ_LIMIT));
    const res = await env.DB.prepare(q.sql)
      .bind(...q.params)
      .all();
    expect(res.results).toHaveLength(0);
    expect(res.meta.rows_read).toBeLessThanOrEqual(scoreRowsBound({ matches: 0, keys: 2, pairs: 0 }));
  });
});
