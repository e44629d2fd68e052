/**
 * Due process through the HTTP API (CONTRACT §6, §7): opening, reading, answering and
 * resolving disputes, the deadline, subject access, the retention purge, and the audit entries
 * every one of those leaves. Clocks are moved with direct SQL on the local D1; the subject-access
 * cursor's lifetime with the Worker's own clock (`vi.setSystemTime`: the Worker runs in this
 * isolate), since the cursor carries its signed issue time and no row holds it.
 */
import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it, vi } from "vitest";
import {
  adminToken,
  auditCount,
  auditRows,
  auditRowsEventually,
  call,
  callJson,
  countRows,
  createReport,
  daysAgo,
  errorPaths,
  logCount,
  logQuery,
  logShardOf,
  newBuyer,
  newPlatform,
  type TestPlatform,
  uniqueId,
} from "./harness";

const DAY = 86_400_000;
const MINUTE = 60_000;
/** ACCESS_CURSOR_LIFETIME_MS in worker/routes/subject-access.ts. */
const ACCESS_CURSOR_LIFETIME = 15 * MINUTE;
const DISPUTE_DEADLINE_DAYS = 20;
const RETENTION_DAYS = 1826;
const ADMIN_ACTOR = "admin:test-admin";
const REASON = "The cup arrived already cracked; I have the courier's delivery photo.";

type Subject = { type: string; hash: string };

interface Dispute {
  id: string;
  status: string;
  reportRef: string;
  openedAt: string;
  deadlineAt: string;
  reason: string;
  responseNote: string | null;
  decidedAt: string | null;
  openedBy?: string;
  reportPlatformId?: string;
}

interface ScoreRecordView {
  ref: string;
  status: string;
  counted: boolean;
  disputed: boolean;
  statement: string | null;
}

interface ScoreAnswer {
  score: number;
  band: string;
  reasons: { code: string; detail: string }[];
  summary: { reports: number; disputed: number };
  records: ScoreRecordView[];
}

interface AccessRecord {
  ref: string;
  status: string;
  platformName: string;
  statusReason: string | null;
  statement: string | null;
}

interface Access {
  records: AccessRecord[];
  inquiries: { at: string; purpose: string; platformName: string }[];
  nextCursor: string | null;
}

interface MaintenanceResult {
  reportsPurged: number;
  inquiriesPurged: number;
  tokenUsesPurged: number;
  disputesMarkedOverdue: number;
  complete: boolean;
}

async function openDispute(p: TestPlatform, reportRef: string, subjects: Subject[], reason = REASON) {
  return callJson<Dispute>("/v1/disputes", { token: await p.token(), body: { reportRef, subjects, reason } });
}

async function openOk(p: TestPlatform, reportRef: string, subjects: Subject[], reason = REASON) {
  const res = await openDispute(p, reportRef, subjects, reason);
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return res.body;
}

async function score(p: TestPlatform, subjects: Subject[], purpose = "refund_review") {
  const res = await callJson<ScoreAnswer>("/v1/scores/query", {
    token: await p.token(),
    body: { subjects, purpose },
  });
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res.body;
}

async function respond(
  p: TestPlatform,
  id: string,
  decision: "uphold" | "withdraw",
  note = "Reviewed again.",
) {
  return callJson<Dispute>(`/v1/disputes/${id}/respond`, {
    token: await p.token(),
    body: { decision, note },
  });
}

async function resolve(id: string, outcome: "report_upheld" | "report_voided", token?: string) {
  return callJson<Dispute>(`/v1/admin/disputes/${id}/resolve`, {
    token: token ?? (await adminToken()),
    body: { outcome, note: "Decided by the consortium after review." },
  });
}

/** One page of a subject-access request (a fresh `requestRef` unless given). */
async function subjectAccess(p: TestPlatform, subjects: Subject[], extra: Record<string, unknown> = {}) {
  return callJson<Access>("/v1/subject-access", {
    token: await p.token(),
    body: { requestRef: uniqueId("SAR"), subjects, ...extra },
  });
}

async function runMaintenance() {
  const res = await callJson<MaintenanceResult>("/v1/admin/maintenance/run", {
    token: await adminToken(),
    body: {},
  });
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return { ...res.body, requestId: res.headers.get("x-request-id") ?? "" };
}

async function reportStatus(id: string) {
  const res = await callJson<{ status: string; statusReason: string | null; statement: string | null }>(
    `/v1/admin/reports/${id}`,
    { token: await adminToken() },
  );
  expect(res.status).toBe(200);
  return res.body;
}

/** Moves an open dispute (and the report's copy of its deadline) into the past. */
async function pastDeadline(disputeId: string, reportId: string, msAgo = 60_000) {
  const at = Date.now() - msAgo;
  await env.DB.batch([
    env.DB.prepare("UPDATE disputes SET deadline_at = ? WHERE id = ?").bind(at, disputeId),
    env.DB.prepare("UPDATE reports SET dispute_deadline_at = ? WHERE id = ?").bind(at, reportId),
  ]);
}

