/// <reference types="vite/client" />
/**
 * Abuse resistance through the HTTP API (issue 6; docs/security.md): rate limits per principal
 * and route class, size/shape limits enforced before parsing, object- and function-level
 * authorisation of every route for every role, mass assignment, property-based fuzzing of
 * every request body, and the enumeration signal in the admin statistics.
 *
 * The role × route matrix below is the single source of the table in docs/security.md: the
 * last test of the matrix block asserts the document carries exactly the generated table.
 */
import { env } from "cloudflare:workers";
import { drizzle } from "drizzle-orm/d1";
import fc from "fast-check";
import { beforeAll, describe, expect, inject, it } from "vitest";
import securityDoc from "../docs/security.md?raw";
import { authenticate, PLATFORM_CACHE_MAX, platformCacheSize } from "../worker/auth/principal";
import {
  adminToken,
  call,
  callJson,
  countRows,
  inOneRateLimitWindow,
  newBuyer,
  newKeyPair,
  newPlatform,
  reportBody,
  spendRateLimit,
  type TestPlatform,
  uniqueId,
} from "./harness";

type Subject = { type: string; hash: string };

interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  instance: string;
  errors?: { path: string; message: string }[];
}

const JSON_TYPE = { "content-type": "application/json" };
const REASON = "The seller has confirmed the photo was taken before shipping.";

