/**
 * Feedback loops are detected, not just forbidden (issue 13, point 3; docs/scoring.md §3c): a
 * report whose subjects its reporter looked up within AFTER_LOOKUP_WINDOW_DAYS before, when the
 * ledger answered `review` or worse, is flagged `after_lookup` and adds no consensus weight until
 * an admin clears it. Through the HTTP API.
 *
 * This file breaks a log shard on purpose (a renamed table), so it runs on its own storage: test
 * files do not share local storage.
 */
import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { loadConfig } from "../worker/env";
import { toRfc3339 } from "../worker/lib/time";
import { shardOf } from "../worker/log/client";
import { LATEST_LOOKUPS_IN_SQL, OWN_LOOKUPS_SQL } from "../worker/log/shard";
import { AFTER_LOOKUP_PER_KEY, missedRanges } from "../worker/services/after-lookup";
import { modelOf, type PastRow, pastScoreReadSql } from "../worker/services/scores";
import {
  adminToken,
  auditRowsEventually,
  callJson,
  countRows,
  createReport,
  logShardOf,
  lookupAppend,
  newBuyer,
  newPlatform,
  platformOnShard,
  queryPlan,
  reportBody,
  scoreOk,
  type TestPlatform,
  uniqueId,
} from "./harness";

type Subject = { type: string; hash: string };

interface Flag {
  lookedUpAt: string;
  band: string;
  clearedAt: string | null;
}

interface Report {
  id: string;
  caseId: string;
  status: string;
  subjects: { type: string; key: string }[];
  afterLookup: Flag | null;
}

interface Answer {
  score: number;
  band: string;
  action: string;
  reasons: { code: string; detail: string }[];
  records: { ref: string; afterLookup: boolean }[];
}

interface Listed {
  id: string;
  platformId: string;
  caseId: string;
  status: string;
  category: string;
  confirmation: string;
  createdAt: string;
  afterLookupAt: string;
  afterLookupBand: string;
  clearedAt: string | null;
  clearedBy: string | null;
}

const DAY = 86_400_000;
const WINDOW_DAYS = loadConfig(env).AFTER_LOOKUP_WINDOW_DAYS;

/** Files a report as `p`; expects 201 and answers the report as created. */
async function report(p: TestPlatform, buyer: Subject[], overrides: Record<string, unknown> = {}) {
  return (await createReport(p, buyer, overrides)) as unknown as Report;
}

/** The reporter's own view of its report. */
async function ownView(p: TestPlatform, id: string): Promise<Report> {
  const res = await callJson<Report>(`/v1/reports/${id}`, { token: await p.token() });
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res.body;
}

const clear = async (id: string, reason = "The platform's forensic report predates its look-up.") =>
  callJson<Report & { detail?: string }>(`/v1/admin/reports/${id}/clear-after-lookup`, {
    token: await adminToken(),
    body: { reason },
  });

/** Every page of the admin list (`cleared=true` for the cleared ones). */
async function listed(cleared = false): Promise<Listed[]> {
  const items: Listed[] = [];
  let cursor: string | null = null;
  for (let page = 0; page < 50; page++) {
    const query: string = `?limit=2${cleared ? "&cleared=true" : ""}${cursor ? `&cursor=${cursor}` : ""}`;
    const res = await callJson<{ items: Listed[]; nextCursor: string | null }>(
      `/v1/admin/reports/after-lookup${query}`,
      { token: await adminToken() },
    );
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    items.push(...res.body.items);
    cursor = res.body.nextCursor;
    if (cursor === null) {
      return items;
    }
  }
  throw new Error("the admin list did not end");
}

/**
 * Appends a look-up of `keys` by `p` made at `at` straight to its log shard (as `logLookups`
 * writes one: an entry with the keys and an inquiry row per key), for look-ups in the past.
 */
async function lookUpAt(p: TestPlatform, keys: string[], at: number) {
  const actor = `platform:${p.id}`;
  const id = uniqueId("req");
  const result = await logShardOf(actor).append(
    shardOf(actor, Number(env.LOG_SHARDS ?? 1)),
    lookupAppend(id, at, actor, keys, p.id),
  );
  expect(result.ok).toBe(true);
}

