/**
 * The audit API over two kinds of source (docs/audit.md): the ledger chain in D1 and the log
 * shards (2 in the tests). List merging and paging, the tree checkpoint, verify naming a shard's
 * bad seq, export format 2 and the offline verifier, the backlog a burst of look-ups does not
 * leave, and key erasure on retention.
 */
import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { verifyExport } from "../worker/audit/verify-export";
import { entryHash, type LogEntry } from "../worker/log/chain";
import { appendLog, shardOf, shardStub } from "../worker/log/client";
import { adminToken, call, callJson, newBuyer, newPlatform, reportBody, uniqueId } from "./harness";

const LOG = { LOG: env.LOG, LOG_SHARDS: Number(env.LOG_SHARDS), LOG_ARCHIVE: env.LOG_ARCHIVE };
const DAY = 86_400_000;

interface Item {
  seq: number;
  at: string;
  actor: string;
  action: string;
  target: string | null;
  requestId: string;
  hash: string | null;
  shard: number | null;
  keys: string | null;
  subjectKeys: string[] | null;
}

interface ShardVerdict {
  shard: number;
  ok: boolean;
  checked: number;
  head: { seq: number; hash: string };
  unsealed: number;
  from: { seq: number; checkpoint: boolean };
  firstBadSeq?: number;
  reason?: string;
}

interface Verdict {
  ok: boolean;
  unsealed: number;
  checkpoints: { checked: number; invalid: number };
  treeCheckpoints: { count: number; invalid: number };
  firstBadSeq?: number;
  reason?: string;
  shards: ShardVerdict[];
}

interface Head {
  shard: number;
  seq: number;
  hash: string;
}

/** An actor whose entries land in `shard`. */
function actorIn(shard: number): string {
  for (;;) {
    const actor = `platform:${uniqueId("p")}`;
    if (shardOf(actor, LOG.LOG_SHARDS) === shard) {
      return actor;
    }
  }
}

function key(): string {
  return [...crypto.getRandomValues(new Uint8Array(32))].map((b) => b.toString(16).padStart(2, "0")).join("");
}

async function append(
  actor: string,
  e: { at?: number; action?: string; target?: string | null; subjectKeys?: string[] } = {},
) {
  const id = uniqueId("req");
  const r = await appendLog(LOG, actor, {
    id,
    entries: [
      {
        at: e.at ?? Date.now(),
        actor,
        action: e.action ?? "score.query",
        target: e.target ?? null,
        requestId: id,
        outcome: "ok",
        details: { purpose: "refund_review" },
        subjectKeys: e.subjectKeys ?? [key()],
      },
    ],
  });
  if (!r.ok) {
    throw new Error("append refused");
  }
  return { shard: r.shard, seq: r.last, requestId: id };
}

async function verify(from?: "checkpoint"): Promise<Verdict> {
  const res = await callJson<Verdict>(`/v1/admin/audit/verify${from ? `?from=${from}` : ""}`, {
    token: await adminToken(),
  });
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res.body;
}

async function runMaintenance() {
  const res = await callJson<{
    reportsPurged: number;
    log: { keysErased: number; inquiriesPurged: number };
    checkpoint: { seq: number; hash: string; at: number; root: string; heads: Head[] } | null;
  }>("/v1/admin/maintenance/run", { token: await adminToken(), body: {} });
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res.body;
}

async function exportText(query = ""): Promise<string> {
  const res = await call(`/v1/admin/audit/export${query}`, { token: await adminToken() });
  expect(res.status).toBe(200);
  return res.text();
}

async function shardEntry(shard: number, seq: number): Promise<LogEntry> {
  const [e] = (await shardStub(LOG, shard).range(seq - 1, 1)) as unknown as LogEntry[];
  return e as LogEntry;
}

