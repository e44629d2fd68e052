/**
 * A score query is a read (issue 10): one statement on the ledger database and nothing written
 * there; its log (audit entry, inquiry rows, usage, the daily cap) is committed in the log store
 * before the answer leaves, and a look-up that cannot be logged is not answered (503).
 *
 * This file breaks a log shard on purpose (a dropped table), so it runs on its own storage: test
 * files do not share local storage.
 */
import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { shardOf } from "../worker/log/client";
import {
  adminToken,
  auditRows,
  callJson,
  createReport,
  drainAuditOutbox,
  logCount,
  logQuery,
  logShardOf,
  newBuyer,
  newPlatform,
  type TestPlatform,
} from "./harness";

type Subject = { type: string; hash: string };

interface Problem {
  status: number;
  detail: string;
  type: string;
}

/** Row counts of every ledger table: a look-up must leave all of them as they were. */
async function ledgerFootprint() {
  return env.DB.prepare(
    `SELECT (SELECT count(*) FROM audit_log) + (SELECT count(*) FROM audit_outbox) AS audit,
       (SELECT count(*) FROM inquiries) AS inquiries,
       (SELECT coalesce(sum(queries), 0) + coalesce(sum(subjects), 0) FROM usage_daily) AS usage,
       (SELECT count(*) FROM token_uses) AS tokens, (SELECT count(*) FROM reports) AS reports,
       (SELECT count(*) FROM events) AS events`,
  ).first();
}

async function score(p: TestPlatform, subjects: Subject[], purpose = "refund_review") {
  return callJson<Record<string, unknown> & Problem>("/v1/scores/query", {
    token: await p.token(),
    body: { subjects, purpose },
  });
}

describe("a score query is a read on the ledger", () => {
  it("writes nothing to the ledger database; its entry, inquiries and usage are in the platform's log shard", async () => {
    const [reporter, asker] = await Promise.all([newPlatform(), newPlatform()]);
    const buyer = await newBuyer();
    const report = await createReport(reporter, buyer);
    await drainAuditOutbox(); // the report's own entry leaves the outbox
    const before = await ledgerFootprint();

    const res = await score(asker, buyer);
    expect(res.status).toBe(200);
    expect(res.body.band).not.toBe("none");
    const batch = await callJson("/v1/scores/batch", {
      token: await asker.token(),
      body: {
        purpose: "account_review",
        queries: [
          { ref: "o-1", subjects: buyer },
          { ref: "o-2", subjects: await newBuyer() },
        ],
      },
    });
    expect(batch.status).toBe(200);
    // Let any after-response work land before comparing.
    await new Promise((r) => setTimeout(r, 100));
    expect(await ledgerFootprint()).toEqual(before);

    const rows = await auditRows(res.headers.get("x-request-id"));
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ action: "score.query", actor: `platform:${asker.id}`, outcome: "ok" });
    const details = JSON.parse(rows[0]?.details ?? "{}") as { purpose: string; subjectKeys: string[] };
    expect(details.purpose).toBe("refund_review");
    expect([...details.subjectKeys].sort()).toEqual(report.subjects.map((s) => s.key).sort());
    const inShard = await runInDurableObject(logShardOf(`platform:${asker.id}`), (_o, state) =>
      state.storage.sql.exec("SELECT count(*) AS n FROM inquiries WHERE platform_id = ?", asker.id).toArray(),
    );
    expect(inShard).toEqual([{ n: 6 }]);
    expect(await logCount("usage", "platform_id = ? AND queries = 3 AND subjects = 6", asker.id)).toBe(1);
    // The buyer sees the look-ups.
    const access = await callJson<{ inquiries: { purpose: string }[] }>("/v1/subject-access", {
      token: await reporter.token(),
      body: { requestRef: "T-1", subjects: buyer },
    });
    expect(access.body.inquiries.map((i) => i.purpose).sort()).toEqual(["account_review", "refund_review"]);
  });

  it("every look-up's entry is chained at once: the shards have no unsealed backlog", async () => {
    const asker = await newPlatform();
    await Promise.all(
      Array.from({ length: 50 }, async () => expect((await score(asker, await newBuyer())).status).toBe(200)),
    );
    const verdict = await logShardOf(`platform:${asker.id}`).verify();
    expect(verdict.ok).toBe(true);
    const [unchained] = await logQuery<{ n: number }>(
      "SELECT count(*) AS n FROM entries WHERE hash IS NULL OR prev_hash IS NULL",
    );
    expect(unchained?.n).toBe(0);
  });
});