describe("POST /v1/disputes (open)", () => {
  it("201 with id, status open, reportRef, openedAt and deadlineAt 20 days later", async () => {
    const reporter = await newPlatform();
    const opener = await newPlatform();
    const buyer = await newBuyer();
    const report = await createReport(reporter, buyer);
    const before = Date.now();
    const res = await openDispute(opener, report.id, [buyer[0] as Subject]);
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    expect(res.headers.get("content-type")).toMatch(/^application\/json/);
    expect(res.body.id).toMatch(/^dsp_[0-9A-HJKMNP-TV-Z]{26}$/);
    expect(res.body.status).toBe("open");
    expect(res.body.reportRef).toBe(report.id);
    const openedAt = Date.parse(res.body.openedAt);
    expect(openedAt).toBeGreaterThanOrEqual(before - 1000);
    expect(openedAt).toBeLessThanOrEqual(Date.now() + 1000);
    expect(Date.parse(res.body.deadlineAt) - openedAt).toBe(DISPUTE_DEADLINE_DAYS * DAY);
    // Platforms are not told who opened it or whose record it is.
    expect(res.body).not.toHaveProperty("openedBy");
    expect(res.body).not.toHaveProperty("reportPlatformId");
    expect((await reportStatus(report.id)).status).toBe("disputed");
  });

  it("404 when the subjects do not match the report, 404 for an unknown ref, 422 for a malformed ref", async () => {
    const reporter = await newPlatform();
    const opener = await newPlatform();
    const buyer = await newBuyer();
    const stranger = await newBuyer();
    const report = await createReport(reporter, buyer);

    const wrong = await openDispute(opener, report.id, stranger);
    expect(wrong.status).toBe(404);
    expect(wrong.headers.get("content-type")).toMatch(/^application\/problem\+json/);

    const unknown = await openDispute(opener, "rpt_01JD3X5Z8YQ4W2E6R7T9V0B1N2", buyer);
    expect(unknown.status).toBe(404);

    for (const ref of ["rpt_nope", "dsp_01JD3X5Z8YQ4W2E6R7T9V0B1N2", "", "rpt_01jd3x5z8yq4w2e6r7t9v0b1n2"]) {
      const bad = await openDispute(opener, ref, buyer);
      expect(bad.status, ref).toBe(422);
      expect((bad.body as unknown as { errors: { path: string }[] }).errors.map((e) => e.path)).toContain(
        "reportRef",
      );
    }
    // Nothing of this touched the record.
    expect((await reportStatus(report.id)).status).toBe("active");
    expect(await countRows("disputes", "report_id = ?", report.id)).toBe(0);
  });

  it("a second dispute on the same record is 409", async () => {
    const reporter = await newPlatform();
    const opener = await newPlatform();
    const other = await newPlatform();
    const buyer = await newBuyer();
    const report = await createReport(reporter, buyer);
    await openOk(opener, report.id, buyer);
    const again = await openDispute(opener, report.id, buyer);
    expect(again.status).toBe(409);
    const elsewhere = await openDispute(
      other,
      report.id,
      [buyer[1] as Subject],
      "Another statement entirely.",
    );
    expect(elsewhere.status).toBe(409);
    expect(await countRows("disputes", "report_id = ?", report.id)).toBe(1);
    // The first statement stays on the record.
    expect((await reportStatus(report.id)).statement).toBe(REASON);
  });

  it("a dispute on a retracted or voided report is 409", async () => {
    const reporter = await newPlatform();
    const opener = await newPlatform();
    const buyer = await newBuyer();
    const retracted = await createReport(reporter, buyer);
    const voided = await createReport(reporter, buyer);
    const r = await callJson(`/v1/reports/${retracted.id}/retract`, {
      token: await reporter.token(),
      body: { reason: "Filed against the wrong account." },
    });
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    const v = await callJson(`/v1/admin/reports/${voided.id}/void`, {
      token: await adminToken(),
      body: { reason: "Evidence did not support the finding." },
    });
    expect(v.status, JSON.stringify(v.body)).toBe(200);

    expect((await openDispute(opener, retracted.id, buyer)).status).toBe(409);
    expect((await openDispute(opener, voided.id, buyer)).status).toBe(409);
    expect(await countRows("disputes", "report_id IN (?, ?)", retracted.id, voided.id)).toBe(0);
    expect((await reportStatus(retracted.id)).status).toBe("retracted");
    expect((await reportStatus(voided.id)).status).toBe("voided");
  });

  it("the record shows status disputed, disputed true and the statement, at a lower score but not band none", async () => {
    const reporter = await newPlatform();
    const opener = await newPlatform();
    const buyer = await newBuyer();
    const report = await createReport(reporter, buyer);
    const before = await score(opener, buyer);
    expect(before.band).not.toBe("none");
    expect(before.records[0]).toMatchObject({
      ref: report.id,
      status: "active",
      disputed: false,
      statement: null,
    });

    await openOk(opener, report.id, buyer);
    const after = await score(opener, buyer, "dispute_handling");
    expect(after.records).toHaveLength(1);
    expect(after.records[0]).toMatchObject({
      ref: report.id,
      status: "disputed",
      disputed: true,
      counted: true,
      statement: REASON,
    });
    expect(after.score).toBeGreaterThan(0);
    expect(after.score).toBeLessThan(before.score);
    expect(after.band).not.toBe("none");
    expect(after.summary.disputed).toBe(1);
    expect(after.reasons.map((r) => r.code)).toContain("DISPUTED");
  });

  it("a reason carrying a phone number or an e-mail address is 422", async () => {
    const reporter = await newPlatform();
    const opener = await newPlatform();
    const buyer = await newBuyer();
    const report = await createReport(reporter, buyer);
    for (const reason of [
      "Call me on 13812345678 about this.",
      "Write to buyer.name@example.com for the photos.",
      "My ID is 11010519491231002X.",
    ]) {
      const res = await openDispute(opener, report.id, buyer, reason);
      expect(res.status, reason).toBe(422);
      expect((res.body as unknown as { errors: { path: string }[] }).errors.map((e) => e.path)).toContain(
        "reason",
      );
    }
    expect((await openDispute(opener, report.id, buyer, "   ")).status).toBe(422);
    expect((await openDispute(opener, report.id, buyer, "x".repeat(1001))).status).toBe(422);
    expect((await reportStatus(report.id)).status).toBe("active");
    expect(await countRows("disputes", "report_id = ?", report.id)).toBe(0);
  });

  it("five concurrent opens: exactly one 201, the rest 409, one undecided dispute", async () => {
    const reporter = await newPlatform();
    const opener = await newPlatform();
    const buyer = await newBuyer();
    const report = await createReport(reporter, buyer);
    const tokens = await Promise.all([1, 2, 3, 4, 5].map(() => opener.token()));
    const results = await Promise.all(
      tokens.map((token, i) =>
        callJson<Dispute>("/v1/disputes", {
          token,
          body: { reportRef: report.id, subjects: buyer, reason: `Statement number ${i}.` },
        }),
      ),
    );
    const statuses = results.map((r) => r.status).sort();
    expect(statuses).toEqual([201, 409, 409, 409, 409]);
    expect(await countRows("disputes", "report_id = ? AND status IN ('open', 'overdue')", report.id)).toBe(1);
    expect(await countRows("disputes", "report_id = ?", report.id)).toBe(1);
    const winner = results.find((r) => r.status === 201);
    expect((await reportStatus(report.id)).statement).toBe(winner?.body.reason);
    expect(
      await auditCount("action = 'dispute.open' AND outcome = 'created' AND target = ?", winner?.body.id),
    ).toBe(1);
  });
});