describe("GET /v1/admin/audit over the ledger chain and the shards", () => {
  it("merges all sources newest first by (at, source, seq); every page size lists each entry exactly once", async () => {
    const action = `test.merge-${uniqueId("a")}`;
    const base = Date.now() - 60_000;
    const a0 = actorIn(0);
    const a1 = actorIn(1);
    // 15 entries over 3 sources and 6 instants: ties across sources and within one.
    const written: { source: number; at: number; seq: number }[] = [];
    for (let i = 0; i < 15; i++) {
      const source = (i % 3) - 1;
      const at = base + Math.floor(i / 3) * (i % 2 === 0 ? 1 : 2);
      if (source === -1) {
        const r = await env.DB.prepare(
          `INSERT INTO audit_log (at, actor, action, target, request_id, outcome, details)
           VALUES (?, 'system:test', ?, NULL, ?, 'ok', NULL) RETURNING seq`,
        )
          .bind(at, action, uniqueId("req"))
          .first<{ seq: number }>();
        written.push({ source, at, seq: r?.seq as number });
      } else {
        const r = await append(source === 0 ? a0 : a1, { at, action });
        expect(r.shard).toBe(source);
        written.push({ source, at, seq: r.seq });
      }
    }
    const expected = [...written]
      .sort((x, y) => y.at - x.at || x.source - y.source || y.seq - x.seq)
      .map((w) => `${w.source}:${w.seq}`);
    for (const limit of [1, 2, 4, 7, 15, 50]) {
      const seen: string[] = [];
      let cursor: string | null = null;
      let pages = 0;
      do {
        const res: { status: number; body: { items: Item[]; nextCursor: string | null } } = await callJson(
          `/v1/admin/audit?action=${action}&limit=${limit}${cursor ? `&cursor=${cursor}` : ""}`,
          { token: await adminToken() },
        );
        expect(res.status).toBe(200);
        seen.push(...res.body.items.map((i) => `${i.shard ?? -1}:${i.seq}`));
        cursor = res.body.nextCursor;
        pages++;
      } while (cursor !== null && pages < 30);
      expect(seen, `limit ${limit}`).toEqual(expected);
      expect(pages, `limit ${limit}`).toBe(Math.max(1, Math.ceil(expected.length / limit)));
    }
  });

  it("a shard entry shows its shard, commitment and retained subject keys; filters reach the shards", async () => {
    const actor = actorIn(1);
    const k = key();
    const { seq } = await append(actor, { subjectKeys: [k], target: "ref-1" });
    const res = await callJson<{ items: Item[] }>(`/v1/admin/audit?actor=${encodeURIComponent(actor)}`, {
      token: await adminToken(),
    });
    const stored = await shardEntry(1, seq);
    expect(res.body.items).toHaveLength(1);
    expect(res.body.items[0]).toMatchObject({
      shard: 1,
      seq,
      actor,
      target: "ref-1",
      keys: stored.keys,
      subjectKeys: [k],
      hash: stored.hash,
      prevHash: stored.prevHash,
    });
    const byTarget = await callJson<{ items: Item[] }>("/v1/admin/audit?target=ref-1", {
      token: await adminToken(),
    });
    expect(byTarget.body.items.map((i) => i.requestId)).toContain(stored.requestId);
  });
});

