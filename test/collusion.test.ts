/**
 * Collusion is visible (issue 13, point 4; docs/scoring.md §3d): the scheduled job counts the
 * buyers two or more platforms report by their exact sets of reporters, finds the sets beyond
 * chance and their groups, admins see them in the stats and on each platform, members never do;
 * a group counts as one platform in the consensus and its members do not corroborate each other.
 *
 * One ledger for the whole file: five honest platforms whose shared buyers overlap at random,
 * and a coalition of two reporting 30 buyers nobody else reports, all seeded through the API.
 */
import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { buyersOf } from "../worker/services/collusion";
import {
  adminToken,
  auditRowsEventually,
  callJson,
  newBuyer,
  newPlatform,
  reportBody,
  scoreOk,
  type TestPlatform,
} from "./harness";

const DAY = 86_400_000;
const COALITION_BUYERS = 30;

interface Stats {
  collusion: {
    computedAt: string | null;
    sets: { members: string[]; observed: number; expected: number; pValue: number; computedAt: string }[];
    groups: { id: string; members: string[] }[];
  };
}
interface AdminPlatform {
  group: { id: string; members: string[] } | null;
}
interface Answer {
  score: number;
  reasons: { code: string }[];
  summary: { platforms: number };
}
interface JobResult {
  collusion: { buyers: number; sets: number; grouped: number; changed: boolean } | null;
  trustRecomputed: number;
}

/** Reports every buyer as platform `p`, in one bulk call; the report ids, in order. */
async function reportAll(p: TestPlatform, buyers: { type: string; hash: string }[][]) {
  const res = await callJson<{ results: { status: number; id: string }[] }>("/v1/reports/bulk", {
    token: await p.token(),
    body: { reports: buyers.map((subjects) => reportBody(subjects)) },
  });
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  expect(res.body.results.map((r) => r.status)).toEqual(buyers.map(() => 201));
  return res.body.results.map((r) => r.id);
}

/** Runs the scheduled job now (the collusion step made due first); its result and request id. */
async function runJob() {
  await env.DB.prepare("DELETE FROM job_runs WHERE job = 'collusion'").run();
  const res = await callJson<JobResult>("/v1/admin/maintenance/run", { token: await adminToken(), body: {} });
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return { ...res.body, requestId: res.headers.get("x-request-id") };
}

const admin = async <T>(path: string) => {
  const res = await callJson<T>(path, { token: await adminToken() });
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res.body;
};

describe("counting buyers, not subject keys (buyersOf)", () => {
  it("a buyer's keys named by the same reports count once", () => {
    expect(
      buyersOf([
        { reports: [1, 2], platforms: ["a", "b"] },
        { reports: [2, 1], platforms: ["b", "a"] },
      ]),
    ).toEqual([["a", "b"]]);
  });

  it("a key whose reports all name another key too is that key's buyer", () => {
    // a and b name the phone and the email, c the phone only: one buyer, reported by a, b and c.
    expect(
      buyersOf([
        { reports: [1, 2, 3], platforms: ["a", "b", "c"] },
        { reports: [1, 2], platforms: ["a", "b"] },
      ]),
    ).toEqual([["a", "b", "c"]]);
  });

  it("a key named beside different buyers' keys merges none of them", () => {
    // A coalition names one device in every report: its 25 buyers stay 25 (and the device one more).
    const keys = Array.from({ length: 25 }, (_, i) => ({
      reports: [2 * i, 2 * i + 1],
      platforms: ["x", "y"],
    }));
    const device = { reports: keys.flatMap((k) => k.reports), platforms: ["x", "y"] };
    expect(buyersOf([...keys, device])).toHaveLength(26);
  });

  it("keys with overlapping but different reports are different buyers (nothing links them)", () => {
    // a names phone and email, b the phone, c the email: what the ledger sees is two shared keys.
    expect(
      buyersOf([
        { reports: [1, 2], platforms: ["a", "b"] },
        { reports: [1, 3], platforms: ["a", "c"] },
      ]).sort(),
    ).toEqual([
      ["a", "b"],
      ["a", "c"],
    ]);
  });
});

