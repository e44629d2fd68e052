/**
 * Red team, issue 10, second pass (the log store): attacks on the R2 archive, on what verify
 * holds a look-up to once it is archived, on the audit outbox's accounting, on the inquiry log a
 * buyer is shown, on a change of LOG_SHARDS, and on verify's reading of the tree checkpoints.
 * Each test here FAILS on the code it was written against: it states the safe behaviour, and the
 * comment above it the attack.
 *
 * Runs on its own storage (test files do not share local storage). The tests run in order and
 * share it: the two archive tests come first, on log shard 1 (the admin writes to shard 0), and
 * the test that stores 100,000 tree checkpoints comes last.
 */
import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { checkpoint, verifyLog } from "../worker/audit/ledger";
import { loadConfig } from "../worker/env";
import { archiveLog } from "../worker/log/archive";
import type { LogEntry } from "../worker/log/chain";
import { shardOf } from "../worker/log/client";
import { accountOutbox } from "../worker/log/outbox";
import {
  callJson,
  createReport,
  drainAuditOutbox,
  logShardOf,
  logShards,
  lookUpOnShard,
  lookupAppend,
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

/** An actor (`platform:…`) that writes to log shard `shard`. */
function actorOnShard(shard: number): string {
  for (;;) {
    const actor = `platform:${uniqueId("rt2")}`;
    if (shardOf(actor, SHARDS) === shard) {
      return actor;
    }
  }
}

describe("red team 2: the R2 archive", () => {
  /**
   * Attack (none needed: ordinary operation; an operator could also provoke it by delaying a
   * drain). Entries are chained in append order, but their `at` is not monotonic in `seq`: an
   * outbox entry carries the time of its write and is drained later (a failed drain waits a
   * minute; the scheduled job's own `maintenance.run` entry carries the run's start and is drained
   * at its end, after look-ups appended meanwhile), and a look-up carries its request's start.
   * `archivable()` selects `seq > archived AND at < cutoff`, which SKIPS an entry newer than the
   * cutoff sitting between older ones; the segment ends on the newest signed head among the
   * candidates, and `markArchived(seq)` then deletes `seq <= to`: the skipped entry is in no
   * segment and gone from the shard. The segment's metadata still says from–to, so
   * `/v1/admin/audit/verify` (which checks the archive by metadata coverage) answers ok.
   *
   * Safe behaviour: an archived segment is a contiguous run of seqs (stop at the first entry not
   * old enough), and no entry leaves the shard unless it is in the segment: here, the late entry
   * is still in the shard or in the segment.
   */
  it("archiving does not delete an entry that is newer than the entries chained after it", async () => {
    const config = loadConfig(env);
    await drainAuditOutbox();
    const stub = logShards()[1] as NonNullable<ReturnType<typeof logShards>[number]>;
    const actor = actorOnShard(1);
    const old = Date.now() - 40 * DAY;
    const [first, late, drainedLate] = [
      uniqueId("req_rt2_a"),
      uniqueId("req_rt2_late"),
      uniqueId("req_rt2_b"),
    ];
    expect((await stub.append(1, lookupAppend(first, old, actor, "a".repeat(64)))).ok).toBe(true);
    // A head signed at the first entry, so a segment can end before the late entry (it ends on a
    // signed head, and stops at the first entry not old enough).
    expect(await checkpoint(env.DB, config, config.AUDIT_SIGNING_JWK, Date.now())).not.toBeNull();
    // Written a minute later than the entry chained after it, which was drained late.
    expect((await stub.append(1, lookupAppend(late, old + 60_000, actor, "b".repeat(64)))).ok).toBe(true);
    expect((await stub.append(1, lookupAppend(drainedLate, old, actor, "c".repeat(64)))).ok).toBe(true);
    expect(await checkpoint(env.DB, config, config.AUDIT_SIGNING_JWK, Date.now())).not.toBeNull();

    // The scheduled run whose cutoff (now − LOG_ARCHIVE_AFTER_DAYS) falls inside that minute.
    const runAt = old + 30_000 + config.LOG_ARCHIVE_AFTER_DAYS * DAY;
    const run = await archiveLog(env.DB, config, runAt);
    const key = run.segments.find((k) => k.startsWith("log/shard-001/")) as string;
    expect(key).toBeTruthy();
    const segment = (await (await env.LOG_ARCHIVE.get(key))?.text()) ?? "";
    const inShard = (await stub.entries({ requestId: late, limit: 10 })) as unknown as LogEntry[];
    const verdict = await verify();

    expect(
      inShard.length + (segment.includes(late) ? 1 : 0),
      `the late entry is neither in the shard nor in segment ${key}; verify answered ok=${verdict.ok}`,
    ).toBe(1);
  });

  /**
   * Attack (curious or colluding operator with access to a shard's storage). Verify holds every
   * look-up "younger than the inquiries' retention" (RETENTION_DAYS, 5 years by default) to its
   * inquiry rows, so deleting a look-up from a buyer's subject access is caught (docs/audit.md,
   * "Inquiries"). But it checks only the entries still in the shard: after LOG_ARCHIVE_AFTER_DAYS
   * (30) a look-up's entry moves to R2 while its inquiry rows and subject keys stay in the shard
   * for years, and nothing holds them to each other any more. Delete the inquiry rows of any
   * look-up older than a month: the buyer never sees it, and verify answers ok.
   *
   * Safe behaviour: verify keeps holding archived look-ups to their inquiry rows for the
   * inquiries' whole retention (e.g. from `entry_keys`, which keeps seq and time beside the
   * archive, with the `inquired` flag), answering `ok: false` here.
   */
  it("deleting an archived look-up's inquiry rows is caught by verify", async () => {
    const config = loadConfig(env);
    const { asker, requestId } = await lookUpOnShard(1);
    expect(await checkpoint(env.DB, config, config.AUDIT_SIGNING_JWK, Date.now())).not.toBeNull();
    // The scheduled run a month and a day later.
    await archiveLog(env.DB, config, Date.now() + (config.LOG_ARCHIVE_AFTER_DAYS + 1) * DAY);
    const stub = logShardOf(`platform:${asker.id}`);
    expect(await stub.entries({ requestId, limit: 10 })).toEqual([]);
    const before = await verify();
    expect(before.ok, JSON.stringify(before)).toBe(true);

    const removed = await runInDurableObject(stub, (_o, state) =>
      state.storage.sql.exec("SELECT * FROM inquiries WHERE request_id = ?", requestId).toArray(),
    );
    expect(removed.length).toBeGreaterThan(0);
    await runInDurableObject(stub, (_o, state) => {
      state.storage.sql.exec("DELETE FROM inquiries WHERE request_id = ?", requestId);
    });
    try {
      const after = await verify();
      expect(after.ok, "a look-up deleted from the buyer's subject access went unnoticed").toBe(false);
    } finally {
      await runInDurableObject(stub, (_o, state) => {
        for (const r of removed) {
          state.storage.sql.exec(
            "INSERT INTO inquiries (subject_key, platform_id, purpose, at, request_id) VALUES (?, ?, ?, ?, ?)",
            r.subject_key,
            r.platform_id,
            r.purpose,
            r.at,
            r.request_id,
          );
        }
      });
    }
  });
});

describe("red team 2: an archive run that dies", () => {
  /**
   * Attack (none: a scheduled run that dies, or is cut off, between writing a segment to R2 and
   * `markArchived`). docs/audit.md: "A run that dies between the two writes the same segment
   * again (same key, same content)". It does not: the next run (a minute later) ends its segment
   * on the newest signed head among the candidates, which has moved on, so it writes a second
   * segment with the same `from` and a different `to`. `archiveCoverage` then finds two segments
   * starting at the same seq and reports "entries from … were archived but no segment in R2
   * holds them": verify answers NOT ok forever after, with nothing tampered with (and, under the
   * object lock the docs prescribe, the orphan segment cannot be deleted). A false alarm that
   * cannot be cleared trains admins to ignore verify.
   *
   * Safe behaviour: a rerun after a failed `markArchived` finishes the segment already written
   * (or coverage accepts an orphan segment overlapped by a longer one that chains), and verify
   * answers ok.
   */
  it("an archive run that died before markArchived leaves verify ok", async () => {
    const config = loadConfig(env);
    const { asker, buyer } = await lookUpOnShard(1);
    expect(await checkpoint(env.DB, config, config.AUDIT_SIGNING_JWK, Date.now())).not.toBeNull();
    expect((await verify()).ok).toBe(true);
    const later = Date.now() + (config.LOG_ARCHIVE_AFTER_DAYS + 1) * DAY;

    // The run dies after writing its segments, before any shard records them as archived.
    const dying = {
      ...config,
      LOG: {
        idFromName: (name: string) => env.LOG.idFromName(name),
        get: (id: DurableObjectId) => {
          const stub = env.LOG.get(id);
          return {
            archivable: (before: number, max: number) => stub.archivable(before, max),
            markArchived: async () => {
              throw new Error("the run died");
            },
          };
        },
      } as unknown as typeof config.LOG,
    };
    const keysBefore = new Set((await env.LOG_ARCHIVE.list({ prefix: "log/" })).objects.map((o) => o.key));
    await expect(archiveLog(env.DB, dying, later)).rejects.toThrow(/the run died/);
    const orphans = (await env.LOG_ARCHIVE.list({ prefix: "log/" })).objects
      .map((o) => o.key)
      .filter((k) => !keysBefore.has(k));
    expect(orphans.length).toBeGreaterThan(0);

    // A minute later: more look-ups, a new checkpoint, and the next run.
    await score(asker, buyer);
    await drainAuditOutbox();
    expect(await checkpoint(env.DB, config, config.AUDIT_SIGNING_JWK, Date.now())).not.toBeNull();
    const run = await archiveLog(env.DB, config, later + 60_000);
    try {
      const after = await verify();
      expect(
        after.ok,
        `nothing was tampered with; segments ${JSON.stringify(orphans)} then ${JSON.stringify(run.segments)}: ${JSON.stringify(after.shards)}`,
      ).toBe(true);
    } finally {
      // Not possible under object lock; here, so the tests after this one start from a clean verify.
      for (const key of orphans.filter((k) => !run.segments.includes(k))) {
        await env.LOG_ARCHIVE.delete(key);
      }
    }
  });
});

describe("red team 2: the inquiry log a buyer is shown", () => {
  /**
   * Attack (operator with access to a shard's storage). Verify checks that each retained look-up
   * still has an inquiry row per subject key with its time and platform, but not which request
   * the row belongs to, nor its purpose. Subject access shows one look-up per `request_id`.
   * Rewrite the `request_id` of a platform's second look-up of a buyer to that of its first:
   * every row verify looks for is still there, verify answers ok, and the buyer's subject access
   * shows one look-up where there were two. (Rewriting `purpose`, e.g. a `refund_review` shown as
   * the buyer's own `subject_access`, passes the same way.)
   *
   * Safe behaviour: verify matches each look-up's inquiry rows on everything subject access
   * shows (request id and purpose as well as key, time and platform), answering `ok: false`.
   */
  it("folding one look-up into another in the inquiry log is caught by verify", async () => {
    const [reporter, asker] = await Promise.all([newPlatform(), newPlatform()]);
    const buyer = await newBuyer();
    await createReport(reporter, buyer);
    const first = await score(asker, buyer);
    const second = await score(asker, buyer);
    await drainAuditOutbox();
    const access = async () => {
      const res = await callJson<{ inquiries: { platformName: string }[] }>("/v1/subject-access", {
        token: await reporter.token(),
        body: { requestRef: uniqueId("ticket"), subjects: buyer },
      });
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      return res.body.inquiries.filter((i) => i.platformName === `Platform ${asker.id}`).length;
    };
    expect(await access()).toBe(2);
    expect((await verify()).ok).toBe(true);

    const stub = logShardOf(`platform:${asker.id}`);
    await runInDurableObject(stub, (_o, state) => {
      state.storage.sql.exec("UPDATE inquiries SET request_id = ? WHERE request_id = ?", first, second);
    });
    try {
      expect(await access()).toBe(1);
      const after = await verify();
      expect(after.ok, "a look-up hidden from the buyer's subject access went unnoticed").toBe(false);
    } finally {
      await runInDurableObject(stub, (_o, state) => {
        state.storage.sql.exec(
          "UPDATE inquiries SET request_id = ? WHERE request_id = ? AND at = (SELECT max(at) FROM inquiries WHERE request_id = ?)",
          second,
          first,
          first,
        );
      });
    }
  });
});

describe("red team 2: the audit outbox's accounting", () => {
  /** An action's outbox row written and deleted before any drain saw it; its id. */
  async function deleteBeforeDrain(p: TestPlatform): Promise<number> {
    await env.DB.batch([
      env.DB.prepare(
        `INSERT INTO audit_outbox (at, actor, action, target, request_id, outcome, details)
         VALUES (?, ?, 'report.retract', NULL, ?, 'ok', NULL)`,
      ).bind(Date.now(), `platform:${p.id}`, uniqueId("req_rt2_gap")),
      env.DB.prepare(
        "DELETE FROM audit_outbox WHERE id = (SELECT seq FROM sqlite_sequence WHERE name = 'audit_outbox')",
      ),
    ]);
    return (await env.DB.prepare("SELECT seq FROM sqlite_sequence WHERE name = 'audit_outbox'").first<number>(
      "seq",
    )) as number;
  }

  /**
   * Attack (operator with D1 and shard storage access, as in test/redteam-log.test.ts). The
   * accounting counts an outbox id as delivered when any shard's `outbox_held` table lists it,
   * but `outbox_held` is a bare list of numbers: nothing ties a held id to a chained entry (the
   * entry's content does not carry its outbox id, and `appends` is not checked). Delete an
   * action's outbox row before its drain, then insert its id into `outbox_held`: verify answers
   * ok, `missing: []`, and the action has no audit entry anywhere.
   *
   * Safe behaviour: an id counts as held only with its entry in the chain (e.g. the outbox id
   * chained in the entry, or checked against the `appends` row and the seq it names); here
   * verify reports the id missing.
   */
  it("an id forged into outbox_held does not account for a deleted outbox row", async () => {
    const p = await newPlatform();
    await createReport(p, await newBuyer());
    await drainAuditOutbox();
    expect((await verify()).outbox.missing).toEqual([]);
    const deleted = await deleteBeforeDrain(p);
    await createReport(p, await newBuyer());
    await drainAuditOutbox();
    expect((await verify()).outbox.missing).toEqual([[deleted, deleted]]);

    await runInDurableObject(
      logShards()[0] as NonNullable<ReturnType<typeof logShards>[number]>,
      (_o, state) => {
        // The table is now `outbox_appended (id, seq)`: the forged id points at a real entry.
        state.storage.sql.exec(
          "INSERT INTO outbox_appended (id, seq) VALUES (?, (SELECT max(seq) FROM entries))",
          deleted,
        );
      },
    );
    const after = await verify();
    expect(after.outbox.missing, "an audit entry deleted before its drain went unnoticed").toEqual([
      [deleted, deleted],
    ]);
    expect(after.ok).toBe(false);
  });

  /**
   * Attack (same operator). Missing ids "keep the watermark below them, so every later verify
   * reports them" — but the watermark is a plain `meta` row of log shard 0 (`outbox_through`),
   * neither chained nor signed, and verify starts its accounting there. Delete an outbox row
   * before its drain, then set `outbox_through` to the outbox's top: verify answers ok.
   *
   * Safe behaviour: the watermark cannot be moved without a trace (e.g. each move chained as an
   * entry of shard 0, or its value in the signed tree checkpoint, and verify checks the stored one
   * against it); here verify reports the id missing.
   */
  it("moving the outbox watermark past a deleted row is caught by verify", async () => {
    const p = await newPlatform();
    await createReport(p, await newBuyer());
    await drainAuditOutbox();
    const deleted = await deleteBeforeDrain(p);
    await createReport(p, await newBuyer());
    await drainAuditOutbox();
    const seen = await verify();
    expect(seen.outbox.missing).toContainEqual([deleted, deleted]);

    await runInDurableObject(
      logShards()[0] as NonNullable<ReturnType<typeof logShards>[number]>,
      (_o, state) => {
        state.storage.sql.exec(
          "INSERT INTO meta (k, v) VALUES ('outbox_through', ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v",
          String(seen.outbox.top),
        );
      },
    );
    const after = await verify();
    expect(after.outbox.missing, "an audit entry deleted before its drain went unnoticed").toContainEqual([
      deleted,
      deleted,
    ]);
  });
});

describe("red team 2: changing LOG_SHARDS", () => {
  /**
   * Attack (careless deployer, then anyone with storage access). docs/architecture.md says
   * "Changing LOG_SHARDS re-routes actors … every shard's chain stays valid and every shard stays
   * in the tree checkpoints". Lowering it (2 → 1) drops the upper shards from everything that
   * walks `everyShard`: verify, export, the admin list, subject access, the checkpoints. Verify
   * then answers ok without looking at shard 1 at all, though stored tree checkpoints signed its
   * head: an entry rewritten there (here a look-up's outcome) goes unnoticed, and the look-ups
   * it holds vanish from every buyer's subject access.
   *
   * Safe behaviour: verify covers every shard a stored tree checkpoint names (or the Worker
   * refuses a LOG_SHARDS below it): with LOG_SHARDS=1 it still reports shard 1's altered entry.
   */
  it("lowering LOG_SHARDS does not hide a shard from verify", async () => {
    const config = loadConfig(env);
    const { asker, requestId } = await lookUpOnShard(1);
    expect(await checkpoint(env.DB, config, config.AUDIT_SIGNING_JWK, Date.now())).not.toBeNull();
    await accountOutbox(config, env.DB, { advance: true });
    const stub = logShardOf(`platform:${asker.id}`);
    await runInDurableObject(stub, (_o, state) => {
      state.storage.sql.exec("UPDATE entries SET outcome = 'denied' WHERE request_id = ?", requestId);
    });
    try {
      const two = await verifyLog(env.DB, config, config.AUDIT_SIGNING_JWK, "genesis");
      expect(two.ok, "the altered entry is caught with LOG_SHARDS=2").toBe(false);
      const one = await verifyLog(env.DB, { ...config, LOG_SHARDS: 1 }, config.AUDIT_SIGNING_JWK, "genesis");
      // The verdict about the shards themselves (earlier tests here left outbox gaps on purpose).
      expect(
        one.shards.map((s) => s.shard),
        `with LOG_SHARDS=1 verify checked shards ${JSON.stringify(one.shards.map((s) => s.shard))} only`,
      ).toEqual([0, 1]);
      expect(one.shards[1]?.ok, "the altered entry in shard 1 is caught").toBe(false);
      expect(one.ok).toBe(false);
    } finally {
      await runInDurableObject(stub, (_o, state) => {
        state.storage.sql.exec("UPDATE entries SET outcome = 'ok' WHERE request_id = ?", requestId);
      });
    }
  });
});

describe("red team 2: verify reads the tree checkpoints", () => {
  /**
   * Attack (time, then an operator with shard storage access). `loadCheckpoints` reads the tree
   * checkpoints with `treeCheckpoints(d1)`, whose default limit is 100,000, OLDEST first. The
   * scheduled job signs one a minute whenever a head moved, so after about 70 days (100,000
   * minutes) every newer checkpoint is silently ignored: verify compares no recent signed head
   * (the ones it reads are soon all inside the archive, which it skips), `from=checkpoint`
   * starts months back, and `archiveLog`/`verifySegment` read the same truncated set (the
   * archive stops finding a signed end). Meanwhile each verify checks 100,000+ signatures.
   * Here: 100,000 stored checkpoints (copies of a real one), then a look-up signed only by the
   * newest checkpoint, then the operator truncates the shard back to before it. Verify answers ok.
   *
   * Safe behaviour: verify holds every shard to the NEWEST signed heads (read newest first, or
   * by ledger seq, in bounded pages), answering `ok: false` when entries a checkpoint signed are
   * gone.
   */
  it("entries signed by the 100,001st tree checkpoint are still held by verify", {
    timeout: 600_000,
  }, async () => {
    const config = loadConfig(env);
    const asker = await platformOnShard(1);
    const [reporter] = await Promise.all([newPlatform()]);
    const buyer = await newBuyer();
    await createReport(reporter, buyer);
    await score(asker, buyer);
    await drainAuditOutbox();
    expect(await checkpoint(env.DB, config, config.AUDIT_SIGNING_JWK, Date.now())).not.toBeNull();
    const stub = logShardOf(`platform:${asker.id}`);
    const signedHead = await stub.headOf();
    const stored = (await env.DB.prepare("SELECT count(*) AS n FROM log_checkpoints").first<number>(
      "n",
    )) as number;
    await env.DB.prepare(
      `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)
       INSERT INTO log_checkpoints (at, root, heads, kid, signature)
       SELECT c.at, printf('%064x', i), c.heads, c.kid, c.signature FROM n,
         (SELECT * FROM log_checkpoints ORDER BY id DESC LIMIT 1) c`,
    )
      .bind(100_000 - stored)
      .run();

    // A look-up after them, signed by the next checkpoint only.
    await score(asker, buyer);
    await drainAuditOutbox();
    expect(await checkpoint(env.DB, config, config.AUDIT_SIGNING_JWK, Date.now())).not.toBeNull();
    const newest = await stub.headOf();
    expect(newest.seq).toBeGreaterThan(signedHead.seq);

    // The operator truncates the shard back to the head the old checkpoints signed (and the
    // object restarts, so it goes on from there).
    await runInDurableObject(stub, (instance, state) => {
      state.storage.sql.exec("DELETE FROM entries WHERE seq > ?", signedHead.seq);
      (instance as unknown as { head: { seq: number; hash: string } }).head = {
        seq: signedHead.seq,
        hash: signedHead.hash,
      };
    });
    const started = Date.now();
    const after = await verifyLog(env.DB, config, config.AUDIT_SIGNING_JWK, "genesis");
    const took = Date.now() - started;
    // Control: without the older copies, the same verify does catch it.
    await env.DB.prepare("DELETE FROM log_checkpoints WHERE id > ? AND id <= ?").bind(stored, 100_000).run();
    const control = await verifyLog(env.DB, config, config.AUDIT_SIGNING_JWK, "genesis");
    expect(control.shards.find((s) => s.shard === 1)?.reason).toMatch(
      /signed in a tree checkpoint but are gone/,
    );
    const shard1 = after.shards.find((s) => s.shard === 1);
    // Roots are unique now (exact copies are refused), so the 100,000 rows differ in their root;
    // the shard's own verdict is what must catch the cut, whatever else verify says of them.
    expect(shard1?.reason, JSON.stringify(shard1)).toMatch(/signed in a tree checkpoint but are gone/);
    expect(
      after.ok,
      `entries ${signedHead.seq + 1}–${newest.seq} of shard 1, signed by the newest tree checkpoint, are gone (verify took ${took} ms): ${JSON.stringify(shard1)}`,
    ).toBe(false);
  });
});
