/**
 * Errors through the HTTP API (CONTRACT §3, RFC 9457): every error is
 * `application/problem+json` with type, title, status, detail and the request id as
 * `instance`; validation failures list `errors[].path` in the contract's dotted form; the body
 * gate answers 415 → 413 → 400 before anything is parsed or written; unknown routes are 404
 * problems; no response ever carries a stack trace; every response has an `X-Request-Id`; and
 * a refused request changes nothing but its own audit entry.
 */
import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { classifyD1Error, isUniqueViolation } from "../worker/lib/batch";
import {
  adminToken,
  auditCount,
  auditRows,
  call,
  callJson,
  countRows,
  inOneRateLimitWindow,
  newBuyer,
  newPlatform,
  reportBody,
  spendRateLimit,
  type TestPlatform,
  uniqueId,
} from "./harness";

const PROBLEM = "https://pixiu.dev/problems/";
/** docs/api.md: 64 KiB per request, 1 MiB for the bulk and batch routes. */
const BODY_LIMIT = 65_536;
const BULK_BODY_LIMIT = 1_048_576;
const REQUEST_ID = /^req_[0-9A-HJKMNP-TV-Z]{26}$/;
/** What a leaked stack or source location looks like. */
const STACK_TRACES = [
  /\n\s*at\s/,
  /\bat\s+\S+\s+\(/,
  /\.[cm]?[jt]s:\d+/,
  /worker\//,
  /node_modules/,
  /file:\/\//,
];

interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  instance: string;
  errors?: { path: string; message: string }[];
}

interface Answer {
  status: number;
  headers: Headers;
  text: string;
}

async function send(path: string, init: Parameters<typeof call>[1] = {}): Promise<Answer> {
  const res = await call(path, init);
  return { status: res.status, headers: res.headers, text: await res.text() };
}

function expectNoStackTrace(text: string): void {
  for (const pattern of STACK_TRACES) {
    expect(text).not.toMatch(pattern);
  }
}

/**
 * The RFC 9457 shape every error shares; returns the parsed problem. `kind` is the problem
 * type's last segment (docs/api.md).
 */
function expectProblem(res: Answer, status: number, kind: string, title?: string): Problem {
  expect(res.status, res.text).toBe(status);
  expect(res.headers.get("content-type")).toMatch(/^application\/problem\+json\s*(;|$)/);
  expectNoStackTrace(res.text);
  const body = JSON.parse(res.text) as Problem;
  const allowed = ["type", "title", "status", "detail", "instance", "errors"];
  expect(Object.keys(body).filter((k) => !allowed.includes(k))).toEqual([]);
  expect(body.type).toBe(PROBLEM + kind);
  expect(body.status).toBe(status);
  expect(typeof body.title).toBe("string");
  expect(body.title.length).toBeGreaterThan(0);
  if (title !== undefined) {
    expect(body.title).toBe(title);
  }
  expect(typeof body.detail).toBe("string");
  expect(body.detail.length).toBeGreaterThan(0);
  expect(body.instance).toMatch(REQUEST_ID);
  expect(res.headers.get("x-request-id")).toBe(body.instance);
  if (status === 422) {
    expect(Array.isArray(body.errors)).toBe(true);
    for (const e of body.errors ?? []) {
      expect(Object.keys(e).sort()).toEqual(["message", "path"]);
      expect(typeof e.path).toBe("string");
      expect(e.message.length).toBeGreaterThan(0);
    }
  } else {
    expect(body.errors).toBeUndefined();
  }
  return body;
}

/** Everything a refused report create could have touched, for one platform. */
async function footprint(platformId: string) {
  return {
    reports: await countRows("reports", "platform_id = ?", platformId),
    subjects: await countRows(
      "report_subjects",
      "report_id IN (SELECT id FROM reports WHERE platform_id = ?)",
      platformId,
    ),
    audit: await auditCount("actor = ?", `platform:${platformId}`),
    tokenUses: await countRows("token_uses", "key LIKE ?", `${platformId} %`),
  };
}

