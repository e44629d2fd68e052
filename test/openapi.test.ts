/// <reference types="vite/client" />
/**
 * The OpenAPI document against what the ledger really sends (issue 12). zod-openapi validates
 * requests but not answers, so the bounds the document declares for answers (patterns, lengths,
 * maxItems, integer ranges) are checked here on real answers of the main operations, through
 * the very zod schemas the document is generated from. Also: the RateLimit header fields on
 * answers and 429s, and the limits they advertise against wrangler.toml. The document itself is
 * linted on the Node side (test/node/openapi-lint.test.ts).
 */
import { env } from "cloudflare:workers";
import type { z } from "@hono/zod-openapi";
import { beforeAll, describe, expect, it } from "vitest";
import { app } from "../worker/index";
import { RATE_LIMIT_PERIOD_SECONDS, RATE_LIMITS } from "../worker/middleware/limits";
import wranglerToml from "../wrangler.toml?raw";
import {
  adminToken,
  call,
  callJson,
  inOneRateLimitWindow,
  newBuyer,
  newPlatform,
  reportBody,
  spendRateLimit,
  type TestPlatform,
} from "./harness";

interface RouteDefinition {
  type: string;
  route?: {
    operationId?: string;
    responses: Record<string, { content?: Record<string, { schema: z.ZodType }> }>;
  };
}

/** The zod schema the document declares for this operation's answer with this status. */
function answerSchema(operationId: string, status: number, media = "application/json"): z.ZodType {
  const definitions = app.openAPIRegistry.definitions as unknown as RouteDefinition[];
  const route = definitions.find((d) => d.type === "route" && d.route?.operationId === operationId)?.route;
  const schema = route?.responses[String(status)]?.content?.[media]?.schema;
  if (!schema) {
    throw new Error(`no ${status} ${media} answer declared for ${operationId}`);
  }
  return schema;
}

/** Asserts that a real answer fits its declared schema, naming every field that does not. */
function expectConforms(operationId: string, res: { status: number; body: unknown }, media?: string) {
  const result = answerSchema(operationId, res.status, media).safeParse(res.body);
  expect(result.success ? [] : result.error.issues, `${operationId} ${res.status}`).toEqual([]);
}

/** A random hash with 128 bits set, as PDQ prints a photo's (the ledger refuses other counts). */
const pdqHash = () => {
  const bits = Array.from({ length: 256 }, (_, i) => i)
    .sort(() => Math.random() - 0.5)
    .slice(0, 128);
  const bytes = new Uint8Array(32);
  for (const bit of bits) {
    bytes[bit >> 3] = (bytes[bit >> 3] as number) | (1 << (bit & 7));
  }
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
};

describe("real answers fit the schemas the document declares", () => {
  let reporter: TestPlatform;
  let other: TestPlatform;
  let buyer: { type: string; hash: string }[];
  let reportId: string;
  let photo: string;

  beforeAll(async () => {
    [reporter, other] = await Promise.all([newPlatform(), newPlatform()]);
    buyer = await newBuyer();
    photo = pdqHash();
    const created = await callJson<{ id: string }>("/v1/reports", {
      token: await reporter.token(),
      body: reportBody(buyer, {
        note: "Seller confirmed the photo predates shipping.",
        evidence: [{ kind: "image_pdq", value: photo, quality: 90 }],
      }),
    });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    expectConforms("createReport", created);
    reportId = created.body.id;
  });

  it("reports: get, list, bulk, retract", async () => {
    const token = () => reporter.token();
    expectConforms("getReport", await callJson(`/v1/reports/${reportId}`, { token: await token() }));
    expectConforms("listReports", await callJson("/v1/reports?limit=5", { token: await token() }));
    const bulk = await callJson("/v1/reports/bulk", {
      token: await token(),
      body: { reports: [reportBody(await newBuyer()), { caseId: "bad" }] },
    });
    expect(bulk.status).toBe(200);
    expectConforms("createReportsBulk", bulk);
    const extra = await callJson<{ id: string }>("/v1/reports", {
      token: await token(),
      body: reportBody(await newBuyer()),
    });
    expectConforms(
      "retractReport",
      await callJson(`/v1/reports/${extra.body.id}/retract`, {
        token: await token(),
        body: { reason: "Filed against the wrong order." },
      }),
    );
  });

  it("scores: query with photos, batch, evidence match", async () => {
    const query = await callJson("/v1/scores/query", {
      token: await other.token(),
      body: { subjects: buyer, purpose: "refund_review", evidence: [{ pdq: photo }] },
    });
    expect(query.status, JSON.stringify(query.body)).toBe(200);
    expectConforms("queryScore", query);
    const batch = await callJson("/v1/scores/batch", {
      token: await other.token(),
      body: {
        purpose: "refund_review",
        queries: [
          { ref: "a", subjects: buyer },
          { ref: "b", subjects: await newBuyer() },
        ],
      },
    });
    expect(batch.status).toBe(200);
    expectConforms("scoreBatch", batch);
    const match = await callJson("/v1/evidence/match", {
      token: await other.token(),
      body: { purpose: "refund_review", photos: [{ pdq: photo }] },
    });
    expect(match.status).toBe(200);
    expectConforms("matchEvidence", match);
  });

  it("disputes, subject access, events and the webhook", async () => {
    const opened = await callJson<{ id: string }>("/v1/disputes", {
      token: await other.token(),
      body: { reportRef: reportId, subjects: buyer, reason: "The buyer says the photo is their own." },
    });
    expect(opened.status, JSON.stringify(opened.body)).toBe(201);
    expectConforms("openDispute", opened);
    expectConforms(
      "getDispute",
      await callJson(`/v1/disputes/${opened.body.id}`, { token: await reporter.token() }),
    );
    expectConforms("listDisputes", await callJson("/v1/disputes", { token: await reporter.token() }));
    const access = await callJson("/v1/subject-access", {
      token: await other.token(),
      body: { requestRef: "T-1", subjects: buyer, limit: 1 },
    });
    expect(access.status).toBe(200);
    expectConforms("requestSubjectAccess", access);
    expectConforms("listEvents", await callJson("/v1/events", { token: await reporter.token() }));
  });

  it("admin: platform, reports, audit list and verify, stats, maintenance", async () => {
    const token = await adminToken();
    expectConforms("getAdminPlatform", await callJson(`/v1/admin/platforms/${reporter.id}`, { token }));
    expectConforms("listAdminPlatforms", await callJson("/v1/admin/platforms?limit=3", { token }));
    expectConforms("listAdminReports", await callJson("/v1/admin/reports?limit=3", { token }));
    expectConforms(
      "listAdminAuditEntries",
      await callJson("/v1/admin/audit?limit=20", { token: await adminToken() }),
    );
    expectConforms("getAdminStats", await callJson("/v1/admin/stats", { token: await adminToken() }));
    expectConforms(
      "listAdminDisputes",
      await callJson("/v1/admin/disputes?limit=3", { token: await adminToken() }),
    );
    expectConforms(
      "verifyAdminAudit",
      await callJson("/v1/admin/audit/verify", { token: await adminToken() }),
    );
    expectConforms("getAuditKeys", await callJson("/.well-known/pixiu-audit-keys.json"));
  });

  it("problems: validation, not found, unauthenticated", async () => {
    const invalid = await callJson("/v1/reports", { token: await reporter.token(), body: { caseId: "" } });
    expect(invalid.status).toBe(422);
    expectConforms("createReport", invalid, "application/problem+json");
    const missing = await callJson(`/v1/reports/rpt_00000000000000000000000000`, {
      token: await reporter.token(),
    });
    expectConforms("getReport", missing, "application/problem+json");
    expectConforms("getReport", await callJson("/v1/reports/x"), "application/problem+json");
  });
});

