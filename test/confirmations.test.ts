/**
 * Verified strong confirmations (issue 13, point 2; docs/scoring.md §2): a police report or court
 * ruling weighs as one, and lifts its platform's cap, only once an admin verified its reference
 * through `POST /v1/admin/reports/{id}/verify-confirmation`. Through the HTTP API.
 */
import { describe, expect, it } from "vitest";
import {
  adminToken,
  auditRowsEventually,
  callJson,
  createReport,
  daysAgo,
  errorPaths,
  newBuyer,
  newPlatform,
  reportBody,
  scoreOk,
  type TestPlatform,
} from "./harness";

interface Answer {
  score: number;
  band: string;
  reasons: { code: string; detail: string }[];
  records: { ref: string; confirmation: string; verified: boolean | null }[];
}

const verify = async (id: string) =>
  callJson<Record<string, unknown>>(`/v1/admin/reports/${id}/verify-confirmation`, {
    token: await adminToken(),
    body: { note: "Reference confirmed with the issuing police station." },
  });

async function policeReport(p: TestPlatform, buyer: { type: string; hash: string }[], days: number) {
  return createReport(p, buyer, {
    confirmation: "police_report",
    confirmationRef: `POLICE-${days}-${Math.random().toString(36).slice(2, 8)}`,
    amount: { value: 30000, currency: "CNY" },
    incidentAt: daysAgo(days),
    confirmedAt: daysAgo(days - 1),
  });
}

describe("verified strong confirmations", () => {
  it("an unverified police report weighs as platform forensics and lifts no cap; verified, it does", async () => {
    const reporter = await newPlatform();
    const buyer = await newBuyer();
    const a = await policeReport(reporter, buyer, 10);
    const b = await policeReport(reporter, buyer, 30);
    expect(a).toMatchObject({
      confirmationRef: expect.stringMatching(/^POLICE-10-/),
      confirmationVerifiedAt: null,
    });

    const before = await scoreOk<Answer>(reporter, buyer);
    // 1.0 × (0.9812 + 0.9447) = 1.93, capped at 1.5: 39, medium.
    expect(before.score).toBe(39);
    expect(before.band).toBe("medium");
    expect(before.reasons.map((r) => r.code)).toEqual([
      "CONFIRMED_CASES",
      "SINGLE_PLATFORM",
      "PLATFORM_CAP",
      "UNVERIFIED_CONFIRMATION",
      "RECENT",
    ]);
    expect(before.records.map((r) => r.verified)).toEqual([false, false]);

    const res = await verify(a.id);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body.confirmationVerifiedAt).toEqual(expect.any(String));
    const one = await scoreOk<Answer>(reporter, buyer);
    // 1.4 × 0.9812 + 1.0 × 0.9447 = 2.318, under the strong cap of 3: 54, high.
    expect(one.band).toBe("high");
    expect(one.reasons.map((r) => r.code)).toContain("STRONG_CONFIRMATION");
    expect(one.reasons.map((r) => r.code)).toContain("UNVERIFIED_CONFIRMATION");
    expect(Object.fromEntries(one.records.map((r) => [r.ref, r.verified]))).toEqual({
      [a.id]: true,
      [b.id]: false,
    });

    expect((await verify(b.id)).status).toBe(200);
    const both = await scoreOk<Answer>(reporter, buyer);
    expect(both.score).toBe(59);
    expect(both.reasons.find((r) => r.code === "STRONG_CONFIRMATION")?.detail).toBe(
      "2 cases confirmed by a police report or court ruling",
    );
    // The record shows verified or not, never who reported or verified it.
    expect(JSON.stringify(both)).not.toContain(reporter.id);
    expect(JSON.stringify(both)).not.toContain("admin:");
  });

  it("is audited, and idempotent: verifying again answers the report unchanged, audited as replayed", async () => {
    const reporter = await newPlatform();
    const r = await policeReport(reporter, await newBuyer(), 5);
    const first = await verify(r.id);
    expect(first.status).toBe(200);
    const rows = await auditRowsEventually(first.headers.get("x-request-id"));
    expect(rows).toEqual([
      expect.objectContaining({ action: "report.verify_confirmation", target: r.id, outcome: "ok" }),
    ]);
    expect(JSON.parse(rows[0]?.details ?? "{}")).toMatchObject({
      confirmation: "police_report",
      confirmationRef: (r as unknown as { confirmationRef: string }).confirmationRef,
    });
    const again = await verify(r.id);
    expect(again.status).toBe(200);
    expect(again.body).toEqual(first.body);
    const replay = await auditRowsEventually(again.headers.get("x-request-id"));
    expect(replay[0]).toMatchObject({ action: "report.verify_confirmation", outcome: "replayed" });
  });

  it("404 for no such report; 409 for a weaker confirmation, no reference, or a closed report", async () => {
    const reporter = await newPlatform();
    expect((await verify("rpt_01JZZZZZZZZZZZZZZZZZZZZZZZ")).status).toBe(404);
    const forensics = await createReport(reporter, await newBuyer());
    expect((await verify(forensics.id)).status).toBe(409);
    const bare = await createReport(reporter, await newBuyer(), { confirmation: "court_ruling" });
    const noRef = await verify(bare.id);
    expect(noRef.status).toBe(409);
    expect(String(noRef.body.detail)).toContain("confirmationRef");
    const voided = await policeReport(reporter, await newBuyer(), 3);
    const v = await callJson(`/v1/admin/reports/${voided.id}/void`, {
      token: await adminToken(),
      body: { reason: "Forged police reference." },
    });
    expect(v.status).toBe(200);
    expect((await verify(voided.id)).status).toBe(409);
  });

  it("a reference only comes with a police report or court ruling (422 at confirmationRef)", async () => {
    const reporter = await newPlatform();
    const res = await callJson("/v1/reports", {
      token: await reporter.token(),
      body: reportBody(await newBuyer(), { confirmationRef: "POLICE-1" }),
    });
    expect(res.status).toBe(422);
    expect(errorPaths(res.body)).toEqual(["confirmationRef"]);
  });

  it("a member cannot verify (admin only)", async () => {
    const reporter = await newPlatform();
    const r = await policeReport(reporter, await newBuyer(), 5);
    const res = await callJson(`/v1/admin/reports/${r.id}/verify-confirmation`, {
      token: await reporter.token(),
      body: { note: "Trust me." },
    });
    expect(res.status).toBe(403);
  });
});