interface AuditRow {
  actor: string;
  action: string;
  outcome: string;
  details: string | null;
}

/** Entries written after the response (waitUntil) need a moment to land. */
async function auditRowsEventually(requestId: string): Promise<AuditRow[]> {
  const read = async () =>
    (await auditRows(requestId)).map(
      ({ actor, action, outcome, details }) => ({ actor, action, outcome, details }) as AuditRow,
    );
  for (let i = 0; i < 100; i++) {
    const rows = await read();
    if (rows.length > 0) {
      return rows;
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  return read();
}

/** A valid report body serialised and padded with JSON whitespace to exactly `bytes` bytes. */
function paddedJson(value: unknown, bytes: number): string {
  const json = JSON.stringify(value);
  const size = new TextEncoder().encode(json).byteLength;
  if (size > bytes) {
    throw new Error(`body already ${size} bytes`);
  }
  return json + " ".repeat(bytes - size);
}

function nested(depth: number): string {
  return `${"[".repeat(depth)}${"]".repeat(depth)}`;
}

/** A body streamed in chunks, without a declared Content-Length. */
function streamOf(text: string, chunk = 4096): ReadableStream<Uint8Array> {
  const bytes = new TextEncoder().encode(text);
  let offset = 0;
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      if (offset >= bytes.byteLength) {
        controller.close();
        return;
      }
      controller.enqueue(bytes.slice(offset, offset + chunk));
      offset += chunk;
    },
  });
}

const json = { "content-type": "application/json" };

let p: TestPlatform;

beforeAll(async () => {
  p = await newPlatform();
});