describe("GET /v1/disputes/{id}", () => {
  it("opening, reporting platform and admin 200; unrelated 404; without disputes:write 403", async () => {
    const reporter = await newPlatform();
    const opener = await newPlatform();
    const unrelated = await newPlatform();
    const noDisputes = await newPlatform({ scopes: ["reports:write", "scores:read"] });
    const buyer = await newBuyer();
    const report = await createReport(reporter, buyer);
    const dispute = await openOk(opener, report.id, buyer);

    for (const p of [opener, reporter]) {
      const res = await callJson<Dispute>(`/v1/disputes/${dispute.id}`, { token: await p.token() });
      expect(res.status, p.id).toBe(200);
      expect(res.body).toMatchObject({
        id: dispute.id,
        status: "open",
        reportRef: report.id,
        reason: REASON,
      });
      expect(res.body.deadlineAt).toBe(dispute.deadlineAt);
      expect(res.body).not.toHaveProperty("openedBy");
      expect(res.body).not.toHaveProperty("reportPlatformId");
      expect(JSON.stringify(res.body)).not.toContain(opener.id);
      expect(JSON.stringify(res.body)).not.toContain(reporter.id);
    }

    const admin = await callJson<Dispute>(`/v1/disputes/${dispute.id}`, { token: await adminToken() });
    expect(admin.status).toBe(200);
    expect(admin.body.openedBy).toBe(opener.id);
    expect(admin.body.reportPlatformId).toBe(reporter.id);

    const other = await callJson(`/v1/disputes/${dispute.id}`, { token: await unrelated.token() });
    expect(other.status).toBe(404);
    expect(other.headers.get("content-type")).toMatch(/^application\/problem\+json/);
    // Existence does not leak: an unknown id answers the same.
    const unknown = await callJson(`/v1/disputes/dsp_01JD3X5Z8YQ4W2E6R7T9V0B1N2`, {
      token: await unrelated.token(),
    });
    expect(unknown.status).toBe(404);

    expect((await callJson(`/v1/disputes/${dispute.id}`, { token: await noDisputes.token() })).status).toBe(
      403,
    );
    // The reporting platform itself with a token narrowed to other scopes.
    const narrowed = await reporter.token({ scope: "reports:write scores:read" });
    expect((await callJson(`/v1/disputes/${dispute.id}`, { token: narrowed })).status).toBe(403);
  });
});

describe("POST /v1/disputes/{id}/respond", () => {
  it("uphold: dispute upheld, the report active and counting fully again, the statement still shown", async () => {
    const reporter = await newPlatform();
    const opener = await newPlatform();
    const buyer = await newBuyer();
    const report = await createReport(reporter, buyer);
    const undisputed = await score(opener, buyer);
    const dispute = await openOk(opener, report.id, buyer);
    const disputed = await score(opener, buyer);
    expect(disputed.score).toBeLessThan(undisputed.score);

    const res = await respond(reporter, dispute.id, "uphold", "Forensics confirmed the edit.");
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body).toMatchObject({
      id: dispute.id,
      status: "upheld",
      responseNote: "Forensics confirmed the edit.",
    });
    expect(res.body.decidedAt).not.toBeNull();
    expect(res.body).not.toHaveProperty("openedBy");

    const after = await score(opener, buyer);
    expect(after.score).toBe(undisputed.score);
    expect(after.band).toBe(undisputed.band);
    expect(after.records[0]).toMatchObject({
      ref: report.id,
      status: "active",
      disputed: false,
      counted: true,
      statement: REASON,
    });
    expect((await reportStatus(report.id)).status).toBe("active");
  });

  it("withdraw: dispute withdrawn, the report retracted, gone from scores, in subject access as retracted", async () => {
    const reporter = await newPlatform();
    const opener = await newPlatform();
    const buyer = await newBuyer();
    const report = await createReport(reporter, buyer);
    const dispute = await openOk(opener, report.id, buyer);

    const res = await respond(reporter, dispute.id, "withdraw", "We could not confirm it on review.");
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body.status).toBe("withdrawn");
    expect((await reportStatus(report.id)).status).toBe("retracted");
    expect(await countRows("report_subjects", "report_id = ? AND counted = 0", report.id)).toBe(2);

    const s = await score(opener, buyer);
    expect(s.score).toBe(0);
    expect(s.band).toBe("none");
    expect(s.records).toHaveLength(0);

    const access = await subjectAccess(opener, buyer);
    expect(access.status).toBe(200);
    expect(access.body.records).toHaveLength(1);
    expect(access.body.records[0]).toMatchObject({
      ref: report.id,
      status: "retracted",
      statement: REASON,
      statusReason: "We could not confirm it on review.",
    });
  });

  it("the opening platform is 403, an unrelated one 404, responding twice 409", async () => {
    const reporter = await newPlatform();
    const opener = await newPlatform();
    const unrelated = await newPlatform();
    const buyer = await newBuyer();
    const report = await createReport(reporter, buyer);
    const dispute = await openOk(opener, report.id, buyer);

    expect((await respond(opener, dispute.id, "withdraw")).status).toBe(403);
    expect((await respond(unrelated, dispute.id, "withdraw")).status).toBe(404);
    const admin = await callJson(`/v1/disputes/${dispute.id}/respond`, {
      token: await adminToken(),
      body: { decision: "uphold", note: "Not the admin's call here." },
    });
    expect(admin.status).toBe(403);
    expect((await reportStatus(report.id)).status).toBe("disputed");

    expect((await respond(reporter, dispute.id, "uphold")).status).toBe(200);
    expect((await respond(reporter, dispute.id, "uphold")).status).toBe(409);
    expect((await respond(reporter, dispute.id, "withdraw")).status).toBe(409);
    expect((await reportStatus(report.id)).status).toBe("active");
  });

  it("uphold after the deadline is 409; withdraw after the deadline still works", async () => {
    const reporter = await newPlatform();
    const opener = await newPlatform();
    const buyer = await newBuyer();
    const report = await createReport(reporter, buyer);
    const dispute = await openOk(opener, report.id, buyer);
    await pastDeadline(dispute.id, report.id);

    const late = await respond(reporter, dispute.id, "uphold");
    expect(late.status).toBe(409);
    expect((await reportStatus(report.id)).status).toBe("disputed");

    const withdrawn = await respond(reporter, dispute.id, "withdraw", "Withdrawn after the deadline.");
    expect(withdrawn.status, JSON.stringify(withdrawn.body)).toBe(200);
    expect(withdrawn.body.status).toBe("withdrawn");
    expect((await reportStatus(report.id)).status).toBe("retracted");
  });

  it("withdraw also works once maintenance has marked the dispute overdue", async () => {
    const reporter = await newPlatform();
    const opener = await newPlatform();
    const buyer = await newBuyer();
    const report = await createReport(reporter, buyer);
    const dispute = await openOk(opener, report.id, buyer);
    await pastDeadline(dispute.id, report.id);
    await runMaintenance();
    expect(
      (await callJson<Dispute>(`/v1/disputes/${dispute.id}`, { token: await reporter.token() })).body.status,
    ).toBe("overdue");
    expect((await respond(reporter, dispute.id, "uphold")).status).toBe(409);
    const res = await respond(reporter, dispute.id, "withdraw", "Withdrawn once overdue.");
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body.status).toBe("withdrawn");
    expect((await reportStatus(report.id)).status).toBe("retracted");
  });
});

