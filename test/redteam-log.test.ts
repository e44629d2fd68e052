/**
 * Red team, issue 10 (the log store): attacks on the look-up log, the daily cap, the shards'
 * verify and the R2 archive. Each test here FAILS on the code it was written against: it states
 * the safe behaviour, and the comment above it the attack.
 *
 * Runs on its own storage (test files do not share local storage): it archives shard 0 and
 * tampers with the log store.
 */
import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { checkpoint } from "../worker/audit/ledger";
import { loadConfig } from "../worker/env";
import {
  adminToken,
  callJson,
  createReport,
  drainAuditOutbox,
  logQuery,
  logShardOf,
  logShards,
  lookupAppend,
  newBuyer,
  newPlatform,
  type SegmentVerdict,
  uniqueId,
} from "./harness";

const DAY = 86_400_000;

type Verdict = SegmentVerdict;

const oldAppend = (id: string, at: number) =>
  lookupAppend(id, at, "platform:redteam-archive", "e".repeat(64));

async function verifySegment(key: string) {
  return callJson<Verdict>(`/v1/admin/audit/archive/verify?key=${encodeURIComponent(key)}`, {
    token: await adminToken(),
  });
}

describe("red team: the R2 archive", () => {
  /**
   * Attack (operator with write access to the bucket, no signing key): truncate an archived
   * segment, dropping its last log entries — the very head a tree checkpoint signed — and keep
   * everything else, signed tree checkpoints included. `verifyExport` only compares a signed
   * head with an entry "inside the export": once the signed entry is gone nothing is compared,
   * the remaining prefix chains fine, and `/v1/admin/audit/archive/verify` answers ok. The same
   * holds for a segment rewritten and re-chained with its checkpoint lines removed (verify
   * accepts a segment with zero checkpoints), and nothing compares the segment's end with the
   * shard's archived head (`meta.archived`) or with the tree checkpoints in D1.
   *
   * Safe behaviour: a segment must end exactly on a head a signed tree checkpoint (the trusted
   * set in D1, not only the copies inside the object) names for that shard, and must match its
   * own header (`segment.from/to/hash`) and the object's metadata; otherwise `ok: false`.
   */
  it("a segment truncated before its signed head still verifies as ok", async () => {
    const [shard0] = logShards();
    const stub = shard0 as NonNullable<typeof shard0>;
    const old = Date.now() - 40 * DAY;
    await drainAuditOutbox();
    for (let i = 0; i < 4; i++) {
      expect((await stub.append(0, oldAppend(uniqueId("req_rt_old"), old + i))).ok).toBe(true);
    }
    const config = loadConfig(env);
    expect(await checkpoint(env.DB, config, config.AUDIT_SIGNING_JWK, Date.now())).not.toBeNull();
    const run = await callJson<{ archived: { segments: string[] } }>("/v1/admin/maintenance/run", {
      token: await adminToken(),
      body: {},
    });
    expect(run.status, JSON.stringify(run.body)).toBe(200);
    const key = run.body.archived.segments.find((k) => k.startsWith("log/shard-000/")) as string;
    expect(key).toBeTruthy();
    const stored = await env.LOG_ARCHIVE.get(key);
    const text = (await stored?.text()) ?? "";
    // Rewritten with its metadata, as an operator would (and restored whole afterwards).
    const customMetadata = stored?.customMetadata ?? {};
    expect((await verifySegment(key)).body.ok).toBe(true);

    // Drop the last log-entry line (the signed head); keep header, keys and tree checkpoints.
    const lines = text.trim().split("\n");
    const entryIdx = lines.map((l, i) => (JSON.parse(l).type === "log-entry" ? i : -1)).filter((i) => i >= 0);
    expect(entryIdx.length).toBeGreaterThanOrEqual(2);
    const lastEntry = entryIdx[entryIdx.length - 1] as number;
    const truncated = `${lines.filter((_, i) => i !== lastEntry).join("\n")}\n`;
    await env.LOG_ARCHIVE.put(key, truncated, { customMetadata });
    try {
      const caught = await verifySegment(key);
      expect(caught.status).toBe(200);
      expect(caught.body.ok, JSON.stringify(caught.body)).toBe(false);
    } finally {
      await env.LOG_ARCHIVE.put(key, text, { customMetadata });
    }
  });
});