describe("every error is an RFC 9457 problem with the request id", () => {
  it("400 malformed JSON", async () => {
    const res = await send("/v1/reports", { token: await p.token(), raw: '{"caseId": ', headers: json });
    const problem = expectProblem(res, 400, "malformed-json", "Malformed JSON");
    expect(problem.detail).toMatch(/not valid JSON/);
  });

  it("401 without a token, with WWW-Authenticate: Bearer", async () => {
    const res = await send("/v1/reports", { body: reportBody(await newBuyer()) });
    expectProblem(res, 401, "unauthenticated", "Authentication required");
    expect(res.headers.get("www-authenticate")).toMatch(/^Bearer\b/);
  });

  it("403 for a missing scope", async () => {
    const res = await send("/v1/reports", {
      token: await p.token({ scope: "scores:read" }),
      body: reportBody(await newBuyer()),
    });
    expectProblem(res, 403, "forbidden", "Forbidden");
  });

  it("404 for another platform's report, identical to one that does not exist", async () => {
    const owner = await newPlatform();
    const created = await callJson<{ id: string }>("/v1/reports", {
      token: await owner.token(),
      body: reportBody(await newBuyer()),
    });
    expect(created.status).toBe(201);
    const foreign = expectProblem(
      await send(`/v1/reports/${created.body.id}`, { token: await p.token() }),
      404,
      "not-found",
      "Not found",
    );
    const missing = expectProblem(
      await send("/v1/reports/rpt_01ZZZZZZZZZZZZZZZZZZZZZZZZ", { token: await p.token() }),
      404,
      "not-found",
    );
    expect(foreign.title).toBe(missing.title);
    expect(foreign.detail.replace(created.body.id, "ID")).toBe(
      missing.detail.replace("rpt_01ZZZZZZZZZZZZZZZZZZZZZZZZ", "ID"),
    );
  });

  it("409 for the same caseId with different content", async () => {
    const body = reportBody(await newBuyer());
    expect((await send("/v1/reports", { token: await p.token(), body })).status).toBe(201);
    const res = await send("/v1/reports", {
      token: await p.token(),
      body: { ...body, amount: { value: 1, currency: "CNY" } },
    });
    const problem = expectProblem(res, 409, "conflict", "Conflict");
    expect(problem.detail).toContain(body.caseId);
  });

  it("413 for a body over the limit", async () => {
    const res = await send("/v1/reports", {
      token: await p.token(),
      raw: paddedJson(reportBody(await newBuyer()), BODY_LIMIT + 1),
      headers: json,
    });
    const problem = expectProblem(res, 413, "payload-too-large", "Payload too large");
    expect(problem.detail).toContain(String(BODY_LIMIT));
  });

  it("415 for a body that is not JSON", async () => {
    const res = await send("/v1/reports", {
      token: await p.token(),
      raw: JSON.stringify(reportBody(await newBuyer())),
      headers: { "content-type": "text/plain" },
    });
    expectProblem(res, 415, "unsupported-media-type", "Unsupported media type");
  });

  it("422 with errors[] at the contract's dotted paths (subjects.0.hash, amount.value)", async () => {
    const [, device] = await newBuyer();
    const res = await send("/v1/reports", {
      token: await p.token(),
      body: reportBody([{ type: "phone", hash: "NOT-HEX" }, device as { type: string; hash: string }], {
        amount: { value: 0, currency: "CNY" },
        evidence: [
          { kind: "image_sha256", value: "a".repeat(64) },
          { kind: "selfie", value: "x" },
        ],
      }),
    });
    const problem = expectProblem(res, 422, "validation", "Validation failed");
    const paths = (problem.errors ?? []).map((e) => e.path).sort();
    expect(paths).toEqual(["amount.value", "evidence.1.kind", "subjects.0.hash"]);
    const hashError = problem.errors?.find((e) => e.path === "subjects.0.hash");
    expect(hashError?.message).toMatch(/64 lower-case hex/);
  });

  it("422 for a nested path two arrays deep in a bulk body", async () => {
    const res = await send("/v1/scores/batch", {
      token: await p.token(),
      body: {
        purpose: "refund_review",
        queries: [
          { ref: "ok", subjects: await newBuyer() },
          { ref: "bad", subjects: [{ type: "phone", hash: "z".repeat(64) }] },
        ],
      },
    });
    const problem = expectProblem(res, 422, "validation");
    expect((problem.errors ?? []).map((e) => e.path)).toEqual(["queries.1.subjects.0.hash"]);
  });

  it("422 for an unknown field (no mass assignment)", async () => {
    const res = await send("/v1/reports", {
      token: await p.token(),
      body: reportBody(await newBuyer(), { platformId: "someone-else" }),
    });
    const problem = expectProblem(res, 422, "validation");
    expect(JSON.stringify(problem.errors)).toContain("platformId");
  });

  it("500 for an internal failure: a bare problem, logged not leaked", async () => {
    const broken = await newPlatform();
    // A key set corrupted in D1 makes authentication throw something that is not a token error.
    // It stays valid JSON so admin listings other tests make meanwhile still read the row.
    await env.DB.prepare("UPDATE platforms SET jwks = ? WHERE id = ?").bind('{"keys": 5}', broken.id).run();
    let res: Answer;
    try {
      res = await send("/v1/reports", { token: await broken.token(), body: reportBody(await newBuyer()) });
    } finally {
      await env.DB.prepare("UPDATE platforms SET jwks = ? WHERE id = ?")
        .bind(JSON.stringify({ keys: [broken.publicJwk] }), broken.id)
        .run();
    }
    const problem = expectProblem(res, 500, "internal", "Internal error");
    expect(problem.detail).toBe("An internal error occurred.");
    expect(res.text).not.toMatch(/SyntaxError|JSON\.parse|Unexpected token/);
    const rows = await auditRowsEventually(problem.instance);
    expect(rows.map((r) => r.outcome)).toEqual(["error"]);
    expect(await countRows("reports", "platform_id = ?", broken.id)).toBe(0);
  });
});

