/**
 * The log store's shard (worker/log/shard.ts): a SQLite-backed Durable Object, run for real in
 * workerd. Each test uses its own object, so shards never share state across tests.
 */
import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { GENESIS_HASH, keysCommitment, type LogEntry, type ShardHead, treeHead } from "../worker/log/chain";
import type { AppendInput, LogShard } from "../worker/log/shard";
import { uniqueId } from "./harness";

const K1 = "a".repeat(64);
const K2 = "b".repeat(64);
const K3 = "c".repeat(64);

function freshShard(): DurableObjectStub<LogShard> {
  return env.LOG.get(env.LOG.idFromName(uniqueId("test-shard")));
}

function lookup(id: string, keys: string[], extra: Partial<AppendInput> = {}): AppendInput {
  return {
    id,
    entries: [
      {
        at: Date.now(),
        actor: "platform:shop-a",
        action: "score.query",
        requestId: id,
        outcome: "ok",
        details: { purpose: "refund_review" },
        subjectKeys: keys,
      },
    ],
    inquiries: keys.map((subjectKey) => ({
      subjectKey,
      platformId: "shop-a",
      purpose: "refund_review",
      requestId: id,
    })),
    usage: { platformId: "shop-a", day: "2026-11-29", queries: 1, subjects: keys.length },
    ...extra,
  };
}