describe("red team: what verify covers", () => {
  /**
   * Attack (curious or colluding operator): a platform looked a buyer up; the operator deletes
   * that look-up's row from the shard's `inquiries` table, so the buyer's subject access never
   * shows it. The inquiry rows are not chained, not committed to by any entry and not
   * cross-checked against the entries' (retained) subject keys, so `/v1/admin/audit/verify`
   * still answers ok.
   *
   * Safe behaviour: verify catches it (e.g. each look-up entry commits to the inquiry rows it
   * wrote, or verify checks that every retained look-up entry's subject keys have their inquiry
   * rows), answering `ok: false` for that shard.
   */
  it("deleting a look-up's inquiry row in a shard is caught by verify", async () => {
    const [reporter, asker] = await Promise.all([newPlatform(), newPlatform()]);
    const buyer = await newBuyer();
    await createReport(reporter, buyer);
    const scored = await callJson("/v1/scores/query", {
      token: await asker.token(),
      body: { subjects: buyer, purpose: "refund_review" },
    });
    expect(scored.status).toBe(200);
    const requestId = scored.headers.get("x-request-id") as string;
    await drainAuditOutbox();
    const before = await callJson<Verdict>("/v1/admin/audit/verify", { token: await adminToken() });
    expect(before.body.ok, JSON.stringify(before.body)).toBe(true);

    const removed = await runInDurableObject(logShardOf(`platform:${asker.id}`), (_o, state) => {
      return state.storage.sql.exec("DELETE FROM inquiries WHERE request_id = ?", requestId).rowsWritten;
    });
    expect(removed).toBeGreaterThan(0);

    const after = await callJson<Verdict>("/v1/admin/audit/verify", { token: await adminToken() });
    expect(after.status).toBe(200);
    expect(after.body.ok, "an erased look-up went unnoticed").toBe(false);
    const shard = (after.body as unknown as { shards: { ok: boolean; reason?: string }[] }).shards.find(
      (s) => !s.ok,
    );
    expect(shard?.reason).toMatch(/inquiry rows are gone/);
  });

  /**
   * Attack (operator with D1 access): an action's audit entry sits in `audit_outbox` until the
   * drain moves it to a shard. Delete the row before the drain (or make the drain skip it) and
   * the action was never audited: outbox ids are AUTOINCREMENT and appended as `outbox:<id>`,
   * but nothing notices a missing id, and verify answers ok.
   *
   * Safe behaviour: the drain (or verify) detects a gap in the outbox ids it has appended
   * (e.g. a high-water mark per shard that must advance by one), and verify reports it.
   */
  it("an outbox row deleted before its drain is caught by verify", async () => {
    type Outbox = { outbox: { missing: [number, number][]; top: number } };
    const p = await newPlatform();
    await createReport(p, await newBuyer());
    await drainAuditOutbox();
    const before = await callJson<Verdict & Outbox>("/v1/admin/audit/verify", { token: await adminToken() });
    expect(before.body.outbox.missing).toEqual([]);
    // An action's entry written and deleted before any drain could see it (one transaction, so
    // no drain in flight can race it), then more writes after it, so the gap sits in the middle.
    await env.DB.batch([
      env.DB.prepare(
        `INSERT INTO audit_outbox (at, actor, action, target, request_id, outcome, details)
         VALUES (?, ?, 'report.create', NULL, ?, 'ok', NULL)`,
      ).bind(Date.now(), `platform:${p.id}`, uniqueId("req_rt_gap")),
      env.DB.prepare(
        "DELETE FROM audit_outbox WHERE id = (SELECT seq FROM sqlite_sequence WHERE name = 'audit_outbox')",
      ),
    ]);
    const deleted = (await env.DB.prepare(
      "SELECT seq FROM sqlite_sequence WHERE name = 'audit_outbox'",
    ).first<number>("seq")) as number;
    await createReport(p, await newBuyer());
    await drainAuditOutbox();

    const verdict = await callJson<Verdict & Outbox>("/v1/admin/audit/verify", { token: await adminToken() });
    expect(verdict.status).toBe(200);
    expect(verdict.body.ok, "an audit entry deleted from the outbox went unnoticed").toBe(false);
    expect(verdict.body.outbox.missing, JSON.stringify(verdict.body)).toEqual([[deleted, deleted]]);
    expect(verdict.body.outbox.top).toBeGreaterThan(deleted);
  });
  /**
   * Attack (operator, or a buggy archiver): call the shard's `markArchived(seq, hash)` at its
   * head without ever writing a segment to R2. The shard deletes every entry up to `seq` (a
   * platform's look-ups among them) and records them as archived; verify then starts at the
   * "archived" head, skips every signed head below it ("checked with their archived segment"),
   * and answers ok, though no archived segment covers those seqs: look-up entries vanished
   * without a trace.
   *
   * Safe behaviour: `markArchived` refuses unless a segment ending exactly at (seq, hash) is in
   * the bucket, and verify checks that the archive's segments cover 1..archivedThrough
   * contiguously and end on the shard's archived head; otherwise `ok: false`.
   */
  it("entries removed as 'archived' with no segment in R2 are caught by verify", async () => {
    const [reporter, asker] = await Promise.all([newPlatform(), newPlatform()]);
    const buyer = await newBuyer();
    await createReport(reporter, buyer);
    const scored = await callJson("/v1/scores/query", {
      token: await asker.token(),
      body: { subjects: buyer, purpose: "refund_review" },
    });
    expect(scored.status).toBe(200);
    await drainAuditOutbox();
    const stub = logShardOf(`platform:${asker.id}`);
    const head = await stub.headOf();
    const segmentsBefore = (await env.LOG_ARCHIVE.list({ prefix: "log/" })).objects.length;
    // Through the shard's own method: refused, there is no such segment.
    expect(
      await stub.markArchived(head.seq, head.hash, "log/shard-000/000000000001-000000000001.ndjson"),
    ).toEqual({ refused: expect.stringMatching(/no archived segment/) });
    expect((await stub.headOf()).seq).toBe(head.seq);
    // Behind its back (storage access): the entries deleted and the archived head recorded.
    await runInDurableObject(stub, (_o, state) => {
      state.storage.sql.exec("DELETE FROM entries WHERE seq <= ?", head.seq);
      state.storage.sql.exec(
        "INSERT INTO meta (k, v) VALUES ('archived', ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v",
        JSON.stringify({ seq: head.seq, hash: head.hash }),
      );
    });
    expect((await env.LOG_ARCHIVE.list({ prefix: "log/" })).objects.length).toBe(segmentsBefore);

    const verdict = await callJson<Verdict>("/v1/admin/audit/verify", { token: await adminToken() });
    expect(verdict.status).toBe(200);
    expect(verdict.body.ok, "look-up entries deleted without any archived segment went unnoticed").toBe(
      false,
    );
  });
});

