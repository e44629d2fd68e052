/**
 * Reporter trust (issue 13, point 1; docs/scoring.md §2a): recomputed by the scheduled job from
 * outcomes, shown to admins in GET /v1/admin/platforms/{id}, never to members, and applied by the
 * score read in its one statement.
 */
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { TRUST, trustOf } from "../worker/scoring/trust";
import { adminToken, callJson, createReport, newBuyer, newPlatform, scoreOk } from "./harness";

interface Answer {
  score: number;
  reasons: { code: string }[];
}

const runJob = async () => {
  const res = await callJson<{ trustRecomputed: number }>("/v1/admin/maintenance/run", {
    token: await adminToken(),
    body: {},
  });
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res.body;
};

describe("reporter trust", () => {
  it("a new member is on probation: its records weigh probationTrust, with REPORTER_TRUST", async () => {
    const fresh = await newPlatform({ probation: true });
    const asker = await newPlatform();
    const buyer = await newBuyer();
    await createReport(fresh, buyer);
    const answer = await scoreOk<Answer>(asker, buyer);
    // One forensics record 10 days ago: w = 0.9812; × 0.5 = 0.4906; score round(100(1 − e^(−0.1635))) = 15.
    expect(answer.score).toBe(15);
    expect(answer.reasons.map((r) => r.code)).toContain("REPORTER_TRUST");
    expect(JSON.stringify(answer)).not.toContain(fresh.id);
  });

  it("the job computes trust and its counts; admins see them, members do not", async () => {
    const p = await newPlatform({ probation: true });
    const other = await newPlatform();
    const shared = await newBuyer();
    await createReport(p, shared);
    await createReport(other, shared);
    const retracted = await createReport(p, await newBuyer());
    const r = await callJson(`/v1/reports/${retracted.id}/retract`, {
      token: await p.token(),
      body: { reason: "Filed on the wrong account." },
    });
    expect(r.status).toBe(200);
    const job = await runJob();
    expect(job.trustRecomputed).toBeGreaterThanOrEqual(1);
    const row = await env.DB.prepare("SELECT * FROM platform_trust WHERE platform_id = ?").bind(p.id).first();
    expect(row).toMatchObject({
      reports: 2,
      corroborated: 1,
      voided: 0,
      withdrawn: 0,
      retracted: 1,
      probation: 1,
    });
    const expected = trustOf({ reports: 2, corroborated: 1, voided: 0, withdrawn: 0, retracted: 1 }, 0);
    // n = 20; clean = 1 − 4 × 0.5 / 20 = 0.9; on probation: min(0.5, 0.9) = 0.5.
    expect(expected).toEqual({ trust: 0.5, probation: true });

    const admin = await callJson<{ trust: Record<string, unknown> }>(`/v1/admin/platforms/${p.id}`, {
      token: await adminToken(),
    });
    expect(admin.status).toBe(200);
    expect(admin.body.trust).toMatchObject({
      trust: 0.5,
      probation: true,
      computedAt: expect.any(String),
      counts: { reports: 2, corroborated: 1, voided: 0, withdrawn: 0, retracted: 1 },
    });
    const member = await callJson(`/v1/admin/platforms/${p.id}`, { token: await other.token() });
    expect(member.status).toBe(403);
  });

  it("an established member loses trust by voided records and regains weight only by corroboration", () => {
    // An ordinary error rate costs nothing: 2 adverse of 200 is within the 5% allowance.
    const good = trustOf({ reports: 200, corroborated: 80, voided: 1, withdrawn: 0, retracted: 2 }, 400);
    expect(good).toEqual({ trust: 1, probation: false });
    // 9 of 100 is 4 points beyond it: clean = 1 − 4 × 0.04 = 0.84.
    const sloppy = trustOf({ reports: 100, corroborated: 40, voided: 6, withdrawn: 2, retracted: 2 }, 400);
    expect(sloppy.trust).toBeCloseTo(0.84, 10);
    const liar = trustOf({ reports: 2000, corroborated: 0, voided: 30, withdrawn: 0, retracted: 0 }, 400);
    expect(liar).toEqual({ trust: TRUST.floor, probation: false });
    const careless = trustOf(
      { reports: 1000, corroborated: 300, voided: 40, withdrawn: 10, retracted: 0 },
      400,
    );
    // 50 adverse of 1000: exactly the allowance, so still clean; corroboration 0.3 ≥ 0.2.
    expect(careless.trust).toBe(1);
    const worse = trustOf(
      { reports: 1000, corroborated: 300, voided: 120, withdrawn: 30, retracted: 0 },
      400,
    );
    // 15%: clean = 1 − 4 × 0.10 = 0.6.
    expect(worse.trust).toBeCloseTo(0.6, 10);
  });
});
