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
  daysAgo,
  newBuyer,
  newPlatform,
  openDispute,
  type ReportView,
  reportBody,
  respondToDispute,
  scoreOk,
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

const open = (p: TestPlatform, reportRef: string, subjects: Subject[]) =>
  openDispute<Dispute>(p, reportRef, subjects, REASON);

const respond = (p: TestPlatform, id: string, decision: "uphold" | "withdraw") =>
  respondToDispute<Dispute>(p, id, decision);

async function escalate(p: TestPlatform, id: string, reason = ESCALATION) {
  return callJson<Dispute>(`/v1/disputes/${id}/escalate`, { token: await p.token(), body: { reason } });
}

async function resolve(id: string, outcome: "report_upheld" | "report_voided") {
  return callJson<Dispute>(`/v1/admin/disputes/${id}/resolve`, {
    token: await adminToken(),
    body: { outcome, note: "Decided by the consortium after review." },
  });
}

const score = (p: TestPlatform, subjects: Subject[]) => scoreOk<ScoreAnswer>(p, subjects);

/** Every event of a platform's feed, oldest first. */
async function events(p: TestPlatform) {
  const res = await callJson<{ items: { id: string; type: string; data: Record<string, unknown> }[] }>(
    "/v1/events?limit=200",
    { token: await p.token() },
  );
  expect(res.status).toBe(200);
  return res.body.items;
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
    // The reporter is told; the opener asked for it and is not.
    const told = (await events(reporter)).filter((e) => e.type === "dispute.escalated");
    expect(told).toEqual([
      expect.objectContaining({
        data: { disputeId: dispute.id, reportId: report.id, deadlineAt: res.body.deadlineAt },
      }),
    ]);
    expect((await events(opener)).map((e) => e.type)).not.toContain("dispute.escalated");

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

describe("POST /v1/admin/reports/void: cleaning up a poisoning flood", () => {
  async function flood(p: TestPlatform, n: number, subjects?: Subject[]) {
    const ids: string[] = [];
    for (let start = 0; start < n; start += 500) {
      const reports = [];
      for (let i = start; i < Math.min(n, start + 500); i++) {
        reports.push(reportBody(subjects ?? (await newBuyer())));
      }
      const res = await callJson<{ results: { status: number; id: string }[] }>("/v1/reports/bulk", {
        token: await p.token(),
        body: { reports },
      });
      expect(res.status).toBe(200);
      ids.push(...res.body.results.map((r) => r.id));
    }
    return ids;
  }

  async function bulkVoid(body: unknown) {
    return callJson<{ voided: string[]; skipped: { id: string; reason: string }[]; more: boolean }>(
      "/v1/admin/reports/void",
      { token: await adminToken(), body },
    );
  }

  it("by platform and time: every open report voided, each its own audit entry, disputes decided, scores clean", async () => {
    const [poisoner, honest, opener] = await Promise.all([newPlatform(), newPlatform(), newPlatform()]);
    const victim = await newBuyer();
    const since = new Date(Date.now() - 1000).toISOString();
    const ids = await flood(poisoner, 30);
    const onVictim = await createReport(poisoner, victim);
    const honestReport = await createReport(honest, victim);
    const disputed = await open(opener, onVictim.id, victim);
    expect(disputed.status).toBe(201);
    expect((await score(opener, victim)).summary.reports).toBe(2);

    const res = await bulkVoid({
      platformId: poisoner.id,
      since,
      reason: "Poisoning flood, member suspended.",
    });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body.more).toBe(false);
    expect(new Set(res.body.voided)).toEqual(new Set([...ids, onVictim.id]));

    const rows = await auditRows(res.headers.get("x-request-id"));
    expect(rows).toHaveLength(31);
    expect(new Set(rows.map((r) => r.target))).toEqual(new Set(res.body.voided));
    expect(rows.every((r) => r.action === "report.void" && r.outcome === "ok")).toBe(true);
    expect(await countRows("reports", "platform_id = ? AND status != 'voided'", poisoner.id)).toBe(0);
    expect(
      await countRows(
        "report_subjects s JOIN reports r ON r.id = s.report_id",
        "r.platform_id = ? AND s.counted = 1",
        poisoner.id,
      ),
    ).toBe(0);
    const dispute = await env.DB.prepare("SELECT status FROM disputes WHERE id = ?")
      .bind(disputed.body.id)
      .first();
    expect(dispute).toEqual({ status: "report_voided" });
    expect((await reportOf(honest, honestReport.id)).status).toBe("active");
    const after = await score(opener, victim);
    expect(after.summary.reports).toBe(1);
    expect(after.records.find((r) => r.ref === onVictim.id)).toBeUndefined();

    // One report.voided event per voided report for the reporter; the opener learns the decision.
    const voidedEvents = (await events(poisoner)).filter((e) => e.type === "report.voided");
    expect(new Set(voidedEvents.map((e) => e.data.reportId))).toEqual(new Set(res.body.voided));
    expect(voidedEvents).toHaveLength(31);
    const decisions = (await events(opener)).filter((e) => e.type === "dispute.decided");
    expect(decisions).toEqual([
      expect.objectContaining({
        data: expect.objectContaining({ disputeId: disputed.body.id, status: "report_voided" }),
      }),
    ]);
    expect(await events(honest)).toEqual([]);

    // Idempotent: nothing left to void.
    const again = await bulkVoid({
      platformId: poisoner.id,
      since,
      reason: "Poisoning flood, member suspended.",
    });
    expect(again.body).toEqual({ voided: [], skipped: [], more: false });
  });

  it("by ids: unknown and already closed ids are skipped with a reason", async () => {
    const p = await newPlatform();
    const [a, b] = [await createReport(p, await newBuyer()), await createReport(p, await newBuyer())];
    await callJson(`/v1/reports/${b.id}/retract`, { token: await p.token(), body: { reason: "Mistake." } });
    const unknown = "rpt_01JD3X5Z8YQ4W2E6R7T9V0B1N2";
    const res = await bulkVoid({ ids: [a.id, b.id, unknown], reason: "Cleaning up." });
    expect(res.status).toBe(200);
    expect(res.body.voided).toEqual([a.id]);
    expect(res.body.skipped).toEqual([
      { id: b.id, reason: "already retracted" },
      { id: unknown, reason: "not found" },
    ]);
  });

  it("a flood larger than one call: 1,000 at a time, oldest first, `more` until done", async () => {
    const p = await newPlatform();
    const ids = await flood(p, 1100);
    const first = await bulkVoid({ platformId: p.id, reason: "Flood." });
    expect(first.body.voided).toHaveLength(1000);
    expect(first.body.more).toBe(true);
    const second = await bulkVoid({ platformId: p.id, reason: "Flood." });
    expect(second.body.voided).toHaveLength(100);
    expect(second.body.more).toBe(false);
    expect(new Set([...first.body.voided, ...second.body.voided])).toEqual(new Set(ids));
  });

  it("bad filters are 422 and change nothing; platforms are 403", async () => {
    const p = await newPlatform();
    const r = await createReport(p, await newBuyer());
    for (const body of [
      { reason: "x" },
      { reason: "x", ids: [r.id], platformId: p.id },
      { reason: "x", ids: [r.id], since: new Date().toISOString() },
      { reason: "x", platformId: p.id, since: "2026-11-02T00:00:00Z", until: "2026-11-01T00:00:00Z" },
      { reason: "x", ids: [r.id, r.id] },
      { reason: "x", ids: ["not-an-id"] },
      { ids: [r.id] },
    ]) {
      const res = await bulkVoid(body);
      expect(res.status, JSON.stringify(body)).toBe(422);
    }
    const forbidden = await callJson("/v1/admin/reports/void", {
      token: await p.token(),
      body: { reason: "x", ids: [r.id] },
    });
    expect(forbidden.status).toBe(403);
    expect((await reportOf(p, r.id)).status).toBe("active");
  });
});

