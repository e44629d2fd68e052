import { describe, expect, it } from "vitest";
import { adminToken, callJson, newBuyer, newPlatform, reportBody } from "./harness";

describe("dispute lifecycle smoke", () => {
  it("open, read, respond, resolve, subject access, maintenance", async () => {
    const reporter = await newPlatform();
    const buyerPlatform = await newPlatform();
    const buyer = await newBuyer();
    const rpt = await callJson<{ id: string }>("/v1/reports", {
      token: await reporter.token(),
      body: reportBody(buyer),
    });
    expect(rpt.status).toBe(201);
    const opened = await callJson<{ id: string; status: string }>("/v1/disputes", {
      token: await buyerPlatform.token(),
      body: {
        reportRef: rpt.body.id,
        subjects: [buyer[0]],
        reason: "The cup arrived broken; I have the courier's photo.",
      },
    });
    expect(opened.status, JSON.stringify(opened.body)).toBe(201);
    const score = await callJson<{ records: { disputed: boolean; statement: string }[] }>(
      "/v1/scores/query",
      {
        token: await buyerPlatform.token(),
        body: { subjects: buyer, purpose: "dispute_handling" },
      },
    );
    expect(score.body.records[0]?.disputed).toBe(true);
    const read = await callJson(`/v1/disputes/${opened.body.id}`, { token: await reporter.token() });
    expect(read.status).toBe(200);
    const resp = await callJson(`/v1/disputes/${opened.body.id}/respond`, {
      token: await reporter.token(),
      body: { decision: "uphold", note: "Forensics confirmed the edit." },
    });
    expect(resp.status, JSON.stringify(resp.body)).toBe(200);
    const access = await callJson<{ records: unknown[]; inquiries: unknown[] }>("/v1/subject-access", {
      token: await buyerPlatform.token(),
      body: { requestRef: "ticket-1", subjects: buyer },
    });
    expect(access.status, JSON.stringify(access.body)).toBe(200);
    expect(access.body.records).toHaveLength(1);
    expect(access.body.inquiries.length).toBeGreaterThan(0);
    const run = await callJson("/v1/admin/maintenance/run", { token: await adminToken(), body: {} });
    expect(run.status, JSON.stringify(run.body)).toBe(200);
    const list = await callJson("/v1/admin/disputes?status=upheld", { token: await adminToken() });
    expect(list.status, JSON.stringify(list.body)).toBe(200);
  });
});