const codes = (a: Answer) => a.reasons.map((r) => r.code);

describe("a report filed after the reporter's own look-up", () => {
  it("is flagged, adds no consensus weight until an admin clears it (audited), then counts as any other", async () => {
    const [a, b, asker] = await Promise.all([newPlatform(), newPlatform(), newPlatform()]);
    const buyer = await newBuyer();
    const first = await report(a, buyer);
    expect(first.afterLookup).toBeNull();

    // B looks the buyer up: A's one record (forensics, 10 days ago: w = 0.9812) answers 28, review.
    const seen = await scoreOk<Answer>(b, buyer);
    expect(seen).toMatchObject({ score: 28, band: "medium", action: "review" });
    const echo = await report(b, buyer);
    expect(echo.afterLookup).toEqual({ lookedUpAt: expect.any(String), band: "medium", clearedAt: null });
    expect(Date.now() - Date.parse(echo.afterLookup?.lookedUpAt ?? "")).toBeLessThan(60_000);
    expect((await ownView(b, echo.id)).afterLookup).toEqual(echo.afterLookup);

    // The score is what A alone gives, not the two-platform consensus.
    const flagged = await scoreOk<Answer>(asker, buyer);
    expect(flagged.score).toBe(28);
    expect(flagged.band).toBe("medium");
    expect(Object.fromEntries(flagged.records.map((r) => [r.ref, r.afterLookup]))).toEqual({
      [first.id]: false,
      [echo.id]: true,
    });
    expect(codes(flagged)).toContain("AFTER_LOOKUP");
    expect(JSON.stringify(flagged)).not.toContain(b.id);

    // Admins list it, with what they need to judge it.
    const waiting = (await listed()).find((r) => r.id === echo.id);
    expect(waiting).toEqual({
      id: echo.id,
      platformId: b.id,
      caseId: echo.caseId,
      status: "active",
      category: "ai_generated_image",
      confirmation: "platform_forensics",
      createdAt: expect.any(String),
      afterLookupAt: echo.afterLookup?.lookedUpAt,
      afterLookupBand: "medium",
      clearedAt: null,
      clearedBy: null,
    });

    const cleared = await clear(echo.id);
    expect(cleared.status, JSON.stringify(cleared.body)).toBe(200);
    expect(cleared.body.afterLookup).toEqual({
      lookedUpAt: echo.afterLookup?.lookedUpAt,
      band: "medium",
      clearedAt: expect.any(String),
    });
    const rows = await auditRowsEventually(cleared.headers.get("x-request-id"));
    expect(rows).toEqual([
      expect.objectContaining({
        action: "report.clear_after_lookup",
        actor: "admin:test-admin",
        target: echo.id,
        outcome: "ok",
      }),
    ]);
    expect(JSON.parse(rows[0]?.details ?? "{}")).toMatchObject({
      afterLookupAt: Date.parse(echo.afterLookup?.lookedUpAt ?? ""),
      afterLookupBand: "medium",
      reason: "The platform's forensic report predates its look-up.",
    });

    // Now the consensus of two platforms: (0.9812 + 0.9812) × 1.5 = 2.94, score 63, high.
    const consensus = await scoreOk<Answer>(asker, buyer);
    expect(consensus).toMatchObject({ score: 63, band: "high", action: "require_return" });
    expect(consensus.records.every((r) => !r.afterLookup)).toBe(true);
    expect(codes(consensus)).not.toContain("AFTER_LOOKUP");
    expect(codes(consensus)).toContain("MULTI_PLATFORM");

    // The flag left the waiting list for the cleared one, and the reporter sees it cleared.
    expect((await listed()).map((r) => r.id)).not.toContain(echo.id);
    expect((await listed(true)).find((r) => r.id === echo.id)).toMatchObject({
      clearedAt: cleared.body.afterLookup?.clearedAt,
      clearedBy: "admin:test-admin",
    });
    expect((await ownView(b, echo.id)).afterLookup?.clearedAt).toBe(cleared.body.afterLookup?.clearedAt);

    // Idempotent: clearing again answers the report unchanged, audited as replayed.
    const again = await clear(echo.id);
    expect(again.status).toBe(200);
    expect(again.body).toEqual(cleared.body);
    const replay = await auditRowsEventually(again.headers.get("x-request-id"));
    expect(replay[0]).toMatchObject({ action: "report.clear_after_lookup", outcome: "replayed" });
  });

  it("records the look-up it follows in the report's audit entry", async () => {
    const [a, b] = await Promise.all([newPlatform(), newPlatform()]);
    const buyer = await newBuyer();
    await report(a, buyer);
    await scoreOk(b, buyer);
    const res = await callJson<Report>("/v1/reports", { token: await b.token(), body: reportBody(buyer) });
    expect(res.status).toBe(201);
    const rows = await auditRowsEventually(res.headers.get("x-request-id"));
    expect(rows[0]).toMatchObject({ action: "report.create", outcome: "created", target: res.body.id });
    expect(JSON.parse(rows[0]?.details ?? "{}").afterLookup).toEqual({
      at: Date.parse(res.body.afterLookup?.lookedUpAt ?? ""),
      band: "medium",
    });
  });

  it("a look-up that answered none or low does not flag", async () => {
    const [newcomer, b] = await Promise.all([newPlatform({ probation: true }), newPlatform()]);
    const unknown = await newBuyer();
    expect((await scoreOk<Answer>(b, unknown)).band).toBe("none");
    expect((await report(b, unknown)).afterLookup).toBeNull();

    // A member on probation's one record weighs 0.4906: score 15, low, allow.
    const weak = await newBuyer();
    await report(newcomer, weak);
    expect(await scoreOk<Answer>(b, weak)).toMatchObject({ band: "low", action: "allow" });
    expect((await report(b, weak)).afterLookup).toBeNull();
  });

  it("a platform catching a repeat forger again is not flagged: its own earlier case is not another member's word", async () => {
    const [a, b] = await Promise.all([newPlatform(), newPlatform()]);
    const buyer = await newBuyer();
    await report(a, buyer);
    // A's own record answers 28, review; A investigates the new claim itself and reports it.
    expect((await scoreOk<Answer>(a, buyer)).band).toBe("medium");
    expect((await report(a, buyer)).afterLookup).toBeNull();
    // The same look-up and report by B, whose review came from A's record, is flagged.
    expect((await scoreOk<Answer>(b, buyer)).band).toBe("medium");
    expect((await report(b, buyer)).afterLookup).toMatchObject({ band: "medium" });
  });

  it("an admin verifying the report's police reference clears its flag too: a checked police report is independent evidence", async () => {
    const [a, b, asker] = await Promise.all([newPlatform(), newPlatform(), newPlatform()]);
    const buyer = await newBuyer();
    await report(a, buyer);
    expect((await scoreOk<Answer>(b, buyer)).band).toBe("medium");
    const police = await report(b, buyer, {
      confirmation: "police_report",
      confirmationRef: `POLICE-${uniqueId("ref")}`,
    });
    expect(police.afterLookup).toMatchObject({ band: "medium", clearedAt: null });
    const verified = await callJson<Report>(`/v1/admin/reports/${police.id}/verify-confirmation`, {
      token: await adminToken(),
      body: { note: "Reference confirmed with the issuing police station." },
    });
    expect(verified.status, JSON.stringify(verified.body)).toBe(200);
    expect(verified.body.afterLookup?.clearedAt).toEqual(expect.any(String));
    expect((await listed()).map((r) => r.id)).not.toContain(police.id);
    const rows = await auditRowsEventually(verified.headers.get("x-request-id"));
    expect(JSON.parse(rows[0]?.details ?? "{}")).toMatchObject({ afterLookupCleared: true });
    const answer = await scoreOk<Answer>(asker, buyer);
    expect(codes(answer)).not.toContain("AFTER_LOOKUP");
    expect(codes(answer)).toContain("STRONG_CONFIRMATION");
    expect(answer.band).not.toBe("medium");
  });

  it("the answer is the one the look-up got then: a record filed after the look-up does not flag; one retracted since still does", async () => {
    const [a, b] = await Promise.all([newPlatform(), newPlatform()]);
    // B looks up first (nothing on record), then A reports, then B: at B's look-up the answer was none.
    const later = await newBuyer();
    expect((await scoreOk<Answer>(b, later)).band).toBe("none");
    await report(a, later);
    expect((await report(b, later)).afterLookup).toBeNull();

    // B looks up while A's record stands (review); A retracts it; B reports: at T it was review.
    const gone = await newBuyer();
    const withdrawn = await report(a, gone);
    expect((await scoreOk<Answer>(b, gone)).band).toBe("medium");
    const retracted = await callJson(`/v1/reports/${withdrawn.id}/retract`, {
      token: await a.token(),
      body: { reason: "Filed on the wrong account." },
    });
    expect(retracted.status).toBe(200);
    expect((await scoreOk<Answer>(b, gone)).band).toBe("none");
    const echo = await report(b, gone);
    // The newest look-up (none) does not flag; the one before it, within the window, does.
    expect(echo.afterLookup).toMatchObject({ band: "medium", clearedAt: null });
  });

  it("only the window counts: a look-up older than AFTER_LOOKUP_WINDOW_DAYS does not flag", async () => {
    const [a, b] = await Promise.all([newPlatform(), newPlatform()]);
    const buyer = await newBuyer();
    const old = await report(a, buyer);
    // A's record has stood for WINDOW_DAYS + 3 days.
    await env.DB.prepare("UPDATE reports SET created_at = ?, updated_at = ? WHERE id = ?")
      .bind(Date.now() - (WINDOW_DAYS + 3) * DAY, Date.now() - (WINDOW_DAYS + 3) * DAY, old.id)
      .run();
    const keys = old.subjects.map((s) => s.key);
    await lookUpAt(b, keys, Date.now() - (WINDOW_DAYS + 1) * DAY);
    expect((await report(b, buyer)).afterLookup).toBeNull();

    const inside = Date.now() - (WINDOW_DAYS - 1) * DAY;
    await lookUpAt(b, keys, inside);
    const flagged = await report(b, buyer);
    expect(flagged.afterLookup).toEqual({
      lookedUpAt: toRfc3339(inside),
      band: "medium",
      clearedAt: null,
    });
  });

  it("another platform's look-up does not flag, even one logged on the reporter's own shard", async () => {
    const [a, b] = await Promise.all([newPlatform(), newPlatform()]);
    const neighbour = await platformOnShard(shardOf(`platform:${b.id}`, Number(env.LOG_SHARDS ?? 1)));
    const buyer = await newBuyer();
    await report(a, buyer);
    expect((await scoreOk<Answer>(neighbour, buyer)).band).toBe("medium");
    expect((await report(b, buyer)).afterLookup).toBeNull();
  });

  it("a look-up by one subject flags a report naming it among others; the answer counts every subject looked up", async () => {
    const [a, b] = await Promise.all([newPlatform(), newPlatform()]);
    const [phone, device] = (await newBuyer()) as [Subject, Subject];
    const email = { type: "email", hash: (await newBuyer())[0]?.hash as string };
    // A's record is on the device only; B looks up phone and device (review, through the device),
    // then reports phone and e-mail: the look-up shares the phone, and its answer was review.
    await report(a, [device]);
    expect((await scoreOk<Answer>(b, [phone, device])).band).toBe("medium");
    expect((await report(b, [phone, email])).afterLookup).toMatchObject({ band: "medium" });
  });

  it("bulk reports are flagged item by item, from one read of the inquiry log", async () => {
    const [a, b] = await Promise.all([newPlatform(), newPlatform()]);
    const [seen, unseen, empty] = [await newBuyer(), await newBuyer(), await newBuyer()];
    await report(a, seen);
    await report(a, unseen);
    expect((await scoreOk<Answer>(b, seen)).band).toBe("medium");
    expect((await scoreOk<Answer>(b, empty)).band).toBe("none");
    const bodies = [reportBody(seen), reportBody(unseen), reportBody(empty)];
    const res = await callJson<{ results: { index: number; status: number; id: string }[] }>(
      "/v1/reports/bulk",
      {
        token: await b.token(),
        body: { reports: bodies },
      },
    );
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body.results.map((r) => r.status)).toEqual([201, 201, 201]);
    const views = await Promise.all(res.body.results.map((r) => ownView(b, r.id)));
    expect(views.map((v) => v.afterLookup?.band ?? null)).toEqual(["medium", null, null]);

    // A replay in a later bulk call keeps each flag as it was written.
    await scoreOk(b, unseen);
    const replay = await callJson<{ results: { status: number; id: string }[] }>("/v1/reports/bulk", {
      token: await b.token(),
      body: { reports: bodies },
    });
    expect(replay.body.results.map((r) => r.status)).toEqual([200, 200, 200]);
    const after = await Promise.all(replay.body.results.map((r) => ownView(b, r.id)));
    expect(after.map((v) => v.afterLookup)).toEqual(views.map((v) => v.afterLookup));
  });

  it("an idempotent replay never changes the flag, set or unset", async () => {
    const [a, b] = await Promise.all([newPlatform(), newPlatform()]);
    const buyer = await newBuyer();
    await report(a, buyer);
    // Filed before any look-up: not flagged; a look-up since does not flag its replay.
    const body = reportBody(buyer);
    const clean = await callJson<Report>("/v1/reports", { token: await b.token(), body });
    expect(clean.status).toBe(201);
    expect(clean.body.afterLookup).toBeNull();
    // A's record and B's own: 63, high.
    expect((await scoreOk<Answer>(b, buyer)).band).toBe("high");
    const cleanReplay = await callJson<Report>("/v1/reports", { token: await b.token(), body });
    expect(cleanReplay.status).toBe(200);
    expect(cleanReplay.body.afterLookup).toBeNull();

    // Filed after one: flagged; a later look-up does not move the flag to it.
    const other = await newBuyer();
    await report(a, other);
    await scoreOk(b, other);
    const echoBody = reportBody(other);
    const echo = await callJson<Report>("/v1/reports", { token: await b.token(), body: echoBody });
    expect(echo.status).toBe(201);
    expect(echo.body.afterLookup).toMatchObject({ band: "medium" });
    await scoreOk(b, other);
    const echoReplay = await callJson<Report>("/v1/reports", { token: await b.token(), body: echoBody });
    expect(echoReplay.status).toBe(200);
    expect(echoReplay.body.afterLookup).toEqual(echo.body.afterLookup);
  });

  it("when the inquiry log cannot be read, the write answers 503 with Retry-After and writes nothing", async () => {
    const [a, b] = await Promise.all([newPlatform(), newPlatform()]);
    const buyer = await newBuyer();
    await report(a, buyer);
    const shard = logShardOf(`platform:${b.id}`);
    await runInDurableObject(shard, (_o, state) => {
      state.storage.sql.exec("ALTER TABLE inquiries RENAME TO inquiries_away");
    });
    try {
      const res = await callJson<{ detail: string }>("/v1/reports", {
        token: await b.token(),
        body: reportBody(buyer),
      });
      expect(res.status).toBe(503);
      expect(res.headers.get("retry-after")).toMatch(/^\d+$/);
      expect(res.headers.get("content-type")).toMatch(/^application\/problem\+json/);
      expect(res.body.detail).toMatch(/nothing was written/);
      const bulk = await callJson("/v1/reports/bulk", {
        token: await b.token(),
        body: { reports: [reportBody(buyer)] },
      });
      expect(bulk.status).toBe(503);
      expect(await countRows("reports", "platform_id = ?", b.id)).toBe(0);
    } finally {
      await runInDurableObject(shard, (_o, state) => {
        state.storage.sql.exec("ALTER TABLE inquiries_away RENAME TO inquiries");
      });
    }
    expect((await report(b, buyer)).afterLookup).toBeNull();
  });
});