describe("the dispute deadline and admin resolution", () => {
  it("past the deadline the record stops counting, is listed counted=false with DISPUTE_OVERDUE; maintenance marks it overdue", async () => {
    const reporter = await newPlatform();
    const opener = await newPlatform();
    const buyer = await newBuyer();
    const report = await createReport(reporter, buyer);
    const undisputed = await score(opener, buyer);
    const dispute = await openOk(opener, report.id, buyer);
    await pastDeadline(dispute.id, report.id);

    const s = await score(opener, buyer);
    expect(s.score).toBe(0);
    expect(s.band).toBe("none");
    expect(s.summary.reports).toBe(0);
    expect(s.records).toHaveLength(1);
    expect(s.records[0]).toMatchObject({
      ref: report.id,
      status: "disputed",
      counted: false,
      disputed: true,
      statement: REASON,
    });
    expect(s.reasons.map((r) => r.code)).toContain("DISPUTE_OVERDUE");
    expect(s.reasons.map((r) => r.code)).not.toContain("DISPUTED");

    const run = await runMaintenance();
    expect(run.disputesMarkedOverdue).toBeGreaterThanOrEqual(1);
    const list = await callJson<{ items: Dispute[] }>("/v1/admin/disputes?status=overdue&limit=200", {
      token: await adminToken(),
    });
    expect(list.status).toBe(200);
    const listed = list.body.items.find((d) => d.id === dispute.id);
    expect(listed).toMatchObject({
      status: "overdue",
      reportRef: report.id,
      openedBy: opener.id,
      reportPlatformId: reporter.id,
    });
    const open = await callJson<{ items: Dispute[] }>("/v1/admin/disputes?status=open&limit=200", {
      token: await adminToken(),
    });
    expect(open.body.items.some((d) => d.id === dispute.id)).toBe(false);

    // Still not counting until an admin decides.
    expect((await score(opener, buyer)).band).toBe("none");

    const upheld = await resolve(dispute.id, "report_upheld");
    expect(upheld.status, JSON.stringify(upheld.body)).toBe(200);
    expect(upheld.body).toMatchObject({
      status: "report_upheld",
      openedBy: opener.id,
      reportPlatformId: reporter.id,
    });
    const after = await score(opener, buyer);
    expect(after.score).toBe(undisputed.score);
    expect(after.band).toBe(undisputed.band);
    expect(after.records[0]).toMatchObject({
      status: "active",
      counted: true,
      disputed: false,
      statement: REASON,
    });

    // Resolving a decided dispute is a conflict.
    expect((await resolve(dispute.id, "report_voided")).status).toBe(409);
    expect((await reportStatus(report.id)).status).toBe("active");
  });

  it("admin resolve report_voided voids the report; platform token 403; decided 409", async () => {
    const reporter = await newPlatform();
    const opener = await newPlatform();
    const buyer = await newBuyer();
    const report = await createReport(reporter, buyer);
    const dispute = await openOk(opener, report.id, buyer);
    await pastDeadline(dispute.id, report.id);
    await runMaintenance();

    expect((await resolve(dispute.id, "report_voided", await reporter.token())).status).toBe(403);
    expect((await resolve(dispute.id, "report_voided", await opener.token())).status).toBe(403);

    const res = await resolve(dispute.id, "report_voided");
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body.status).toBe("report_voided");
    const r = await reportStatus(report.id);
    expect(r.status).toBe("voided");
    expect(await countRows("report_subjects", "report_id = ? AND counted = 0", report.id)).toBe(2);
    expect(r.statement).toBe(REASON);
    const s = await score(opener, buyer);
    expect(s.band).toBe("none");
    expect(s.records).toHaveLength(0);

    expect((await resolve(dispute.id, "report_upheld")).status).toBe(409);
    expect((await reportStatus(report.id)).status).toBe("voided");
    // The reporter cannot answer it any more either.
    expect((await respond(reporter, dispute.id, "withdraw")).status).toBe(409);
  });

  it("resolving an upheld (reporter-decided) dispute is 409", async () => {
    const reporter = await newPlatform();
    const opener = await newPlatform();
    const buyer = await newBuyer();
    const report = await createReport(reporter, buyer);
    const dispute = await openOk(opener, report.id, buyer);
    expect(await countRows("report_subjects", "report_id = ? AND counted = 1", report.id)).toBe(2);
    expect((await respond(reporter, dispute.id, "uphold")).status).toBe(200);
    expect((await resolve(dispute.id, "report_voided")).status).toBe(409);
    expect((await reportStatus(report.id)).status).toBe("active");
    // Disputed, then upheld: the record never stopped counting.
    expect(await countRows("report_subjects", "report_id = ? AND counted = 1", report.id)).toBe(2);
  });
});

