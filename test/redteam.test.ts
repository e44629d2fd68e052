/**
 * Red-team findings against issue 9 ("due process a member platform cannot game"). Every test in
 * this file FAILS on the code it was written against: each one is an attack that works, with the
 * expected safe behaviour asserted. Nothing here is a regression guard unless labelled so.
 */
import { describe, expect, it, vi } from "vitest";
import {
  auditCount,
  call,
  callJson,
  countRows,
  createReport,
  daysAgo,
  newBuyer,
  newPlatform,
  openDispute,
  reportBody,
  respondToDispute,
  scoreOk,
  type TestPlatform,
  uniqueId,
} from "./harness";

const DAY = 86_400_000;
const BUYER_STATEMENT = "The cup arrived already cracked; I have the courier's delivery photo.";

type Subject = { type: string; hash: string };

interface Dispute {
  id: string;
  status: string;
}

interface ScoreAnswer {
  score: number;
  records: { ref: string; status: string; counted: boolean; disputed: boolean; statement: string | null }[];
}

const open = (p: TestPlatform, ref: string, subjects: Subject[], reason = BUYER_STATEMENT) =>
  openDispute<Dispute>(p, ref, subjects, reason);

const respond = (p: TestPlatform, id: string, decision: "uphold" | "withdraw") =>
  respondToDispute<Dispute>(p, id, decision);

const score = (p: TestPlatform, subjects: Subject[]) => scoreOk<ScoreAnswer>(p, subjects);

describe("red team: the first opener owns a record's due process", () => {
  /**
   * Severity HIGH. Attack: the self-dispute fix only compares the opener with the reporter. Any
   * other member holding the buyer's hashes (a sister platform of the reporter, or any member that
   * ever saw the buyer) opens a dispute first, with a "statement" of its own choosing, and the
   * reporter upholds it. A dispute upheld by the reporter closes the record to every later dispute
   * (409), only the opener may escalate it, and the opener never will. The buyer's own platform is
   * locked out for the record's five years, and every score answer shows the planted statement as
   * the buyer's. This is exactly the planted-statement attack docs/due-process.md says is
   * prevented, done with two platform ids instead of one.
   *
   * Safe behaviour: an uphold that was not escalated must not bar the buyer's genuine dispute from
   * another platform (a new dispute opens, 201), so a stranger's dispute cannot pre-empt the
   * buyer's due process.
   */
  it("a stranger's dispute, upheld by the reporter, does not lock the buyer's own platform out", async () => {
    const [reporter, sister, buyersPlatform] = await Promise.all([
      newPlatform(),
      newPlatform(),
      newPlatform(),
    ]);
    const buyer = await newBuyer();
    const report = await createReport(reporter, buyer);

    const planted = await open(
      sister,
      report.id,
      buyer,
      "I admit the photo was generated and I do not contest this record.",
    );
    expect(planted.status).toBe(201);
    expect((await respond(reporter, planted.body.id, "uphold")).status).toBe(200);

    // The planted "buyer statement" now rides on every score answer.
    const seen = await score(buyersPlatform, buyer);
    expect(seen.records[0]?.statement).toMatch(/I admit/);

    // The real buyer, through the platform they actually use, tries to contest the record.
    const real = await open(buyersPlatform, report.id, buyer);
    expect(real.status, `buyer's genuine dispute refused: ${JSON.stringify(real.body)}`).toBe(201);
  });
});