describe("RateLimit header fields (draft-ietf-httpapi-ratelimit-headers-11)", () => {
  it("the limits advertised are wrangler.toml's", () => {
    const bindings: Record<string, keyof typeof RATE_LIMITS> = {
      RL_SCORES: "scores",
      RL_WRITES: "writes",
      RL_ADMIN: "admin",
      RL_SUBJECT_ACCESS: "subject_access",
    };
    for (const [name, cls] of Object.entries(bindings)) {
      const block = wranglerToml.split("[[ratelimits]]").find((b) => b.includes(`name = "${name}"`));
      expect(block, name).toMatch(
        new RegExp(`simple = \\{ limit = ${RATE_LIMITS[cls]}, period = ${RATE_LIMIT_PERIOD_SECONDS} \\}`),
      );
    }
  });

  it("answers past the limiter carry their class's policy; a 401 none", async () => {
    const p = await newPlatform();
    const list = await call("/v1/reports?limit=1", { token: await p.token() });
    expect(list.headers.get("ratelimit-policy")).toBe('"writes";q=600;w=60');
    expect(list.headers.get("ratelimit")).toBeNull();
    const refused = await call("/v1/reports", { token: await p.token(), body: { caseId: "" } });
    expect(refused.status).toBe(422);
    expect(refused.headers.get("ratelimit-policy")).toBe('"writes";q=600;w=60');
    const score = await call("/v1/scores/query", {
      token: await p.token(),
      body: { subjects: await newBuyer(), purpose: "refund_review" },
    });
    expect(score.headers.get("ratelimit-policy")).toBe('"scores";q=1200;w=60');
    const admin = await call("/v1/admin/stats", { token: await adminToken() });
    expect(admin.headers.get("ratelimit-policy")).toBe('"admin";q=300;w=60');
    const anonymous = await call("/v1/reports");
    expect(anonymous.status).toBe(401);
    expect(anonymous.headers.get("ratelimit-policy")).toBeNull();
    await Promise.all([list, score, admin, anonymous].map((r) => r.arrayBuffer()));
  });

  it("a 429 says none is left until Retry-After, once per field", async () => {
    const { limited } = await inOneRateLimitWindow(async () => {
      const p = await newPlatform();
      await spendRateLimit(
        env.RL_SUBJECT_ACCESS,
        `subject_access:platform:${p.id}`,
        RATE_LIMITS.subject_access,
      );
      const limited = await call("/v1/subject-access", {
        token: await p.token(),
        body: { requestRef: "T-1", subjects: await newBuyer() },
      });
      return { limited };
    });
    expect(limited.status).toBe(429);
    expect(limited.headers.get("retry-after")).toBe("60");
    expect(limited.headers.get("ratelimit")).toBe('"subject_access";r=0;t=60');
    expect(limited.headers.get("ratelimit-policy")).toBe('"subject_access";q=60;w=60');
    await limited.arrayBuffer();
  });
});