/** A stack trace or a source path in an answer leaks internals (CONTRACT §3: 500 never with a stack). */
const LEAK = /\bat\s+\S+\s+\(|\.ts:\d+|\.js:\d+|node_modules|worker\/|Error:\s/;

/** Asserts an RFC 9457 problem with this status and the request id as `instance`; returns it. */
async function expectProblem(res: Response, status: number): Promise<Problem> {
  const text = await res.text();
  expect(res.status, text).toBe(status);
  expect(res.headers.get("content-type")).toMatch(/^application\/problem\+json/);
  expect(text).not.toMatch(LEAK);
  const body = JSON.parse(text) as Problem;
  expect(body.status).toBe(status);
  expect(body.type).toMatch(/^https:\/\/pixiu\.dev\/problems\/[a-z-]+$/);
  expect(body.title.length).toBeGreaterThan(0);
  expect(body.instance).toBe(res.headers.get("x-request-id"));
  expect(body.instance).toMatch(/^req_/);
  return body;
}

async function createReport(p: TestPlatform, subjects: Subject[], overrides: Record<string, unknown> = {}) {
  const res = await callJson<{ id: string; caseId: string }>("/v1/reports", {
    token: await p.token(),
    body: reportBody(subjects, overrides),
  });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return res.body;
}

async function openDispute(p: TestPlatform, reportRef: string, subjects: Subject[]) {
  const res = await callJson<{ id: string }>("/v1/disputes", {
    token: await p.token(),
    body: { reportRef, subjects, reason: REASON },
  });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return res.body.id;
}

async function suspend(id: string) {
  const res = await callJson(`/v1/admin/platforms/${id}`, {
    method: "PATCH",
    token: await adminToken(),
    body: { status: "suspended" },
  });
  expect(res.status, JSON.stringify(res.body)).toBe(200);
}

/**
 * What the ledger holds for these platforms: row counts and each row's state, so "changed
 * nothing" is one string comparison. Covers platforms, reports, report_subjects, disputes
 * (opened by them or about their reports), inquiries and usage counters.
 */
async function ledgerState(platformIds: string[]): Promise<string> {
  const ids = JSON.stringify(platformIds);
  const mine = "(SELECT value FROM json_each(?1))";
  const row = await env.DB.prepare(
    `SELECT
      (SELECT count(*) FROM platforms) AS platforms,
      (SELECT group_concat(s, ',') FROM (SELECT id || status || name || scopes || jwks || updated_at AS s
         FROM platforms WHERE id IN ${mine} ORDER BY id)) AS platformRows,
      (SELECT count(*) FROM reports WHERE platform_id IN ${mine}) AS reports,
      (SELECT group_concat(s, ',') FROM (SELECT id || status || updated_at AS s
         FROM reports WHERE platform_id IN ${mine} ORDER BY id)) AS reportRows,
      (SELECT count(*) FROM report_subjects rs JOIN reports r ON r.id = rs.report_id
         WHERE r.platform_id IN ${mine}) AS subjects,
      (SELECT count(*) FROM disputes d JOIN reports r ON r.id = d.report_id
         WHERE r.platform_id IN ${mine} OR d.opened_by IN ${mine}) AS disputes,
      (SELECT group_concat(s, ',') FROM (SELECT d.id || d.status || d.updated_at AS s
         FROM disputes d JOIN reports r ON r.id = d.report_id
         WHERE r.platform_id IN ${mine} OR d.opened_by IN ${mine} ORDER BY d.id)) AS disputeRows,
      (SELECT count(*) FROM inquiries WHERE platform_id IN ${mine}) AS inquiries,
      (SELECT group_concat(s, ',') FROM (SELECT day || ':' || queries || ':' || subjects || ':' || reports AS s
         FROM usage_daily WHERE platform_id IN ${mine} ORDER BY day)) AS usage`,
  )
    .bind(ids)
    .first();
  return JSON.stringify(row);
}

// ---------------------------------------------------------------------------------------------
// The world every route is called in
// ---------------------------------------------------------------------------------------------

/**
 * `owner` holds every scope and owns `reportId` (about `buyer`) and `disputeId` (on another of
 * its reports, opened by itself); `other` holds every scope and owns nothing here; `suspended`
 * held every scope before an admin suspended it; `target` is the platform the admin routes
 * manage.
 */
interface World {
  owner: TestPlatform;
  other: TestPlatform;
  suspended: TestPlatform;
  target: TestPlatform;
  buyer: Subject[];
  reportId: string;
  disputeId: string;
}

async function newWorld(): Promise<World> {
  const [owner, other, suspended, target] = await Promise.all([
    newPlatform(),
    newPlatform(),
    newPlatform(),
    newPlatform(),
  ]);
  await suspend(suspended.id);
  const buyer = await newBuyer();
  const report = await createReport(owner, buyer);
  const disputed = await freshDispute({ owner } as World);
  return { owner, other, suspended, target, buyer, reportId: report.id, disputeId: disputed.disputeId };
}

/** A fresh active report of the owner, for routes that change it. */
async function freshReport(w: Pick<World, "owner">) {
  const buyer = await newBuyer();
  const report = await createReport(w.owner, buyer);
  return { reportId: report.id, buyer };
}

/**
 * Another member acting for buyers: it opens the disputes of these tests (a reporter cannot
 * dispute its own record) and reports the records the owner disputes.
 */
let buyerSide: Promise<TestPlatform> | undefined;
const buyersPlatform = () => {
  buyerSide ??= newPlatform();
  return buyerSide;
};

/** A fresh active report of another member, for the owner to open a dispute on. */
async function foreignReport() {
  return freshReport({ owner: await buyersPlatform() });
}

/** A fresh open dispute on a fresh report of the owner, opened by another member for the buyer. */
async function freshDispute(w: Pick<World, "owner">) {
  const { reportId, buyer } = await freshReport(w);
  const disputeId = await openDispute(await buyersPlatform(), reportId, buyer);
  return { reportId, disputeId, buyer };
}

const reportStateOf = (id: string) => async () =>
  (await env.DB.prepare("SELECT status, updated_at FROM reports WHERE id = ?").bind(id).first()) ?? "none";
const disputeStateOf = (id: string) => async () =>
  (await env.DB.prepare("SELECT status, updated_at FROM disputes WHERE id = ?").bind(id).first()) ?? "none";
const platformStateOf = (id: string) => async () =>
  (await env.DB.prepare("SELECT status, name, scopes, jwks, updated_at FROM platforms WHERE id = ?")
    .bind(id)
    .first()) ?? "none";

const webhookStateOf = (platformId: string) => async () =>
  (await env.DB.prepare("SELECT url, secret_nonce FROM webhooks WHERE platform_id = ?")
    .bind(platformId)
    .first()) ?? "none";

/** Gives the owner a webhook (again) and the other platform none, for the routes that read or remove it. */
async function ownerWebhook(w: World) {
  const now = Date.now();
  await env.DB.prepare("DELETE FROM webhooks WHERE platform_id = ?").bind(w.other.id).run();
  await env.DB.prepare(
    `INSERT OR IGNORE INTO webhooks (platform_id, url, events, secret_nonce, created_at, updated_at)
     VALUES (?, ?, '["dispute.opened"]', ?, ?, ?)`,
  )
    .bind(w.owner.id, `${inject("receiverUrl")}/ok/security`, crypto.randomUUID(), now, now)
    .run();
}

interface Built {
  path: string;
  body?: unknown;
  /** The state a refused call must leave untouched. */
  probe?: () => Promise<unknown>;
}

type Method = "GET" | "POST" | "PATCH" | "PUT" | "DELETE";

interface RouteCase {
  method: Method;
  path: string;
  /** Who may call it, as docs/security.md states it. */
  access: string;
  /** Expected status per role, in ROLES order. */
  expected: string;
  build(w: World): Promise<Built>;
}

const ROLES = [
  "anonymous",
  "platform",
  "reports:write",
  "scores:read",
  "disputes:write",
  "other platform",
  "suspended",
  "admin",
] as const;
type Role = (typeof ROLES)[number];

const ROLE_LABELS: Record<Role, string> = {
  anonymous: "no token",
  platform: "owner, all scopes",
  "reports:write": "owner, `reports:write` only",
  "scores:read": "owner, `scores:read` only",
  "disputes:write": "owner, `disputes:write` only",
  "other platform": "other platform, all scopes",
  suspended: "suspended platform",
  admin: "admin",
};

async function tokenFor(role: Role, w: World): Promise<string | null> {
  switch (role) {
    case "anonymous":
      return null;
    case "platform":
      return w.owner.token();
    case "reports:write":
    case "scores:read":
    case "disputes:write":
      // The owner's own key, narrowed by the token's scope claim (CONTRACT §2).
      return w.owner.token({ scope: role });
    case "other platform":
      return w.other.token();
    case "suspended":
      return w.suspended.token();
    case "admin":
      return adminToken();
  }
}

const OPEN = "200 200 200 200 200 200 200 200";
const ADMIN_ONLY = (ok: number) => `401 403 403 403 403 403 403 ${ok}`;

/**
 * Every route of worker/index.ts. Statuses follow CONTRACT §2 (401 without a token, 403 when
 * suspended or without the scope), §4–§6 (another platform's report or dispute is a 404) and §7.
 * A platform may open a dispute on any record it can name with the buyer's matching subjects
 * (§6: a buyer disputes through any member platform), so `other platform` gets 201 there.
 */
const ROUTES: RouteCase[] = [
  {
    method: "GET",
    path: "/healthz",
    access: "open",
    expected: OPEN,
    build: async () => ({ path: "/healthz" }),
  },
  {
    method: "GET",
    path: "/openapi.json",
    access: "open",
    expected: OPEN,
    build: async () => ({ path: "/openapi.json" }),
  },
  { method: "GET", path: "/docs", access: "open", expected: OPEN, build: async () => ({ path: "/docs" }) },
  {
    method: "GET",
    path: "/.well-known/pixiu-audit-keys.json",
    access: "open",
    expected: OPEN,
    build: async () => ({ path: "/.well-known/pixiu-audit-keys.json" }),
  },
  {
    method: "POST",
    path: "/v1/reports",
    access: "`reports:write`",
    expected: "401 201 201 403 403 201 403 403",
    build: async () => ({ path: "/v1/reports", body: reportBody(await newBuyer()) }),
  },
  {
    method: "POST",
    path: "/v1/reports/bulk",
    access: "`reports:write`",
    expected: "401 200 200 403 403 200 403 403",
    build: async () => ({ path: "/v1/reports/bulk", body: { reports: [reportBody(await newBuyer())] } }),
  },
  {
    method: "GET",
    path: "/v1/reports",
    access: "`reports:write`",
    expected: "401 200 200 403 403 200 403 403",
    build: async () => ({ path: "/v1/reports" }),
  },
  {
    method: "GET",
    path: "/v1/reports/{id}",
    access: "`reports:write`, own reports",
    expected: "401 200 200 403 403 404 403 403",
    build: async (w) => ({ path: `/v1/reports/${w.reportId}` }),
  },
  {
    method: "POST",
    path: "/v1/reports/{id}/retract",
    access: "`reports:write`, own reports",
    expected: "401 200 200 403 403 404 403 403",
    build: async (w) => {
      const { reportId } = await freshReport(w);
      return {
        path: `/v1/reports/${reportId}/retract`,
        body: { reason: REASON },
        probe: reportStateOf(reportId),
      };
    },
  },
  {
    method: "POST",
    path: "/v1/scores/query",
    access: "`scores:read`",
    expected: "401 200 403 200 403 200 403 403",
    build: async (w) => ({ path: "/v1/scores/query", body: { subjects: w.buyer, purpose: "refund_review" } }),
  },
  {
    method: "POST",
    path: "/v1/scores/batch",
    access: "`scores:read`",
    expected: "401 200 403 200 403 200 403 403",
    build: async (w) => ({
      path: "/v1/scores/batch",
      body: { purpose: "refund_review", queries: [{ ref: "order-1", subjects: w.buyer }] },
    }),
  },
  {
    method: "POST",
    path: "/v1/evidence/match",
    access: "`scores:read`",
    expected: "401 200 403 200 403 200 403 403",
    build: async () => ({
      path: "/v1/evidence/match",
      body: { purpose: "refund_review", photos: [{ pdq: "0f".repeat(32) }] },
    }),
  },
  {
    method: "POST",
    path: "/v1/disputes",
    access: "`disputes:write`, subjects must match the record",
    expected: "401 201 403 403 201 201 403 403",
    build: async () => {
      const { reportId, buyer } = await foreignReport();
      return {
        path: "/v1/disputes",
        body: { reportRef: reportId, subjects: buyer, reason: REASON },
        probe: reportStateOf(reportId),
      };
    },
  },
  {
    method: "GET",
    path: "/v1/disputes/{id}",
    access: "`disputes:write` (opening or reporting platform) or `admin`",
    expected: "401 200 403 403 200 404 403 200",
    build: async (w) => ({ path: `/v1/disputes/${w.disputeId}` }),
  },
  {
    method: "POST",
    path: "/v1/disputes/{id}/respond",
    access: "`disputes:write`, the reporting platform",
    expected: "401 200 403 403 200 404 403 403",
    build: async (w) => {
      const { disputeId } = await freshDispute(w);
      return {
        path: `/v1/disputes/${disputeId}/respond`,
        body: { decision: "uphold", note: "Our forensic report stands." },
        probe: disputeStateOf(disputeId),
      };
    },
  },
  {
    method: "GET",
    path: "/v1/disputes",
    access: "`disputes:write` or `reports:write`: the disputes it opened or of its records",
    expected: "401 200 200 403 200 200 403 403",
    build: async () => ({ path: "/v1/disputes?role=reporter" }),
  },
  {
    method: "POST",
    path: "/v1/disputes/{id}/escalate",
    access: "`disputes:write`, the opening platform, after the reporter upheld",
    expected: "401 200 403 403 200 404 403 403",
    build: async (w) => {
      // The owner opened this dispute for a buyer; the reporting member upheld its record.
      const reporter = await buyersPlatform();
      const { reportId, buyer } = await foreignReport();
      const disputeId = await openDispute(w.owner, reportId, buyer);
      const upheld = await callJson(`/v1/disputes/${disputeId}/respond`, {
        token: await reporter.token(),
        body: { decision: "uphold", note: "Our forensic report stands." },
      });
      expect(upheld.status, JSON.stringify(upheld.body)).toBe(200);
      return {
        path: `/v1/disputes/${disputeId}/escalate`,
        body: { reason: "The courier's photo shows the damage before delivery." },
        probe: disputeStateOf(disputeId),
      };
    },
  },
  {
    method: "POST",
    path: "/v1/subject-access",
    access: "`disputes:write`",
    expected: "401 200 403 403 200 200 403 403",
    build: async (w) => ({ path: "/v1/subject-access", body: { requestRef: "T-1", subjects: w.buyer } }),
  },
  {
    method: "GET",
    path: "/v1/events",
    access: "any platform scope, own events",
    expected: "401 200 200 200 200 200 403 403",
    build: async () => ({ path: "/v1/events" }),
  },
  {
    method: "PUT",
    path: "/v1/webhook",
    access: "any platform scope, own webhook",
    expected: "401 200 200 200 200 200 403 403",
    build: async () => ({
      path: "/v1/webhook",
      // The test receiver (loopback is allowed in tests), so deliveries stay on this machine.
      body: { url: `${inject("receiverUrl")}/ok/security`, events: ["dispute.opened"] },
    }),
  },
  {
    method: "GET",
    path: "/v1/webhook",
    access: "any platform scope, own webhook",
    expected: "401 200 200 200 200 404 403 403",
    build: async (w) => {
      await ownerWebhook(w);
      return { path: "/v1/webhook" };
    },
  },
  {
    method: "DELETE",
    path: "/v1/webhook",
    access: "any platform scope, own webhook",
    expected: "401 204 204 204 204 404 403 403",
    build: async (w) => {
      await ownerWebhook(w);
      return { path: "/v1/webhook", probe: webhookStateOf(w.owner.id) };
    },
  },
  {
    method: "POST",
    path: "/v1/admin/platforms",
    access: "`admin`",
    expected: ADMIN_ONLY(201),
    build: async () => {
      const keys = await newKeyPair();
      return {
        path: "/v1/admin/platforms",
        body: {
          id: uniqueId("p"),
          name: "New member",
          scopes: ["scores:read"],
          jwks: { keys: [keys.publicJwk] },
        },
      };
    },
  },
  {
    method: "GET",
    path: "/v1/admin/platforms",
    access: "`admin`",
    expected: ADMIN_ONLY(200),
    build: async () => ({ path: "/v1/admin/platforms" }),
  },
  {
    method: "GET",
    path: "/v1/admin/platforms/{id}",
    access: "`admin`",
    expected: ADMIN_ONLY(200),
    build: async (w) => ({ path: `/v1/admin/platforms/${w.target.id}` }),
  },
  {
    method: "PATCH",
    path: "/v1/admin/platforms/{id}",
    access: "`admin`",
    expected: ADMIN_ONLY(200),
    build: async (w) => ({
      path: `/v1/admin/platforms/${w.target.id}`,
      body: { name: uniqueId("Renamed") },
      probe: platformStateOf(w.target.id),
    }),
  },
  {
    method: "PUT",
    path: "/v1/admin/platforms/{id}/keys",
    access: "`admin`",
    expected: ADMIN_ONLY(200),
    build: async (w) => ({
      path: `/v1/admin/platforms/${w.target.id}/keys`,
      body: { keys: [w.target.publicJwk, (await newKeyPair()).publicJwk] },
      probe: platformStateOf(w.target.id),
    }),
  },
  {
    method: "GET",
    path: "/v1/admin/reports",
    access: "`admin`",
    expected: ADMIN_ONLY(200),
    build: async () => ({ path: "/v1/admin/reports?limit=5" }),
  },
  {
    method: "GET",
    path: "/v1/admin/reports/after-lookup",
    access: "`admin`",
    expected: ADMIN_ONLY(200),
    build: async () => ({ path: "/v1/admin/reports/after-lookup?limit=5" }),
  },
  {
    method: "GET",
    path: "/v1/admin/reports/{id}",
    access: "`admin`",
    expected: ADMIN_ONLY(200),
    build: async (w) => ({ path: `/v1/admin/reports/${w.reportId}` }),
  },
  {
    method: "POST",
    path: "/v1/admin/reports/{id}/void",
    access: "`admin`",
    expected: ADMIN_ONLY(200),
    build: async (w) => {
      const { reportId } = await freshReport(w);
      return {
        path: `/v1/admin/reports/${reportId}/void`,
        body: { reason: REASON },
        probe: reportStateOf(reportId),
      };
    },
  },
  {
    method: "POST",
    path: "/v1/admin/reports/{id}/verify-confirmation",
    access: "`admin`",
    expected: ADMIN_ONLY(200),
    build: async (w) => {
      const report = await createReport(w.owner, await newBuyer(), {
        confirmation: "police_report",
        confirmationRef: "POLICE-2026-0001",
      });
      return {
        path: `/v1/admin/reports/${report.id}/verify-confirmation`,
        body: { note: REASON },
        probe: async () =>
          (await env.DB.prepare("SELECT confirmation_verified_at, updated_at FROM reports WHERE id = ?")
            .bind(report.id)
            .first()) ?? "none",
      };
    },
  },
  {
    method: "POST",
    path: "/v1/admin/reports/{id}/clear-after-lookup",
    access: "`admin`",
    expected: ADMIN_ONLY(200),
    build: async (w) => {
      const { reportId } = await freshReport(w);
      // Flagged as filed after the owner's own look-up (docs/scoring.md §3c).
      await env.DB.prepare(
        "UPDATE reports SET after_lookup_at = ?, after_lookup_band = 'medium' WHERE id = ?",
      )
        .bind(Date.now() - 60_000, reportId)
        .run();
      return {
        path: `/v1/admin/reports/${reportId}/clear-after-lookup`,
        body: { reason: REASON },
        probe: async () =>
          (await env.DB.prepare("SELECT after_lookup_cleared_at, updated_at FROM reports WHERE id = ?")
            .bind(reportId)
            .first()) ?? "none",
      };
    },
  },
  {
    method: "POST",
    path: "/v1/admin/reports/void",
    access: "`admin`",
    expected: ADMIN_ONLY(200),
    build: async (w) => {
      const { reportId } = await freshReport(w);
      return {
        path: "/v1/admin/reports/void",
        body: { ids: [reportId], reason: REASON },
        probe: reportStateOf(reportId),
      };
    },
  },
  {
    method: "GET",
    path: "/v1/admin/disputes",
    access: "`admin`",
    expected: ADMIN_ONLY(200),
    build: async () => ({ path: "/v1/admin/disputes?limit=5" }),
  },
  {
    method: "POST",
    path: "/v1/admin/disputes/{id}/resolve",
    access: "`admin`",
    expected: ADMIN_ONLY(200),
    build: async (w) => {
      const { disputeId } = await freshDispute(w);
      return {
        path: `/v1/admin/disputes/${disputeId}/resolve`,
        body: { outcome: "report_upheld", note: "Upheld on review of the forensic report." },
        probe: disputeStateOf(disputeId),
      };
    },
  },
  {
    method: "POST",
    path: "/v1/admin/maintenance/run",
    access: "`admin`",
    expected: ADMIN_ONLY(200),
    build: async () => ({ path: "/v1/admin/maintenance/run", body: {} }),
  },
  {
    method: "GET",
    path: "/v1/admin/audit",
    access: "`admin`",
    expected: ADMIN_ONLY(200),
    build: async () => ({ path: "/v1/admin/audit?limit=5" }),
  },
  {
    method: "GET",
    path: "/v1/admin/audit/verify",
    access: "`admin`",
    expected: ADMIN_ONLY(200),
    build: async () => ({ path: "/v1/admin/audit/verify" }),
  },
  {
    method: "GET",
    path: "/v1/admin/audit/export",
    access: "`admin`",
    expected: ADMIN_ONLY(200),
    build: async () => ({ path: `/v1/admin/audit/export?since=${new Date().toISOString()}` }),
  },
  {
    method: "GET",
    path: "/v1/admin/audit/archive",
    access: "`admin`",
    expected: ADMIN_ONLY(200),
    build: async () => ({ path: "/v1/admin/audit/archive" }),
  },
  {
    method: "GET",
    path: "/v1/admin/audit/archive/verify",
    access: "`admin`, an archived segment",
    expected: ADMIN_ONLY(200),
    build: async () => {
      // A stored object to verify (its verdict does not matter here, only who may ask).
      const key = "log/shard-999/000000000001-000000000001.ndjson";
      const keys = await (await call("/.well-known/pixiu-audit-keys.json")).json();
      await env.LOG_ARCHIVE.put(
        key,
        [
          { type: "header", format: "pixiu-audit-export/2", from: 1, to: 0, shards: [] },
          { type: "keys", ...(keys as object) },
        ]
          .map((l) => JSON.stringify(l))
          .join("\n"),
      );
      return { path: `/v1/admin/audit/archive/verify?key=${encodeURIComponent(key)}` };
    },
  },
  {
    method: "GET",
    path: "/v1/admin/stats",
    access: "`admin`",
    expected: ADMIN_ONLY(200),
    build: async () => ({ path: "/v1/admin/stats" }),
  },
];

/** The role × route table of docs/security.md, generated from ROUTES. */
function matrixMarkdown(): string {
  const head = `| route | who | ${ROLES.map((r) => ROLE_LABELS[r]).join(" | ")} |`;
  const rule = `| --- | --- | ${ROLES.map(() => "---").join(" | ")} |`;
  const rows = ROUTES.map(
    (r) => `| \`${r.method} ${r.path}\` | ${r.access} | ${r.expected.split(" ").join(" | ")} |`,
  );
  return [head, rule, ...rows].join("\n");
}

describe("authorisation: every route × every role (BOLA / BFLA)", () => {
  let w: World;
  beforeAll(async () => {
    w = await newWorld();
  });

  it("the matrix covers every route the OpenAPI document lists", async () => {
    const doc = await callJson<{ paths: Record<string, Record<string, unknown>> }>("/openapi.json");
    const documented = Object.entries(doc.body.paths).flatMap(([path, ops]) =>
      Object.keys(ops).map((m) => `${m.toUpperCase()} ${path}`),
    );
    const tested = ROUTES.map((r) => `${r.method} ${r.path}`);
    // /openapi.json and /docs are served outside the registry; everything else must be in both.
    expect(documented.sort()).toEqual(
      tested.filter((r) => r !== "GET /openapi.json" && r !== "GET /docs").sort(),
    );
  });

  it.each(ROUTES.map((r) => [`${r.method} ${r.path}`, r] as const))("%s", async (_name, route) => {
    const actual: number[] = [];
    for (const role of ROLES) {
      const built = await route.build(w);
      const before = await built.probe?.();
      const token = await tokenFor(role, w);
      const res = await call(built.path, {
        method: route.method,
        token,
        ...(built.body === undefined ? {} : { body: built.body }),
      });
      actual.push(res.status);
      expect(res.headers.get("x-request-id"), `${role}: X-Request-Id`).toMatch(/^req_/);
      if (res.status >= 400) {
        await expectProblem(res, res.status);
        if (res.status === 401) {
          expect(res.headers.get("www-authenticate"), `${role}: WWW-Authenticate`).toMatch(/^Bearer /);
        }
        if (built.probe) {
          expect(await built.probe(), `${role} changed the object with ${res.status}`).toEqual(before);
        }
      } else {
        await res.arrayBuffer();
        if (built.probe) {
          expect(await built.probe(), `${role} got ${res.status} but nothing changed`).not.toEqual(before);
        }
      }
    }
    expect(actual.join(" ")).toBe(route.expected);
  });

  it("another platform's report is a 404 indistinguishable from an unknown id, and absent from its list", async () => {
    const unknown = "rpt_00000000000000000000000000";
    const theirs = await call(`/v1/reports/${w.reportId}`, { token: await w.other.token() });
    const none = await call(`/v1/reports/${unknown}`, { token: await w.other.token() });
    const a = await expectProblem(theirs, 404);
    const b = await expectProblem(none, 404);
    expect({ type: a.type, title: a.title, detail: a.detail.replace(w.reportId, "ID") }).toEqual({
      type: b.type,
      title: b.title,
      detail: b.detail.replace(unknown, "ID"),
    });
    const list = await callJson<{ items: { id: string; platformId: string }[] }>("/v1/reports?limit=200", {
      token: await w.other.token(),
    });
    expect(list.status).toBe(200);
    expect(list.body.items.map((r) => r.id)).not.toContain(w.reportId);
    expect(list.body.items.every((r) => r.platformId === w.other.id)).toBe(true);
  });

  it("another platform's dispute is a 404 for reading and responding, and the dispute stays open", async () => {
    const { disputeId } = await freshDispute(w);
    await expectProblem(await call(`/v1/disputes/${disputeId}`, { token: await w.other.token() }), 404);
    await expectProblem(
      await call(`/v1/disputes/${disputeId}/respond`, {
        token: await w.other.token(),
        body: { decision: "withdraw", note: "Not ours to decide." },
      }),
      404,
    );
    expect(await disputeStateOf(disputeId)()).toMatchObject({ status: "open" });
  });

  it("a token's scope claim never widens the grant: a scores-only platform asking for reports:write is 403", async () => {
    const narrow = await newPlatform({ scopes: ["scores:read"] });
    const res = await call("/v1/reports", {
      token: await narrow.token({ scope: "reports:write scores:read admin" }),
      body: reportBody(await newBuyer()),
    });
    await expectProblem(res, 403);
    expect(await countRows("reports", "platform_id = ?", narrow.id)).toBe(0);
    const admin = await call("/v1/admin/stats", { token: await narrow.token({ scope: "admin" }) });
    await expectProblem(admin, 403);
  });

  it("docs/security.md carries exactly this matrix", () => {
    expect(securityDoc).toContain(matrixMarkdown());
  });
});

// ---------------------------------------------------------------------------------------------
// Rate limits
// ---------------------------------------------------------------------------------------------

describe("rate limits (Workers Rate Limiting binding, wrangler.toml [[ratelimits]])", () => {
  /** A request refused at 415 after the limiter ran: it counts without a D1 write. */
  const cheap = (path: string) => (token: string) =>
    call(path, { token, raw: "x", headers: { "content-type": "text/plain" } });
  const reportsList = (token: string) => call("/v1/reports?limit=1", { token });
  const scoreQuery = async (token: string) =>
    call("/v1/scores/query", { token, body: { subjects: await newBuyer(), purpose: "refund_review" } });
  const subjectAccess = async (token: string) =>
    call("/v1/subject-access", { token, body: { requestRef: "T-1", subjects: await newBuyer() } });
  const classes = [
    {
      cls: "writes",
      limit: 600,
      binding: () => env.RL_WRITES,
      // Any non-admin route outside the other classes counts as a write-class request.
      send: cheap("/v1/reports"),
      others: [scoreQuery, subjectAccess],
      /** A request that would write, and the rows it would have written. */
      write: async (token: string) => call("/v1/reports", { token, body: reportBody(await newBuyer()) }),
      written: (p: TestPlatform) => countRows("reports", "platform_id = ?", p.id),
    },
    {
      cls: "scores",
      limit: 1200,
      binding: () => env.RL_SCORES,
      send: cheap("/v1/scores/query"),
      others: [reportsList, subjectAccess],
      write: scoreQuery,
      written: (p: TestPlatform) => countRows("inquiries", "platform_id = ?", p.id),
    },
    {
      cls: "subject_access",
      limit: 60,
      binding: () => env.RL_SUBJECT_ACCESS,
      send: cheap("/v1/subject-access"),
      others: [reportsList, scoreQuery],
      write: subjectAccess,
      written: (p: TestPlatform) => countRows("inquiries", "platform_id = ?", p.id),
    },
  ];

  it.each(classes)(
    "$cls: request $limit + 1 in a window is 429 with Retry-After and a problem; other classes and platforms unaffected",
    async ({ cls, limit, binding, send, others, write, written }) => {
      // The budget up to the last request is spent on the binding directly (same key as the
      // middleware); the last allowed request and the first refused one go through the API.
      const { p, last, limited } = await inOneRateLimitWindow(async () => {
        const p = await newPlatform();
        await spendRateLimit(binding(), `${cls}:platform:${p.id}`, limit - 1);
        const token = await p.token();
        const last = await send(token);
        await last.arrayBuffer();
        return { p, last, limited: await send(token) };
      });
      expect(last.status).toBe(415);
      expect(limited.headers.get("retry-after")).toBe("60");
      const problem = await expectProblem(limited, 429);
      expect(problem.type).toBe("https://pixiu.dev/problems/rate-limited");
      expect(problem.detail).toContain(cls);

      // Still limited with a fresh token (the key is the principal, not the token), and a
      // limited request that would write writes nothing.
      await expectProblem(await write(await p.token()), 429);
      expect(await written(p)).toBe(0);
      // The same platform's other route classes have their own budgets: not 429.
      for (const other of others) {
        const res = await other(await p.token());
        expect(res.status).not.toBe(429);
        await res.arrayBuffer();
      }
      // Another platform is not affected.
      const q = await newPlatform();
      const res = await send(await q.token());
      expect(res.status).not.toBe(429);
      await res.arrayBuffer();
    },
    // Hundreds of requests each: seconds on a loaded machine, so more than the default 5 s.
    30_000,
  );
});

// ---------------------------------------------------------------------------------------------
// Size and shape limits
// ---------------------------------------------------------------------------------------------

/** A JSON object of exactly `bytes` UTF-8 bytes: `{"pad":"xxxx…"}`. */
function jsonOfSize(bytes: number): string {
  const frame = '{"pad":""}'.length;
  return `{"pad":"${"x".repeat(bytes - frame)}"}`;
}

function streamOf(text: string): ReadableStream<Uint8Array> {
  const bytes = new TextEncoder().encode(text);
  let offset = 0;
  return new ReadableStream({
    pull(controller) {
      if (offset >= bytes.length) {
        controller.close();
        return;
      }
      controller.enqueue(bytes.subarray(offset, offset + 16_384));
      offset += 16_384;
    },
  });
}

describe("body size: 413 before parsing", () => {
  let p: TestPlatform;
  beforeAll(async () => {
    p = await newPlatform();
  });

  const cases = [
    { path: "/v1/reports", limit: 65_536 },
    { path: "/v1/scores/query", limit: 65_536 },
    { path: "/v1/subject-access", limit: 65_536 },
    { path: "/v1/reports/bulk", limit: 1_048_576 },
    { path: "/v1/scores/batch", limit: 1_048_576 },
  ];

  it.each(cases)(
    "$path: $limit bytes reach the schema (422), one byte more is 413",
    async ({ path, limit }) => {
      const atLimit = await call(path, {
        token: await p.token(),
        raw: jsonOfSize(limit),
        headers: JSON_TYPE,
      });
      const problem = await expectProblem(atLimit, 422);
      expect(problem.errors?.length).toBeGreaterThan(0);
      const over = await call(path, {
        token: await p.token(),
        raw: jsonOfSize(limit + 1),
        headers: JSON_TYPE,
      });
      const tooLarge = await expectProblem(over, 413);
      expect(tooLarge.detail).toContain(String(limit));
    },
  );

  it("an oversized body that is not even JSON is 413, not 400: size is checked before parsing", async () => {
    const res = await call("/v1/reports", {
      token: await p.token(),
      raw: `{${"[".repeat(70_000)}`,
      headers: JSON_TYPE,
    });
    await expectProblem(res, 413);
  });

  it("a streamed body without Content-Length is cut off at the limit (413) and writes nothing", async () => {
    const body = JSON.stringify(reportBody(await newBuyer(), { note: null, pad: "x".repeat(70_000) }));
    const res = await call("/v1/reports", {
      token: await p.token(),
      raw: streamOf(body),
      headers: JSON_TYPE,
    });
    await expectProblem(res, 413);
    const bulk = JSON.stringify({ reports: [reportBody(await newBuyer())], pad: "x".repeat(1_100_000) });
    const res2 = await call("/v1/reports/bulk", {
      token: await p.token(),
      raw: streamOf(bulk),
      headers: JSON_TYPE,
    });
    await expectProblem(res2, 413);
    expect(await countRows("reports", "platform_id = ?", p.id)).toBe(0);
  });

  it("a declared Content-Length over the limit is 413 without reading the body", async () => {
    const res = await call("/v1/reports", {
      token: await p.token(),
      raw: streamOf("{}"),
      headers: { ...JSON_TYPE, "content-length": "65537" },
    });
    await expectProblem(res, 413);
  });

  it("bulk accepts 500 valid reports in one body well over 64 KiB", async () => {
    const reports = [];
    for (let i = 0; i < 500; i++) {
      reports.push(reportBody(await newBuyer()));
    }
    const raw = JSON.stringify({ reports });
    expect(raw.length).toBeGreaterThan(65_536);
    const res = await callJson<{ results: { index: number; status: number }[] }>("/v1/reports/bulk", {
      token: await p.token(),
      raw,
      headers: JSON_TYPE,
    });
    expect(res.status).toBe(200);
    expect(res.body.results.filter((r) => r.status === 201)).toHaveLength(500);
    expect(await countRows("reports", "platform_id = ?", p.id)).toBe(500);
  }, 30_000);
});

describe("shape limits: nesting, arrays, strings, headers, pagination", () => {
  let p: TestPlatform;
  let w: Pick<World, "owner">;
  beforeAll(async () => {
    p = await newPlatform();
    w = { owner: p };
  });

  it("JSON nested 9 deep is 400 before the schema; 8 deep reaches the schema (422)", async () => {
    const nested = (depth: number) => `{"caseId":${"[".repeat(depth - 1)}1${"]".repeat(depth - 1)}}`;
    const deep = await call("/v1/reports", { token: await p.token(), raw: nested(9), headers: JSON_TYPE });
    const problem = await expectProblem(deep, 400);
    expect(problem.detail).toContain("nesting");
    const ok = await call("/v1/reports", { token: await p.token(), raw: nested(8), headers: JSON_TYPE });
    await expectProblem(ok, 422);
    // Brackets inside strings do not count.
    const inString = await call("/v1/reports", {
      token: await p.token(),
      raw: JSON.stringify(reportBody(await newBuyer(), { note: "[[[[[[[[[[{{{{{{{{{{" })),
      headers: JSON_TYPE,
    });
    expect(inString.status).toBe(201);
    await inString.arrayBuffer();
  });

  it("60 000 open brackets are 400, never a parser stack overflow", async () => {
    const res = await call("/v1/reports", {
      token: await p.token(),
      raw: "[".repeat(60_000),
      headers: JSON_TYPE,
    });
    await expectProblem(res, 400);
  });

  /** Each row: a body at the maximum (accepted) and one over it (422 naming the field). */
  const arrays: {
    name: string;
    path: string;
    errorPath: RegExp;
    body: (n: number) => Promise<unknown>;
    max: number;
    okStatus: number;
  }[] = [
    {
      name: "report subjects",
      path: "/v1/reports",
      errorPath: /^subjects$/,
      max: 8,
      okStatus: 201,
      body: async (n) => reportBody(await subjects(n)),
    },
    {
      name: "report evidence",
      path: "/v1/reports",
      errorPath: /^evidence$/,
      max: 16,
      okStatus: 201,
      body: async (n) =>
        reportBody(await newBuyer(), {
          evidence: Array.from({ length: n }, (_, i) => ({ kind: "other", value: `e${i}` })),
        }),
    },
    {
      name: "score subjects",
      path: "/v1/scores/query",
      errorPath: /^subjects$/,
      max: 8,
      okStatus: 200,
      body: async (n) => ({ subjects: await subjects(n), purpose: "refund_review" }),
    },
    {
      name: "score batch queries",
      path: "/v1/scores/batch",
      errorPath: /^queries$/,
      max: 100,
      okStatus: 200,
      body: async (n) => {
        const one = await newBuyer();
        return {
          purpose: "refund_review",
          queries: Array.from({ length: n }, (_, i) => ({ ref: `o-${i}`, subjects: one })),
        };
      },
    },
    {
      name: "subject-access subjects",
      path: "/v1/subject-access",
      errorPath: /^subjects$/,
      max: 8,
      okStatus: 200,
      body: async (n) => ({ requestRef: "T-1", subjects: await subjects(n) }),
    },
  ];

  it.each(arrays)(
    "$name: $max accepted, one more is 422",
    async ({ path, errorPath, body, max, okStatus }) => {
      const ok = await call(path, { token: await p.token(), body: await body(max) });
      expect(ok.status, await ok.clone().text()).toBe(okStatus);
      await ok.arrayBuffer();
      const before = await ledgerState([p.id]);
      const over = await call(path, { token: await p.token(), body: await body(max + 1) });
      const problem = await expectProblem(over, 422);
      expect(problem.errors?.map((e) => e.path)).toContainEqual(expect.stringMatching(errorPath));
      expect(await ledgerState([p.id])).toBe(before);
    },
  );

  it("bulk: 501 reports are 422 as a whole and nothing is written", async () => {
    const reports = Array.from({ length: 501 }, () => ({}));
    const before = await ledgerState([p.id]);
    const res = await call("/v1/reports/bulk", { token: await p.token(), body: { reports } });
    const problem = await expectProblem(res, 422);
    expect(problem.errors?.map((e) => e.path)).toContain("reports");
    expect(await ledgerState([p.id])).toBe(before);
  });

  it("admin: a key set of 11 keys is 422; 10 are accepted", async () => {
    const target = await newPlatform();
    const keys = await Promise.all(Array.from({ length: 11 }, () => newKeyPair()));
    const over = await call(`/v1/admin/platforms/${target.id}/keys`, {
      method: "PUT",
      token: await adminToken(),
      body: { keys: keys.map((k) => k.publicJwk) },
    });
    await expectProblem(over, 422);
    const ok = await callJson(`/v1/admin/platforms/${target.id}/keys`, {
      method: "PUT",
      token: await adminToken(),
      body: { keys: keys.slice(0, 10).map((k) => k.publicJwk) },
    });
    expect(ok.status).toBe(200);
  });

  /** String fields at their maximum length (accepted) and one character more (422 at that path). */
  const strings: {
    field: string;
    route: string;
    max: number;
    okStatus: number;
    build: (s: string) => Promise<{ path: string; method?: Method; body: unknown; token?: string }>;
  }[] = [
    {
      field: "caseId",
      route: "POST /v1/reports",
      max: 128,
      okStatus: 201,
      build: async (s) => ({ path: "/v1/reports", body: reportBody(await newBuyer(), { caseId: s }) }),
    },
    {
      field: "note",
      route: "POST /v1/reports",
      max: 500,
      okStatus: 201,
      build: async (s) => ({ path: "/v1/reports", body: reportBody(await newBuyer(), { note: s }) }),
    },
    {
      field: "evidence.0.value",
      route: "POST /v1/reports",
      max: 256,
      okStatus: 201,
      build: async (s) => ({
        path: "/v1/reports",
        body: reportBody(await newBuyer(), { evidence: [{ kind: "other", value: s }] }),
      }),
    },
    {
      field: "reason",
      route: "POST /v1/reports/{id}/retract",
      max: 500,
      okStatus: 200,
      build: async (s) => ({
        path: `/v1/reports/${(await freshReport(w)).reportId}/retract`,
        body: { reason: s },
      }),
    },
    {
      field: "queries.0.ref",
      route: "POST /v1/scores/batch",
      max: 128,
      okStatus: 200,
      build: async (s) => ({
        path: "/v1/scores/batch",
        body: { purpose: "refund_review", queries: [{ ref: s, subjects: await newBuyer() }] },
      }),
    },
    {
      field: "reason",
      route: "POST /v1/disputes",
      max: 1000,
      okStatus: 201,
      build: async (s) => {
        const { reportId, buyer } = await foreignReport();
        return { path: "/v1/disputes", body: { reportRef: reportId, subjects: buyer, reason: s } };
      },
    },
    {
      field: "note",
      route: "POST /v1/disputes/{id}/respond",
      max: 1000,
      okStatus: 200,
      build: async (s) => ({
        path: `/v1/disputes/${(await freshDispute(w)).disputeId}/respond`,
        body: { decision: "uphold", note: s },
      }),
    },
    {
      field: "note",
      route: "POST /v1/admin/disputes/{id}/resolve",
      max: 1000,
      okStatus: 200,
      build: async (s) => ({
        path: `/v1/admin/disputes/${(await freshDispute(w)).disputeId}/resolve`,
        body: { outcome: "report_upheld", note: s },
        token: await adminToken(),
      }),
    },
    {
      field: "name",
      route: "POST /v1/admin/platforms",
      max: 200,
      okStatus: 201,
      build: async (s) => ({
        path: "/v1/admin/platforms",
        body: {
          id: uniqueId("p"),
          name: s,
          scopes: ["scores:read"],
          jwks: { keys: [(await newKeyPair()).publicJwk] },
        },
        token: await adminToken(),
      }),
    },
  ];

  it.each(strings)(
    "$route $field: $max characters accepted, one more is 422",
    async ({ field, max, okStatus, build }) => {
      const at = await build("a".repeat(max));
      const ok = await call(at.path, {
        method: at.method ?? "POST",
        token: at.token ?? (await p.token()),
        body: at.body,
      });
      expect(ok.status, await ok.clone().text()).toBe(okStatus);
      await ok.arrayBuffer();
      const over = await build("a".repeat(max + 1));
      const before = await ledgerState([p.id]);
      const res = await call(over.path, {
        method: over.method ?? "POST",
        token: over.token ?? (await p.token()),
        body: over.body,
      });
      const problem = await expectProblem(res, 422);
      expect(problem.errors?.map((e) => e.path)).toContain(field);
      expect(await ledgerState([p.id])).toBe(before);
    },
  );

  it("an Authorization header over 8 192 characters of token is 401 without being parsed", async () => {
    const token = `${await p.token()}.${"a".repeat(8192)}`;
    const res = await call("/v1/reports", { token });
    await expectProblem(res, 401);
    expect(res.headers.get("www-authenticate")).toMatch(/^Bearer /);
  });

  const lists = [
    "/v1/reports",
    "/v1/admin/reports",
    "/v1/admin/platforms",
    "/v1/admin/disputes",
    "/v1/admin/audit",
  ];

  it.each(lists)("%s: limit 1–200; 0, 201 and 1.5 are 422 at path limit", async (path) => {
    const token = async () => (path.startsWith("/v1/admin") ? adminToken() : p.token());
    const ok = await callJson<{ items: unknown[] }>(`${path}?limit=200`, { token: await token() });
    expect(ok.status).toBe(200);
    expect(ok.body.items.length).toBeLessThanOrEqual(200);
    for (const bad of ["0", "201", "1.5", "-1", "99999999999"]) {
      const res = await call(`${path}?limit=${bad}`, { token: await token() });
      const problem = await expectProblem(res, 422);
      expect(problem.errors?.map((e) => e.path)).toContain("limit");
    }
  });

  it("pagination: 50 by default, a cursor for the rest, a forged cursor is 422", async () => {
    const q = await newPlatform();
    const reports = [];
    for (let i = 0; i < 51; i++) {
      reports.push(reportBody(await newBuyer()));
    }
    const bulk = await callJson("/v1/reports/bulk", { token: await q.token(), body: { reports } });
    expect(bulk.status).toBe(200);
    const first = await callJson<{ items: { id: string }[]; nextCursor: string | null }>("/v1/reports", {
      token: await q.token(),
    });
    expect(first.body.items).toHaveLength(50);
    expect(first.body.nextCursor).toEqual(expect.any(String));
    const second = await callJson<{ items: { id: string }[]; nextCursor: string | null }>(
      `/v1/reports?cursor=${first.body.nextCursor}`,
      { token: await q.token() },
    );
    expect(second.body.items).toHaveLength(1);
    expect(second.body.nextCursor).toBeNull();
    const all = await callJson<{ items: unknown[] }>("/v1/reports?limit=200", { token: await q.token() });
    expect(all.body.items).toHaveLength(51);
    const forged = await call(`/v1/reports?cursor=${btoa("'; DROP TABLE reports; --")}`, {
      token: await q.token(),
    });
    expect((await expectProblem(forged, 422)).errors?.map((e) => e.path)).toContain("cursor");
    const long = await call(`/v1/reports?cursor=${"A".repeat(201)}`, { token: await q.token() });
    await expectProblem(long, 422);
  });
});

async function subjects(n: number): Promise<Subject[]> {
  const list: Subject[] = [];
  while (list.length < n) {
    list.push(...(await newBuyer()));
  }
  return list.slice(0, n);
}

describe("availability", () => {
  it("an audit export of a range with no entries completes: header and keys only, no hang", async () => {
    const res = await call(`/v1/admin/audit/export?since=${new Date(Date.now() + 3_600_000).toISOString()}`, {
      token: await adminToken(),
    });
    expect(res.status).toBe(200);
    const lines = new TextDecoder()
      .decode(await res.arrayBuffer())
      .trim()
      .split("\n")
      .map((l) => (JSON.parse(l) as { type: string }).type);
    expect(lines.slice(0, 2)).toEqual(["header", "keys"]);
    expect(lines).not.toContain("entry");
  });
});

// ---------------------------------------------------------------------------------------------
// Mass assignment and fuzzing: every POST/PUT/PATCH body
// ---------------------------------------------------------------------------------------------

interface BodyRoute {
  route: string;
  method: Method;
  admin: boolean;
  /**
   * A valid request by `p` (or an admin) against objects of `p`; `target` is the platform the
   * admin platform routes change.
   */
  valid(p: TestPlatform, target: TestPlatform): Promise<{ path: string; body: Record<string, unknown> }>;
  /** Fields a client might try to set that the body schema does not have. */
  extras: Record<string, unknown>;
}

const INJECTED_REPORT_ID = "rpt_01JD3X5Z8YQ4W2E6R7T9V0B1N2";

const BODY_ROUTES: BodyRoute[] = [
  {
    route: "POST /v1/reports",
    method: "POST",
    admin: false,
    valid: async () => ({ path: "/v1/reports", body: reportBody(await newBuyer()) }),
    extras: {
      status: "voided",
      platformId: "someone-else",
      id: INJECTED_REPORT_ID,
      createdAt: "2020-01-01T00:00:00Z",
      updatedAt: "2020-01-01T00:00:00Z",
      statusReason: "preset",
      statement: "preset",
      contentHash: "0".repeat(64),
    },
  },
  {
    route: "POST /v1/reports/bulk",
    method: "POST",
    admin: false,
    valid: async () => ({ path: "/v1/reports/bulk", body: { reports: [reportBody(await newBuyer())] } }),
    extras: { platformId: "someone-else", atomic: false },
  },
  {
    route: "POST /v1/reports/{id}/retract",
    method: "POST",
    admin: false,
    valid: async (p) => ({
      path: `/v1/reports/${(await freshReport({ owner: p })).reportId}/retract`,
      body: { reason: REASON },
    }),
    extras: { status: "voided", platformId: "someone-else", statusReason: "preset" },
  },
  {
    route: "POST /v1/scores/query",
    method: "POST",
    admin: false,
    valid: async () => ({
      path: "/v1/scores/query",
      body: { subjects: await newBuyer(), purpose: "refund_review" },
    }),
    extras: { platformId: "someone-else", score: 0, model: "pixiu-score/0" },
  },
  {
    route: "POST /v1/scores/batch",
    method: "POST",
    admin: false,
    valid: async () => ({
      path: "/v1/scores/batch",
      body: { purpose: "account_review", queries: [{ ref: "order-1", subjects: await newBuyer() }] },
    }),
    extras: { platformId: "someone-else" },
  },
  {
    route: "POST /v1/evidence/match",
    method: "POST",
    admin: false,
    valid: async () => ({
      path: "/v1/evidence/match",
      body: { purpose: "refund_review", photos: [{ pdq: "0f".repeat(32) }] },
    }),
    extras: { platformId: "someone-else", maxDistance: 64 },
  },
  {
    route: "POST /v1/disputes",
    method: "POST",
    admin: false,
    valid: async () => {
      const { reportId, buyer } = await foreignReport();
      return { path: "/v1/disputes", body: { reportRef: reportId, subjects: buyer, reason: REASON } };
    },
    extras: {
      status: "upheld",
      id: "dsp_01JD3X5Z8YQ4W2E6R7T9V0B1N2",
      deadlineAt: "2099-01-01T00:00:00Z",
      openedBy: "someone-else",
    },
  },
  {
    route: "POST /v1/disputes/{id}/respond",
    method: "POST",
    admin: false,
    valid: async (p) => ({
      path: `/v1/disputes/${(await freshDispute({ owner: p })).disputeId}/respond`,
      body: { decision: "uphold", note: "Our forensic report stands." },
    }),
    extras: { status: "report_voided", decidedBy: "admin:someone", decidedAt: "2020-01-01T00:00:00Z" },
  },
  {
    route: "POST /v1/subject-access",
    method: "POST",
    admin: false,
    valid: async () => ({
      path: "/v1/subject-access",
      body: { requestRef: "T-1", subjects: await newBuyer() },
    }),
    extras: { platformId: "someone-else", includePlatformIds: true },
  },
  {
    route: "POST /v1/admin/platforms",
    method: "POST",
    admin: true,
    valid: async () => ({
      path: "/v1/admin/platforms",
      body: {
        id: uniqueId("p"),
        name: "New member",
        scopes: ["scores:read"],
        jwks: { keys: [(await newKeyPair()).publicJwk] },
      },
    }),
    extras: { status: "suspended", createdAt: "2020-01-01T00:00:00Z", updatedAt: "2020-01-01T00:00:00Z" },
  },
  {
    route: "PATCH /v1/admin/platforms/{id}",
    method: "PATCH",
    admin: true,
    valid: async (_p, target) => ({
      path: `/v1/admin/platforms/${target.id}`,
      body: { name: uniqueId("Renamed") },
    }),
    extras: { id: "renamed-id", jwks: { keys: [] }, createdAt: "2020-01-01T00:00:00Z" },
  },
  {
    route: "PUT /v1/admin/platforms/{id}/keys",
    method: "PUT",
    admin: true,
    valid: async (_p, target) => ({
      path: `/v1/admin/platforms/${target.id}/keys`,
      body: { keys: [target.publicJwk] },
    }),
    extras: { status: "suspended", scopes: ["admin"], id: "renamed-id" },
  },
  {
    route: "POST /v1/admin/reports/{id}/void",
    method: "POST",
    admin: true,
    valid: async (p) => ({
      path: `/v1/admin/reports/${(await freshReport({ owner: p })).reportId}/void`,
      body: { reason: REASON },
    }),
    extras: { status: "active", platformId: "someone-else" },
  },
  {
    route: "POST /v1/admin/disputes/{id}/resolve",
    method: "POST",
    admin: true,
    valid: async (p) => ({
      path: `/v1/admin/disputes/${(await freshDispute({ owner: p })).disputeId}/resolve`,
      body: { outcome: "report_upheld", note: "Upheld on review." },
    }),
    extras: { status: "open", decidedBy: "platform:someone-else" },
  },
  {
    route: "POST /v1/admin/maintenance/run",
    method: "POST",
    admin: true,
    valid: async () => ({ path: "/v1/admin/maintenance/run", body: {} }),
    extras: { now: 4_102_444_800_000, retentionDays: 0 },
  },
];

describe("mass assignment: unknown fields are refused (422) and never stored", () => {
  let p: TestPlatform;
  let target: TestPlatform;
  beforeAll(async () => {
    [p, target] = await Promise.all([newPlatform(), newPlatform()]);
  });

  const cells = BODY_ROUTES.flatMap((r) =>
    Object.entries(r.extras).map(([field, value]) => ({ ...r, field, value })),
  );

  it.each(cells)("$route with $field", async ({ method, admin, valid, field, value }) => {
    const request = await valid(p, target);
    const before = await ledgerState([p.id, target.id]);
    const res = await call(request.path, {
      method,
      token: admin ? await adminToken() : await p.token(),
      body: { ...request.body, [field]: value },
    });
    const problem = await expectProblem(res, 422);
    expect(problem.errors?.map((e) => e.message).join(" ")).toContain(`"${field}"`);
    expect(await ledgerState([p.id, target.id])).toBe(before);
  });

  it("a report with status, id and platformId set is not stored under any of them", async () => {
    const body = reportBody(await newBuyer(), {
      status: "voided",
      id: INJECTED_REPORT_ID,
      platformId: target.id,
    });
    await expectProblem(await call("/v1/reports", { token: await p.token(), body }), 422);
    expect(await countRows("reports", "case_id = ?", body.caseId)).toBe(0);
    expect(await countRows("reports", "id = ?", INJECTED_REPORT_ID)).toBe(0);
    expect(await countRows("reports", "platform_id = ?", target.id)).toBe(0);
  });

  it("__proto__ and constructor keys are refused like any unknown field", async () => {
    const body = JSON.stringify(reportBody(await newBuyer())).replace(
      /^\{/,
      '{"__proto__":{"status":"voided","admin":true},"constructor":{"prototype":{"admin":true}},',
    );
    const before = await ledgerState([p.id]);
    const res = await call("/v1/reports", { token: await p.token(), raw: body, headers: JSON_TYPE });
    await expectProblem(res, 422);
    expect(await ledgerState([p.id])).toBe(before);
    expect(({} as Record<string, unknown>).admin).toBeUndefined();
  });

  it("unknown fields nested in subjects, amount and evidence are refused", async () => {
    const buyer = await newBuyer();
    const bodies = [
      reportBody(buyer.map((s) => ({ ...s, key: "f".repeat(64) }))),
      reportBody(buyer, { amount: { value: 100, currency: "CNY", valueCny: 1 } }),
      reportBody(buyer, { evidence: [{ kind: "other", value: "x", verified: true }] }),
    ];
    for (const body of bodies) {
      const before = await ledgerState([p.id]);
      await expectProblem(await call("/v1/reports", { token: await p.token(), body }), 422);
      expect(await ledgerState([p.id])).toBe(before);
    }
  });

  it("bulk: an item with status voided fails alone (422); its sibling is stored active under the caller", async () => {
    const bad = reportBody(await newBuyer(), { status: "voided", platformId: target.id });
    const good = reportBody(await newBuyer());
    const res = await callJson<{ results: { index: number; status: number; id?: string }[] }>(
      "/v1/reports/bulk",
      {
        token: await p.token(),
        body: { reports: [bad, good] },
      },
    );
    expect(res.status).toBe(200);
    expect(res.body.results.map((r) => r.status)).toEqual([422, 201]);
    expect(await countRows("reports", "case_id = ?", bad.caseId)).toBe(0);
    const row = await env.DB.prepare("SELECT platform_id, status FROM reports WHERE case_id = ?")
      .bind(good.caseId)
      .first();
    expect(row).toEqual({ platform_id: p.id, status: "active" });
  });

  it("a platform cannot be created with, or patched to, the admin scope or a private key", async () => {
    const pair = await newKeyPair();
    const id = uniqueId("p");
    const cases = [
      { id, name: "X", scopes: ["admin"], jwks: { keys: [pair.publicJwk] } },
      { id, name: "X", scopes: ["scores:read"], jwks: { keys: [pair.privateJwk] } },
    ];
    for (const body of cases) {
      await expectProblem(await call("/v1/admin/platforms", { token: await adminToken(), body }), 422);
    }
    expect(await countRows("platforms", "id = ?", id)).toBe(0);
    const before = await ledgerState([target.id]);
    const patch = await call(`/v1/admin/platforms/${target.id}`, {
      method: "PATCH",
      token: await adminToken(),
      body: { scopes: ["admin"] },
    });
    await expectProblem(patch, 422);
    expect(await ledgerState([target.id])).toBe(before);
  });
});

describe("no outbound fetches (SSRF)", () => {
  it("a key set naming a URL (jku, x5u) or a remote JWKS is refused: keys are only ever inline", async () => {
    const target = await newPlatform();
    const before = await ledgerState([target.id]);
    const url = "http://169.254.169.254/latest/meta-data/";
    const bodies = [
      { keys: [{ ...target.publicJwk, x5u: url }] },
      { keys: [{ ...target.publicJwk, jku: url }] },
      { keys: [], jku: url },
      { jwks_uri: url },
    ];
    for (const body of bodies) {
      const res = await call(`/v1/admin/platforms/${target.id}/keys`, {
        method: "PUT",
        token: await adminToken(),
        body,
      });
      await expectProblem(res, 422);
    }
    expect(await ledgerState([target.id])).toBe(before);
  });
});

describe("enumeration is visible in GET /v1/admin/stats", () => {
  interface Usage {
    platformId: string;
    queries: number;
    subjects: number;
    reports: number;
    lookupsPerReport: number | null;
    subjectAccess: number;
    disputesOpened: number;
    distinctSubjectsToday: number;
  }

  it("a platform looking up many distinct buyers and reporting few stands out by lookupsPerReport", async () => {
    const [enumerator, honest, silent] = await Promise.all([newPlatform(), newPlatform(), newPlatform()]);
    const query = async (p: TestPlatform, subjects: Subject[]) => {
      const res = await call("/v1/scores/query", {
        token: await p.token(),
        body: { subjects, purpose: "refund_review" },
      });
      expect(res.status).toBe(200);
      await res.arrayBuffer();
    };
    const batch = async (p: TestPlatform, n: number) => {
      const queries = [];
      for (let i = 0; i < n; i++) {
        queries.push({ ref: `buyer-${i}`, subjects: [(await newBuyer())[0] as Subject] });
      }
      const res = await call("/v1/scores/batch", {
        token: await p.token(),
        body: { purpose: "account_review", queries },
      });
      expect(res.status).toBe(200);
      await res.arrayBuffer();
    };
    // The honest platform files two reports and looks up one buyer (two identifiers).
    await createReport(honest, await newBuyer());
    await createReport(honest, await newBuyer());
    await query(honest, await newBuyer());
    // The enumerator files one report and sweeps 100 distinct buyers, then one more.
    await createReport(enumerator, await newBuyer());
    await batch(enumerator, 100);
    await query(enumerator, await newBuyer());
    // A platform that only ever looks up.
    await batch(silent, 50);

    const stats = await callJson<{ usage: Usage[] }>("/v1/admin/stats", { token: await adminToken() });
    expect(stats.status).toBe(200);
    const byId = new Map(stats.body.usage.map((u) => [u.platformId, u]));
    expect(byId.get(enumerator.id)).toEqual({
      platformId: enumerator.id,
      queries: 101,
      subjects: 102,
      reports: 1,
      lookupsPerReport: 102,
      subjectAccess: 0,
      disputesOpened: 0,
      distinctSubjectsToday: 102,
    });
    expect(byId.get(honest.id)).toEqual({
      platformId: honest.id,
      queries: 1,
      subjects: 2,
      reports: 2,
      lookupsPerReport: 1,
      subjectAccess: 0,
      disputesOpened: 0,
      distinctSubjectsToday: 2,
    });
    expect(byId.get(silent.id)).toEqual({
      platformId: silent.id,
      queries: 50,
      subjects: 50,
      reports: 0,
      lookupsPerReport: null,
      subjectAccess: 0,
      disputesOpened: 0,
      distinctSubjectsToday: 50,
    });
    // Sorted most suspicious first: no reports at all, then the highest ratio.
    const order = stats.body.usage.map((u) => u.platformId);
    expect(order.indexOf(silent.id)).toBeLessThan(order.indexOf(enumerator.id));
    expect(order.indexOf(enumerator.id)).toBeLessThan(order.indexOf(honest.id));
  });
});

/** Every path into a JSON value (objects and arrays), the root excluded. */
function pathsOf(value: unknown, prefix: (string | number)[] = []): (string | number)[][] {
  if (value === null || typeof value !== "object") {
    return [];
  }
  const entries: [string | number, unknown][] = Array.isArray(value)
    ? value.map((v, i) => [i, v] as [number, unknown])
    : Object.entries(value);
  return entries.flatMap(([k, v]) => [[...prefix, k], ...pathsOf(v, [...prefix, k])]);
}

function edit(
  root: unknown,
  path: (string | number)[],
  change: (parent: Record<string | number, unknown>, key: string | number) => void,
) {
  const copy = structuredClone(root);
  let node = copy as Record<string | number, unknown>;
  for (const key of path.slice(0, -1)) {
    node = node[key] as Record<string | number, unknown>;
  }
  const last = path[path.length - 1];
  if (last !== undefined) {
    change(node, last);
  }
  return copy;
}

/**
 * Bodies for one route: arbitrary JSON, text that may not be JSON at all, and mutations of a
 * valid body (a value replaced by arbitrary JSON, a field deleted, an unknown field added).
 */
function bodies(valid: Record<string, unknown>): fc.Arbitrary<string> {
  const paths = pathsOf(valid);
  const json = fc.jsonValue({ maxDepth: 4 });
  const added = fc
    .record({ key: fc.string({ minLength: 1, maxLength: 12 }), value: json })
    .filter(({ key }) => !(key in valid))
    .map(({ key, value }) => JSON.stringify({ ...valid, [key]: value }));
  const anything = [json.map((v) => JSON.stringify(v)), fc.string({ maxLength: 40 }), added];
  if (paths.length === 0) {
    return fc.oneof(...anything);
  }
  const replaced = fc.record({ path: fc.constantFrom(...paths), value: json }).map(({ path, value }) =>
    JSON.stringify(
      edit(valid, path, (parent, key) => {
        parent[key] = value;
      }),
    ),
  );
  const deleted = fc.constantFrom(...paths).map((path) =>
    JSON.stringify(
      edit(valid, path, (parent, key) => {
        if (Array.isArray(parent)) {
          parent.splice(Number(key), 1);
        } else {
          delete parent[key];
        }
      }),
    ),
  );
  return fc.oneof(...anything, replaced, deleted);
}

describe("fuzzing every POST/PUT/PATCH body (fast-check)", () => {
  it.each(BODY_ROUTES)(
    "$route: never 5xx, every 4xx a problem without internals, nothing written on 4xx",
    async ({ method, admin, valid }) => {
      const [p, target] = await Promise.all([newPlatform(), newPlatform()]);
      // One fixture per route: a valid mutation may act on it once; later ones meet 409 or 404.
      const request = await valid(p, target);
      const seen = new Set<number>();
      await fc.assert(
        fc.asyncProperty(bodies(request.body), async (raw) => {
          const before = await ledgerState([p.id, target.id]);
          const res = await call(request.path, {
            method,
            token: admin ? await adminToken() : await p.token(),
            raw,
            headers: JSON_TYPE,
          });
          seen.add(res.status);
          expect(res.status).toBeLessThan(500);
          expect(res.headers.get("x-request-id")).toMatch(/^req_/);
          if (res.status >= 400) {
            await expectProblem(res, res.status);
            expect(await ledgerState([p.id, target.id])).toBe(before);
          } else {
            await res.arrayBuffer();
          }
        }),
        { numRuns: admin ? 20 : 60 },
      );
      // The generator reached the schema, not only the JSON parser.
      expect(seen.has(422)).toBe(true);
    },
    60_000,
  );
});

describe("API4: the per-isolate platform cache is bounded", () => {
  it("a flood of distinct unknown issuers never holds more than PLATFORM_CACHE_MAX entries", async () => {
    const db = drizzle(env.DB);
    const deps = { db, adminJwks: env.ADMIN_JWKS, audience: "pixiu", now: Date.now(), cacheTtlMs: 30_000 };
    // An issuer that cannot be a platform id is refused without a D1 read or a cache entry.
    const before = platformCacheSize();
    expect(before).toBeLessThan(PLATFORM_CACHE_MAX);
    for (const iss of ["Not_A_Platform", "x".repeat(64), "-leading-dash", "a"]) {
      await expect(authenticate("x.y.z", deps, iss)).rejects.toThrow(/unknown issuer/);
    }
    expect(platformCacheSize()).toBe(before);
    await expect(authenticate("x.y.z", deps, "well-formed-but-unknown")).rejects.toThrow(/unknown issuer/);
    expect(platformCacheSize()).toBe(before + 1);

    for (let i = 0; i < PLATFORM_CACHE_MAX + 50; i++) {
      await expect(authenticate("x.y.z", deps, `bogus-issuer-${i}`)).rejects.toThrow(/unknown issuer/);
    }
    expect(platformCacheSize()).toBe(PLATFORM_CACHE_MAX);
    expect(platformCacheSize()).toBe(PLATFORM_CACHE_MAX);
    // A real platform still authenticates after the flood evicted everything else.
    const platform = await newPlatform();
    const res = await call("/v1/reports", { token: await platform.token() });
    expect(res.status).toBe(200);
  }, 30_000);
});