describe("red team: a reporter neutralises a dispute by re-filing the same incident", () => {
  /**
   * Severity HIGH. Attack: while the buyer's dispute is open the record counts at half weight. The
   * reporter simply reports the very same incident again under a new caseId (same subjects,
   * same incident time, same evidence hash). Records of one platform in one 7-day window count
   * once at the highest weight, so the undisputed copy restores the full weight: the dispute's
   * effect is gone, without any decision, and the copy carries no statement and no flag. The
   * buyer can dispute the copy, and the reporter re-files again (50 copies per subject).
   *
   * Safe behaviour: an open dispute cannot be undone by the reporter alone; the buyer's score must
   * not go back up while the dispute is undecided (a copy is refused, or inherits the dispute).
   */
  it("a copy of the disputed record under a new caseId cannot restore the full score", async () => {
    const [reporter, buyersPlatform] = await Promise.all([newPlatform(), newPlatform()]);
    const buyer = await newBuyer();
    const incidentAt = daysAgo(10);
    const confirmedAt = daysAgo(7);
    const original = await createReport(reporter, buyer, { incidentAt, confirmedAt });
    expect((await open(buyersPlatform, original.id, buyer)).status).toBe(201);
    const during = await score(buyersPlatform, buyer);
    expect(during.records.find((r) => r.ref === original.id)?.disputed).toBe(true);

    const copy = await callJson("/v1/reports", {
      token: await reporter.token(),
      body: reportBody(buyer, { caseId: uniqueId("COPY"), incidentAt, confirmedAt }),
    });
    const after = await score(buyersPlatform, buyer);
    expect(
      after.score,
      `copy answered ${copy.status}; score went from ${during.score} (disputed) to ${after.score}`,
    ).toBeLessThanOrEqual(during.score);
  });

  /**
   * Severity MEDIUM. Attack: the reporter retracts the disputed record (the dispute is withdrawn,
   * the opener is told the buyer won) and files the identical case again under a new caseId. The
   * new record counts at full weight and shows no statement: the buyer's statement, which "stays
   * attached whatever the outcome", is left behind on the retracted copy.
   *
   * Safe behaviour: the re-filed information still carries the buyer's statement (or the re-filing
   * is refused); no counted record about the buyer from this reporter is shown without it.
   */
  it("retract and re-file cannot shed the buyer's statement", async () => {
    const [reporter, buyersPlatform] = await Promise.all([newPlatform(), newPlatform()]);
    const buyer = await newBuyer();
    const body = reportBody(buyer);
    const original = await createReport(reporter, buyer, body);
    expect((await open(buyersPlatform, original.id, buyer)).status).toBe(201);

    const retracted = await callJson(`/v1/reports/${original.id}/retract`, {
      token: await reporter.token(),
      body: { reason: "Withdrawn for review." },
    });
    expect(retracted.status).toBe(200);
    const refiled = await callJson("/v1/reports", {
      token: await reporter.token(),
      body: { ...body, caseId: uniqueId("REFILE") },
    });

    const after = await score(buyersPlatform, buyer);
    const counted = after.records.filter((r) => r.counted);
    expect(
      counted.every((r) => r.statement === BUYER_STATEMENT),
      `re-file answered ${refiled.status}; counted records: ${JSON.stringify(counted)}`,
    ).toBe(true);
  });
});

describe("red team: subject-access cursors", () => {
  /**
   * Severity MEDIUM. Attack: cursors never expire, and a continuation page logs its look-up under
   * the first page's request id, which the buyer sees only at the time of that first page. So a
   * platform makes one small legitimate request (limit 1) and keeps the cursor; months later it
   * replays it, with `limit` raised to 500 (the limit is not bound into the cursor), and reads
   * the buyer's file again. The buyer's next subject-access answer shows no new look-up: only the
   * old one. The re-read is invisible to the person it concerns (only the admins' audit log has it).
   *
   * Safe behaviour: a cursor expires (a late replay is a 422 naming `cursor`), or a late page is
   * shown to the buyer as a look-up at the time it was made.
   */
  it("a replayed cursor re-reads the buyer's file months later without a visible look-up", async () => {
    const [reporter, snoop, checker] = await Promise.all([newPlatform(), newPlatform(), newPlatform()]);
    const buyer = await newBuyer();
    for (const days of [10, 20, 30]) {
      await createReport(reporter, buyer, { incidentAt: daysAgo(days), confirmedAt: daysAgo(days - 1) });
    }
    const first = await callJson<{ nextCursor: string | null }>("/v1/subject-access", {
      token: await snoop.token(),
      body: { requestRef: "TICKET-1", subjects: buyer, limit: 1 },
    });
    expect(first.status).toBe(200);
    expect(first.body.nextCursor).not.toBeNull();
    // Time passes: 200 days later. The Worker's clock moves (it runs in this isolate), not only
    // the stored inquiry times: the cursor carries its own signed issue time, which no row holds.
    vi.useFakeTimers({ toFake: ["Date"] });
    vi.setSystemTime(Date.now() + 200 * DAY);
    let replay: { status: number; body: { records: unknown[] } };
    let view: { body: { inquiries: { at: string; purpose: string; platformName: string }[] } };
    try {
      replay = await callJson<{ records: unknown[] }>("/v1/subject-access", {
        token: await snoop.token(),
        body: { requestRef: "TICKET-1", subjects: buyer, cursor: first.body.nextCursor, limit: 500 },
      });
      view = await callJson<{ inquiries: { at: string; purpose: string; platformName: string }[] }>(
        "/v1/subject-access",
        { token: await checker.token(), body: { requestRef: "CHECK-1", subjects: buyer } },
      );
    } finally {
      vi.useRealTimers();
    }
    if (replay.status === 422) {
      return; // an expired cursor: safe
    }
    expect(replay.status).toBe(200);
    expect(replay.body.records.length).toBe(2); // the file, read again today

    const snoops = view.body.inquiries.filter((i) => i.platformName === `Platform ${snoop.id}`);
    expect(
      snoops.some((i) => Date.parse(i.at) > Date.now() + 200 * DAY - DAY),
      `the buyer sees only ${JSON.stringify(snoops)}`,
    ).toBe(true);
  });
});