describe("POST /v1/subject-access", () => {
  it("every record of every status, with the reporter's name and the statement, never a platformId or caseId", async () => {
    const reporterA = await newPlatform();
    const reporterB = await newPlatform();
    const buyerPlatform = await newPlatform();
    const nameA = `Furnisher Alpha ${crypto.randomUUID()}`;
    const nameB = `Furnisher Beta ${crypto.randomUUID()}`;
    for (const [p, name] of [
      [reporterA, nameA],
      [reporterB, nameB],
    ] as const) {
      const res = await callJson(`/v1/admin/platforms/${p.id}`, {
        method: "PATCH",
        token: await adminToken(),
        body: { name },
      });
      expect(res.status, JSON.stringify(res.body)).toBe(200);
    }
    const buyer = await newBuyer();
    const active = await createReport(reporterA, [buyer[0] as Subject]);
    const disputed = await createReport(reporterB, [buyer[1] as Subject], { category: "edited_image" });
    const retracted = await createReport(reporterA, buyer, { category: "reused_image" });
    const voided = await createReport(reporterB, buyer, { category: "staged_damage" });

    await openOk(buyerPlatform, disputed.id, buyer, "I never received the parcel at all.");
    expect(
      (
        await callJson(`/v1/reports/${retracted.id}/retract`, {
          token: await reporterA.token(),
          body: { reason: "Duplicate of another case." },
        })
      ).status,
    ).toBe(200);
    expect(
      (
        await callJson(`/v1/admin/reports/${voided.id}/void`, {
          token: await adminToken(),
          body: { reason: "Not a forgery after all." },
        })
      ).status,
    ).toBe(200);

    const res = await call("/v1/subject-access", {
      token: await buyerPlatform.token(),
      body: { requestRef: "TICKET-1", subjects: buyer },
    });
    expect(res.status).toBe(200);
    const text = await res.text();
    const body = JSON.parse(text) as Access;
    const byRef = new Map(body.records.map((r) => [r.ref, r]));
    expect(body.records).toHaveLength(4);
    expect(byRef.get(active.id)).toMatchObject({ status: "active", platformName: nameA, statement: null });
    expect(byRef.get(disputed.id)).toMatchObject({
      status: "disputed",
      platformName: nameB,
      statement: "I never received the parcel at all.",
    });
    expect(byRef.get(retracted.id)).toMatchObject({ status: "retracted", platformName: nameA });
    expect(byRef.get(voided.id)).toMatchObject({ status: "voided", platformName: nameB });

    expect(text).not.toContain("platformId");
    expect(text).not.toContain("caseId");
    for (const secret of [reporterA.id, reporterB.id, buyerPlatform.id]) {
      expect(text).not.toContain(secret);
    }
    for (const r of [active, disputed, retracted, voided]) {
      expect(text).not.toContain(r.caseId);
    }
  });

  it("lists each score query once (time, purpose, platformName), even with several subject keys", async () => {
    const reporter = await newPlatform();
    const asker1 = await newPlatform();
    const asker2 = await newPlatform();
    const buyer = await newBuyer();
    await createReport(reporter, buyer);

    const t0 = Date.now();
    await score(asker1, buyer, "refund_review"); // two subject keys, one query
    await score(asker2, [buyer[1] as Subject], "account_review");
    await score(asker1, [buyer[0] as Subject], "dispute_handling");
    const batch = await callJson("/v1/scores/batch", {
      token: await asker2.token(),
      body: {
        purpose: "refund_review",
        queries: [
          { ref: "order-1", subjects: buyer },
          { ref: "order-2", subjects: await newBuyer() },
        ],
      },
    });
    expect(batch.status).toBe(200);

    const access = await subjectAccess(asker1, buyer);
    expect(access.status).toBe(200);
    const inquiries = access.body.inquiries;
    expect(inquiries).toHaveLength(4);
    for (const i of inquiries) {
      expect(Date.parse(i.at)).toBeGreaterThanOrEqual(t0 - 1000);
      expect(Date.parse(i.at)).toBeLessThanOrEqual(Date.now() + 1000);
    }
    const seen = inquiries.map((i) => `${i.purpose} ${i.platformName}`).sort();
    expect(seen).toEqual(
      [
        `refund_review Platform ${asker1.id}`,
        `account_review Platform ${asker2.id}`,
        `dispute_handling Platform ${asker1.id}`,
        `refund_review Platform ${asker2.id}`,
      ].sort(),
    );
    // Newest first.
    const times = inquiries.map((i) => Date.parse(i.at));
    expect([...times].sort((a, b) => b - a)).toEqual(times);
    // Subject access is itself an inquiry, shown from the next answer on.
    const next = (await subjectAccess(asker2, buyer)).body.inquiries;
    expect(next).toHaveLength(5);
    expect(next[0]).toMatchObject({ purpose: "subject_access", platformName: `Platform ${asker1.id}` });
  });

  it("an unknown buyer gets empty arrays", async () => {
    const p = await newPlatform();
    const res = await subjectAccess(p, await newBuyer());
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ records: [], inquiries: [], nextCursor: null });
  });

  it("writes one audit entry subject.access with the subject keys; needs disputes:write", async () => {
    const reporter = await newPlatform();
    const p = await newPlatform();
    const buyer = await newBuyer();
    const report = await createReport(reporter, buyer);
    const res = await call("/v1/subject-access", {
      token: await p.token(),
      body: { requestRef: "zendesk:48213", subjects: buyer },
    });
    expect(res.status).toBe(200);
    const requestId = res.headers.get("x-request-id");
    const rows = await auditRows(requestId);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({
      action: "subject.access",
      actor: `platform:${p.id}`,
      outcome: "ok",
      target: "zendesk:48213",
    });
    const details = JSON.parse(rows[0]?.details ?? "{}") as Record<string, unknown>;
    expect(details).toMatchObject({ requestRef: "zendesk:48213", page: 1, accessRequestId: requestId });
    expect([...(details.subjectKeys as string[])].sort()).toEqual(report.subjects.map((s) => s.key).sort());
    // No identifier or platform hash in the log.
    for (const s of buyer) {
      expect(rows[0]?.details).not.toContain(s.hash);
    }

    const scoped = await newPlatform({ scopes: ["scores:read"] });
    expect((await subjectAccess(scoped, buyer)).status).toBe(403);
  });
  it("is a look-up itself: one subject_access inquiry in the buyer's next answer, counted in usage beside disputes", async () => {
    const reporter = await newPlatform();
    const p = await newPlatform();
    const buyer = await newBuyer();
    const report = await createReport(reporter, buyer);
    await openOk(p, report.id, buyer);

    const first = await subjectAccess(p, buyer, { requestRef: "T-1" });
    expect(first.status).toBe(200);
    expect(first.body.inquiries).toEqual([]);
    const logged = await logQuery<{ subject_key: string; purpose: string; request_id: string }>(
      "SELECT subject_key, purpose, request_id FROM inquiries WHERE platform_id = ? ORDER BY subject_key",
      p.id,
    );
    expect(logged).toEqual(
      report.subjects
        .map((s) => s.key)
        .sort()
        .map((key) => ({
          subject_key: key,
          purpose: "subject_access",
          request_id: first.headers.get("x-request-id"),
        })),
    );

    const second = await subjectAccess(p, buyer, { requestRef: "T-2" });
    expect(second.body.inquiries).toEqual([
      { at: expect.any(String), purpose: "subject_access", platformName: `Platform ${p.id}` },
    ]);
    // A score query cannot borrow the purpose.
    const borrowed = await callJson("/v1/scores/query", {
      token: await p.token(),
      body: { subjects: buyer, purpose: "subject_access" },
    });
    expect(borrowed.status).toBe(422);

    const stats = await callJson<{ usage: Record<string, unknown>[] }>("/v1/admin/stats", {
      token: await adminToken(),
    });
    expect(stats.body.usage.find((u) => u.platformId === p.id)).toMatchObject({
      queries: 0,
      subjectAccess: 2,
      disputesOpened: 1,
      // Subject access counts against the daily cap on distinct subject keys, like a score query.
      distinctSubjectsToday: 2,
    });
    expect(stats.body.usage.find((u) => u.platformId === reporter.id)).toMatchObject({
      reports: 1,
      subjectAccess: 0,
      disputesOpened: 0,
      distinctSubjectsToday: 0,
    });
  });

  it("requires requestRef (1–128 of A–Z a–z 0–9 . _ : -): 422 and nothing written", async () => {
    const p = await newPlatform();
    const buyer = await newBuyer();
    for (const requestRef of [undefined, "", "x".repeat(129), "two words", "ticket/1"]) {
      const res = await callJson("/v1/subject-access", {
        token: await p.token(),
        body: { requestRef, subjects: buyer },
      });
      expect(res.status, String(requestRef)).toBe(422);
      expect(errorPaths(res.body)).toContain("requestRef");
    }
    for (const limit of [0, 501, 1.5]) {
      const res = await subjectAccess(p, buyer, { limit });
      expect(res.status, String(limit)).toBe(422);
    }
    expect(await logCount("inquiries", "platform_id = ?", p.id)).toBe(0);
    expect(await logCount("usage", "platform_id = ? AND subject_access > 0", p.id)).toBe(0);
    expect(
      await auditCount("actor = ? AND action = 'subject.access' AND outcome = 'ok'", `platform:${p.id}`),
    ).toBe(0);
  });

  it("pages through 250 records and 250 look-ups, each exactly once, newest first; the pages are one inquiry", async () => {
    const reporter = await newPlatform();
    const asker = await newPlatform();
    const p = await newPlatform();
    const buyer = await newBuyer();
    const seeded = await createReport(reporter, buyer);
    const [k0, k1] = seeded.subjects.map((s) => s.key) as [string, string];
    const base = Date.now() - 30 * DAY;
    const tag = uniqueId("seed").replace(/[^a-z0-9]/gi, "");
    // 249 more records, ten to an incident time (ties break on the ref), some under both keys.
    await env.DB.batch([
      env.DB.prepare(
        `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 249)
         INSERT INTO reports (id, platform_id, case_id, status, category, confirmation, incident_at, confirmed_at,
           amount_value, amount_currency, evidence, content_hash, created_at, updated_at)
         SELECT 'rpt_' || ?1 || printf('%04d', i), ?2, 'C-' || ?1 || i, 'retracted', 'ai_generated_image',
           'manual_review', ?3 - (i / 10) * 86400000, ?3, 100, 'CNY', '[]', 'x', ?3, ?3 FROM n`,
      ).bind(tag, reporter.id, base),
      env.DB.prepare(
        `INSERT INTO report_subjects (subject_key, report_id, subject_type, platform_id, incident_at, counted)
         SELECT CASE WHEN substr(r.id, -1) IN ('1', '3', '5', '7', '9') THEN ?2 ELSE ?3 END, r.id, 'phone',
           r.platform_id, r.incident_at, 0
         FROM reports r WHERE r.id LIKE 'rpt_' || ?1 || '%'`,
      ).bind(tag, k0, k1),
      env.DB.prepare(
        `INSERT INTO report_subjects (subject_key, report_id, subject_type, platform_id, incident_at, counted)
         SELECT ?2, r.id, 'device', r.platform_id, r.incident_at, 0
         FROM reports r WHERE r.id LIKE 'rpt_' || ?1 || '%0'`,
      ).bind(tag, k0),
    ]);
    // 250 look-ups, two to a time; every third under both keys (still one look-up), in the log
    // shard the asker writes to.
    await runInDurableObject(logShardOf(`platform:${asker.id}`), (_o, state) => {
      state.storage.sql.exec(
        `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 250)
         INSERT INTO inquiries (subject_key, platform_id, purpose, at, request_id)
         SELECT ?2, ?4, 'refund_review', ?5 - (i / 2) * 1000, 'req_' || ?1 || printf('%04d', i) FROM n
         UNION ALL
         SELECT ?3, ?4, 'refund_review', ?5 - (i / 2) * 1000, 'req_' || ?1 || printf('%04d', i) FROM n WHERE i % 3 = 0`,
        tag,
        k0,
        k1,
        asker.id,
        base,
      );
    });

    const requestRef = uniqueId("SAR");
    const refs: string[] = [];
    const incidents: number[] = [];
    const times: number[] = [];
    const pageSizes: [number, number][] = [];
    let cursor: string | undefined;
    for (let page = 0; page < 10; page++) {
      const res = await subjectAccess(p, buyer, { requestRef, limit: 100, ...(cursor ? { cursor } : {}) });
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      pageSizes.push([res.body.records.length, res.body.inquiries.length]);
      refs.push(...res.body.records.map((r) => r.ref));
      incidents.push(
        ...res.body.records.map((r) => Date.parse((r as unknown as { incidentAt: string }).incidentAt)),
      );
      times.push(...res.body.inquiries.map((i) => Date.parse(i.at)));
      expect(res.body.inquiries.every((i) => i.purpose === "refund_review")).toBe(true);
      if (!res.body.nextCursor) {
        break;
      }
      cursor = res.body.nextCursor;
    }
    expect(pageSizes).toEqual([
      [100, 100],
      [100, 100],
      [50, 50],
    ]);
    expect(new Set(refs).size).toBe(250);
    expect(refs).toContain(seeded.id);
    expect([...incidents].sort((a, b) => b - a)).toEqual(incidents);
    const expectedTimes = Array.from({ length: 250 }, (_, k) => base - Math.floor((k + 1) / 2) * 1000);
    expect(times).toEqual(expectedTimes.sort((a, b) => b - a));

    // Three pages, one buyer request: the next answer lists it once.
    const next = await subjectAccess(asker, buyer, { limit: 500 });
    expect(next.body.inquiries).toHaveLength(251);
    expect(next.body.inquiries.filter((i) => i.purpose === "subject_access")).toEqual([
      { at: expect.any(String), purpose: "subject_access", platformName: `Platform ${p.id}` },
    ]);
    // Every page counted and audited.
    expect(await logCount("usage", "platform_id = ? AND subject_access = 3", p.id)).toBe(1);
    const audited = await logQuery<{ details: string }>(
      "SELECT details FROM entries WHERE actor = ? AND action = 'subject.access' ORDER BY seq",
      `platform:${p.id}`,
    );
    expect(audited.map((a) => (JSON.parse(a.details) as { page: number; requestRef: string }).page)).toEqual([
      1, 2, 3,
    ]);
  }, 30_000);

  it("a tampered cursor, or one used with other subjects, requestRef or platform, is a 422 that writes nothing", async () => {
    const reporter = await newPlatform();
    const p = await newPlatform();
    const other = await newPlatform();
    const buyer = await newBuyer();
    await createReport(reporter, buyer);
    await createReport(reporter, buyer);
    const requestRef = "T-77";
    const first = await subjectAccess(p, buyer, { requestRef, limit: 1 });
    expect(first.status).toBe(200);
    const cursor = first.body.nextCursor as string;
    expect(cursor).toEqual(expect.any(String));
    const [payload, mac] = cursor.split(".") as [string, string];
    const decoded = JSON.parse(atob(payload.replace(/-/g, "+").replace(/_/g, "/"))) as Record<
      string,
      unknown
    >;
    const forged = btoa(JSON.stringify({ ...decoded, n: 1 }))
      .replace(/\+/g, "-")
      .replace(/\//g, "_")
      .replace(/=+$/, "");
    const flip = (text: string, at: number) =>
      `${text.slice(0, at)}${text[at] === "A" ? "B" : "A"}${text.slice(at + 1)}`;
    const inquiriesBefore = await logCount("inquiries", "platform_id = ?", p.id);

    const cases: [string, TestPlatform, Subject[], string, string][] = [
      ["changed payload", p, buyer, requestRef, `${forged}.${mac}`],
      ["changed mac", p, buyer, requestRef, `${payload}.${flip(mac, 5)}`],
      ["not a cursor", p, buyer, requestRef, "abc"],
      ["other subjects", p, await newBuyer(), requestRef, cursor],
      ["one subject fewer", p, [buyer[0] as Subject], requestRef, cursor],
      ["other requestRef", p, buyer, "T-78", cursor],
      ["other platform", other, buyer, requestRef, cursor],
    ];
    for (const [name, who, subjects, ref, c] of cases) {
      const res = await subjectAccess(who, subjects, { requestRef: ref, limit: 1, cursor: c });
      expect(res.status, name).toBe(422);
      expect(errorPaths(res.body), name).toEqual(["cursor"]);
    }
    expect(await logCount("inquiries", "platform_id = ?", p.id)).toBe(inquiriesBefore);
    expect(await logCount("inquiries", "platform_id = ?", other.id)).toBe(0);

    // The subjects in another order are the same subjects.
    const reordered = await subjectAccess(p, [...buyer].reverse(), { requestRef, limit: 1, cursor });
    expect(reordered.status).toBe(200);
    expect(reordered.body.records).toHaveLength(1);
    expect(reordered.body.records[0]?.ref).not.toBe(first.body.records[0]?.ref);
    expect(reordered.body.nextCursor).toBeNull();
  });

  it("cursors expire 15 minutes after the request's first page: later, a 422 on cursor that writes nothing", async () => {
    const reporter = await newPlatform();
    const p = await newPlatform();
    const buyer = await newBuyer();
    for (const days of [10, 20, 30, 40]) {
      await createReport(reporter, buyer, { incidentAt: daysAgo(days), confirmedAt: daysAgo(days - 1) });
    }
    const requestRef = uniqueId("SAR");
    const first = await subjectAccess(p, buyer, { requestRef, limit: 1 });
    expect(first.status).toBe(200);
    const firstId = first.headers.get("x-request-id");
    // The first page's time, as the Worker's clock read it (the cursor's signed issue time).
    const issued = await logQuery<{ at: number | null }>(
      "SELECT min(at) AS at FROM inquiries WHERE request_id = ?",
      firstId,
    );
    const t = issued.find((r) => r.at !== null)?.at ?? Number.NaN;
    const usage = async () =>
      (
        await logQuery<{ n: number }>(
          "SELECT coalesce(sum(subject_access), 0) AS n FROM usage WHERE platform_id = ?",
          p.id,
        )
      ).reduce((sum, r) => sum + r.n, 0);
    const page = (at: number, cursor: string | null) => {
      vi.setSystemTime(at);
      return subjectAccess(p, buyer, { requestRef, limit: 1, cursor });
    };

    vi.useFakeTimers({ toFake: ["Date"] });
    try {
      // Within the lifetime a walk goes on; a later page's cursor keeps the first page's time.
      const second = await page(t + 10 * MINUTE, first.body.nextCursor);
      expect(second.status).toBe(200);
      const third = await page(t + ACCESS_CURSOR_LIFETIME, second.body.nextCursor);
      expect(third.status, JSON.stringify(third.body)).toBe(200);
      expect(third.body.nextCursor).toEqual(expect.any(String));

      const inquiriesBefore = await logCount("inquiries", "platform_id = ?", p.id);
      const usageBefore = await usage();
      for (const cursor of [first.body.nextCursor, second.body.nextCursor, third.body.nextCursor]) {
        const late = await page(t + ACCESS_CURSOR_LIFETIME + 1, cursor);
        expect(late.status).toBe(422);
        expect(errorPaths(late.body)).toEqual(["cursor"]);
        expect(JSON.stringify(late.body)).toMatch(/expired/);
      }
      expect(await logCount("inquiries", "platform_id = ?", p.id)).toBe(inquiriesBefore);
      expect(await usage()).toBe(usageBefore);
    } finally {
      vi.useRealTimers();
    }
    // Every page of the walk is one look-up, under the first page's request id.
    expect(await logCount("inquiries", "platform_id = ? AND request_id <> ?", p.id, firstId)).toBe(0);
    expect(await logCount("inquiries", "platform_id = ?", p.id)).toBe(3 * 2);
  });
});

