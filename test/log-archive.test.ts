/**
 * Old log segments move to R2 (issue 10, point 5): as audit exports that verify on their own,
 * each ending on a head a tree checkpoint signed; the shard keeps chaining from the archived
 * head, and verify still passes.
 */
import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { checkpoint } from "../worker/audit/ledger";
import { loadConfig } from "../worker/env";
import { archiveLog, segmentKey } from "../worker/log/archive";
import type { AppendInput } from "../worker/log/shard";
import {
  adminToken,
  callJson,
  drainAuditOutbox,
  logShards,
  lookupAppend,
  type SegmentVerdict,
  uniqueId,
} from "./harness";

const DAY = 86_400_000;

type Verdict = SegmentVerdict;

const oldAppend = (id: string, at: number) => lookupAppend(id, at, "platform:archive-test", "d".repeat(64));

async function maintenance() {
  const res = await callJson<{ archived: { segments: string[]; entries: number } }>(
    "/v1/admin/maintenance/run",
    { token: await adminToken(), body: {} },
  );
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res.body;
}

describe("archiving old log segments to R2", () => {
  it("moves signed, old entries to a segment that verifies on its own; the shard chains on and verifies", async () => {
    const [shard0] = logShards();
    const stub = shard0 as NonNullable<typeof shard0>;
    const old = Date.now() - 40 * DAY;
    await drainAuditOutbox();
    for (let i = 0; i < 5; i++) {
      expect((await stub.append(0, oldAppend(uniqueId("req_old"), old + i))).ok).toBe(true);
    }
    const headBefore = await stub.headOf();
    // Sign a head at the old entries: a maintenance run drains its own (new) entry into a shard
    // before it signs, which may be this one, and a segment ends only on a signed head.
    const config = loadConfig(env);
    expect(await checkpoint(env.DB, config, config.AUDIT_SIGNING_JWK, Date.now())).not.toBeNull();

    const run = await maintenance();
    expect(run.archived.entries).toBeGreaterThanOrEqual(5);
    const [key] = run.archived.segments.filter((k) => k.startsWith("log/shard-000/"));
    expect(key).toMatch(/^log\/shard-000\/\d{12}-\d{12}\.ndjson$/);
    const object = await env.LOG_ARCHIVE.get(key as string);
    const text = (await object?.text()) ?? "";
    const lines = text
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { type: string; subjectKeys?: unknown });
    expect(lines[0]).toMatchObject({ type: "header", format: "pixiu-audit-export/2" });
    expect(lines.filter((l) => l.type === "log-entry").length).toBeGreaterThanOrEqual(5);
    expect(lines.filter((l) => l.type === "tree-checkpoint").length).toBeGreaterThanOrEqual(1);
    // No erasable data in an archive that cannot be erased.
    expect(lines.filter((l) => l.type === "log-entry").every((l) => l.subjectKeys === null)).toBe(true);
    expect(text).not.toContain("d".repeat(64));

    // The shard no longer holds them, but chains on from the archived head (the maintenance
    // runs' own entries, drained from the outbox, may follow them here).
    const left = (await stub.range(0, 100)) as unknown as { seq: number }[];
    expect(left.filter((e) => e.seq <= headBefore.seq)).toEqual([]);
    expect((await stub.headOf()).seq).toBeGreaterThanOrEqual(headBefore.seq);
    expect((await stub.append(0, oldAppend(uniqueId("req_new"), Date.now()))).ok).toBe(true);
    expect(await stub.verify()).toMatchObject({ ok: true, checked: left.length + 1 });

    const listed = await callJson<{ items: { key: string; shard: number; from: number; to: number }[] }>(
      "/v1/admin/audit/archive",
      { token: await adminToken() },
    );
    expect(listed.status).toBe(200);
    expect(listed.body.items.find((i) => i.key === key)).toMatchObject({ shard: 0, from: 1 });

    const verified = await callJson<Verdict>(
      `/v1/admin/audit/archive/verify?key=${encodeURIComponent(key as string)}`,
      {
        token: await adminToken(),
      },
    );
    expect(verified.status).toBe(200);
    expect(verified.body.ok, JSON.stringify(verified.body)).toBe(true);

    const whole = await callJson<{ ok: boolean }>("/v1/admin/audit/verify", { token: await adminToken() });
    expect(whole.body.ok, JSON.stringify(whole.body)).toBe(true);
    expect((await maintenance()).archived.segments).toEqual([]);

    // One changed byte in the stored segment is caught, at its shard and seq.
    const tampered = text.replace('"outcome":"ok"', '"outcome":"no"');
    const customMetadata = object?.customMetadata ?? {};
    await env.LOG_ARCHIVE.put(key as string, tampered, { customMetadata });
    const caught = await callJson<Verdict>(
      `/v1/admin/audit/archive/verify?key=${encodeURIComponent(key as string)}`,
      {
        token: await adminToken(),
      },
    );
    expect(caught.body).toMatchObject({ ok: false, badShard: 0, firstBadSeq: 1 });
    await env.LOG_ARCHIVE.put(key as string, text, { customMetadata });
  });

  it("an archived look-up stays held to its inquiry rows: online by its kept row, in the segment by that row and its keys", async () => {
    const stub = logShards()[0] as NonNullable<ReturnType<typeof logShards>[number]>;
    const config = loadConfig(env);
    const key = "f".repeat(64);
    const requestId = uniqueId("req_inq");
    const inquired: AppendInput = {
      id: requestId,
      entries: [
        {
          at: Date.now() - 40 * DAY,
          actor: "platform:archive-inq",
          action: "score.query",
          requestId,
          outcome: "ok",
          details: { purpose: "refund_review", inquired: true },
          subjectKeys: [key],
        },
      ],
      inquiries: [{ subjectKey: key, platformId: "archive-inq", purpose: "refund_review", requestId }],
    };
    const appended = await stub.append(0, inquired);
    expect(appended.ok).toBe(true);
    const seq = (appended as { last: number }).last;
    expect(await checkpoint(env.DB, config, config.AUDIT_SIGNING_JWK, Date.now())).not.toBeNull();
    // A month and a day on, everything up to the signed head is old enough.
    const run = await archiveLog(env.DB, config, Date.now() + 31 * DAY);
    const segment = run.segments.find((k) => k.startsWith("log/shard-000/")) as string;
    expect(segment).toBeTruthy();
    expect(await stub.entries({ requestId, limit: 10 })).toEqual([]);
    const token = await adminToken();
    const verifySegment = async () =>
      (
        await callJson<Verdict>(`/v1/admin/audit/archive/verify?key=${encodeURIComponent(segment)}`, {
          token,
        })
      ).body;
    const verifyAll = async () =>
      (
        await callJson<{
          ok: boolean;
          shards: { shard: number; ok: boolean; reason?: string; firstBadSeq?: number }[];
        }>("/v1/admin/audit/verify", { token })
      ).body;
    expect(await verifySegment()).toMatchObject({ ok: true });
    const all = await verifyAll();
    expect(all, JSON.stringify(all)).toMatchObject({ ok: true });
    const sql = (query: string, ...binds: unknown[]) =>
      runInDurableObject(stub, (_o, state) => state.storage.sql.exec(query, ...binds).toArray());
    const [kept] = await sql("SELECT * FROM archived_lookups WHERE seq = ?", seq);
    expect(kept).toMatchObject({
      platform_id: "archive-inq",
      request_id: requestId,
      purpose: "refund_review",
    });

    // Its inquiry row deleted, or shown under another purpose: online verify catches it.
    for (const tamper of [
      "DELETE FROM inquiries WHERE request_id = ?",
      "UPDATE inquiries SET purpose = 'subject_access' WHERE request_id = ?",
    ]) {
      const rows = await sql("SELECT * FROM inquiries WHERE request_id = ?", requestId);
      await sql(tamper, requestId);
      try {
        const after = await verifyAll();
        expect(after.ok).toBe(false);
        expect(after.shards[0]).toMatchObject({ ok: false, firstBadSeq: seq });
        expect(after.shards[0]?.reason).toMatch(/inquiry rows are gone/);
      } finally {
        await sql("DELETE FROM inquiries WHERE request_id = ?", requestId);
        for (const r of rows) {
          await sql(
            "INSERT INTO inquiries (subject_key, platform_id, purpose, at, request_id) VALUES (?, ?, ?, ?, ?)",
            r.subject_key,
            r.platform_id,
            r.purpose,
            r.at,
            r.request_id,
          );
        }
      }
    }
    // The kept row deleted with them, or the keys swapped: the segment's verify catches it.
    await sql("DELETE FROM archived_lookups WHERE seq = ?", seq);
    try {
      expect(await verifySegment()).toMatchObject({ ok: false, firstBadSeq: seq });
    } finally {
      await sql(
        "INSERT INTO archived_lookups (seq, at, platform_id, request_id, purpose) VALUES (?, ?, ?, ?, ?)",
        kept?.seq,
        kept?.at,
        kept?.platform_id,
        kept?.request_id,
        kept?.purpose,
      );
    }
    await sql("UPDATE entry_keys SET keys = ? WHERE seq = ?", JSON.stringify(["0".repeat(64)]), seq);
    try {
      const caught = await verifySegment();
      expect(caught).toMatchObject({ ok: false, firstBadSeq: seq });
      expect(caught.error).toMatch(/do not match its commitment/);
    } finally {
      await sql("UPDATE entry_keys SET keys = ? WHERE seq = ?", JSON.stringify([key]), seq);
    }
    expect((await verifySegment()).ok).toBe(true);
    expect((await verifyAll()).ok).toBe(true);
  });

  it("markArchived refuses a segment that does not hold exactly the entries after the archived head", async () => {
    const stub = logShards()[0] as NonNullable<ReturnType<typeof logShards>[number]>;
    const archived = await stub.archivedHead();
    for (let i = 0; i < 2; i++) {
      expect((await stub.append(0, oldAppend(uniqueId("req_gap"), Date.now() - 40 * DAY))).ok).toBe(true);
    }
    const head = await stub.headOf();
    // Its metadata says it starts one entry late (the entry before it would be lost), or that it
    // holds fewer entries than its range.
    for (const [from, entries] of [
      [archived.seq + 2, head.seq - archived.seq - 1],
      [archived.seq + 1, head.seq - archived.seq - 1],
    ] as const) {
      const key = segmentKey(0, from, head.seq);
      await env.LOG_ARCHIVE.put(key, "{}\n", {
        customMetadata: {
          shard: "0",
          from: String(from),
          to: String(head.seq),
          entries: String(entries),
          hash: head.hash,
        },
      });
      try {
        expect(await stub.markArchived(head.seq, head.hash, key)).toMatchObject({
          refused: expect.stringMatching(/does not hold exactly/),
        });
      } finally {
        await env.LOG_ARCHIVE.delete(key);
      }
    }
    expect(await stub.archivedHead()).toEqual(archived);
  });

  it("coverage accepts an overlapping segment that chains (an older version's rerun), not one that disagrees", async () => {
    const stub = logShards()[0] as NonNullable<ReturnType<typeof logShards>[number]>;
    const config = loadConfig(env);
    // A second segment, so that one from seq 1 to the archived head overlaps the recorded ones.
    expect((await stub.append(0, oldAppend(uniqueId("req_overlap"), Date.now() - 40 * DAY))).ok).toBe(true);
    expect(await checkpoint(env.DB, config, config.AUDIT_SIGNING_JWK, Date.now())).not.toBeNull();
    expect((await archiveLog(env.DB, config, Date.now() + 31 * DAY)).segments).toHaveLength(1);
    const archived = await stub.archivedHead();
    const token = await adminToken();
    const verifyAll = async () => (await callJson<{ ok: boolean }>("/v1/admin/audit/verify", { token })).body;
    // A segment from seq 1 to the archived head, as a rerun of an older version wrote it beside
    // the ones the shard recorded (no `prevHash` or `entries` in its metadata).
    const key = segmentKey(0, 1, archived.seq);
    expect(await env.LOG_ARCHIVE.head(key)).toBeNull();
    const legacy = { shard: "0", from: "1", to: String(archived.seq) };
    await env.LOG_ARCHIVE.put(key, "{}\n", { customMetadata: { ...legacy, hash: archived.hash } });
    try {
      expect((await verifyAll()).ok).toBe(true);
      await env.LOG_ARCHIVE.put(key, "{}\n", { customMetadata: { ...legacy, hash: "0".repeat(64) } });
      expect((await verifyAll()).ok).toBe(false);
    } finally {
      await env.LOG_ARCHIVE.delete(key);
    }
    expect((await verifyAll()).ok).toBe(true);
  });

  it("an unknown segment is 404; a key that is not a segment's is 422", async () => {
    const missing = await callJson(
      "/v1/admin/audit/archive/verify?key=log/shard-000/000000000001-000000000002.ndjson",
      {
        token: await adminToken(),
      },
    );
    expect(missing.status).toBe(404);
    const bad = await callJson("/v1/admin/audit/archive/verify?key=../../etc", { token: await adminToken() });
    expect(bad.status).toBe(422);
  });

  it("a segment names the checkpoint that signs its end; the notes of archived heads go", async () => {
    const stub = logShards()[0] as NonNullable<ReturnType<typeof logShards>[number]>;
    const config = loadConfig(env);
    for (let i = 0; i < 2; i++) {
      expect((await stub.append(0, oldAppend(uniqueId("req_named"), Date.now() - 40 * DAY))).ok).toBe(true);
    }
    const signed = await stub.headOf();
    expect(await checkpoint(env.DB, config, config.AUDIT_SIGNING_JWK, Date.now())).not.toBeNull();
    // checkpoint() noted which checkpoint signed the head, in the same batch.
    const note = await env.DB.prepare(
      "SELECT checkpoint_id FROM log_signed_heads WHERE shard = 0 AND seq = ?",
    )
      .bind(signed.seq)
      .first<{ checkpoint_id: number }>();
    expect(note).not.toBeNull();
    const run = await archiveLog(env.DB, config, Date.now() + 31 * DAY);
    const key = run.segments.find((k) => k.startsWith("log/shard-000/")) as string;
    expect(key).toBeTruthy();
    expect((await stub.archivedHead()).seq).toBe(signed.seq);

    const object = await env.LOG_ARCHIVE.get(key);
    const text = (await object?.text()) ?? "";
    const customMetadata = object?.customMetadata ?? {};
    const lines = text
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { type: string; root?: string; segment?: { checkpointId?: number } });
    const named = lines[0]?.segment?.checkpointId;
    expect(named).toBe(note?.checkpoint_id);
    expect(customMetadata.checkpointId).toBe(String(named));
    const stored = await env.DB.prepare("SELECT root FROM log_checkpoints WHERE id = ?")
      .bind(named as number)
      .first<string>("root");
    expect(lines.filter((l) => l.type === "tree-checkpoint").map((l) => l.root)).toEqual([stored]);
    // Notes are kept for unarchived heads only.
    const left = await env.DB.prepare(
      "SELECT count(*) AS n FROM log_signed_heads WHERE shard = 0 AND seq <= ?",
    )
      .bind(signed.seq)
      .first<number>("n");
    expect(left).toBe(0);

    const token = await adminToken();
    const verifySegment = async () =>
      (await callJson<Verdict>(`/v1/admin/audit/archive/verify?key=${encodeURIComponent(key)}`, { token }))
        .body;
    expect(await verifySegment()).toMatchObject({ ok: true });
    try {
      // Metadata naming another checkpoint than the header does: the object was rewritten.
      await env.LOG_ARCHIVE.put(key, text, { customMetadata: { ...customMetadata, checkpointId: "1" } });
      const caught = await verifySegment();
      expect(caught.ok).toBe(false);
      expect(caught.error).toMatch(/disagree/);
      // A segment written before segments named their checkpoint is still found signed.
      const { checkpointId: _id, ...olderMeta } = customMetadata;
      const older = text.replace(`,"checkpointId":${named}}`, "}");
      expect(older).not.toBe(text);
      await env.LOG_ARCHIVE.put(key, older, { customMetadata: olderMeta });
      expect(await verifySegment()).toMatchObject({ ok: true });
    } finally {
      await env.LOG_ARCHIVE.put(key, text, { customMetadata });
    }
    expect(await verifySegment()).toMatchObject({ ok: true });
  });
});
