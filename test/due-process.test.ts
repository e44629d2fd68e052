/**
 * Due process a member cannot game (issue 9, parts 1 and 2): a reporter cannot dispute its own
 * record; an upheld dispute can be escalated once by the opener and then only an admin decides;
 * the reporter finds disputes through the report, and the list of its disputes.
 */
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import {
  adminToken,
  auditRows,
  callJson,
  countRows,
  createReport,
  newBuyer,
  newPlatform,
  type ReportView,
  type TestPlatform,
} from "./harness";

const DAY = 86_400_000;
const REASON = "The cup arrived already cracked; I have the courier's delivery photo.";
const ESCALATION = "The courier's photo shows the crack before delivery; the reporter ignored it.";

type Subject = { type: string; hash: string };

interface Dispute {
  id: string;
  status: string;
  reportRef: string;
  deadlineAt: string;
  decidedAt: string | null;
  escalatedAt: string | null;
  escalationReason: string | null;
  role?: string;
}

interface ScoreAnswer {
  reasons: { code: string }[];
  summary: { reports: number; disputed: number };
  records: { ref: string; status: string; counted: boolean; disputed: boolean }[];
}

async function open(p: TestPlatform, reportRef: string, subjects: Subject[]) {
  return callJson<Dispute>("/v1/disputes", {
    token: await p.token(),
    body: { reportRef, subjects, reason: REASON },
  });
}

async function respond(p: TestPlatform, id: string, decision: "uphold" | "withdraw") {
  return callJson<Dispute>(`/v1/disputes/${id}/respond`, {
    token: await p.token(),
    body: { decision, note: "Our forensic report stands." },
  });
}

async function escalate(p: TestPlatform, id: string, reason = ESCALATION) {
  return callJson<Dispute>(`/v1/disputes/${id}/escalate`, { token: await p.token(), body: { reason } });
}

async function resolve(id: string, outcome: "report_upheld" | "report_voided") {
  return callJson<Dispute>(`/v1/admin/disputes/${id}/resolve`, {
    token: await adminToken(),
    body: { outcome, note: "Decided by the consortium after review." },
  });
}

async function score(p: TestPlatform, subjects: Subject[]) {
  const res = await callJson<ScoreAnswer>("/v1/scores/query", {
    token: await p.token(),
    body: { subjects, purpose: "refund_review" },
  });
  expect(res.status).toBe(200);
  return res.body;
}

async function reportOf(p: TestPlatform, id: string) {
  const res = await callJson<ReportView & { disputeId: string | null }>(`/v1/reports/${id}`, {
    token: await p.token(),
  });
  expect(res.status).toBe(200);
  return res.body;
}

/** A record of `reporter` about a fresh buyer, disputed through `opener` and upheld. */
async function upheldDispute() {
  const [reporter, opener] = await Promise.all([newPlatform(), newPlatform()]);
  const buyer = await newBuyer();
  const report = await createReport(reporter, buyer);
  const opened = await open(opener, report.id, buyer);
  expect(opened.status, JSON.stringify(opened.body)).toBe(201);
  const upheld = await respond(reporter, opened.body.id, "uphold");
  expect(upheld.body.status).toBe("upheld");
  return { reporter, opener, buyer, report, dispute: upheld.body };
}

describe("a reporter cannot dispute its own record", () => {
  it("403 problem+json, nothing written, and the real buyer's dispute still opens", async () => {
    const [reporter, other] = await Promise.all([newPlatform(), newPlatform()]);
    const buyer = await newBuyer();
    const report = await createReport(reporter, buyer);
    const before = await countRows("disputes", "report_id = ?", report.id);

    const self = await open(reporter, report.id, buyer);
    expect(self.status).toBe(403);
    expect(self.headers.get("content-type")).toMatch(/^application\/problem\+json/);
    expect((self.body as unknown as { detail: string }).detail).toMatch(/reported by this platform/);
    expect(await countRows("disputes", "report_id = ?", report.id)).toBe(before);
    const row = await env.DB.prepare("SELECT status, statement, dispute_id FROM reports WHERE id = ?")
      .bind(report.id)
      .first();
    expect(row).toEqual({ status: "active", statement: null, dispute_id: null });
    const audited = await auditRows(self.headers.get("x-request-id"));
    expect(audited.at(-1)).toMatchObject({ action: "dispute.open", outcome: "forbidden" });

    // The planted-statement attack no longer blocks anyone: the buyer's platform opens it.
    const real = await open(other, report.id, buyer);
    expect(real.status).toBe(201);
  });
});