describe("clearing and listing", () => {
  it("404 for no such report; 409 when the report is not flagged or no longer counts", async () => {
    const [a, b] = await Promise.all([newPlatform(), newPlatform()]);
    expect((await clear("rpt_01JZZZZZZZZZZZZZZZZZZZZZZZ")).status).toBe(404);
    const buyer = await newBuyer();
    const plain = await report(a, buyer);
    const unflagged = await clear(plain.id);
    expect(unflagged.status).toBe(409);
    expect(unflagged.body.detail).toMatch(/not flagged/);

    await scoreOk(b, buyer);
    const echo = await report(b, buyer);
    expect(echo.afterLookup).not.toBeNull();
    const retracted = await callJson(`/v1/reports/${echo.id}/retract`, {
      token: await b.token(),
      body: { reason: "Filed after our own look-up." },
    });
    expect(retracted.status).toBe(200);
    const closed = await clear(echo.id);
    expect(closed.status).toBe(409);
    expect(closed.body.detail).toMatch(/retracted/);
    // Still listed as waiting, with its status: a closed record counts nowhere.
    expect((await listed()).find((r) => r.id === echo.id)?.status).toBe("retracted");
  });

  it("lists newest look-up first, cursor-paginated", async () => {
    const [a, b] = await Promise.all([newPlatform(), newPlatform()]);
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      const buyer = await newBuyer();
      await report(a, buyer);
      await scoreOk(b, buyer);
      ids.push((await report(b, buyer)).id);
    }
    const all = await listed();
    const positions = ids.map((id) => all.findIndex((r) => r.id === id));
    expect(positions.every((p) => p >= 0)).toBe(true);
    // Newest first: the last one flagged comes first.
    expect([...positions].sort((x, y) => x - y)).toEqual([...positions].reverse());
    const times = all.map((r) => Date.parse(r.afterLookupAt));
    expect(times).toEqual([...times].sort((x, y) => y - x));
    // A read, audited after the answer like every admin read.
    const res = await callJson("/v1/admin/reports/after-lookup?limit=1", { token: await adminToken() });
    const rows = await auditRowsEventually(res.headers.get("x-request-id"));
    expect(rows).toEqual([
      expect.objectContaining({
        action: "admin.report.list_after_lookup",
        actor: "admin:test-admin",
        outcome: "ok",
      }),
    ]);
  });

  it("members cannot list or clear (admin only)", async () => {
    const [a, b] = await Promise.all([newPlatform(), newPlatform()]);
    const buyer = await newBuyer();
    await report(a, buyer);
    await scoreOk(b, buyer);
    const echo = await report(b, buyer);
    const list = await callJson("/v1/admin/reports/after-lookup", { token: await b.token() });
    expect(list.status).toBe(403);
    const res = await callJson(`/v1/admin/reports/${echo.id}/clear-after-lookup`, {
      token: await b.token(),
      body: { reason: "We investigated it ourselves." },
    });
    expect(res.status).toBe(403);
    expect((await ownView(b, echo.id)).afterLookup?.clearedAt).toBeNull();
  });
});

