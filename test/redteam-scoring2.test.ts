/**
 * Red team, scoring model pixiu-score/2 (issue 13): reporter trust (docs/scoring.md §2a), the
 * after-look-up flag (§3c) and collusion groups (§3d), attacked as a careless or malicious member,
 * a coalition and an outsider would. Each finding is a test; one that is not fixed is skipped
 * with a comment starting "Known gap:".
 */
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { DAY_MS } from "../worker/lib/time";
import {
  adminToken,
  callJson,
  createReport,
  lookUp,
  newBuyer,
  newPlatform,
  reportBody,
  type TestPlatform,
} from "./harness";

type Subjects = { type: string; hash: string }[];

/** Files many reports in one bulk call; every item must be created. */
async function bulk(p: TestPlatform, bodies: Record<string, unknown>[]): Promise<string[]> {
  const res = await callJson<{ results: { status: number; id?: string }[] }>("/v1/reports/bulk", {
    token: await p.token(),
    body: { reports: bodies },
  });
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  for (const r of res.body.results) {
    expect(r.status, JSON.stringify(r)).toBe(201);
  }
  return res.body.results.map((r) => r.id as string);
}

/** A member for `days` days (the trust job reads `platforms.created_at`). */
async function memberFor(p: TestPlatform, days: number) {
  await env.DB.prepare("UPDATE platforms SET created_at = ? WHERE id = ?")
    .bind(Date.now() - days * DAY_MS, p.id)
    .run();
}

/** Runs the scheduled job (collusion, then trust) once, through the admin API. */
async function runJob() {
  const res = await callJson("/v1/admin/maintenance/run", { token: await adminToken(), body: {} });
  expect(res.status, JSON.stringify(res.body)).toBe(200);
}

async function trustRow(p: TestPlatform) {
  return env.DB.prepare("SELECT * FROM platform_trust WHERE platform_id = ?")
    .bind(p.id)
    .first<{ trust: number; reports: number; corroborated: number; voided: number; probation: number }>();
}

/** `n` report bodies about one buyer, each its own case and incident (one a day back from `from`). */
function casesAbout(buyer: Subjects, n: number, from = 2): Record<string, unknown>[] {
  return Array.from({ length: n }, (_, i) =>
    reportBody(buyer, {
      incidentAt: new Date(Date.now() - (from + i) * DAY_MS).toISOString(),
      confirmedAt: new Date(Date.now() - (from + i) * DAY_MS + 3_600_000).toISOString(),
    }),
  );
}

describe("red team: reporter trust (§2a)", () => {
  it("echo reports flagged after_lookup do not dilute a careless member's adverse rate", async () => {
    // A careless member: 20 reports, 4 of them voided (20% adverse: clean = 1 − 4 × 0.15 = 0.4),
    // the 16 others corroborated by an honest member. Its trust: 0.4.
    const careless = await newPlatform({ probation: true });
    const honest = await newPlatform();
    const buyers = await Promise.all(Array.from({ length: 20 }, () => newBuyer()));
    const ids = await bulk(
      careless,
      buyers.map((b) => reportBody(b)),
    );
    await bulk(
      honest,
      buyers.slice(0, 16).map((b) => reportBody(b)),
    );
    const voided = await callJson("/v1/admin/reports/void", {
      token: await adminToken(),
      body: { ids: ids.slice(16), reason: "Wrong buyer: the claim was genuine." },
    });
    expect(voided.status, JSON.stringify(voided.body)).toBe(200);

    // It then "launders" its record: it looks up two buyers the honest member reported (each
    // answers review), and reports each of them 30 times. All 60 are flagged after_lookup: echoes
    // of the ledger's answer, never overturned, because the honest member's records are right.
    const echoed = [await newBuyer(), await newBuyer()];
    for (const b of echoed) {
      await createReport(honest, b);
      await lookUp(careless, b);
    }
    for (const b of echoed) {
      await bulk(careless, casesAbout(b, 30));
    }
    const flagged = await env.DB.prepare(
      "SELECT count(*) AS n FROM reports WHERE platform_id = ? AND after_lookup_at IS NOT NULL",
    )
      .bind(careless.id)
      .first<{ n: number }>();
    expect(flagged?.n).toBe(60);

    await memberFor(careless, 200);
    await runJob();
    const row = await trustRow(careless);
    // Counted with the echoes, n = 80 and adverse = 4 / 80 = 5%: within the allowance, clean = 1,
    // corroboration = (16 / 80) / 0.2 = 1, trust 1: a member that echoes the ledger buys back the
    // weight its mistakes cost it. An uncleared echo says nothing of the member's own care.
    expect(row?.reports).toBe(20);
    expect(row?.trust).toBe(0.4);
  });

  it("an echo report does not count towards leaving probation", async () => {
    const fresh = await newPlatform({ probation: true });
    const honest = await newPlatform();
    const buyer = await newBuyer();
    await createReport(honest, buyer);
    await lookUp(fresh, buyer);
    await bulk(fresh, casesAbout(buyer, 25));
    await memberFor(fresh, 200);
    await runJob();
    const row = await trustRow(fresh);
    expect(row?.reports).toBe(0);
    expect(row?.probation).toBe(1);
  });

  // Corroboration counts buyers, not reports (§2a): a member reporting ONE buyer another member
  // also reported, 20 times, has one corroborated buyer, not 20 corroborated reports, so 80 more
  // reports about buyers nobody else reports do not ride on it to full trust.
  it("one shared buyer reported 20 times does not earn full trust for 80 uncorroborated reports", async () => {
    const farmer = await newPlatform({ probation: true });
    const honest = await newPlatform();
    const anchor = await newBuyer();
    await createReport(honest, anchor);
    await bulk(farmer, casesAbout(anchor, 20));
    const victims = await Promise.all(Array.from({ length: 80 }, () => newBuyer()));
    await bulk(
      farmer,
      victims.map((v) => reportBody(v)),
    );
    await memberFor(farmer, 200);
    await runJob();
    const row = await trustRow(farmer);
    expect(row?.reports).toBe(100);
    // One corroborated buyer of 100 reports: (1 / 100) / 0.2 = 0.05.
    expect(row?.trust).toBeLessThan(0.5);
  });
});

describe("red team: after_lookup (§3c)", () => {
  // Only the newest AFTER_LOOKUP_PER_KEY (20) look-ups of a key are read first, and repeat
  // look-ups of a key are free under the daily cap (it counts distinct keys). So: B looks X up
  // and sees `review` (A's record); A retracts it; B looks X up 20 more times (each answers
  // `none`); B reports X. The check cuts the window at the instants the records change and asks
  // the shard about the `review` interval the first call did not reach (§3c): still flagged.
  it("a flood of newer look-ups does not hide the look-up that answered review", async () => {
    const a = await newPlatform();
    const b = await newPlatform();
    const buyer = await newBuyer();
    const record = await createReport(a, buyer);
    await lookUp(b, buyer);
    const retracted = await callJson(`/v1/reports/${record.id}/retract`, {
      token: await a.token(),
      body: { reason: "Filed on the wrong account." },
    });
    expect(retracted.status).toBe(200);
    for (let i = 0; i < 20; i++) {
      await lookUp(b, buyer);
    }
    const echo = await createReport(b, buyer);
    const view = await callJson<{ afterLookup: unknown }>(`/v1/reports/${echo.id}`, {
      token: await b.token(),
    });
    expect(view.body.afterLookup).not.toBeNull();
  });
});