describe("collusion groups", () => {
  let honest: TestPlatform[];
  let coalition: TestPlatform[];
  let coalitionBuyers: { type: string; hash: string }[][];
  let honestPairBuyer: { type: string; hash: string }[];
  let coalitionReports: string[][];
  let job: Awaited<ReturnType<typeof runJob>>;

  beforeAll(async () => {
    honest = await Promise.all(Array.from({ length: 5 }, () => newPlatform()));
    coalition = await Promise.all([newPlatform(), newPlatform()]);
    // The coalition has been a member long enough to be out of probation: with 30 reports its
    // trust is earned by corroboration alone (docs/scoring.md §2a).
    for (const p of coalition) {
      await env.DB.prepare("UPDATE platforms SET created_at = ? WHERE id = ?")
        .bind(Date.now() - 200 * DAY, p.id)
        .run();
    }
    // Honest overlap: every pair of honest platforms shares two buyers, each also reported once
    // by one of them alone. No exact set holds anywhere near minShared buyers.
    const byPlatform = new Map<TestPlatform, { type: string; hash: string }[][]>(honest.map((p) => [p, []]));
    for (let i = 0; i < honest.length; i++) {
      for (let j = i + 1; j < honest.length; j++) {
        for (let n = 0; n < 2; n++) {
          const buyer = await newBuyer();
          byPlatform.get(honest[i] as TestPlatform)?.push(buyer);
          byPlatform.get(honest[j] as TestPlatform)?.push(buyer);
          honestPairBuyer ??= buyer;
        }
      }
      byPlatform.get(honest[i] as TestPlatform)?.push(await newBuyer());
    }
    for (const [p, buyers] of byPlatform) {
      await reportAll(p, buyers);
    }
    coalitionBuyers = await Promise.all(Array.from({ length: COALITION_BUYERS }, () => newBuyer()));
    coalitionReports = [];
    for (const p of coalition) {
      coalitionReports.push(await reportAll(p, coalitionBuyers));
    }
    // Every platform's trust due, so the job computes its counts.
    await env.DB.prepare("UPDATE platform_trust SET computed_at = 0").run();
    job = await runJob();
  });

  it("the job counts buyers (not their two keys each), finds the coalition's pair, and audits the new group", async () => {
    // 10 honest pairs × 2 buyers, and the coalition's 30.
    expect(job.collusion).toEqual({ buyers: 20 + COALITION_BUYERS, sets: 1, grouped: 2, changed: true });
    const rows = await auditRowsEventually(job.requestId, 2);
    const entry = rows.find((r) => r.action === "collusion.groups");
    expect(entry).toMatchObject({ actor: "system:collusion", outcome: "ok", target: null });
    const members = coalition.map((p) => p.id).sort();
    expect(JSON.parse(entry?.details ?? "{}")).toMatchObject({
      groups: [{ id: members[0], members }],
      before: [],
      moved: members,
    });
  });

  it("admin stats list the pair and its group; a member gets 403", async () => {
    const stats = await admin<Stats>("/v1/admin/stats");
    const members = coalition.map((p) => p.id).sort();
    expect(stats.collusion.computedAt).toEqual(expect.any(String));
    expect(stats.collusion.sets).toEqual([
      {
        members,
        observed: COALITION_BUYERS,
        expected: expect.any(Number),
        pValue: expect.any(Number),
        computedAt: expect.any(String),
      },
    ]);
    const [set] = stats.collusion.sets;
    expect(set?.pValue).toBeLessThan(1e-6);
    expect(set?.observed).toBeGreaterThanOrEqual(3 * (set?.expected ?? Number.POSITIVE_INFINITY));
    expect(stats.collusion.groups).toEqual([{ id: members[0], members }]);

    for (const p of [...coalition, honest[0] as TestPlatform]) {
      const res = await callJson("/v1/admin/stats", { token: await p.token() });
      expect(res.status).toBe(403);
      expect(JSON.stringify(res.body)).not.toContain("collusion");
    }
  });

  it("GET /v1/admin/platforms/{id} shows a member's group, and null for an honest platform", async () => {
    const members = coalition.map((p) => p.id).sort();
    for (const p of coalition) {
      expect((await admin<AdminPlatform>(`/v1/admin/platforms/${p.id}`)).group).toEqual({
        id: members[0],
        members,
      });
    }
    expect((await admin<AdminPlatform>(`/v1/admin/platforms/${honest[0]?.id}`)).group).toBeNull();
    const asMember = await callJson(`/v1/admin/platforms/${coalition[0]?.id}`, {
      token: await (coalition[0] as TestPlatform).token(),
    });
    expect(asMember.status).toBe(403);
  });

  it("the coalition's members do not corroborate each other: no corroboration, floor trust", async () => {
    // Without the group, each of their 30 reports shares both keys with the other's: 30
    // corroborated of 30, trust 1. In one group: none, and an established member's trust is
    // corroboration × clean = 0, at the floor (docs/scoring.md §2a).
    for (const p of coalition) {
      const row = await env.DB.prepare(
        "SELECT trust, probation, reports, corroborated FROM platform_trust WHERE platform_id = ?",
      )
        .bind(p.id)
        .first();
      expect(row).toEqual({ trust: 0.05, probation: 0, reports: COALITION_BUYERS, corroborated: 0 });
    }
    // An honest platform's shared buyers are corroborated: 8 of its 9 reports.
    const h = await env.DB.prepare("SELECT reports, corroborated FROM platform_trust WHERE platform_id = ?")
      .bind(honest[4]?.id)
      .first();
    expect(h).toEqual({ reports: 9, corroborated: 8 });
  });

  it("a buyer both members report scores as one platform, with LINKED_PLATFORMS; an honest pair keeps the consensus", async () => {
    // Trust held at 1 for everyone, to see the grouping alone.
    await env.DB.prepare("UPDATE platform_trust SET trust = 1").run();
    const asker = honest[0] as TestPlatform;
    // One forensics record 10 days old from each member: w = 0.9812. As one platform: E = 0.9812,
    // score round(100 (1 − e^(−0.9812/3))) = 28. Two platforms would be (2 × 0.9812) × 1.5 = 2.94, 63.
    const linked = await scoreOk<Answer>(asker, coalitionBuyers[0] as { type: string; hash: string }[]);
    expect(linked.score).toBe(28);
    expect(linked.reasons.map((r) => r.code)).toContain("LINKED_PLATFORMS");
    expect(linked.summary.platforms).toBe(2);
    expect(JSON.stringify(linked)).not.toContain(coalition[0]?.id);

    const consensus = await scoreOk<Answer>(asker, honestPairBuyer);
    expect(consensus.score).toBe(63);
    expect(consensus.reasons.map((r) => r.code)).toEqual(expect.arrayContaining(["MULTI_PLATFORM"]));
    expect(consensus.reasons.map((r) => r.code)).not.toContain("LINKED_PLATFORMS");
  });

  it("only counted, unflagged reports count: flagged after look-up or retracted, a buyer leaves the pair", async () => {
    const [first, second] = coalitionReports[1] as string[];
    // One of the second member's reports flagged after its own look-up (not cleared), one retracted.
    await env.DB.prepare("UPDATE reports SET after_lookup_at = ?, after_lookup_band = 'medium' WHERE id = ?")
      .bind(Date.now() - DAY, first)
      .run();
    const retract = await callJson(`/v1/reports/${second}/retract`, {
      token: await (coalition[1] as TestPlatform).token(),
      body: { reason: "Filed on the wrong account." },
    });
    expect(retract.status).toBe(200);
    const again = await runJob();
    // Still the same group (28 buyers), so nothing to audit; the set is replaced.
    expect(again.collusion).toEqual({
      buyers: 20 + COALITION_BUYERS - 2,
      sets: 1,
      grouped: 2,
      changed: false,
    });
    const stats = await admin<Stats>("/v1/admin/stats");
    expect(stats.collusion.sets.map((s) => s.observed)).toEqual([COALITION_BUYERS - 2]);
    const rows = await auditRowsEventually(again.requestId);
    expect(rows.map((r) => r.action)).not.toContain("collusion.groups");

    // Cleared, the flagged report counts again.
    await env.DB.prepare(
      "UPDATE reports SET after_lookup_cleared_at = ?, after_lookup_cleared_by = 'admin:test' WHERE id = ?",
    )
      .bind(Date.now(), first)
      .run();
    expect((await runJob()).collusion?.buyers).toBe(20 + COALITION_BUYERS - 1);
  });

  it("runs at most once an hour; when the pair drops below minShared the group goes, audited", async () => {
    const res = await callJson<JobResult>("/v1/admin/maintenance/run", {
      token: await adminToken(),
      body: {},
    });
    expect(res.status).toBe(200);
    expect(res.body.collusion).toBeNull();

    // Void all but 15 of the first member's reports: the pair holds 14 buyers now (one retracted).
    const keep = 15;
    const voided = await callJson<{ voided: string[] }>("/v1/admin/reports/void", {
      token: await adminToken(),
      body: { ids: (coalitionReports[0] as string[]).slice(keep), reason: "Coalition cleanup." },
    });
    expect(voided.status, JSON.stringify(voided.body)).toBe(200);
    expect(voided.body.voided).toHaveLength(COALITION_BUYERS - keep);
    const after = await runJob();
    expect(after.collusion).toMatchObject({ sets: 0, grouped: 0, changed: true });
    const stats = await admin<Stats>("/v1/admin/stats");
    expect(stats.collusion).toMatchObject({ sets: [], groups: [] });
    expect((await admin<AdminPlatform>(`/v1/admin/platforms/${coalition[0]?.id}`)).group).toBeNull();
    const rows = await auditRowsEventually(after.requestId, 2);
    const entry = rows.find((r) => r.action === "collusion.groups");
    expect(JSON.parse(entry?.details ?? "{}")).toMatchObject({
      groups: [],
      moved: coalition.map((p) => p.id).sort(),
    });
  });
});