describe("tree checkpoints and verify over every shard", () => {
  it("one checkpoint signs the ledger head and both shard heads; verify checks all of them", async () => {
    await append(actorIn(0));
    await append(actorIn(1));
    const cp = await runMaintenance();
    expect(cp.checkpoint).not.toBeNull();
    const heads = cp.checkpoint?.heads as Head[];
    expect(heads.map((h) => h.shard)).toEqual([-1, 0, 1]);
    for (const h of heads.slice(1)) {
      expect(await shardStub(LOG, h.shard).headOf()).toMatchObject({ seq: h.seq, hash: h.hash });
    }
    const v = await verify();
    expect(v.ok, JSON.stringify(v)).toBe(true);
    expect(v.treeCheckpoints.invalid).toBe(0);
    expect(v.shards.map((s) => [s.shard, s.ok, s.unsealed])).toEqual([
      [0, true, 0],
      [1, true, 0],
    ]);
    const fromCp = await verify("checkpoint");
    expect(fromCp.ok).toBe(true);
    for (const s of fromCp.shards) {
      expect(s.from).toEqual({ seq: heads[s.shard + 1]?.seq, checkpoint: true });
    }
  });

  it("an altered shard entry is named by its shard and seq; restored, verify passes", async () => {
    const actor = actorIn(1);
    const { seq } = await append(actor);
    await append(actor);
    const stub = shardStub(LOG, 1);
    await runInDurableObject(stub, (_o, state) => {
      state.storage.sql.exec("UPDATE entries SET outcome = 'forbidden' WHERE seq = ?", seq);
    });
    try {
      const bad = await verify();
      expect(bad.ok).toBe(false);
      expect(bad.shards[1]).toMatchObject({ shard: 1, ok: false, firstBadSeq: seq });
      expect(bad.shards[0]?.ok).toBe(true);
      expect(bad.firstBadSeq, "the ledger chain itself is fine").toBeUndefined();
    } finally {
      await runInDurableObject(stub, (_o, state) => {
        state.storage.sql.exec("UPDATE entries SET outcome = 'ok' WHERE seq = ?", seq);
      });
    }
    expect((await verify()).ok).toBe(true);
  });

  it("a signed shard head rewritten with a recomputed hash is caught by the tree checkpoint", async () => {
    const actor = actorIn(0);
    await append(actor);
    const cp = await runMaintenance();
    const head = cp.checkpoint?.heads.find((h) => h.shard === 0) as Head;
    const original = await shardEntry(0, head.seq);
    const stub = shardStub(LOG, 0);
    // The entry at the signed head, edited and re-hashed: the chain alone is consistent again.
    const forged = { ...original, outcome: "forbidden" };
    await runInDurableObject(stub, (_o, state) => {
      state.storage.sql.exec(
        "UPDATE entries SET outcome = ?, hash = ? WHERE seq = ?",
        forged.outcome,
        entryHash(original.prevHash, forged),
        head.seq,
      );
      state.storage.sql.exec(
        "UPDATE entries SET prev_hash = ? WHERE seq = ?",
        entryHash(original.prevHash, forged),
        head.seq + 1,
      );
    });
    try {
      const bad = await verify();
      expect(bad.ok).toBe(false);
      expect(bad.shards[0]).toMatchObject({ ok: false, firstBadSeq: head.seq });
      expect(bad.shards[0]?.reason).toContain("checkpoint");
    } finally {
      await runInDurableObject(stub, (_o, state) => {
        state.storage.sql.exec(
          "UPDATE entries SET outcome = ?, hash = ? WHERE seq = ?",
          original.outcome,
          original.hash,
          head.seq,
        );
        state.storage.sql.exec("UPDATE entries SET prev_hash = ? WHERE seq = ?", original.hash, head.seq + 1);
      });
    }
    expect((await verify()).ok).toBe(true);
  });

  it("a forged tree checkpoint (a shard head edited) fails verify", async () => {
    await append(actorIn(1));
    await runMaintenance();
    const row = await env.DB.prepare("SELECT id, heads FROM log_checkpoints ORDER BY id DESC LIMIT 1").first<{
      id: number;
      heads: string;
    }>();
    const heads = JSON.parse(row?.heads as string) as Head[];
    const edited = heads.map((h) => (h.shard === 1 ? { ...h, seq: h.seq - 1 } : h));
    await env.DB.prepare("UPDATE log_checkpoints SET heads = ? WHERE id = ?")
      .bind(JSON.stringify(edited), row?.id)
      .run();
    try {
      const bad = await verify();
      expect(bad.ok).toBe(false);
      expect(bad.treeCheckpoints.invalid).toBe(1);
      expect(bad.reason).toContain("tree checkpoint");
      const offline = await verifyExport(await exportText());
      expect(offline.ok).toBe(false);
      expect(offline.error).toContain("tree checkpoint");
    } finally {
      await env.DB.prepare("UPDATE log_checkpoints SET heads = ? WHERE id = ?")
        .bind(row?.heads, row?.id)
        .run();
    }
    expect((await verify()).ok).toBe(true);
  });

  it("a format-1 checkpoint of the ledger chain, signed before tree checkpoints, still verifies; edited, it fails", async () => {
    await runMaintenance();
    const head = await env.DB.prepare(
      "SELECT seq, hash FROM audit_log WHERE hash IS NOT NULL ORDER BY seq DESC LIMIT 1",
    ).first<{ seq: number; hash: string }>();
    const jwk = JSON.parse(env.AUDIT_SIGNING_JWK) as JsonWebKey & { kid: string };
    const { kid, ...priv } = jwk;
    const signKey = await crypto.subtle.importKey("jwk", priv, { name: "Ed25519" }, false, ["sign"]);
    const at = Date.now();
    const message = new TextEncoder().encode(`pixiu-audit-checkpoint/1\n${head?.seq}\n${head?.hash}\n${at}`);
    const signature = btoa(
      String.fromCharCode(...new Uint8Array(await crypto.subtle.sign("Ed25519", signKey, message))),
    )
      .replace(/\+/g, "-")
      .replace(/\//g, "_")
      .replace(/=+$/, "");
    await env.DB.prepare(
      "INSERT INTO audit_checkpoints (seq, hash, at, kid, signature) VALUES (?, ?, ?, ?, ?)",
    )
      .bind(head?.seq, head?.hash, at, kid, signature)
      .run();
    try {
      const v = await verify();
      expect(v.ok, JSON.stringify(v)).toBe(true);
      expect(v.checkpoints.invalid).toBe(0);
      const offline = await verifyExport(await exportText(`?sinceSeq=${head?.seq}`));
      expect(offline.ok, offline.error).toBe(true);
      expect(offline.checkpoints).toBe(1);
      await env.DB.prepare("UPDATE audit_checkpoints SET at = at + 1 WHERE seq = ?").bind(head?.seq).run();
      const bad = await verify();
      expect(bad.ok).toBe(false);
      expect(bad.firstBadSeq).toBe(head?.seq);
      expect(bad.checkpoints.invalid).toBe(1);
    } finally {
      await env.DB.prepare("DELETE FROM audit_checkpoints WHERE seq = ?").bind(head?.seq).run();
    }
  });

  it("2,000 look-ups leave nothing unsealed in the shards and add nothing to the ledger's backlog", async () => {
    const count = () => env.DB.prepare("SELECT count(*) AS n FROM audit_log").first<{ n: number }>();
    const before = await count();
    const actors = [actorIn(0), actorIn(1)];
    await Promise.all(Array.from({ length: 2000 }, (_, i) => append(actors[i % 2] as string)));
    expect((await count())?.n).toBe(before?.n);
    const v = await verify();
    expect(v.ok).toBe(true);
    expect(v.shards.every((s) => s.unsealed === 0)).toBe(true);
    expect(v.shards.reduce((n, s) => n + s.checked, 0)).toBeGreaterThanOrEqual(2000);
  });
});

describe("export format 2 and the offline verifier", () => {
  it("verifies offline; one changed byte in a shard line fails at that shard and seq", async () => {
    const actor = actorIn(1);
    const { seq } = await append(actor);
    await append(actor);
    await runMaintenance();
    const text = await exportText();
    const lines = text.split("\n");
    const header = JSON.parse(lines[0] as string);
    expect(header).toMatchObject({ type: "header", format: "pixiu-audit-export/2" });
    expect(header.shards.map((s: { shard: number }) => s.shard)).toEqual([0, 1]);
    const ok = await verifyExport(text);
    expect(ok.ok, ok.error).toBe(true);
    expect(ok.shards.map((s) => [s.shard, s.ok])).toEqual([
      [0, true],
      [1, true],
    ]);
    expect(ok.treeCheckpoints).toBeGreaterThan(0);
    expect(ok.shards[1]?.signedThrough).toBeGreaterThanOrEqual(seq);

    const at = lines.findIndex((l) => {
      if (!l.startsWith('{"type":"log-entry"')) {
        return false;
      }
      const e = JSON.parse(l);
      return e.shard === 1 && e.seq === seq;
    });
    expect(at).toBeGreaterThan(0);
    const line = lines[at] as string;
    const actorPos = line.indexOf(actor) + actor.length - 1;
    const changed = `${line.slice(0, actorPos)}${line[actorPos] === "x" ? "y" : "x"}${line.slice(actorPos + 1)}`;
    const bad = await verifyExport([...lines.slice(0, at), changed, ...lines.slice(at + 1)].join("\n"));
    expect(bad).toMatchObject({ ok: false, badShard: 1, firstBadSeq: seq });
    // A swapped subject key breaks the commitment at that entry.
    const e = JSON.parse(line) as LogEntry;
    const swapped = JSON.stringify({ ...e, subjectKeys: [key()] });
    const badKeys = await verifyExport([...lines.slice(0, at), swapped, ...lines.slice(at + 1)].join("\n"));
    expect(badKeys).toMatchObject({ ok: false, badShard: 1, firstBadSeq: seq });
    expect(badKeys.error).toContain("keys");
  });
});

describe("retention in the log", () => {
  it("a purged report's subject keys are erased from the log; the chain still verifies", async () => {
    const p = await newPlatform();
    const res = await callJson<{ id: string }>("/v1/reports", {
      token: await p.token(),
      body: reportBody(await newBuyer()),
    });
    expect(res.status).toBe(201);
    const report = res.body.id;
    const actor = actorIn(0);
    const gone = await append(actor, { target: report, subjectKeys: [key()] });
    const kept = await append(actor, { target: uniqueId("ref"), subjectKeys: [key()] });
    const old = Date.now() - (Number(env.RETENTION_DAYS) + 1) * DAY;
    await env.DB.prepare("UPDATE reports SET incident_at = ?, confirmed_at = ? WHERE id = ?")
      .bind(old, old + 3_600_000, report)
      .run();
    const before = await shardEntry(0, gone.seq);
    const run = await runMaintenance();
    expect(run.reportsPurged).toBeGreaterThanOrEqual(1);
    expect(run.log.keysErased).toBeGreaterThanOrEqual(1);
    const after = await shardEntry(0, gone.seq);
    expect(after).toMatchObject({ subjectKeys: null, salt: null, keys: before.keys, hash: before.hash });
    expect((await shardEntry(0, kept.seq)).subjectKeys).not.toBeNull();
    const listed = await callJson<{ items: Item[] }>(`/v1/admin/audit?target=${report}`, {
      token: await adminToken(),
    });
    expect(listed.body.items.find((i) => i.shard === 0)?.subjectKeys).toBeNull();
    expect((await verify()).ok).toBe(true);
    expect((await verifyExport(await exportText())).ok).toBe(true);
  });
});