describe("log shard: the chain is written as entries are", () => {
  it("chains every entry on append: no unsealed backlog, verify passes, head moves", async () => {
    const shard = freshShard();
    expect(await shard.headOf()).toEqual({ shard: -1, seq: 0, hash: GENESIS_HASH });
    const first = await shard.append(0, lookup("req_1", [K1, K2]));
    expect(first).toEqual({ ok: true, shard: 0, first: 1, last: 1, replayed: false });
    await shard.append(0, lookup("req_2", [K3]));
    const head = await shard.headOf();
    expect(head.seq).toBe(2);
    const verdict = await shard.verify();
    expect(verdict).toMatchObject({ ok: true, checked: 2, head: { seq: 2, hash: head.hash } });
    const [e1, e2] = (await shard.range(0, 10)) as unknown as LogEntry[];
    expect(e1?.prevHash).toBe(GENESIS_HASH);
    expect(e2?.prevHash).toBe(e1?.hash);
    // The chained content holds a commitment, the keys sit beside it.
    expect(e1?.subjectKeys).toEqual([K1, K2]);
    expect(e1?.keys).toBe(keysCommitment(e1?.salt as string, [K1, K2]));
    expect(JSON.stringify(e1?.details)).not.toContain(K1);
  });

  it("a retried append (same id) is answered, never written twice", async () => {
    const shard = freshShard();
    const once = await shard.append(0, lookup("req_same", [K1]));
    const again = await shard.append(0, lookup("req_same", [K1]));
    expect(again).toEqual({ ...once, replayed: true } as typeof again);
    expect((await shard.headOf()).seq).toBe(1);
    expect(await shard.inquiries([K1], null, 10)).toHaveLength(1);
    expect(await shard.usage("2026-11-01")).toEqual([
      { day: "2026-11-29", platform_id: "shop-a", queries: 1, subjects: 1, subject_access: 0 },
    ]);
  });

  it("group commit: 200 concurrent appends land in fewer transactions, each chained in order", async () => {
    const shard = freshShard();
    const results = await Promise.all(
      Array.from({ length: 200 }, (_, i) => shard.append(0, lookup(`req_g${i}`, [K1]))),
    );
    expect(results.every((r) => r.ok)).toBe(true);
    const seqs = results.map((r) => (r.ok ? r.first : 0)).sort((a, b) => a - b);
    expect(seqs).toEqual(Array.from({ length: 200 }, (_, i) => i + 1));
    const stats = await shard.groupStats();
    expect(stats.appends).toBe(200);
    expect(stats.flushes).toBeLessThan(200);
    expect((await shard.verify()).ok).toBe(true);
  });

  it("an altered, removed or reordered entry is named by verify", async () => {
    const shard = freshShard();
    for (let i = 0; i < 5; i++) {
      await shard.append(0, lookup(`req_t${i}`, [K1]));
    }
    await runInDurableObject(shard, (_o, state) => {
      state.storage.sql.exec("UPDATE entries SET outcome = 'forbidden' WHERE seq = 3");
    });
    expect(await shard.verify()).toMatchObject({ ok: false, firstBadSeq: 3 });
    await runInDurableObject(shard, (_o, state) => {
      state.storage.sql.exec("UPDATE entries SET outcome = 'ok' WHERE seq = 3");
      state.storage.sql.exec("DELETE FROM entries WHERE seq = 2");
    });
    expect(await shard.verify()).toMatchObject({ ok: false, firstBadSeq: 2 });
  });

  it("retention erases subject keys while the chain still verifies; a swapped key is caught", async () => {
    const shard = freshShard();
    await shard.append(0, lookup("req_k1", [K1, K2]));
    await shard.append(0, lookup("req_k2", [K3]));
    const [kept] = (await shard.range(0, 1)) as unknown as LogEntry[];
    await runInDurableObject(shard, (_o, state) => {
      state.storage.sql.exec("UPDATE entry_keys SET keys = ? WHERE seq = 1", JSON.stringify([K1, K3]));
    });
    expect(await shard.verify()).toMatchObject({ ok: false, firstBadSeq: 1 });
    await runInDurableObject(shard, (_o, state) => {
      state.storage.sql.exec(
        "UPDATE entry_keys SET keys = ? WHERE seq = 1",
        JSON.stringify(kept?.subjectKeys),
      );
    });
    const purged = await shard.purge({
      keysBefore: Date.now() + 1000,
      inquiriesBefore: Date.now() + 1000,
      targets: [],
      dayBefore: "2026-01-01",
      appendsBefore: 0,
      outboxAppendsBefore: 0,
    });
    expect(purged).toEqual({ keysErased: 2, inquiriesPurged: 3 });
    const [erased] = (await shard.range(0, 1)) as unknown as LogEntry[];
    expect(erased).toMatchObject({ subjectKeys: null, salt: null, keys: kept?.keys, hash: kept?.hash });
    expect(await shard.verify()).toMatchObject({ ok: true, checked: 2 });
    expect(await shard.inquiries([K1], null, 10)).toEqual([]);
  });

  it("verify holds a look-up to its inquiry rows and keys while their retention runs, and not after", async () => {
    const shard = freshShard();
    const inquired = (id: string, keys: string[], at: number) => {
      const input = lookup(id, keys);
      const [entry] = input.entries;
      input.entries = [
        {
          ...(entry as AppendInput["entries"][0]),
          at,
          target: "rpt_named",
          details: { purpose: "refund_review", inquired: true },
        },
      ];
      return input;
    };
    const old = Date.now() - 10_000;
    await shard.append(0, inquired("req_i1", [K1, K2], old));
    await shard.append(0, inquired("req_i2", [K3], Date.now()));
    const since = old - 1;
    expect(await shard.verify(undefined, { inquiriesSince: since })).toMatchObject({ ok: true, checked: 2 });

    // A purged report the batch `ref` happens to name does not take the look-up's keys.
    await shard.purge({
      keysBefore: 0,
      inquiriesBefore: 0,
      targets: ["rpt_named"],
      dayBefore: "2026-01-01",
      appendsBefore: 0,
      outboxAppendsBefore: 0,
    });
    expect(await shard.verify(undefined, { inquiriesSince: since })).toMatchObject({ ok: true });

    // One inquiry row of the first look-up deleted: caught at that entry.
    await runInDurableObject(shard, (_o, state) => {
      state.storage.sql.exec("DELETE FROM inquiries WHERE request_id = 'req_i1' AND subject_key = ?", K2);
    });
    const caught = await shard.verify(undefined, { inquiriesSince: since });
    expect(caught).toMatchObject({ ok: false, firstBadSeq: 1 });
    expect(caught.reason).toMatch(/inquiry rows are gone/);
    // Past the inquiries' retention the same state is retention, not a fault.
    expect(await shard.verify(undefined, { inquiriesSince: old + 1 })).toMatchObject({ ok: true });

    // The second look-up's keys erased early (and its rows with them): caught too.
    await runInDurableObject(shard, (_o, state) => {
      state.storage.sql.exec("DELETE FROM entry_keys WHERE seq = 2");
      state.storage.sql.exec("DELETE FROM inquiries WHERE request_id = 'req_i2'");
    });
    const erased = await shard.verify(undefined, { inquiriesSince: old + 1 });
    expect(erased).toMatchObject({ ok: false, firstBadSeq: 2 });
    expect(erased.reason).toMatch(/subject keys were erased before their retention ended/);
  });

  it("the daily cap on distinct subject keys: repeats are free, the next new key is refused and nothing is written", async () => {
    const shard = freshShard();
    const cap = (id: string, keys: string[]) =>
      shard.append(
        0,
        lookup(id, keys, { lookupCap: { platformId: "shop-a", day: "2026-11-29", keys, limit: 2 } }),
      );
    expect((await cap("req_c1", [K1, K2])).ok).toBe(true);
    expect((await cap("req_c2", [K1])).ok).toBe(true);
    const refused = await cap("req_c3", [K2, K3]);
    expect(refused).toEqual({ ok: false, reason: "lookup_cap", used: 2, limit: 2 });
    expect((await shard.headOf()).seq).toBe(2);
    expect(await shard.lookupCounts("2026-11-29")).toEqual([{ platform_id: "shop-a", n: 2 }]);
  });

  it("inquiries come back one per request, newest first, paged", async () => {
    const shard = freshShard();
    for (let i = 0; i < 5; i++) {
      await shard.append(0, lookup(`req_i${i}`, [K1, K2]));
      await new Promise((r) => setTimeout(r, 2));
    }
    const page1 = await shard.inquiries([K1, K2], null, 3);
    expect(page1.map((i) => i.requestId)).toEqual(["req_i4", "req_i3", "req_i2"]);
    const last = page1[2] as { at: number; requestId: string };
    const page2 = await shard.inquiries([K1, K2], { at: last.at, requestId: last.requestId }, 3);
    expect(page2.map((i) => i.requestId)).toEqual(["req_i1", "req_i0"]);
  });
});

describe("tree head over shard heads", () => {
  it("is deterministic, order-independent, and changes with any shard's head", () => {
    const heads: ShardHead[] = [
      { shard: 0, seq: 10, hash: "1".repeat(64) },
      { shard: 1, seq: 4, hash: "2".repeat(64) },
      { shard: 2, seq: 7, hash: "3".repeat(64) },
    ];
    const root = treeHead(heads);
    expect(treeHead([...heads].reverse())).toBe(root);
    expect(treeHead([{ ...heads[0], seq: 11 } as ShardHead, ...heads.slice(1)])).not.toBe(root);
    expect(treeHead([...heads.slice(0, 2), { ...heads[2], hash: "4".repeat(64) } as ShardHead])).not.toBe(
      root,
    );
    expect(treeHead([])).toBe(GENESIS_HASH);
  });
});