describe("red team: the daily look-up cap", () => {
  /**
   * Attack (malicious member with `disputes:write`): look buyers up through
   * `POST /v1/subject-access` instead of `/v1/scores/query`. Subject access returns more than a
   * score (every record, the furnishing platform's name, statuses, statements, who else looked
   * the buyer up) yet calls `logLookups` with `cap: false`: its subject keys never enter
   * `lookups`/`lookup_counts`, so LOOKUP_DAILY_CAP never applies and a platform past its cap
   * keeps reading files at RL_SUBJECT_ACCESS (60 pages a minute, 8 subjects each, any requestRef).
   *
   * Safe behaviour: subject access counts its distinct subject keys against the same daily cap
   * (429 past it), like a score query.
   */
  it("subject access counts its subject keys against LOOKUP_DAILY_CAP", async () => {
    const [reporter, snoop] = await Promise.all([newPlatform(), newPlatform()]);
    const buyer = await newBuyer();
    await createReport(reporter, buyer);
    const res = await callJson("/v1/subject-access", {
      token: await snoop.token(),
      body: { requestRef: uniqueId("ticket"), subjects: buyer },
    });
    expect(res.status).toBe(200);
    expect((res.body as { records: unknown[] }).records.length).toBe(1);
    const counted = await logQuery<{ n: number }>(
      "SELECT coalesce(sum(n), 0) AS n FROM lookup_counts WHERE platform_id = ?",
      snoop.id,
    );
    expect(
      counted.reduce((s, r) => s + r.n, 0),
      "subject access read a buyer's whole file without counting against the daily cap",
    ).toBe(buyer.length);
  });
});