describe("X-Request-Id on every response", () => {
  it("on successes: health, OpenAPI, report create, score, admin read", async () => {
    const answers = [
      await send("/healthz"),
      await send("/openapi.json"),
      await send("/v1/reports", { token: await p.token(), body: reportBody(await newBuyer()) }),
      await send("/v1/scores/query", {
        token: await p.token(),
        body: { subjects: await newBuyer(), purpose: "refund_review" },
      }),
      await send(`/v1/admin/platforms/${p.id}`, { token: await adminToken() }),
    ];
    expect(answers.map((a) => a.status)).toEqual([200, 200, 201, 200, 200]);
    const ids = answers.map((a) => a.headers.get("x-request-id") ?? "");
    for (const id of ids) {
      expect(id).toMatch(REQUEST_ID);
    }
    expect(new Set(ids).size).toBe(ids.length);
  });

  it("on errors outside /v1 and before authentication", async () => {
    const notFound = await send("/no-such-page");
    const problem = expectProblem(notFound, 404, "not-found");
    expect(problem.detail).toContain("/no-such-page");
    const unauthenticated = await send("/v1/reports");
    expectProblem(unauthenticated, 401, "unauthenticated");
  });

  it("is the ledger's own: a client-supplied X-Request-Id is not echoed", async () => {
    const clientId = `client-${uniqueId("rid")}`;
    const ok = await send("/healthz", { headers: { "x-request-id": clientId } });
    expect(ok.headers.get("x-request-id")).toMatch(REQUEST_ID);
    const bad = await send("/v1/reports", { headers: { "x-request-id": clientId } });
    const problem = expectProblem(bad, 401, "unauthenticated");
    expect(problem.instance).not.toBe(clientId);
    expect(bad.text).not.toContain(clientId);
  });

  it("names the request's audit entry", async () => {
    const res = await send("/v1/reports", { token: await p.token(), body: reportBody(await newBuyer()) });
    expect(res.status).toBe(201);
    const id = res.headers.get("x-request-id") ?? "";
    const rows = await auditRowsEventually(id);
    expect(rows.map((r) => [r.actor, r.action, r.outcome])).toEqual([
      [`platform:${p.id}`, "report.create", "created"],
    ]);
  });
});

describe("415: the body must be application/json (UTF-8)", () => {
  it.each([
    ["text/plain", "text/plain"],
    ["form encoding", "application/x-www-form-urlencoded"],
    ["another charset", "application/json; charset=iso-8859-1"],
    ["a JSON-like subtype", "application/merge-patch+json"],
    ["multipart", "multipart/form-data; boundary=x"],
  ])("%s → 415, nothing written", async (_name, type) => {
    const before = await footprint(p.id);
    const body = reportBody(await newBuyer());
    const res = await send("/v1/reports", {
      token: await p.token(),
      raw: JSON.stringify(body),
      headers: { "content-type": type },
    });
    expectProblem(res, 415, "unsupported-media-type");
    expect(await countRows("reports", "case_id = ?", body.caseId)).toBe(0);
    const after = await footprint(p.id);
    expect({ ...after, audit: before.audit }).toEqual(before);
  });

  it("no content type at all → 415", async () => {
    const res = await send("/v1/reports", {
      token: await p.token(),
      raw: new TextEncoder().encode(JSON.stringify(reportBody(await newBuyer()))),
    });
    expectProblem(res, 415, "unsupported-media-type");
  });

  it("application/json; charset=UTF-8 (any case) is accepted", async () => {
    const res = await send("/v1/reports", {
      token: await p.token(),
      raw: JSON.stringify(reportBody(await newBuyer())),
      headers: { "content-type": "Application/JSON; Charset=UTF-8" },
    });
    expect(res.status, res.text).toBe(201);
  });

  it("415 is decided before the size: an oversize text/plain body is 415", async () => {
    const res = await send("/v1/reports", {
      token: await p.token(),
      raw: "x".repeat(BODY_LIMIT * 2),
      headers: { "content-type": "text/plain" },
    });
    expectProblem(res, 415, "unsupported-media-type");
  });
});

