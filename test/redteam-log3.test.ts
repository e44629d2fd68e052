/**
 * Red team, issue 10, third pass (the log store): attacks on the FIXES of the second pass — the
 * outbox accounting (`outbox_appended`, the chained watermark), `readableLog`, the tree-checkpoint
 * window verify reads (`latestTreeCheckpoints`), the archive's checkpoint window
 * (`treeCheckpointsAround`) and online verify's reading of the archive (`archiveCoverage`).
 * Each test here FAILS on the code it was written against: it states the safe behaviour, and the
 * comment above it the attack.
 *
 * Runs on its own storage (test files do not share local storage). The tests run in order and
 * share it: the first one signs a checkpoint as a deployment that started with LOG_SHARDS=1; the
 * archive tests run on log shard 1 (the admin writes to shard 0); the test that widens
 * `readableLog` comes last.
 */
import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { importVerifyKey } from "../worker/audit/chain";
import { checkpoint, publicAuditKeys, readableLog, verifyLog } from "../worker/audit/ledger";
import { treeMessage, verifyTreeCheckpoint } from "../worker/audit/tree";
import { loadConfig } from "../worker/env";
import { archiveLog, segmentKey, verifySegment } from "../worker/log/archive";
import { GENESIS_HASH, type ShardHead, treeHead } from "../worker/log/chain";
import { shardOf } from "../worker/log/client";
import { accountOutbox } from "../worker/log/outbox";
import type { AppendInput } from "../worker/log/shard";
import {
  createReport,
  drainAuditOutbox,
  logShardOf,
  logShards,
  lookUpOnShard,
  newBuyer,
  newPlatform,
  platformOnShard,
  lookUp as score,
  type TestPlatform,
  uniqueId,
  verifyAudit as verify,
} from "./harness";

const DAY = 86_400_000;
const SHARDS = Number(env.LOG_SHARDS ?? 1);

function shardStubAt(shard: number) {
  return logShards()[shard] as NonNullable<ReturnType<typeof logShards>[number]>;
}

/** An action's outbox row written and deleted before any drain saw it; its id. */
async function deleteBeforeDrain(p: TestPlatform): Promise<number> {
  await env.DB.batch([
    env.DB.prepare(
      `INSERT INTO audit_outbox (at, actor, action, target, request_id, outcome, details)
       VALUES (?, ?, 'report.retract', NULL, ?, 'ok', NULL)`,
    ).bind(Date.now(), `platform:${p.id}`, uniqueId("req_rt3_gap")),
    env.DB.prepare(
      "DELETE FROM audit_outbox WHERE id = (SELECT seq FROM sqlite_sequence WHERE name = 'audit_outbox')",
    ),
  ]);
  return (await env.DB.prepare("SELECT seq FROM sqlite_sequence WHERE name = 'audit_outbox'").first<number>(
    "seq",
  )) as number;
}

/** The scheduled job's log purge, keeping everything but the held outbox ids the watermark passed. */
async function purgeHeldBelowWatermark() {
  const through = (await shardStubAt(0).outboxWatermark()) as number | null;
  for (const stub of logShards()) {
    await stub.purge({
      keysBefore: 0,
      inquiriesBefore: 0,
      targets: [],
      dayBefore: "1970-01-01",
      appendsBefore: 0,
      outboxAppendsBefore: 0,
      outboxThrough: through,
    });
  }
  return through;
}