describe("retention purge (POST /v1/admin/maintenance/run)", () => {
  it("purges reports past retention with their subject links and disputes, keeps the rest, audits, is idempotent", async () => {
    await runMaintenance(); // a clean slate: nothing older than retention left from elsewhere
    const reporter = await newPlatform();
    const opener = await newPlatform();
    const outsideBuyer = await newBuyer();
    const insideBuyer = await newBuyer();
    const outside = await createReport(reporter, outsideBuyer);
    const inside = await createReport(reporter, insideBuyer);
    await openOk(opener, outside.id, outsideBuyer);
    const now = Date.now();
    const setAge = (id: string, days: number) =>
      env.DB.prepare("UPDATE reports SET incident_at = ?, confirmed_at = ? WHERE id = ?")
        .bind(now - days * DAY, now - days * DAY + 3_600_000, id)
        .run();
    await setAge(outside.id, RETENTION_DAYS + 1);
    await setAge(inside.id, RETENTION_DAYS - 1);

    // Outside retention it stops counting before any purge.
    const outsideScore = await score(opener, outsideBuyer);
    expect(outsideScore.score).toBe(0);
    expect(outsideScore.band).toBe("none");
    expect(outsideScore.records).toHaveLength(0);
    const insideScore = await score(opener, insideBuyer);
    expect(insideScore.band).not.toBe("none");
    expect(insideScore.records[0]).toMatchObject({ ref: inside.id, counted: true });

    expect(await countRows("report_subjects", "report_id = ?", outside.id)).toBe(2);
    expect(await countRows("disputes", "report_id = ?", outside.id)).toBe(1);

    const run = await runMaintenance();
    expect(run.reportsPurged).toBe(1);
    expect(run.complete).toBe(true);
    expect(await countRows("reports", "id = ?", outside.id)).toBe(0);
    expect(await countRows("report_subjects", "report_id = ?", outside.id)).toBe(0);
    expect(await countRows("disputes", "report_id = ?", outside.id)).toBe(0);
    expect(await countRows("reports", "id = ?", inside.id)).toBe(1);
    expect(await countRows("report_subjects", "report_id = ?", inside.id)).toBe(2);
    expect((await callJson(`/v1/admin/reports/${outside.id}`, { token: await adminToken() })).status).toBe(
      404,
    );

    const purges = (await auditRows(run.requestId)).filter((r) => r.action === "retention.purge");
    expect(purges).toHaveLength(1);
    expect(purges[0]).toMatchObject({ actor: ADMIN_ACTOR, outcome: "ok" });
    const details = JSON.parse(purges[0]?.details ?? "{}") as Record<string, number>;
    expect(details).toMatchObject({ reports: 1, subjectLinks: 2, disputes: 1 });
    expect(details.cutoff).toBeLessThanOrEqual(Date.now() - RETENTION_DAYS * DAY);
    expect(details.cutoff).toBeGreaterThan(now - RETENTION_DAYS * DAY - 60_000);

    const again = await runMaintenance();
    expect(again.reportsPurged).toBe(0);
    expect(again.complete).toBe(true);
    expect((await auditRows(again.requestId)).filter((r) => r.action === "retention.purge")).toHaveLength(0);
    expect(await countRows("reports", "id = ?", inside.id)).toBe(1);
  });

  it("deletes expired token_uses rows and keeps live ones", async () => {
    const expired = `test-issuer expired-${crypto.randomUUID()}`;
    const live = `test-issuer live-${crypto.randomUUID()}`;
    await env.DB.batch([
      env.DB.prepare("INSERT INTO token_uses (key, expires_at) VALUES (?, ?)").bind(
        expired,
        Date.now() - 60_000,
      ),
      env.DB.prepare("INSERT INTO token_uses (key, expires_at) VALUES (?, ?)").bind(
        live,
        Date.now() + 600_000,
      ),
    ]);
    const run = await runMaintenance();
    expect(run.tokenUsesPurged).toBeGreaterThanOrEqual(1);
    expect(await countRows("token_uses", "key = ?", expired)).toBe(0);
    expect(await countRows("token_uses", "key = ?", live)).toBe(1);
  });

  it("is admin only", async () => {
    const p = await newPlatform();
    const res = await callJson("/v1/admin/maintenance/run", { token: await p.token(), body: {} });
    expect(res.status).toBe(403);
  });
});