describe("413: the body limit is enforced before parsing", () => {
  it("exactly 64 KiB is accepted; one byte more is 413", async () => {
    const atLimit = await send("/v1/reports", {
      token: await p.token(),
      raw: paddedJson(reportBody(await newBuyer()), BODY_LIMIT),
      headers: json,
    });
    expect(atLimit.status, atLimit.text).toBe(201);
    const before = await footprint(p.id);
    const body = reportBody(await newBuyer());
    const over = await send("/v1/reports", {
      token: await p.token(),
      raw: paddedJson(body, BODY_LIMIT + 1),
      headers: json,
    });
    expectProblem(over, 413, "payload-too-large");
    expect(await countRows("reports", "case_id = ?", body.caseId)).toBe(0);
    const after = await footprint(p.id);
    expect({ ...after, audit: before.audit }).toEqual(before);
  });

  it("an oversize body that is not even JSON is 413, not 400 (size before syntax)", async () => {
    const res = await send("/v1/reports", {
      token: await p.token(),
      raw: `{${"x".repeat(BODY_LIMIT)}`,
      headers: json,
    });
    expectProblem(res, 413, "payload-too-large");
  });

  it("an oversize streamed body without Content-Length is 413 too", async () => {
    const res = await send("/v1/reports", {
      token: await p.token(),
      raw: streamOf(paddedJson(reportBody(await newBuyer()), BODY_LIMIT * 4)),
      headers: json,
    });
    expectProblem(res, 413, "payload-too-large");
  });

  it("a streamed body within the limit is read and accepted", async () => {
    const res = await send("/v1/reports", {
      token: await p.token(),
      raw: streamOf(JSON.stringify(reportBody(await newBuyer())), 64),
      headers: json,
    });
    expect(res.status, res.text).toBe(201);
  });

  it("bulk routes take up to 1 MiB: over 64 KiB is fine, over 1 MiB is 413", async () => {
    const bulk = { reports: [reportBody(await newBuyer())] };
    const large = await send("/v1/reports/bulk", {
      token: await p.token(),
      raw: paddedJson(bulk, BULK_BODY_LIMIT),
      headers: json,
    });
    expect(large.status, large.text).toBe(200);
    const tooLarge = await send("/v1/reports/bulk", {
      token: await p.token(),
      raw: paddedJson({ reports: [reportBody(await newBuyer())] }, BULK_BODY_LIMIT + 1),
      headers: json,
    });
    const problem = expectProblem(tooLarge, 413, "payload-too-large");
    expect(problem.detail).toContain(String(BULK_BODY_LIMIT));
    const batch = await send("/v1/scores/batch", {
      token: await p.token(),
      raw: paddedJson(
        { purpose: "refund_review", queries: [{ ref: "a", subjects: await newBuyer() }] },
        BODY_LIMIT * 2,
      ),
      headers: json,
    });
    expect(batch.status, batch.text).toBe(200);
  });

  it("without a valid token the body is never read: an oversize body answers 401", async () => {
    const raw = paddedJson(reportBody(await newBuyer()), BODY_LIMIT * 2);
    const none = await send("/v1/reports", {
      raw,
      headers: { ...json, "cf-connecting-ip": uniqueId("src") },
    });
    const problem = expectProblem(none, 401, "unauthenticated");
    const rows = await auditRowsEventually(problem.instance);
    expect(rows.map((r) => [r.action, r.outcome])).toEqual([["auth.reject", "unauthenticated"]]);
    const bad = await send("/v1/reports", {
      raw,
      headers: { ...json, authorization: "Bearer not.a.jwt", "cf-connecting-ip": uniqueId("src") },
    });
    expectProblem(bad, 401, "unauthenticated");
  });
});

