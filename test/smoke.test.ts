import { describe, expect, it } from "vitest";
import { call, callJson, newBuyer, newPlatform, reportBody } from "./harness";

describe("smoke", () => {
  it("healthz", async () => {
    const res = await call("/healthz");
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ ok: true });
    expect(res.headers.get("x-request-id")).toMatch(/^req_/);
  });

  it("report then score", async () => {
    const a = await newPlatform();
    const buyer = await newBuyer();
    const created = await callJson("/v1/reports", { token: await a.token(), body: reportBody(buyer) });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const score = await callJson("/v1/scores/query", {
      token: await a.token(),
      body: { subjects: buyer, purpose: "refund_review" },
    });
    expect(score.status, JSON.stringify(score.body)).toBe(200);
    expect(score.body.band).not.toBe("none");
  });
});