describe("audit entries of the lifecycle", () => {
  it("open, respond and resolve each leave exactly one entry with the action and the actor", async () => {
    const reporter = await newPlatform();
    const opener = await newPlatform();
    const buyer = await newBuyer();
    const r1 = await createReport(reporter, buyer);
    const r2 = await createReport(reporter, buyer, { category: "edited_image" });

    const open1 = await openDispute(opener, r1.id, buyer);
    expect(open1.status).toBe(201);
    const openRows = await auditRows(open1.headers.get("x-request-id"));
    expect(openRows).toHaveLength(1);
    expect(openRows[0]).toMatchObject({
      action: "dispute.open",
      actor: `platform:${opener.id}`,
      target: open1.body.id,
      outcome: "created",
    });
    expect(JSON.parse(openRows[0]?.details ?? "{}")).toMatchObject({ report: r1.id });

    const resp = await respond(reporter, open1.body.id, "uphold", "Confirmed again.");
    expect(resp.status).toBe(200);
    const respRows = await auditRows(resp.headers.get("x-request-id"));
    expect(respRows).toHaveLength(1);
    expect(respRows[0]).toMatchObject({
      action: "dispute.respond",
      actor: `platform:${reporter.id}`,
      target: open1.body.id,
      outcome: "ok",
    });
    expect(JSON.parse(respRows[0]?.details ?? "{}")).toMatchObject({ report: r1.id, decision: "upheld" });

    const open2 = await openOk(opener, r2.id, buyer);
    const res = await resolve(open2.id, "report_voided");
    expect(res.status).toBe(200);
    const resolveRows = await auditRows(res.headers.get("x-request-id"));
    expect(resolveRows).toHaveLength(1);
    expect(resolveRows[0]).toMatchObject({
      action: "dispute.resolve",
      actor: ADMIN_ACTOR,
      target: open2.id,
      outcome: "ok",
    });
    expect(JSON.parse(resolveRows[0]?.details ?? "{}")).toMatchObject({
      report: r2.id,
      decision: "report_voided",
      reportStatus: "voided",
    });

    // A refused change leaves one entry saying so, and changes nothing.
    const refused = await respond(reporter, open2.id, "withdraw");
    expect(refused.status).toBe(409);
    const refusedRows = await auditRowsEventually(refused.headers.get("x-request-id"), 1);
    expect(refusedRows).toHaveLength(1);
    expect(refusedRows[0]).toMatchObject({
      action: "dispute.respond",
      outcome: "conflict",
      actor: `platform:${reporter.id}`,
      target: open2.id,
    });
  });

  it("a maintenance run leaves exactly one maintenance.run entry by the admin, besides retention.purge", async () => {
    const run = await runMaintenance();
    await auditRowsEventually(run.requestId, 1);
    await new Promise((r) => setTimeout(r, 100));
    const rows = (await auditRows(run.requestId)).filter((r) => r.action !== "retention.purge");
    expect(rows.map((r) => r.action)).toEqual(["maintenance.run"]);
    expect(rows[0]).toMatchObject({ actor: ADMIN_ACTOR, outcome: "ok" });
  });
});