describe("reporter trust", () => {
  it("an uncleared flagged report neither is corroborated nor corroborates; cleared, it does both", async () => {
    const [a, b] = await Promise.all([newPlatform(), newPlatform()]);
    const buyer = await newBuyer();
    await report(a, buyer);
    await scoreOk(b, buyer);
    const echo = await report(b, buyer);
    const recompute = async () => {
      await env.DB.prepare("DELETE FROM platform_trust WHERE platform_id IN (?, ?)").bind(a.id, b.id).run();
      const job = await callJson("/v1/admin/maintenance/run", { token: await adminToken(), body: {} });
      expect(job.status, JSON.stringify(job.body)).toBe(200);
      const { results } = await env.DB.prepare(
        "SELECT platform_id, corroborated FROM platform_trust WHERE platform_id IN (?, ?)",
      )
        .bind(a.id, b.id)
        .all<{ platform_id: string; corroborated: number }>();
      return Object.fromEntries(results.map((r) => [r.platform_id, r.corroborated]));
    };
    expect(await recompute()).toEqual({ [a.id]: 0, [b.id]: 0 });
    expect((await clear(echo.id)).status).toBe(200);
    expect(await recompute()).toEqual({ [a.id]: 1, [b.id]: 1 });
  });
});

describe("the reads of the check", () => {
  it("the log shard reads each key's inquiries in the window off the (subject_key, at) index", async () => {
    const p = await newPlatform();
    const plan = await runInDurableObject(logShardOf(`platform:${p.id}`), (_o, state) =>
      state.storage.sql
        .exec<{ detail: string }>(`EXPLAIN QUERY PLAN ${OWN_LOOKUPS_SQL}`, '["k"]', 0, Date.now(), p.id, 20)
        .toArray()
        .map((r) => r.detail),
    );
    const text = plan.join(" | ");
    expect(text).toMatch(/SEARCH i USING INDEX inquiries_subject_at \(subject_key=\? AND at>\? AND at<\?\)/);
    for (const step of plan) {
      if (step.startsWith("SCAN ")) {
        expect(step, text).toMatch(/VIRTUAL TABLE|^SCAN \(subquery-\d+\)$/);
      }
    }
  });

  it("the second shard call reads each (key, interval) off the (subject_key, at) index", async () => {
    const p = await newPlatform();
    const plan = await runInDurableObject(logShardOf(`platform:${p.id}`), (_o, state) =>
      state.storage.sql
        .exec<{ detail: string }>(`EXPLAIN QUERY PLAN ${LATEST_LOOKUPS_IN_SQL}`, p.id, '[["k", 0, 1]]')
        .toArray()
        .map((r) => r.detail),
    );
    const text = plan.join(" | ");
    expect(text).toMatch(/SEARCH i USING INDEX inquiries_subject_at \(subject_key=\? AND at>\? AND at<\?\)/);
    for (const step of plan) {
      if (step.startsWith("SCAN ")) {
        expect(step, text).toMatch(/VIRTUAL TABLE/);
      }
    }
  });

  it("what the second call asks follows the buyer's records, not how many look-ups were made", () => {
    const { model } = modelOf(loadConfig(env));
    const t0 = Date.UTC(2026, 0, 10);
    // Another platform's record on k1, created at t0 + 1 day, retracted at t0 + 3 days.
    const row: PastRow = {
      subject_key: "k1",
      id: "r1",
      platform_id: "other",
      category: "ai_generated_image",
      confirmation: "platform_forensics",
      incident_at: t0,
      created_at: t0 + DAY,
      amount_value: 129900,
      amount_currency: "CNY",
      status: "retracted",
      updated_at: t0 + 3 * DAY,
      confirmation_verified_at: null,
      after_lookup_at: null,
      after_lookup_cleared_at: null,
      disputes: null,
      trust: 1,
      group_id: null,
    };
    const asks = (n: number) => {
      const lookups = Array.from({ length: n }, (_, i) => ({ at: t0 + 3 * DAY + i, keys: ["k1", "k2"] }));
      return missedRanges([row], lookups, new Set(["k1"]), t0, t0 + 3 * DAY + n, 50, model, "me");
    };
    const one = asks(AFTER_LOOKUP_PER_KEY);
    // The one interval the record counted in, once for the report's one key.
    expect(one.map(({ key, from, to }) => [key, from, to])).toEqual([["k1", t0 + DAY, t0 + 3 * DAY - 1]]);
    expect(asks(500)).toEqual(one);
  });

  it("the ledger read walks the counted index as the score read does and the closed links by their own index", async () => {
    const p = await newPlatform();
    const r = await report(p, await newBuyer());
    const keys = JSON.stringify(r.subjects.map((s) => s.key));
    const plan = await queryPlan(pastScoreReadSql(keys, 51, Date.now() - DAY, Date.now()));
    const text = plan.join(" | ");
    for (const step of plan) {
      if (step.startsWith("SCAN ")) {
        expect(step, text).toMatch(/VIRTUAL TABLE|^SCAN (platforms|k)$|^SCAN \(subquery-\d+\)$/);
      }
    }
    expect(text).toMatch(/SEARCH s USING COVERING INDEX report_subjects_counted/);
    expect(text).toMatch(/SEARCH s USING (COVERING )?INDEX report_subjects_closed \(subject_key=\?\)/);
    expect(text).toMatch(/SEARCH r USING INDEX sqlite_autoindex_reports_1 \(id=\?\)/);
    expect(text).toMatch(/SEARCH d USING INDEX disputes_report \(report_id=\?\)/);
  });
});