describe("no unlogged look-up", () => {
  it("when the log shard cannot commit, the caller gets 503 with Retry-After and no score; once it can, 200", async () => {
    const [reporter, asker] = await Promise.all([newPlatform(), newPlatform()]);
    const buyer = await newBuyer();
    await createReport(reporter, buyer);
    const shard = logShardOf(`platform:${asker.id}`);
    // Answered look-ups (outcome ok): the refusal itself is audited after the response (outcome
    // error, through the outbox), which is not a look-up.
    const answered = () => logCount("entries", "actor = ? AND outcome = 'ok'", `platform:${asker.id}`);
    const entriesBefore = await answered();
    // Break the shard's storage: the append's inquiry rows have nowhere to go, so it rolls back.
    await runInDurableObject(shard, (_o, state) => {
      state.storage.sql.exec("ALTER TABLE inquiries RENAME TO inquiries_away");
    });
    try {
      const res = await score(asker, buyer);
      expect(res.status).toBe(503);
      expect(res.headers.get("retry-after")).toMatch(/^\d+$/);
      expect(res.headers.get("content-type")).toMatch(/^application\/problem\+json/);
      expect(res.body).not.toHaveProperty("score");
      expect(res.body.detail).toMatch(/could not be logged/);
      // A query with the claim's photos is the same look-up: no log, no answer.
      const withPhotos = await callJson<Record<string, unknown>>("/v1/scores/query", {
        token: await asker.token(),
        body: { subjects: buyer, purpose: "refund_review", evidence: [{ pdq: "0f".repeat(32) }] },
      });
      expect(withPhotos.status).toBe(503);
      expect(withPhotos.body).not.toHaveProperty("photos");
      // Nothing half-written: no entry for the refused look-ups.
      expect(await answered()).toBe(entriesBefore);
    } finally {
      await runInDurableObject(shard, (_o, state) => {
        state.storage.sql.exec("ALTER TABLE inquiries_away RENAME TO inquiries");
      });
    }
    const again = await score(asker, buyer);
    expect(again.status).toBe(200);
    expect(await answered()).toBe(entriesBefore + 1);
  });

  it("one failing append in a group fails only its own request", async () => {
    const asker = await newPlatform();
    const stub = logShardOf(`platform:${asker.id}`);
    const good = (id: string) => ({
      id,
      entries: [{ at: Date.now(), actor: "platform:x", action: "score.query", requestId: id, outcome: "ok" }],
    });
    // An entry without an actor violates NOT NULL: its append rolls back alone.
    const bad = {
      id: "req_bad",
      entries: [{ at: Date.now(), actor: null, action: "x", requestId: "req_bad", outcome: "ok" }],
    };
    const shard = shardOf(`platform:${asker.id}`, Number(env.LOG_SHARDS ?? 1));
    const results = await Promise.allSettled([
      stub.append(shard, good("req_ok1")),
      stub.append(shard, bad as unknown as ReturnType<typeof good>),
      stub.append(shard, good("req_ok2")),
    ]);
    expect(results.map((r) => r.status)).toEqual(["fulfilled", "rejected", "fulfilled"]);
    expect((await stub.verify()).ok).toBe(true);
  });
});

describe("the daily cap on distinct subject keys", () => {
  it("past LOOKUP_DAILY_CAP new keys are 429 with Retry-After until midnight UTC; keys already looked up today stay free", async () => {
    const asker = await newPlatform();
    const known = await newBuyer();
    expect((await score(asker, known)).status).toBe(200);
    const day = new Date().toISOString().slice(0, 10);
    const cap = Number(env.LOOKUP_DAILY_CAP ?? 100_000);
    // Bring the platform to the cap, as if it had looked up that many subjects today.
    await runInDurableObject(logShardOf(`platform:${asker.id}`), (_o, state) => {
      state.storage.sql.exec(
        "UPDATE lookup_counts SET n = ? WHERE day = ? AND platform_id = ?",
        cap,
        day,
        asker.id,
      );
    });
    const refused = await score(asker, await newBuyer());
    expect(refused.status).toBe(429);
    const wait = Number(refused.headers.get("retry-after"));
    expect(wait).toBeGreaterThan(0);
    expect(wait).toBeLessThanOrEqual(86_400);
    expect(refused.body.detail).toMatch(/daily cap/);
    // The same buyer again costs nothing new.
    expect((await score(asker, known)).status).toBe(200);
    const stats = await callJson<{
      usage: { platformId: string; distinctSubjectsToday: number }[];
      lookupDailyCap: number;
    }>("/v1/admin/stats", { token: await adminToken() });
    expect(stats.body.lookupDailyCap).toBe(cap);
    expect(stats.body.usage.find((u) => u.platformId === asker.id)?.distinctSubjectsToday).toBe(cap);
  });
});