describe("escalation of an upheld dispute", () => {
  it("the opener escalates once; the record is flagged again; the reporter cannot decide it; an admin does", async () => {
    const { reporter, opener, buyer, report, dispute } = await upheldDispute();
    expect((await score(opener, buyer)).records[0]).toMatchObject({ disputed: false, counted: true });

    const before = Date.now();
    const res = await escalate(opener, dispute.id);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body).toMatchObject({ id: dispute.id, status: "escalated", escalationReason: ESCALATION });
    expect(Date.parse(res.body.escalatedAt ?? "")).toBeGreaterThanOrEqual(before - 1000);
    // A fresh deadline for the admins' decision.
    expect(Date.parse(res.body.deadlineAt)).toBeGreaterThanOrEqual(before + 19 * DAY);
    expect(res.body.decidedAt).toBeNull();
    const audited = await auditRows(res.headers.get("x-request-id"));
    expect(audited).toEqual([
      expect.objectContaining({ action: "dispute.escalate", target: dispute.id, outcome: "ok" }),
    ]);

    // Flagged like an open dispute.
    const flagged = await score(opener, buyer);
    expect(flagged.records[0]).toMatchObject({
      ref: report.id,
      status: "disputed",
      disputed: true,
      counted: true,
    });
    expect(flagged.reasons.map((r) => r.code)).toContain("DISPUTED");
    expect((await reportOf(reporter, report.id)).status).toBe("disputed");

    // Listed for the admins.
    const listed = await callJson<{ items: Dispute[] }>("/v1/admin/disputes?status=escalated&limit=200", {
      token: await adminToken(),
    });
    expect(listed.body.items.map((d) => d.id)).toContain(dispute.id);

    // Once only; the reporter cannot decide it any more.
    expect((await escalate(opener, dispute.id)).status).toBe(409);
    expect((await respond(reporter, dispute.id, "uphold")).status).toBe(409);
    expect((await respond(reporter, dispute.id, "withdraw")).status).toBe(409);

    const decided = await resolve(dispute.id, "report_upheld");
    expect(decided.status).toBe(200);
    expect(decided.body.status).toBe("report_upheld");
    expect((await reportOf(reporter, report.id)).status).toBe("active");
    expect((await score(opener, buyer)).records[0]).toMatchObject({ disputed: false, counted: true });
    // Final: no second escalation, no new dispute.
    expect((await escalate(opener, dispute.id)).status).toBe(409);
    expect((await open(opener, report.id, buyer)).status).toBe(409);
  });

  it("an admin voiding an escalated dispute voids the record", async () => {
    const { reporter, opener, buyer, report, dispute } = await upheldDispute();
    expect((await escalate(opener, dispute.id)).status).toBe(200);
    const decided = await resolve(dispute.id, "report_voided");
    expect(decided.body.status).toBe("report_voided");
    expect((await reportOf(reporter, report.id)).status).toBe("voided");
    expect((await score(opener, buyer)).summary.reports).toBe(0);
  });

  it("only the opener escalates: the reporter 403, an unrelated platform 404, without disputes:write 403, an admin 403", async () => {
    const { reporter, dispute } = await upheldDispute();
    const stranger = await newPlatform();
    const narrow = await newPlatform({ scopes: ["scores:read", "reports:write"] });
    expect((await escalate(reporter, dispute.id)).status).toBe(403);
    expect((await escalate(stranger, dispute.id)).status).toBe(404);
    expect((await escalate(narrow, dispute.id)).status).toBe(403);
    const admin = await callJson(`/v1/disputes/${dispute.id}/escalate`, {
      token: await adminToken(),
      body: { reason: ESCALATION },
    });
    expect(admin.status).toBe(403);
    const row = await env.DB.prepare("SELECT status FROM disputes WHERE id = ?").bind(dispute.id).first();
    expect(row).toEqual({ status: "upheld" });
  });

  it("not before the reporter upheld, not after a withdrawal, not after the escalation window", async () => {
    const [reporter, opener] = await Promise.all([newPlatform(), newPlatform()]);
    const buyer = await newBuyer();
    const report = await createReport(reporter, buyer);
    const opened = await open(opener, report.id, buyer);
    const early = await escalate(opener, opened.body.id);
    expect(early.status).toBe(409);
    expect((early.body as unknown as { detail: string }).detail).toMatch(/still undecided/);

    const withdrawn = await respond(reporter, opened.body.id, "withdraw");
    expect(withdrawn.body.status).toBe("withdrawn");
    expect((await escalate(opener, opened.body.id)).status).toBe(409);

    const late = await upheldDispute();
    await env.DB.prepare("UPDATE disputes SET decided_at = decided_at - ? WHERE id = ?")
      .bind(21 * DAY, late.dispute.id)
      .run();
    const refused = await escalate(late.opener, late.dispute.id);
    expect(refused.status).toBe(409);
    expect((refused.body as unknown as { detail: string }).detail).toMatch(/no longer be escalated/);
  });

  it("an escalation undecided past its deadline stops the record counting", async () => {
    const { opener, buyer, report, dispute } = await upheldDispute();
    expect((await escalate(opener, dispute.id)).status).toBe(200);
    await env.DB.batch([
      env.DB.prepare("UPDATE disputes SET deadline_at = ? WHERE id = ?").bind(Date.now() - 1000, dispute.id),
      env.DB.prepare("UPDATE reports SET dispute_deadline_at = ? WHERE id = ?").bind(
        Date.now() - 1000,
        report.id,
      ),
    ]);
    const answer = await score(opener, buyer);
    expect(answer.records[0]).toMatchObject({ disputed: true, counted: false });
    expect(answer.reasons.map((r) => r.code)).toContain("DISPUTE_OVERDUE");
  });

  it("a retraction while escalated withdraws the dispute", async () => {
    const { reporter, opener, report, dispute } = await upheldDispute();
    expect((await escalate(opener, dispute.id)).status).toBe(200);
    const retracted = await callJson(`/v1/reports/${report.id}/retract`, {
      token: await reporter.token(),
      body: { reason: "Our review was wrong." },
    });
    expect(retracted.status).toBe(200);
    const row = await env.DB.prepare("SELECT status FROM disputes WHERE id = ?").bind(dispute.id).first();
    expect(row).toEqual({ status: "withdrawn" });
  });
});