describe("races between decisions", () => {
  // Losing responders roll back whole (abortUnlessChanged): no stray decision in the audit log.
  it("concurrent responses: one 200, the rest 409, and one decision in the audit log", async () => {
    const reporter = await newPlatform();
    const opener = await newPlatform();
    const buyer = await newBuyer();
    const report = await createReport(reporter, buyer);
    const dispute = await openOk(opener, report.id, buyer);
    const tokens = await Promise.all([1, 2, 3, 4, 5].map(() => reporter.token()));
    const results = await Promise.all(
      tokens.map((token) =>
        callJson(`/v1/disputes/${dispute.id}/respond`, {
          token,
          body: { decision: "uphold", note: "Confirmed again." },
        }),
      ),
    );
    expect(results.map((r) => r.status).sort()).toEqual([200, 409, 409, 409, 409]);
    expect((await reportStatus(report.id)).status).toBe("active");
    expect(await auditCount("action = 'dispute.respond' AND outcome = 'ok' AND target = ?", dispute.id)).toBe(
      1,
    );
  });

  // The open is guarded on the report still being active: a racing retraction wins whole.
  it("a retraction racing an open leaves no undecided dispute on a closed report", async () => {
    const reporter = await newPlatform();
    const opener = await newPlatform();
    // Both platforms warm (their keys cached), so both requests run at the same pace.
    await score(opener, await newBuyer());
    for (let attempt = 0; attempt < 5; attempt++) {
      const buyer = await newBuyer();
      const report = await createReport(reporter, buyer);
      const [retractToken, openToken] = [await reporter.token(), await opener.token()];
      const [retract, open] = await Promise.all([
        callJson(`/v1/reports/${report.id}/retract`, {
          token: retractToken,
          body: { reason: "Filed in error." },
        }),
        callJson<Dispute>("/v1/disputes", {
          token: openToken,
          body: { reportRef: report.id, subjects: buyer, reason: REASON },
        }),
      ]);
      expect(retract.status).toBe(200);
      expect([201, 409]).toContain(open.status);
      const r = await reportStatus(report.id);
      expect(r.status).toBe("retracted");
      expect(
        await countRows("disputes", "report_id = ? AND status IN ('open', 'overdue')", report.id),
        `attempt ${attempt}: open answered ${open.status}`,
      ).toBe(0);
      if (open.status === 201) {
        expect(r.statement).toBe(REASON);
      }
    }
  });
});
