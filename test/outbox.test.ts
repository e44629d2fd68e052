/**
 * The audit outbox (issue 10): every write puts its audit entry in `audit_outbox` in its own D1
 * batch, and `drainOutbox` moves each row to its actor's log shard exactly once (append id
 * `outbox:<id>`), so the ledger chain receives nothing new and no write leaves a backlog to seal.
 */
import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import type { LogConfig } from "../worker/log/client";
import type { OutboxRow } from "../worker/log/outbox";
import { accountOutbox, drainOutbox, uncovered } from "../worker/log/outbox";
import {
  adminToken,
  call,
  callJson,
  countRows,
  drainAuditOutbox,
  logQuery,
  logShardOf,
  newBuyer,
  newPlatform,
  reportBody,
  uniqueId,
} from "./harness";

const LOG = env as unknown as LogConfig;

async function outboxRows(requestId: string): Promise<OutboxRow[]> {
  const { results } = await env.DB.prepare("SELECT * FROM audit_outbox WHERE request_id = ? ORDER BY id")
    .bind(requestId)
    .all<OutboxRow>();
  return results;
}

/** A request's entries in the log shards, with their subject keys (null once erased or absent). */
async function shardEntries(requestId: string) {
  return logQuery<{
    seq: number;
    action: string;
    actor: string;
    details: string | null;
    keys: string | null;
  }>(
    `SELECT e.seq, e.action, e.actor, e.details, k.keys FROM entries e LEFT JOIN entry_keys k ON k.seq = e.seq
     WHERE e.request_id = ? ORDER BY e.seq`,
    requestId,
  );
}

/** Runs `body` while the actor's shard cannot write subject keys: every drain of its rows fails. */
async function withBrokenShard<T>(actor: string, body: () => Promise<T>): Promise<T> {
  const shard = logShardOf(actor);
  await runInDurableObject(shard, (_o, state) => {
    state.storage.sql.exec("ALTER TABLE entry_keys RENAME TO entry_keys_away");
  });
  try {
    return await body();
  } finally {
    await runInDurableObject(shard, (_o, state) => {
      state.storage.sql.exec("ALTER TABLE entry_keys_away RENAME TO entry_keys");
    });
  }
}

