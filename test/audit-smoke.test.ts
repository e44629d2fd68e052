import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { adminToken, call, callJson, newBuyer, newPlatform, reportBody } from "./harness";

describe("audit chain smoke", () => {
  it("verifies, detects an altered entry at its seq, and verifies again once restored", async () => {
    const p = await newPlatform();
    await callJson("/v1/reports", { token: await p.token(), body: reportBody(await newBuyer()) });
    // The ledger chain (format 1) is a closed legacy prefix now: API writes go to the log shards.
    // Two legacy entries stand for it.
    for (const n of [1, 2]) {
      await env.DB.prepare(
        `INSERT INTO audit_log (at, actor, action, target, request_id, outcome, details)
         VALUES (?, 'platform:legacy', 'report.create', NULL, ?, 'created', '{}')`,
      )
        .bind(Date.now(), `req_legacy_smoke_${n}`)
        .run();
    }
    const ok = await callJson<{ ok: boolean; head: { seq: number } }>("/v1/admin/audit/verify", {
      token: await adminToken(),
    });
    expect(ok.status, JSON.stringify(ok.body)).toBe(200);
    expect(ok.body.ok).toBe(true);
    const victim = await env.DB.prepare(
      "SELECT seq, outcome FROM audit_log WHERE hash IS NOT NULL ORDER BY seq LIMIT 1 OFFSET 1",
    ).first<{ seq: number; outcome: string }>();
    if (!victim) {
      throw new Error("no sealed entry");
    }
    await env.DB.prepare("UPDATE audit_log SET outcome = 'tampered' WHERE seq = ?").bind(victim.seq).run();
    const bad = await callJson<{ ok: boolean; firstBadSeq: number }>("/v1/admin/audit/verify", {
      token: await adminToken(),
    });
    expect(bad.body.ok).toBe(false);
    expect(bad.body.firstBadSeq).toBe(victim.seq);
    await env.DB.prepare("UPDATE audit_log SET outcome = ? WHERE seq = ?")
      .bind(victim.outcome, victim.seq)
      .run();
    const again = await callJson<{ ok: boolean }>("/v1/admin/audit/verify", { token: await adminToken() });
    expect(again.body.ok).toBe(true);
    const keys = await callJson<{ keys: unknown[] }>("/.well-known/pixiu-audit-keys.json");
    expect(keys.body.keys).toHaveLength(1);
    const exported = await call("/v1/admin/audit/export", { token: await adminToken() });
    expect(exported.headers.get("content-type")).toContain("application/x-ndjson");
    const lines = (await exported.text())
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { type: string });
    expect(lines[0]?.type).toBe("header");
    expect(lines.filter((l) => l.type === "entry").length).toBeGreaterThan(1);
    const stats = await callJson("/v1/admin/stats", { token: await adminToken() });
    expect(stats.status, JSON.stringify(stats.body)).toBe(200);
    const list = await callJson<{ items: unknown[] }>("/v1/admin/audit?action=report.create&limit=5", {
      token: await adminToken(),
    });
    expect(list.status).toBe(200);
    expect(list.body.items.length).toBeGreaterThan(0);
  });
});