describe("400: malformed and over-deep JSON", () => {
  it.each([
    ["truncated", '{"caseId": "A", "subjects": ['],
    ["trailing comma", '{"caseId": "A",}'],
    ["single quotes", "{'caseId': 'A'}"],
    ["empty body", ""],
    ["two documents", '{"a": 1}{"b": 2}'],
    ["a bare word", "undefined"],
  ])("%s → 400 malformed-json", async (_name, raw) => {
    const res = await send("/v1/reports", { token: await p.token(), raw, headers: json });
    expectProblem(res, 400, "malformed-json");
  });

  it("bytes that are not UTF-8 → 400 malformed-json", async () => {
    const raw = new Uint8Array([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xff, 0xfe, 0x22, 0x7d]);
    const res = await send("/v1/reports", { token: await p.token(), raw, headers: json });
    const problem = expectProblem(res, 400, "malformed-json");
    expect(problem.detail).toMatch(/UTF-8/);
  });

  it("nesting deeper than 8 levels → 400; 8 levels passes the gate (then 422)", async () => {
    const deep = await send("/v1/reports", {
      token: await p.token(),
      body: reportBody(await newBuyer(), { note: JSON.parse(nested(8)) }),
    });
    const problem = expectProblem(deep, 400, "bad-request", "Bad request");
    expect(problem.detail).toMatch(/deeper than 8/);
    const atLimit = await send("/v1/reports", {
      token: await p.token(),
      body: reportBody(await newBuyer(), { note: JSON.parse(nested(7)) }),
    });
    const validation = expectProblem(atLimit, 422, "validation");
    expect((validation.errors ?? []).map((e) => e.path)).toEqual(["note"]);
  });

  it("a pathological nesting (30 000 levels, within the size limit) is a 400, not a 500", async () => {
    const res = await send("/v1/reports", { token: await p.token(), raw: nested(30_000), headers: json });
    expectProblem(res, 400, "bad-request");
  });

  it("brackets inside strings are not nesting", async () => {
    const res = await send("/v1/reports", {
      token: await p.token(),
      body: reportBody(await newBuyer(), { note: `${"[{".repeat(20)} \\" ${"]}".repeat(20)}` }),
    });
    expect(res.status, res.text).toBe(201);
  });

  it("a refused body changes nothing but its own audit entry, and does not spend the token", async () => {
    // A platform of its own: no earlier request's late audit entry can land while counting.
    const q = await newPlatform();
    expect(
      (await send("/v1/reports", { token: await q.token(), body: reportBody(await newBuyer()) })).status,
    ).toBe(201);
    const token = await q.token();
    const before = await footprint(q.id);
    expect(before.reports).toBe(1);
    const res = await send("/v1/reports", { token, raw: '{"caseId": "X", "subjects": [', headers: json });
    const problem = expectProblem(res, 400, "malformed-json");
    const rows = await auditRowsEventually(problem.instance);
    expect(rows.map((r) => [r.actor, r.outcome])).toEqual([[`platform:${q.id}`, "invalid"]]);
    const details = JSON.parse(rows[0]?.details ?? "{}") as { status?: number };
    expect(details.status).toBe(400);
    expect(await footprint(q.id)).toEqual({ ...before, audit: before.audit + 1 });

    const invalid = await send("/v1/reports", {
      token,
      body: reportBody([{ type: "phone", hash: "0".repeat(63) }]),
    });
    const validation = expectProblem(invalid, 422, "validation");
    expect(await auditRowsEventually(validation.instance)).toHaveLength(1);
    expect(await footprint(q.id)).toEqual({ ...before, audit: before.audit + 2 });

    // The token was never claimed by a refused request, so it still writes once.
    const ok = await send("/v1/reports", { token, body: reportBody(await newBuyer()) });
    expect(ok.status, ok.text).toBe(201);
    const after = await footprint(q.id);
    expect(after.reports).toBe(before.reports + 1);
    expect(after.subjects).toBe(before.subjects + 2);
    expect(after.tokenUses).toBe(before.tokenUses + 1);
  });
});