describe("the audit outbox", () => {
  it("a report write leaves exactly one outbox row in its own batch, and none when the batch fails (jti replay)", async () => {
    const p = await newPlatform();
    const actor = `platform:${p.id}`;
    const ledgerBefore = await countRows("audit_log");
    const { created, replay } = await withBrokenShard(actor, async () => {
      const jti = uniqueId("jti");
      const token = await p.token({ jti });
      const created = await call("/v1/reports", { token, body: reportBody(await newBuyer()) });
      expect(created.status).toBe(201);
      const replay = await call("/v1/reports", { token, body: reportBody(await newBuyer()) });
      expect(replay.status).toBe(401);
      // The drain after the write failed (the shard cannot write): the row waits in the outbox.
      const drained = await drainOutbox(LOG, env.DB);
      expect(drained.failed).toBeGreaterThanOrEqual(1);
      return { created, replay };
    });
    const id = created.headers.get("x-request-id") as string;
    const rows = await outboxRows(id);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ actor, action: "report.create", outcome: "created" });
    expect(JSON.parse(rows[0]?.details ?? "{}")).toHaveProperty("subjectKeys");
    // The refused batch wrote nothing, its audit entry included.
    expect(await outboxRows(replay.headers.get("x-request-id") as string)).toEqual([]);
    expect(await countRows("audit_log"), "the ledger chain receives nothing new").toBe(ledgerBefore);
  });

  it("draining appends a row once to its actor's shard, subject keys beside the entry, and deletes it", async () => {
    const p = await newPlatform();
    const actor = `platform:${p.id}`;
    const { id, row } = await withBrokenShard(actor, async () => {
      const res = await call("/v1/reports", { token: await p.token(), body: reportBody(await newBuyer()) });
      expect(res.status).toBe(201);
      const id = res.headers.get("x-request-id") as string;
      return { id, row: (await outboxRows(id))[0] as OutboxRow };
    });
    expect(row).toBeDefined();
    expect(await shardEntries(id)).toEqual([]);
    await drainAuditOutbox();
    expect(await outboxRows(id)).toEqual([]);
    const entries = await shardEntries(id);
    expect(entries).toHaveLength(1);
    const [entry] = entries;
    expect(entry).toMatchObject({ actor, action: "report.create" });
    const { subjectKeys, ...rest } = JSON.parse(row.details ?? "{}") as { subjectKeys: string[] };
    // The row's id is chained in their place: the outbox's accounting counts it only with its entry.
    expect(JSON.parse(entry?.details ?? "{}"), "subject keys leave the chained details").toEqual({
      ...rest,
      outboxId: row.id,
    });
    expect(JSON.parse(entry?.keys ?? "null"), "and sit beside the entry, erasable").toEqual(subjectKeys);
    // Only in the actor's own shard.
    const own = await runInDurableObject(logShardOf(actor), (_o, state) =>
      state.storage.sql.exec("SELECT count(*) AS n FROM entries WHERE request_id = ?", id).one(),
    );
    expect(own.n).toBe(1);
  });

  it("draining twice, concurrently, or after a crash between append and delete writes no copy", async () => {
    const p = await newPlatform();
    const actor = `platform:${p.id}`;
    const { id, row } = await withBrokenShard(actor, async () => {
      const res = await call("/v1/reports", { token: await p.token(), body: reportBody(await newBuyer()) });
      expect(res.status).toBe(201);
      const id = res.headers.get("x-request-id") as string;
      return { id, row: (await outboxRows(id))[0] as OutboxRow };
    });
    // Concurrent drains read the same rows: the first appends, the others are answered replays.
    await Promise.all([drainOutbox(LOG, env.DB), drainOutbox(LOG, env.DB), drainOutbox(LOG, env.DB)]);
    await drainAuditOutbox();
    expect(await shardEntries(id)).toHaveLength(1);
    expect(await outboxRows(id)).toEqual([]);

    // A drain that appended but died before its delete leaves the row as it was (same id): the
    // next drain appends it again under the same append id, and the shard answers a replay.
    await env.DB.prepare(
      `INSERT INTO audit_outbox (id, at, actor, action, target, request_id, outcome, details)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
    )
      .bind(row.id, row.at, row.actor, row.action, row.target, row.request_id, row.outcome, row.details)
      .run();
    const again = await drainOutbox(LOG, env.DB);
    expect(again.failed).toBe(0);
    expect(again.drained).toBeGreaterThanOrEqual(1);
    expect(await outboxRows(id), "the replayed row is deleted").toEqual([]);
    expect(await shardEntries(id), "and not written twice").toHaveLength(1);
    const appended = await logQuery<{ id: string }>(
      "SELECT id FROM appends WHERE id = ?",
      `outbox:${row.id}`,
    );
    expect(appended).toHaveLength(1);
  });

  it("after a bulk back-fill of 2,000 reports and a drain, verify shows nothing unsealed anywhere", async () => {
    const p = await newPlatform();
    const ledgerBefore = await countRows("audit_log");
    for (let batch = 0; batch < 4; batch++) {
      const reports = await Promise.all(
        Array.from({ length: 500 }, async () => reportBody(await newBuyer())),
      );
      const res = await callJson<{ results: { status: number }[] }>("/v1/reports/bulk", {
        token: await p.token(),
        body: { reports },
      });
      expect(res.status).toBe(200);
      expect(res.body.results.every((r) => r.status === 201)).toBe(true);
    }
    await drainAuditOutbox();
    expect(await countRows("audit_outbox")).toBe(0);
    expect(await countRows("audit_log"), "the ledger chain receives nothing new").toBe(ledgerBefore);
    const entries = await logQuery<{ n: number }>(
      "SELECT count(*) AS n FROM entries WHERE actor = ? AND action = 'report.create'",
      `platform:${p.id}`,
    );
    expect(entries.reduce((n, r) => n + r.n, 0)).toBe(2000);
    const verdict = await callJson<{
      ok: boolean;
      unsealed: number;
      shards: { ok: boolean; unsealed: number }[];
    }>("/v1/admin/audit/verify", { token: await adminToken() });
    expect(verdict.status).toBe(200);
    expect(verdict.body.ok, JSON.stringify(verdict.body)).toBe(true);
    expect(verdict.body.unsealed).toBe(0);
    expect(verdict.body.shards.every((s) => s.ok && s.unsealed === 0)).toBe(true);
  });
});

describe("the outbox's accounting", () => {
  it("uncovered lists the ids no range covers, within (after, through]", () => {
    expect(
      uncovered(0, 10, [
        [1, 3],
        [5, 5],
        [7, 12],
      ]),
    ).toEqual([
      [4, 4],
      [6, 6],
    ]);
    expect(
      uncovered(3, 10, [
        [1, 3],
        [2, 6],
        [8, 8],
      ]),
    ).toEqual([
      [7, 7],
      [9, 10],
    ]);
    expect(uncovered(5, 5, [])).toEqual([]);
    expect(uncovered(0, 3, [])).toEqual([[1, 3]]);
  });

  it("rows still waiting are accounted for, and the scheduled job moves the watermark up to just below them", async () => {
    const p = await newPlatform();
    await drainAuditOutbox();
    const drained = await accountOutbox(LOG, env.DB);
    expect(drained.missing).toEqual([]);
    // A failed drain leaves the row waiting: accounted for, and the watermark stops below it.
    const waiting = await withBrokenShard(`platform:${p.id}`, async () => {
      const res = await call("/v1/reports", { token: await p.token(), body: reportBody(await newBuyer()) });
      expect(res.status).toBe(201);
      await drainOutbox(LOG, env.DB);
      const rows = (await outboxRows(res.headers.get("x-request-id") as string)).map((r) => r.id);
      expect(rows.length).toBeGreaterThan(0);
      const account = await accountOutbox(LOG, env.DB, { advance: true });
      expect(account.missing).toEqual([]);
      expect(account.pending).toBeGreaterThan(0);
      expect(account.through).toBeLessThan(Math.min(...rows));
      return rows;
    });
    await drainAuditOutbox();
    const after = await accountOutbox(LOG, env.DB, { advance: true });
    expect(after).toMatchObject({ missing: [], pending: 0 });
    expect(after.through).toBe(after.top);
    expect(after.through).toBeGreaterThanOrEqual(Math.max(...waiting));
  });
});