describe("red team: anonymous traffic and the audit log", () => {
  /**
   * Severity MEDIUM-LOW. Attack: the rejected-token audit budget (RL_AUTH_FAILURES, 20 a minute) is
   * keyed on the exact `cf-connecting-ip`. One IPv6 host owns a /64 (2^64 addresses) and picks a new
   * source address per request, so a single outsider without any key writes an audit entry for
   * every request it sends: the log grows without bound from anonymous traffic.
   *
   * Safe behaviour: IPv6 sources share a budget per /64 (or anonymous entries have a global
   * budget), so 40 bad requests from one /64 leave at most 20 entries.
   */
  it("rotating IPv6 source addresses within one /64 defeats the per-address budget", async () => {
    const prefix = `2001:db8:${Math.floor(Math.random() * 0xffff).toString(16)}:${Math.floor(
      Math.random() * 0xffff,
    ).toString(16)}`;
    const sources = Array.from({ length: 40 }, (_, i) => `${prefix}::${(i + 1).toString(16)}`);
    for (const source of sources) {
      const res = await call("/v1/reports", { headers: { "cf-connecting-ip": source } });
      expect(res.status).toBe(401);
    }
    await new Promise((r) => setTimeout(r, 300)); // the entries are written after the response
    const written = await auditCount(
      "actor = 'anonymous' AND json_extract(details, '$.source') LIKE ?",
      `${prefix}::%`,
    );
    expect(written, "anonymous audit entries from one /64").toBeLessThanOrEqual(20);
  });
});

describe("red team: webhook URL rules", () => {
  /**
   * Severity LOW. Attack: the URL rules block IPv4 private ranges and the obvious IPv6 forms, but
   * accept IPv6 literals that embed a private IPv4 address (6to4, 2002::/16) and reserved ranges
   * the docs say are refused: site-local fec0::/10, documentation 2001:db8::/32, discard 100::/64,
   * and IPv4 TEST-NET-2/3. An address in "any spelling" that names 127.0.0.1, 10/8 or the cloud
   * metadata address 169.254.169.254 must be refused.
   *
   * Safe behaviour: each is a 422 naming `url`, and no webhook is stored.
   */
  it("IPv6 literals embedding private IPv4 (6to4) and reserved ranges are refused", async () => {
    const p = await newPlatform();
    const urls = [
      "https://[2002:a9fe:a9fe::]/hook", // 6to4 of 169.254.169.254 (metadata)
      "https://[2002:7f00:1::]/hook", // 6to4 of 127.0.0.1
      "https://[2002:a00:1::1]/hook", // 6to4 of 10.0.0.1
      "https://[fec0::1]/hook", // site-local (deprecated, reserved)
      "https://[2001:db8::1]/hook", // documentation
      "https://[100::1]/hook", // discard-only
      "https://198.51.100.7/hook", // TEST-NET-2
      "https://203.0.113.7/hook", // TEST-NET-3
    ];
    const accepted: string[] = [];
    for (const url of urls) {
      const res = await callJson("/v1/webhook", {
        method: "PUT",
        token: await p.token(),
        body: { url, events: ["dispute.opened"] },
      });
      if (res.status !== 422) {
        accepted.push(`${url} → ${res.status}`);
      }
    }
    expect(accepted).toEqual([]);
    expect(await countRows("webhooks", "platform_id = ?", p.id)).toBe(0);
  });
});