describe("404 for unknown routes", () => {
  it("an unknown /v1 route with a valid token → 404 problem naming the route", async () => {
    const problem = expectProblem(
      await send("/v1/no-such-thing", { token: await p.token() }),
      404,
      "not-found",
    );
    expect(problem.detail).toBe("No route for GET /v1/no-such-thing");
  });

  it("an unknown /v1 route without a token → 401 (the route map is not shown to strangers)", async () => {
    expectProblem(await send("/v1/no-such-thing"), 401, "unauthenticated");
  });

  it("a known path with a method it does not serve → 404 problem (the contract lists no 405)", async () => {
    const created = await callJson<{ id: string }>("/v1/reports", {
      token: await p.token(),
      body: reportBody(await newBuyer()),
    });
    expect(created.status).toBe(201);
    const del = await send(`/v1/reports/${created.body.id}`, { method: "DELETE", token: await p.token() });
    expectProblem(del, 404, "not-found");
    const put = await send("/v1/scores/query", { method: "PUT", token: await p.token(), body: {} });
    expectProblem(put, 404, "not-found");
    const row = await env.DB.prepare("SELECT status FROM reports WHERE id = ?")
      .bind(created.body.id)
      .first<{ status: string }>();
    expect(row?.status).toBe("active");
  });
});

describe("429 rate limited", () => {
  it("answers 429 with Retry-After once a platform exceeds its write limit", async () => {
    // RL_WRITES allows 600 a minute per principal. Spending 599 on the binding (the middleware's
    // key) and sending the 600th and 601st keeps this test to three requests, all in one window.
    const { flood, last, limited } = await inOneRateLimitWindow(async () => {
      const flood = await newPlatform();
      await spendRateLimit(env.RL_WRITES, `writes:platform:${flood.id}`, 599);
      const token = await flood.token();
      const body = { token, raw: "{}", headers: { "content-type": "text/plain" } };
      const last = await send("/v1/reports", body);
      return { flood, last, limited: await send("/v1/reports", body) };
    });
    expect(last.status).toBe(415);
    const problem = expectProblem(limited, 429, "rate-limited", "Too many requests");
    expect(problem.detail).toMatch(/writes/);
    expect(limited.headers.get("retry-after")).toBe("60");
    const rows = await auditRowsEventually(problem.instance);
    expect(rows.map((r) => [r.actor, r.outcome])).toEqual([[`platform:${flood.id}`, "rate_limited"]]);
    expect(await countRows("reports", "platform_id = ?", flood.id)).toBe(0);
  });
});

describe("D1 failures are classified in one place", () => {
  it("names a unique constraint, a failed precondition, or neither", async () => {
    const id = `dup-${Date.now()}`;
    await env.DB.prepare("INSERT INTO token_uses (key, expires_at) VALUES (?, 1)").bind(id).run();
    const unique = await env.DB.prepare("INSERT INTO token_uses (key, expires_at) VALUES (?, 1)")
      .bind(id)
      .run()
      .catch((e: unknown) => e);
    expect(classifyD1Error(unique)).toEqual({ kind: "unique", constraints: ["token_uses.key"] });
    expect(isUniqueViolation(unique, "token_uses.key")).toBe(true);
    expect(isUniqueViolation(unique, "platforms.id")).toBe(false);
    const precondition = await env.DB.prepare("SELECT json('pixiu-precondition')")
      .run()
      .catch((e: unknown) => e);
    expect(classifyD1Error(precondition)).toEqual({ kind: "precondition" });
    const other = await env.DB.prepare("SELECT * FROM no_such_table")
      .run()
      .catch((e: unknown) => e);
    expect(classifyD1Error(other)).toEqual({ kind: "other" });
  });
});