describe("the reporter learns of disputes", () => {
  it("GET /v1/reports/{id} carries disputeId: null, then the open dispute, then the latest one", async () => {
    const [reporter, opener] = await Promise.all([newPlatform(), newPlatform()]);
    const buyer = await newBuyer();
    const report = await createReport(reporter, buyer);
    expect((await reportOf(reporter, report.id)).disputeId).toBeNull();
    const opened = await open(opener, report.id, buyer);
    expect((await reportOf(reporter, report.id)).disputeId).toBe(opened.body.id);
    await respond(reporter, opened.body.id, "withdraw");
    const after = await reportOf(reporter, report.id);
    expect(after).toMatchObject({ status: "retracted", disputeId: opened.body.id });
    const listed = await callJson<{ items: { id: string; disputeId: string | null }[] }>(
      "/v1/reports?limit=200",
      { token: await reporter.token() },
    );
    expect(listed.body.items.find((r) => r.id === report.id)?.disputeId).toBe(opened.body.id);
  });

  it("GET /v1/disputes lists by role and status, newest first, paginated, and only the caller's", async () => {
    const [reporter, opener, stranger] = await Promise.all([newPlatform(), newPlatform(), newPlatform()]);
    const opened: string[] = [];
    for (let i = 0; i < 3; i++) {
      const buyer = await newBuyer();
      const report = await createReport(reporter, buyer);
      const res = await open(opener, report.id, buyer);
      opened.push(res.body.id);
    }
    // One the reporter opened itself, for a buyer of the opener's record.
    const theirBuyer = await newBuyer();
    const theirs = await createReport(opener, theirBuyer);
    const reverse = (await open(reporter, theirs.id, theirBuyer)).body.id;
    await respond(reporter, opened[0] as string, "uphold");

    const list = async (p: TestPlatform, query: string) => {
      const res = await callJson<{ items: Dispute[]; nextCursor: string | null }>(`/v1/disputes${query}`, {
        token: await p.token(),
      });
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      return res.body;
    };
    const asReporter = await list(reporter, "?role=reporter");
    expect(asReporter.items.map((d) => d.id)).toEqual([...opened].reverse());
    expect(asReporter.items.every((d) => d.role === "reporter")).toBe(true);
    expect(asReporter.items[0]).not.toHaveProperty("openedBy");
    expect((await list(reporter, "?role=opener")).items.map((d) => d.id)).toEqual([reverse]);
    const both = await list(reporter, "");
    expect(both.items.map((d) => d.id)).toEqual([reverse, ...opened].sort().reverse());
    expect((await list(reporter, "?role=reporter&status=open")).items.map((d) => d.id)).toEqual([
      opened[2],
      opened[1],
    ]);
    expect((await list(reporter, "?status=upheld")).items.map((d) => d.id)).toEqual([opened[0]]);
    expect((await list(opener, "?role=opener")).items.map((d) => d.id)).toEqual([...opened].reverse());

    // Pages of one, each dispute once.
    const seen: string[] = [];
    let cursor: string | null = "";
    while (cursor !== null) {
      const page = await list(reporter, `?limit=1${cursor ? `&cursor=${cursor}` : ""}`);
      seen.push(...page.items.map((d) => d.id));
      cursor = page.nextCursor;
    }
    expect(seen).toEqual(both.items.map((d) => d.id));

    expect((await list(stranger, "")).items).toEqual([]);
    const bad = await callJson("/v1/disputes?role=admin", { token: await reporter.token() });
    expect(bad.status).toBe(422);
    const admin = await callJson("/v1/disputes", { token: await adminToken() });
    expect(admin.status).toBe(403);
  });
});