describe("due process cannot be undone by re-filing", () => {
  async function file(p: TestPlatform, buyer: Subject[], overrides: Record<string, unknown> = {}) {
    return callJson<{ id: string; status: string; detail?: string }>("/v1/reports", {
      token: await p.token(),
      body: reportBody(buyer, overrides),
    });
  }

  it("while the buyer disputes its record, the reporter cannot report the buyer again (409); a replay still answers 200; after the reporter answers, it can", async () => {
    const [reporter, opener] = await Promise.all([newPlatform(), newPlatform()]);
    const buyer = await newBuyer();
    const body = reportBody(buyer);
    const first = await file(reporter, buyer, body);
    expect(first.status).toBe(201);
    const dispute = await open(opener, first.body.id, buyer);
    expect(dispute.status).toBe(201);

    const before = await countRows("reports", "platform_id = ?", reporter.id);
    const copy = await file(reporter, buyer, { incidentAt: daysAgo(40), confirmedAt: daysAgo(35) });
    expect(copy.status).toBe(409);
    expect(copy.headers.get("content-type")).toMatch(/^application\/problem\+json/);
    expect(copy.body.detail).toMatch(/answer the dispute/);
    expect(await countRows("reports", "platform_id = ?", reporter.id)).toBe(before);
    const audited = await auditRows(copy.headers.get("x-request-id"));
    expect(JSON.parse(audited[0]?.details ?? "{}")).toMatchObject({ error: "dispute_pending" });

    // The same case again is a replay, not a new report.
    expect((await file(reporter, buyer, body)).status).toBe(200);
    // Another platform's report about the buyer is unaffected.
    expect((await file(opener, buyer)).status).toBe(201);

    expect((await respond(reporter, dispute.body.id, "uphold")).status).toBe(200);
    expect((await file(reporter, buyer, { incidentAt: daysAgo(40), confirmedAt: daysAgo(35) })).status).toBe(
      201,
    );
  });

  it("an incident withdrawn under dispute, or voided by an admin, cannot be filed again within the burst window; a later incident can", async () => {
    const [reporter, opener] = await Promise.all([newPlatform(), newPlatform()]);
    const buyer = await newBuyer();
    const incident = { incidentAt: daysAgo(60), confirmedAt: daysAgo(58) };
    const first = await file(reporter, buyer, incident);
    const dispute = await open(opener, first.body.id, buyer);
    expect((await respond(reporter, dispute.body.id, "withdraw")).body.status).toBe("withdrawn");

    const near = await file(reporter, buyer, { incidentAt: daysAgo(57), confirmedAt: daysAgo(56) });
    expect(near.status).toBe(409);
    expect(near.body.detail).toMatch(/withdrawn or voided through due process/);
    const later = await file(reporter, buyer, { incidentAt: daysAgo(20), confirmedAt: daysAgo(19) });
    expect(later.status).toBe(201);

    // An admin's void blocks the same way.
    const other = await newBuyer();
    const voided = await file(reporter, other, incident);
    const res = await callJson(`/v1/admin/reports/${voided.body.id}/void`, {
      token: await adminToken(),
      body: { reason: "Not a confirmed case." },
    });
    expect(res.status).toBe(200);
    expect((await file(reporter, other, incident)).status).toBe(409);
  });

  it("a retraction the reporter makes on its own (no dispute) is a correction: the case can be filed again", async () => {
    const reporter = await newPlatform();
    const buyer = await newBuyer();
    const first = await file(reporter, buyer);
    const retracted = await callJson(`/v1/reports/${first.body.id}/retract`, {
      token: await reporter.token(),
      body: { reason: "Wrong amount; filing the corrected case." },
    });
    expect(retracted.status).toBe(200);
    expect((await file(reporter, buyer, { amount: { value: 99900, currency: "CNY" } })).status).toBe(201);
  });

  it("after the reporter upholds a dispute, the same opener escalates instead of opening again (409); another platform may open a new dispute", async () => {
    const { opener, buyer, report, dispute } = await upheldDispute();
    const again = await open(opener, report.id, buyer);
    expect(again.status).toBe(409);
    expect((again.body as unknown as { detail: string }).detail).toMatch(/escalate that dispute instead/);
    const another = await newPlatform();
    const fresh = await open(another, report.id, buyer);
    expect(fresh.status).toBe(201);
    expect(fresh.body.id).not.toBe(dispute.id);
    // With a new dispute open, the first one can no longer be escalated (the record is disputed).
    expect((await escalate(opener, dispute.id)).status).toBe(409);
  });
});