function toBase64Url(bytes: ArrayBuffer): string {
  let bin = "";
  for (const b of new Uint8Array(bytes)) {
    bin += String.fromCharCode(b);
  }
  return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/** A tree checkpoint signed with the ledger's own audit key, exactly as `checkpoint()` signs one. */
async function signTree(at: number, heads: ShardHead[]) {
  const config = loadConfig(env);
  const { kid, ...jwk } = config.AUDIT_SIGNING_JWK;
  const key = await crypto.subtle.importKey("jwk", jwk as JsonWebKey, { name: "Ed25519" }, false, ["sign"]);
  const root = treeHead(heads);
  const signature = toBase64Url(await crypto.subtle.sign("Ed25519", key, treeMessage({ at, root, heads })));
  return { at, root, heads, kid: kid as string, signature };
}

async function storeTrees(cps: Awaited<ReturnType<typeof signTree>>[]) {
  for (let i = 0; i < cps.length; i += 400) {
    await env.DB.prepare(
      `INSERT INTO log_checkpoints (at, root, heads, kid, signature)
       SELECT j.value ->> 'at', j.value ->> 'root', j.value ->> 'heads', j.value ->> 'kid', j.value ->> 'signature'
       FROM json_each(?) j`,
    )
      .bind(JSON.stringify(cps.slice(i, i + 400).map((cp) => ({ ...cp, heads: JSON.stringify(cp.heads) }))))
      .run();
  }
}

/** How many stored tree checkpoints whose signature verifies sign this head of shard `shard`. */
async function validSigners(shard: number, head: { seq: number; hash: string }): Promise<number> {
  const config = loadConfig(env);
  const key = await importVerifyKey(publicAuditKeys(config.AUDIT_SIGNING_JWK).keys[0] as JsonWebKey);
  const { results } = await env.DB.prepare(
    `SELECT DISTINCT c.id, c.at, c.root, c.heads, c.kid, c.signature FROM log_checkpoints c, json_each(c.heads) h
     WHERE h.value ->> 'shard' = ? AND h.value ->> 'seq' = ? AND h.value ->> 'hash' = ?`,
  )
    .bind(shard, head.seq, head.hash)
    .all<{ at: number; root: string; heads: string; kid: string; signature: string }>();
  let n = 0;
  for (const r of results) {
    if (await verifyTreeCheckpoint(key, { ...r, heads: JSON.parse(r.heads) as ShardHead[] })) {
      n++;
    }
  }
  return n;
}

/** A plain audit entry (not a look-up) appended straight to a shard, written at `at`. */
function plainAppend(at: number, actor: string, action = "report.retract"): AppendInput {
  const id = uniqueId("req_rt3");
  return { id, entries: [{ at, actor, action, requestId: id, outcome: "ok" }] };
}

/** The id of the first tree checkpoint, signed while the deployment ran LOG_SHARDS=1. */
let oneShardCheckpointId = 0;

/** Whether an id lies in one of `missing`'s ranges (the accounting may report a wider range). */
const covers = (id: number) => (missing: [number, number][]) => missing.some(([a, b]) => a <= id && id <= b);

describe("red team 3: setup", () => {
  it("a deployment that started with LOG_SHARDS=1 signed its first tree checkpoint", async () => {
    const config = loadConfig(env);
    await newPlatform();
    const first = await checkpoint(
      env.DB,
      { ...config, LOG_SHARDS: 1 },
      config.AUDIT_SIGNING_JWK,
      Date.now(),
    );
    expect(first?.heads.length).toBe(2);
    oneShardCheckpointId = (await env.DB.prepare("SELECT min(id) AS id FROM log_checkpoints").first<number>(
      "id",
    )) as number;
    // Then LOG_SHARDS was raised to 2 (the tests' configuration).
    await drainAuditOutbox();
    expect(await checkpoint(env.DB, config, config.AUDIT_SIGNING_JWK, Date.now())).not.toBeNull();
  });
});

describe("red team 3: the outbox watermark", () => {
  /**
   * Attack (an operator who deletes an outbox row before its drain, then waits). "Missing ids
   * keep the watermark below them, so every later verify reports them too." The watermark is the
   * `details.through` of shard 0's newest `audit.outbox_accounted` ENTRY, read from the shard's
   * `entries` table only; a missing id stops it moving, so no new such entry is written, and the
   * last one ages. After LOG_ARCHIVE_AFTER_DAYS the archive moves it to R2 and deletes it from
   * the shard: `outboxWatermark()` answers null, and `accountOutbox` falls back to "the oldest id
   * still known (held or waiting)". The scheduled job's purge has already forgotten every held id
   * at or below the watermark, so the oldest id still known is the one right AFTER the missing
   * id: the accounting starts past it, `missing` is empty, and the next scheduled run moves the
   * watermark past it for good. The deleted audit entry is forgiven by the passage of a month.
   *
   * Safe behaviour: the watermark survives archiving (e.g. kept in a table beside the chain, or
   * read from `meta` written in the same transaction as the chained entry, or carried in every
   * checkpoint), so verify still reports the missing id after its entry is archived.
   */
  it("a missing outbox id stays reported after shard 0's watermark entry is archived", async () => {
    const config = loadConfig(env);
    const p = await newPlatform();
    await createReport(p, await newBuyer());
    await drainAuditOutbox();
    await accountOutbox(config, env.DB, { advance: true });
    const deleted = await deleteBeforeDrain(p);
    await createReport(p, await newBuyer());
    await drainAuditOutbox();
    // The scheduled job: accounts (the watermark stays below the missing id), then purges.
    const accounted = await accountOutbox(config, env.DB, { advance: true });
    expect(accounted.missing).toSatisfy(covers(deleted));
    expect(await purgeHeldBelowWatermark()).toBeLessThan(deleted);
    expect((await verify()).outbox.missing).toSatisfy(covers(deleted));

    // A month later: the scheduled run signs the heads and archives what is old enough.
    await drainAuditOutbox();
    await checkpoint(env.DB, config, config.AUDIT_SIGNING_JWK, Date.now());
    await archiveLog(env.DB, config, Date.now() + (config.LOG_ARCHIVE_AFTER_DAYS + 1) * DAY);
    const watermark = await shardStubAt(0).outboxWatermark();
    const after = await verify();
    expect(
      after.outbox.missing,
      `the deleted outbox row ${deleted} is no longer reported once the watermark entry was archived (watermark now ${watermark}, accounting ${JSON.stringify(after.outbox)})`,
    ).toSatisfy(covers(deleted));
  });

  /**
   * Attack (operator with shard storage, as in red team 2's forged `outbox_held` row). The fix
   * counts a held id only when the entry at its `seq` names it in its chained details — "or once
   * that entry is archived": `named === null && seq <= archived`. Any row whose `seq` points into
   * the archived part (the entry is gone from the shard, so `named` is null) is taken on its word.
   * Delete an outbox row before its drain, then `INSERT INTO outbox_appended (id, seq) VALUES
   * (<deleted>, 1)` in any shard that has archived anything: verify answers `missing: []`.
   *
   * Safe behaviour: an id held by an archived entry is still tied to that entry (e.g. the
   * `archived_lookups`-like row written by markArchived for every outbox entry it removes, or the
   * segment's entries checked), so the forged row is not counted and verify reports the id.
   */
  it("an id forged into outbox_appended at an archived seq does not account for a deleted row", async () => {
    const config = loadConfig(env);
    const p = await newPlatform();
    await createReport(p, await newBuyer());
    await drainAuditOutbox();
    await checkpoint(env.DB, config, config.AUDIT_SIGNING_JWK, Date.now());
    await archiveLog(env.DB, config, Date.now() + (config.LOG_ARCHIVE_AFTER_DAYS + 1) * DAY);
    const shard0 = shardStubAt(0);
    expect((await shard0.archivedHead()).seq).toBeGreaterThan(0);

    const deleted = await deleteBeforeDrain(p);
    await createReport(p, await newBuyer());
    await drainAuditOutbox();
    expect((await verify()).outbox.missing).toSatisfy(covers(deleted));

    await runInDurableObject(shard0, (_o, state) => {
      state.storage.sql.exec("INSERT INTO outbox_appended (id, seq) VALUES (?, 1)", deleted);
    });
    const after = await verify();
    expect(
      after.outbox.missing,
      "an audit entry deleted before its drain went unnoticed: a forged held id pointing into the archive",
    ).toSatisfy(covers(deleted));
  });
});

describe("red team 3: verify reads the newest 1,440 tree checkpoints by id", () => {
  /**
   * Attack (operator with D1 and shard storage). `latestTreeCheckpoints` takes the newest 1,440
   * rows of `log_checkpoints` BY ID, and nothing ties ids to signing order or stops a row being
   * copied. Insert 1,440 byte-for-byte copies of an OLDER, genuinely signed checkpoint: every one
   * verifies, they are the "newest" 1,440, and the real newest checkpoint falls out of the window.
   * Then truncate a shard back to the head the old checkpoint signed (dropping a look-up made
   * since, here): verify checks no signed head beyond it and answers the shard ok. (The same
   * window drives `readableLog`'s `ORDER BY id DESC LIMIT 1`, see below.)
   *
   * Safe behaviour: verify's window is by signing time (`at`, which a copy cannot move without
   * breaking its signature) or distinct roots, so the newest signed head is always checked and
   * verify reports the truncated shard.
   */
  it("copies of an old checkpoint do not push the newest signed head out of verify's window", {
    timeout: 120_000,
  }, async () => {
    const config = loadConfig(env);
    const { asker, buyer } = await lookUpOnShard(1);
    const old = await checkpoint(env.DB, config, config.AUDIT_SIGNING_JWK, Date.now());
    expect(old).not.toBeNull();
    const oldId = (await env.DB.prepare("SELECT max(id) AS id FROM log_checkpoints").first<number>(
      "id",
    )) as number;
    const stub = logShardOf(`platform:${asker.id}`);
    const signedHead = await stub.headOf();

    await score(asker, buyer);
    await drainAuditOutbox();
    expect(await checkpoint(env.DB, config, config.AUDIT_SIGNING_JWK, Date.now())).not.toBeNull();
    const newest = await stub.headOf();
    expect(newest.seq).toBeGreaterThan(signedHead.seq);

    // The insider: 1,440 copies of the older checkpoint, then the shard cut back to its head.
    // Roots are unique now (migration 0008): the copies are refused outright.
    await expect(
      env.DB.prepare(
        `INSERT INTO log_checkpoints (at, root, heads, kid, signature)
         SELECT at, root, heads, kid, signature FROM log_checkpoints WHERE id = ?`,
      )
        .bind(oldId)
        .run(),
    ).rejects.toThrow(/UNIQUE/);
    // And rows that are not copies (another root: unsigned) rank by their signing time, not
    // their id, so they cannot push the newest checkpoint out of verify's window either.
    await env.DB.prepare(
      `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1440)
       INSERT INTO log_checkpoints (at, root, heads, kid, signature)
       SELECT c.at, printf('%064x', i), c.heads, c.kid, c.signature FROM n, (SELECT * FROM log_checkpoints WHERE id = ?) c`,
    )
      .bind(oldId)
      .run();
    const cut = await runInDurableObject(stub, (instance, state) => {
      const rows = state.storage.sql.exec("SELECT * FROM entries WHERE seq > ?", signedHead.seq).toArray();
      state.storage.sql.exec("DELETE FROM entries WHERE seq > ?", signedHead.seq);
      (instance as unknown as { head: { seq: number; hash: string } }).head = {
        seq: signedHead.seq,
        hash: signedHead.hash,
      };
      return rows;
    });
    try {
      const after = await verifyLog(env.DB, config, config.AUDIT_SIGNING_JWK, "genesis");
      const shard1 = after.shards.find((s) => s.shard === 1);
      // Control: without the copies, the same verify catches it.
      await env.DB.prepare("DELETE FROM log_checkpoints WHERE id > ? AND at = ? AND root <> ?")
        .bind(oldId, old?.at, old?.root)
        .run();
      const control = await verifyLog(env.DB, config, config.AUDIT_SIGNING_JWK, "genesis");
      expect(control.shards.find((s) => s.shard === 1)?.ok).toBe(false);
      expect(
        shard1?.ok,
        `entries ${signedHead.seq + 1}–${newest.seq} of shard 1, signed by the newest tree checkpoint, are gone: ${JSON.stringify(shard1)}`,
      ).toBe(false);
    } finally {
      await env.DB.prepare("DELETE FROM log_checkpoints WHERE id > ? AND at = ? AND root <> ?")
        .bind(oldId, old?.at, old?.root)
        .run();
      await runInDurableObject(stub, (instance, state) => {
        for (const r of cut as Record<string, unknown>[]) {
          const cols = Object.keys(r);
          state.storage.sql.exec(
            `INSERT INTO entries (${cols.join(", ")}) VALUES (${cols.map(() => "?").join(", ")})`,
            ...cols.map((c) => r[c]),
          );
        }
        (instance as unknown as { head: { seq: number; hash: string } }).head = newest;
      });
    }
  });
});

describe("red team 3: readableLog", () => {
  /**
   * Attack (careless deployer lowers LOG_SHARDS, then an operator with D1 access). The fix makes
   * readers walk as many shards as the NEWEST row of `log_checkpoints` (by id) covers. A
   * deployment that started with LOG_SHARDS=1 holds genuinely signed checkpoints covering one
   * shard. After lowering LOG_SHARDS back to 1, insert one byte-for-byte copy of such an early
   * checkpoint: it verifies, it is the newest row, and `readableLog` answers 1 — verify, export,
   * the audit list, subject access, stats and retention skip shard 1 again (and the next
   * scheduled checkpoint, signed over `readableLog`'s shards, makes that permanent). Here an
   * entry rewritten in shard 1 goes unnoticed. (Deleting the newest rows works the same way.)
   *
   * Safe behaviour: the shard count readers walk does not go down by a row copied or deleted in
   * D1: e.g. the highest count of any checkpoint that verifies (or the count kept by shard 0 in
   * its chain); here verify still checks shard 1 and reports the rewrite.
   */
  it("a copied early checkpoint does not make readers skip a shard", async () => {
    const config = loadConfig(env);
    const { asker, requestId } = await lookUpOnShard(1);
    expect(await checkpoint(env.DB, config, config.AUDIT_SIGNING_JWK, Date.now())).not.toBeNull();
    const lowered = { ...config, LOG_SHARDS: 1 };
    expect((await readableLog(env.DB, lowered)).LOG_SHARDS).toBe(2);

    expect(oneShardCheckpointId).toBeGreaterThan(0);
    // A copy is refused (unique roots, migration 0008); a row with another root and a newer time
    // is not signed, so readers do not take its shard count.
    await expect(
      env.DB.prepare(
        `INSERT INTO log_checkpoints (at, root, heads, kid, signature)
         SELECT at, root, heads, kid, signature FROM log_checkpoints WHERE id = ?`,
      )
        .bind(oneShardCheckpointId)
        .run(),
    ).rejects.toThrow(/UNIQUE/);
    const copy = await env.DB.prepare(
      `INSERT INTO log_checkpoints (at, root, heads, kid, signature)
       SELECT ?, '${"f".repeat(64)}', heads, kid, signature FROM log_checkpoints WHERE id = ? RETURNING id`,
    )
      .bind(Date.now() + 60_000, oneShardCheckpointId)
      .first<number>("id");
    const stub = logShardOf(`platform:${asker.id}`);
    await runInDurableObject(stub, (_o, state) => {
      state.storage.sql.exec("UPDATE entries SET outcome = 'denied' WHERE request_id = ?", requestId);
    });
    try {
      const readers = (await readableLog(env.DB, lowered)).LOG_SHARDS;
      const one = await verifyLog(env.DB, lowered, config.AUDIT_SIGNING_JWK, "genesis");
      expect(
        one.shards.map((s) => s.shard),
        `with LOG_SHARDS=1 and one copied checkpoint, readers walk ${readers} shard(s); verify checked ${JSON.stringify(one.shards.map((s) => s.shard))}`,
      ).toEqual([0, 1]);
      expect(one.shards[1]?.ok, "the rewritten entry in shard 1 is caught").toBe(false);
    } finally {
      await env.DB.prepare("DELETE FROM log_checkpoints WHERE id = ?").bind(copy).run();
      await runInDurableObject(stub, (_o, state) => {
        state.storage.sql.exec("UPDATE entries SET outcome = 'ok' WHERE request_id = ?", requestId);
      });
    }
  });
});

describe("red team 3: online verify and the archive", () => {
  /**
   * Attack (operator with a shard's storage and R2 write access; object lock does not help, the
   * object is new). Online verify holds a shard's archived part to the bucket by METADATA only
   * (`archiveCoverage`: `from`, `to`, `prevHash`, `hash` of each object), skips every signed head
   * below the archived head, and checks inquiry rows only for `archived_lookups` rows. So: delete
   * a shard's entries after its archived head — here a look-up made a minute ago — with the
   * look-up's inquiry rows, record the shard's head as "archived", and put one object whose
   * metadata chains on from the last real segment to that head, with no entries in it at all.
   * `/v1/admin/audit/verify` answers the shard ok: the look-up vanished from the log and from the
   * buyer's subject access. Only `/archive/verify?key=` of that very object would object.
   *
   * Safe behaviour: online verify does not take a segment's word for what it holds (e.g. each
   * segment's content verified once, when first seen, with the verdict kept; or markArchived
   * chaining which segment it archived to), so the shard's verdict here is `ok: false`.
   */
  it("a metadata-only R2 object does not let entries vanish from a shard", async () => {
    const config = loadConfig(env);
    const [reporter, asker] = await Promise.all([newPlatform(), platformOnShard(1)]);
    const buyer = await newBuyer();
    await createReport(reporter, buyer);
    // Shard 1 has an archived part (whatever ran before): a look-up, signed, archived a month on.
    await score(asker, buyer);
    await drainAuditOutbox();
    await checkpoint(env.DB, config, config.AUDIT_SIGNING_JWK, Date.now());
    await archiveLog(env.DB, config, Date.now() + (config.LOG_ARCHIVE_AFTER_DAYS + 1) * DAY);
    const requestId = await score(asker, buyer);
    await drainAuditOutbox();
    await checkpoint(env.DB, config, config.AUDIT_SIGNING_JWK, Date.now());
    const stub = logShardOf(`platform:${asker.id}`);
    const archived = await stub.archivedHead();
    const head = await stub.headOf();
    expect(archived.seq).toBeGreaterThan(0);
    expect(head.seq).toBeGreaterThan(archived.seq);
    expect((await verify()).shards[1]?.ok).toBe(true);

    const key = segmentKey(1, archived.seq + 1, head.seq);
    const saved = await runInDurableObject(stub, (instance, state) => {
      const sql = state.storage.sql;
      const entries = sql.exec("SELECT * FROM entries WHERE seq > ?", archived.seq).toArray();
      const inquiries = sql.exec("SELECT * FROM inquiries WHERE request_id = ?", requestId).toArray();
      sql.exec("DELETE FROM entries WHERE seq > ?", archived.seq);
      sql.exec("DELETE FROM inquiries WHERE request_id = ?", requestId);
      sql.exec(
        "UPDATE meta SET v = ? WHERE k = 'archived'",
        JSON.stringify({ seq: head.seq, hash: head.hash }),
      );
      // As after a restart of the object.
      (instance as unknown as { archived: { seq: number; hash: string } }).archived = head;
      return { entries, inquiries };
    });
    await env.LOG_ARCHIVE.put(key, "{}\n", {
      customMetadata: {
        shard: "1",
        from: String(archived.seq + 1),
        to: String(head.seq),
        entries: String(head.seq - archived.seq),
        prevHash: archived.hash,
        hash: head.hash,
      },
    });
    try {
      const after = await verify();
      expect(
        after.shards[1]?.ok,
        `entries ${archived.seq + 1}–${head.seq} of shard 1 (a look-up a minute old) were deleted with its inquiry rows and "archived" to an empty object: ${JSON.stringify(after.shards[1])}`,
      ).toBe(false);
    } finally {
      await env.LOG_ARCHIVE.delete(key);
      await runInDurableObject(stub, (instance, state) => {
        const sql = state.storage.sql;
        for (const table of ["entries", "inquiries"] as const) {
          for (const r of saved[table] as Record<string, unknown>[]) {
            const cols = Object.keys(r);
            sql.exec(
              `INSERT INTO ${table} (${cols.join(", ")}) VALUES (${cols.map(() => "?").join(", ")})`,
              ...cols.map((c) => r[c]),
            );
          }
        }
        sql.exec("UPDATE meta SET v = ? WHERE k = 'archived'", JSON.stringify(archived));
        (instance as unknown as { archived: { seq: number; hash: string } }).archived = archived;
      });
    }
  });
});

describe("red team 3: the archive's window of tree checkpoints", () => {
  const config = loadConfig(env);
  const now = Date.now();
  /** When the late entries were written: they then waited in the outbox for days. */
  const t0 = now - 45 * DAY;
  const FAKES = 2_900;

  /**
   * The checkpoints signed, once a minute, while an entry of shard 1 written at `t0` waited in
   * the outbox (its shard unreachable, or its row failing, for two days): each genuinely signed
   * with the audit key, over the ledger's head, shard 0's head (which moved every minute) and
   * shard 1's head before the late entry.
   */
  async function checkpointsWhileWaiting(shard1Head: ShardHead) {
    const ledger = (
      JSON.parse(
        (await env.DB.prepare("SELECT heads FROM log_checkpoints ORDER BY id DESC LIMIT 1").first<string>(
          "heads",
        )) as string,
      ) as ShardHead[]
    ).find((h) => h.shard === -1) as ShardHead;
    const shard0 = shardStubAt(0);
    await shard0.appendMany(
      0,
      Array.from({ length: FAKES }, () => plainAppend(Date.now(), "system:rt3-filler", "rt3.filler")),
    );
    const fillers = await runInDurableObject(
      shard0,
      (_o, state) =>
        state.storage.sql
          .exec<{ seq: number; hash: string }>(
            "SELECT seq, hash FROM entries WHERE action = 'rt3.filler' ORDER BY seq",
          )
          .toArray() as { seq: number; hash: string }[],
    );
    const cps = [];
    for (let i = 0; i < FAKES; i++) {
      const f = fillers[i] as { seq: number; hash: string };
      cps.push(
        await signTree(t0 + (i + 1) * 60_000, [
          ledger,
          { shard: 0, seq: f.seq, hash: f.hash },
          { ...shard1Head, shard: 1 },
        ]),
      );
    }
    await storeTrees(cps);
  }

  /**
   * Attack (none: an outbox row drained days late). `verifySegment` requires the segment's end
   * to be a head signed by a stored checkpoint, read with `treeCheckpointsAround(db, last.at,
   * "after")`: the first 2,880 checkpoints signed at or after the LAST entry's `at`. But `at` is
   * when the entry was written, not chained: an outbox entry drained late carries its write time.
   * A segment that ends on such an entry (written at t0, drained three days later, right after an
   * entry written then) is signed by a checkpoint days after t0, while the window holds only the
   * 2,880 checkpoints from t0 on (two days). Segment verify answers "no tree checkpoint signed
   * entry …" for a segment nothing touched — forever, under object lock.
   *
   * Safe behaviour: the window starts where the end could first have been signed — after the
   * segment's entries were chained (e.g. the max `at` of its entries, or the checkpoint embedded
   * in the segment looked up by `at`), and segment verify answers ok.
   */
  it("a segment ending on an entry drained late verifies ok", { timeout: 300_000 }, async () => {
    const stub = shardStubAt(1);
    await drainAuditOutbox();
    await checkpoint(env.DB, config, config.AUDIT_SIGNING_JWK, Date.now());
    await archiveLog(env.DB, config, Date.now() + (config.LOG_ARCHIVE_AFTER_DAYS + 1) * DAY);
    const before = await stub.headOf();
    expect((await stub.archivedHead()).seq).toBe(before.seq);
    await checkpointsWhileWaiting(before);

    const actor = "system:rt3-late";
    // An entry written 40 days ago, then the late one (written at t0) drained right after it.
    expect((await stub.append(1, plainAppend(now - 40 * DAY, actor))).ok).toBe(true);
    expect((await stub.append(1, plainAppend(t0, actor))).ok).toBe(true);
    const late = await stub.headOf();
    expect(await checkpoint(env.DB, config, config.AUDIT_SIGNING_JWK, Date.now())).not.toBeNull();
    // The segment's end is a head a stored, valid checkpoint signed.
    expect(await validSigners(1, late)).toBeGreaterThan(0);
    const run = await archiveLog(env.DB, config, Date.now());
    const key = run.segments.find((k) => k.startsWith("log/shard-001/")) as string;
    expect(key, `the archive wrote no segment of shard 1: ${JSON.stringify(run)}`).toBeTruthy();
    expect((await stub.archivedHead()).seq).toBe(late.seq);

    const verdict = await verifySegment(config, env.DB, key);
    expect(verdict?.ok, `segment ${key}, untouched: ${JSON.stringify(verdict?.error)}`).toBe(true);
  });

  /**
   * Attack (none: the same late drain, when the late entry is the first after the archived head).
   * `archiveLog` looks for the segment's end among `treeCheckpointsAround(d1, first.at,
   * "after")`: the first 2,880 checkpoints signed at or after the FIRST candidate's `at`. When
   * that entry was drained more than 2,880 checkpoints (two days at one a minute) after it was
   * written, none of them signs a head of its shard at or after it, so `end` is 0 and the run
   * returns null for the shard — and every later run reads the same window from the same entry.
   * The shard never archives again, silently (no error, no alert), and grows without bound.
   *
   * Safe behaviour: the archive finds a signed end however late the first entry was drained
   * (e.g. read checkpoints from when the entry was chained, or the newest checkpoints signing a
   * head in the candidates), and archives it.
   */
  it("an entry drained two days late does not stall its shard's archive for good", {
    timeout: 300_000,
  }, async () => {
    const stub = shardStubAt(1);
    const before = await stub.headOf();
    expect((await stub.archivedHead()).seq).toBe(before.seq);
    expect((await stub.append(1, plainAppend(t0, "system:rt3-late"))).ok).toBe(true);
    expect(await checkpoint(env.DB, config, config.AUDIT_SIGNING_JWK, Date.now())).not.toBeNull();
    expect(await validSigners(1, await stub.headOf())).toBeGreaterThan(0);

    const today = await archiveLog(env.DB, config, Date.now());
    const tomorrow = await archiveLog(env.DB, config, Date.now() + DAY);
    const segments = [...today.segments, ...tomorrow.segments].filter((k) => k.startsWith("log/shard-001/"));
    expect(
      segments.length,
      `entry ${before.seq + 1} of shard 1, written ${(Date.now() - t0) / DAY} days ago and signed, is never archived`,
    ).toBeGreaterThan(0);
  });
});

describe("red team 3: the watermark's entry", () => {
  /**
   * Attack (operator with D1 write access only: no shard storage needed). The watermark is "the
   * `through` of shard 0's latest `audit.outbox_accounted` entry" — any entry with that action,
   * whoever wrote it and however it got there. The outbox drains whatever rows `audit_outbox`
   * holds, chained as they are (it only adds `outboxId`). Delete a row before its drain, then
   * insert one outbox row: actor `admin:test-admin` (shard 0), action `audit.outbox_accounted`,
   * details `{"through": <top>}`. The next drain chains it in shard 0, and verify starts its
   * accounting past the deleted id: `missing: []`.
   *
   * Safe behaviour: only the shard's own watermark moves count (actor `system:ledger`, appended by
   * `advanceOutboxWatermark`, no `outboxId`), and verify reports the deleted id.
   */
  it("an outbox row posing as the watermark does not hide a deleted row", async () => {
    const p = await newPlatform();
    await createReport(p, await newBuyer());
    await drainAuditOutbox();
    const deleted = await deleteBeforeDrain(p);
    await createReport(p, await newBuyer());
    await drainAuditOutbox();
    const seen = await verify();
    expect(seen.outbox.missing).toSatisfy(covers(deleted));

    const actor = "admin:test-admin";
    expect(shardOf(actor, SHARDS)).toBe(0);
    const requestId = `outbox-through:${seen.outbox.top}`;
    await env.DB.prepare(
      `INSERT INTO audit_outbox (at, actor, action, target, request_id, outcome, details)
       VALUES (?, ?, 'audit.outbox_accounted', NULL, ?, 'ok', ?)`,
    )
      .bind(Date.now(), actor, requestId, JSON.stringify({ through: seen.outbox.top }))
      .run();
    const after = await verify();
    expect(
      after.outbox.missing,
      `an audit entry deleted before its drain went unnoticed (accounting ${JSON.stringify(after.outbox)})`,
    ).toSatisfy(covers(deleted));
  });
});

describe("red team 3: readableLog trusts an unsigned row", () => {
  /**
   * Attack (operator with D1 write access, once). `readableLog` reads the shard count from the
   * newest `log_checkpoints` row without checking its signature, and `currentHeads` (which the
   * scheduled checkpoint signs) walks that many shards. Insert one unsigned row whose `heads`
   * lists 40 shards: the next scheduled checkpoint genuinely signs 40 (empty) shard heads; delete
   * the forged row. Verify is ok again (nothing unsigned is left), but from now on every subject
   * access, export, stats, retention run and verify calls 40 Durable Objects instead of 2, and
   * every later checkpoint keeps them ("each covers at least as many shards as the one before").
   * With 10,000 instead of 40, every subject access request makes 10,000 calls.
   *
   * Safe behaviour: readers and the checkpoint trust only a verified checkpoint's count, so the
   * count stays 2.
   */
  it("an unsigned checkpoint row does not widen what readers walk", { timeout: 120_000 }, async () => {
    const config = loadConfig(env);
    const wide = 40;
    const heads: ShardHead[] = [
      { shard: -1, seq: 0, hash: GENESIS_HASH },
      ...Array.from({ length: wide }, (_, shard) => ({ shard, seq: 0, hash: GENESIS_HASH })),
    ];
    const forged = await env.DB.prepare(
      `INSERT INTO log_checkpoints (at, root, heads, kid, signature) VALUES (?, ?, ?, ?, 'AAAA') RETURNING id`,
    )
      .bind(Date.now(), "0".repeat(64), JSON.stringify(heads), config.AUDIT_SIGNING_JWK.kid)
      .first<number>("id");
    const signed = await checkpoint(env.DB, config, config.AUDIT_SIGNING_JWK, Date.now());
    await env.DB.prepare("DELETE FROM log_checkpoints WHERE id = ?").bind(forged).run();
    const readers = (await readableLog(env.DB, config)).LOG_SHARDS;
    expect(
      signed?.heads.length,
      `the scheduled checkpoint signed ${signed?.heads.length} heads after one unsigned row; readers now walk ${readers} shards`,
    ).toBe(SHARDS + 1);
    expect(readers).toBe(SHARDS);
  });
});
