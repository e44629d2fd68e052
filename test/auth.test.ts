/**
 * Authentication through the HTTP API (CONTRACT §2, RFC 8725): every token attack a member
 * platform's endpoint could face is answered 401 (or 403 where the token is good but the
 * principal may not act) with a problem+json body, leaves an audit entry, and changes no row.
 * Tokens are forged by hand (header and claims as raw JSON, signed with WebCrypto) so each
 * attack differs from an accepted token in exactly one respect; a control test proves the
 * forger's untouched output is accepted.
 */
import { env } from "cloudflare:workers";
import { base64url, decodeJwt, exportJWK, generateKeyPair, importJWK, type JWK } from "jose";
import { beforeAll, describe, expect, it } from "vitest";
import { anonymousAuditAllowed } from "../worker/middleware/auth";
import {
  adminToken,
  auditCount,
  auditRows,
  call,
  callJson,
  countRows,
  drainAuditOutbox,
  inOneRateLimitWindow,
  logCount,
  logQuery,
  newBuyer,
  newKeyPair,
  newPlatform,
  reportBody,
  spendRateLimit,
  type TestPlatform,
  uniqueId,
} from "./harness";

const AUDIENCE = "pixiu";
const ADMIN_KID = "test-admin";
const UNAUTHENTICATED = "https://pixiu.dev/problems/unauthenticated";
const FORBIDDEN = "https://pixiu.dev/problems/forbidden";
/** RL_AUTH_FAILURES in wrangler.toml: audited rejections per source and minute, and 429s per principal. */
const AUDITED_REJECTIONS_PER_PERIOD = 20;

type Json = Record<string, unknown>;

interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  instance: string;
  errors?: unknown;
}

interface AuditRow {
  actor: string;
  action: string;
  target: string | null;
  outcome: string;
  details: string | null;
}

const nowSeconds = () => Math.floor(Date.now() / 1000);

/** The claims of a token the ledger accepts from `iss`; override or delete any of them. */
function claimsFor(iss: string, overrides: Json = {}): Json {
  const iat = nowSeconds();
  return { iss, aud: AUDIENCE, iat, exp: iat + 120, jti: crypto.randomUUID(), ...overrides };
}

function without(object: Json, key: string): Json {
  const { [key]: _dropped, ...rest } = object;
  return rest;
}

function encodeSegment(value: unknown): string {
  return base64url.encode(JSON.stringify(value));
}

/** WebCrypto parameters for each JWS algorithm this file signs with. */
function webCryptoAlgorithm(alg: string): { name: string; hash?: string } {
  switch (alg) {
    case "ES256":
      return { name: "ECDSA", hash: "SHA-256" };
    case "ES384":
      return { name: "ECDSA", hash: "SHA-384" };
    case "EdDSA":
      return { name: "Ed25519" };
    case "RS256":
      return { name: "RSASSA-PKCS1-v1_5" };
    default:
      return { name: "HMAC" };
  }
}

/** Signs `header.payload` exactly as given, with any key: the attacker's forge. */
async function forge(header: Json, payload: Json | string, key: CryptoKey, alg = String(header.alg)) {
  const body = typeof payload === "string" ? base64url.encode(payload) : encodeSegment(payload);
  const input = `${encodeSegment(header)}.${body}`;
  const signature = await crypto.subtle.sign(webCryptoAlgorithm(alg), key, new TextEncoder().encode(input));
  return `${input}.${base64url.encode(new Uint8Array(signature))}`;
}

async function privateKeyOf(jwk: JWK): Promise<CryptoKey> {
  return (await importJWK(jwk, jwk.kty === "OKP" ? "EdDSA" : "ES256")) as CryptoKey;
}

/** A token signed with the platform's own private key, header and claims as given. */
async function platformSigned(p: TestPlatform, claims: Json, header: Json = {}) {
  const alg = p.privateJwk.kty === "OKP" ? "EdDSA" : "ES256";
  return forge(
    { alg, kid: p.privateJwk.kid, typ: "JWT", ...header },
    claims,
    await privateKeyOf(p.privateJwk),
  );
}

async function hmacKey(secret: Uint8Array, hash: string): Promise<CryptoKey> {
  return crypto.subtle.importKey("raw", secret, { name: "HMAC", hash }, false, ["sign"]);
}

async function reportCount(platformId: string) {
  return countRows("reports", "platform_id = ?", platformId);
}

async function auditRowsFor(requestId: string): Promise<AuditRow[]> {
  return (await auditRows(requestId)).map(({ actor, action, target, outcome, details }) => ({
    actor,
    action,
    target,
    outcome,
    details,
  })) as AuditRow[];
}

/** Entries written after the response (waitUntil) need a moment to land. */
async function auditRowsEventually(requestId: string): Promise<AuditRow[]> {
  for (let i = 0; i < 100; i++) {
    const rows = await auditRowsFor(requestId);
    if (rows.length > 0) {
      return rows;
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  return auditRowsFor(requestId);
}

async function rejectionsAuditedFor(source: string): Promise<number> {
  return auditCount("action = 'auth.reject' AND json_extract(details, '$.source') = ?", source);
}

/** A source address no other request uses, so the per-source audit limit never hides an entry. */
const freshSource = () => uniqueId("src");

function expectProblem(
  res: { status: number; headers: Headers; body: Problem },
  status: number,
  type: string,
): void {
  expect(res.status, JSON.stringify(res.body)).toBe(status);
  expect(res.headers.get("content-type")).toMatch(/^application\/problem\+json/);
  expect(res.body.type).toBe(type);
  expect(res.body.status).toBe(status);
  expect(res.body.title.length).toBeGreaterThan(0);
  expect(res.body.detail.length).toBeGreaterThan(0);
  expect(res.body.instance).toMatch(/^req_/);
  expect(res.body.instance).toBe(res.headers.get("x-request-id"));
  expect(res.body.errors).toBeUndefined();
}

/**
 * Sends a report that would be created with a good token, under `authorization` as given, and
 * asserts the whole rejection: 401 problem with `WWW-Authenticate: Bearer`, the reason, an
 * `auth.reject` audit entry for this request, and no report written.
 */
async function expectRejected(
  p: TestPlatform,
  authorization: string | null,
  reason: RegExp,
  options: { path?: string; method?: string; body?: unknown; claimedIssuer?: string | null } = {},
) {
  const before = await reportCount(p.id);
  const source = freshSource();
  const payload = options.body ?? reportBody(await newBuyer());
  const headers: Record<string, string> = { "cf-connecting-ip": source };
  if (authorization !== null) {
    headers.authorization = authorization;
  }
  const path = options.path ?? "/v1/reports";
  const method = options.method ?? "POST";
  const res = await callJson<Problem>(path, {
    method,
    headers,
    ...(method === "GET" ? {} : { body: payload }),
  });
  expectProblem(res, 401, UNAUTHENTICATED);
  expect(res.body.title).toBe("Authentication required");
  expect(res.headers.get("www-authenticate")).toMatch(/^Bearer\b/);
  expect(res.body.detail).toMatch(reason);
  const rows = await auditRowsEventually(res.body.instance);
  expect(rows).toHaveLength(1);
  const [row] = rows;
  expect(row?.action).toBe("auth.reject");
  expect(row?.outcome).toBe("unauthenticated");
  expect(row?.actor).toBe("anonymous");
  expect(row?.target).toBe(`${method} ${path}`);
  const details = JSON.parse(row?.details ?? "{}") as Json;
  expect(details.source).toBe(source);
  expect(details.reason).toBe(res.body.detail);
  if (options.claimedIssuer !== undefined) {
    expect(details.claimedIssuer).toBe(options.claimedIssuer);
  }
  expect(await reportCount(p.id)).toBe(before);
  if (typeof payload === "object" && payload !== null && "caseId" in payload) {
    expect(await countRows("reports", "case_id = ?", (payload as { caseId: string }).caseId)).toBe(0);
  }
  return res;
}

async function createReport(token: string, subjects?: { type: string; hash: string }[]) {
  return callJson<{ id: string; platformId: string }>("/v1/reports", {
    token,
    body: reportBody(subjects ?? (await newBuyer())),
  });
}

async function scoreQuery(token: string, subjects?: { type: string; hash: string }[]) {
  return callJson<{ score: number } & Problem>("/v1/scores/query", {
    token,
    body: { subjects: subjects ?? (await newBuyer()), purpose: "refund_review" },
  });
}

async function adminPatch(id: string, body: Json) {
  const res = await callJson<{ status: string; scopes: string[] }>(`/v1/admin/platforms/${id}`, {
    method: "PATCH",
    token: await adminToken(),
    body,
  });
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res.body;
}

async function putKeys(id: string, keys: JWK[]) {
  const res = await callJson(`/v1/admin/platforms/${id}/keys`, {
    method: "PUT",
    token: await adminToken(),
    body: { keys },
  });
  expect(res.status, JSON.stringify(res.body)).toBe(200);
}

let p: TestPlatform;
let other: TestPlatform;

beforeAll(async () => {
  p = await newPlatform();
  other = await newPlatform({ alg: "ES256" });
});

describe("the forger itself", () => {
  it("an untouched forged token is accepted, so each rejection below is due to its one defect", async () => {
    const before = await reportCount(p.id);
    const res = await createReport(await platformSigned(p, claimsFor(p.id)));
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    expect(res.body.platformId).toBe(p.id);
    const es = await createReport(await platformSigned(other, claimsFor(other.id)));
    expect(es.status, JSON.stringify(es.body)).toBe(201);
    expect(await reportCount(p.id)).toBe(before + 1);
  });
});

describe("missing or malformed Authorization", () => {
  it("no token → 401 with WWW-Authenticate: Bearer, audited, nothing written", async () => {
    await expectRejected(p, null, /missing bearer token/, { claimedIssuer: null });
  });

  it("no token on a read (GET /v1/reports) → 401 too", async () => {
    await expectRejected(p, null, /missing bearer token/, { method: "GET" });
  });

  it.each([
    ["another scheme", async () => `Basic ${btoa(`${p.id}:secret`)}`],
    ["scheme without a token", async () => "Bearer"],
    ["scheme with an empty token", async () => "Bearer "],
    ["lower-case scheme", async () => `bearer ${await p.token()}`],
    ["two spaces", async () => `Bearer  ${await p.token()}`],
    ["token without the scheme", async () => p.token()],
    ["two tokens", async () => `Bearer ${await p.token()} ${await p.token()}`],
    ["characters outside base64url", async () => `Bearer ${(await p.token()).replace(".", "+")}`],
  ])("%s → 401", async (_name, header) => {
    await expectRejected(p, await header(), /missing bearer token/);
  });

  it.each([
    ["one segment", "abc"],
    ["two segments", "abc.def"],
    ["segments that are not JSON", "YWJj.ZGVm.Z2hp"],
    ["four segments", "a.b.c.d"],
  ])("a token that is not a JWT (%s) → 401", async (_name, token) => {
    await expectRejected(p, `Bearer ${token}`, /not a JWT|header is not readable|no iss/);
  });
});

describe("algorithm attacks (RFC 8725 §2.1, §3.1)", () => {
  it.each(["none", "None", "NONE", "nOnE"])("alg %s with an empty signature → 401", async (alg) => {
    const header = encodeSegment({ alg, kid: p.privateJwk.kid, typ: "JWT" });
    const token = `${header}.${encodeSegment(claimsFor(p.id))}.`;
    await expectRejected(p, `Bearer ${token}`, new RegExp(`algorithm ${alg} is not accepted`), {
      claimedIssuer: p.id,
    });
  });

  it("alg none with the real signature segment of a valid token still → 401", async () => {
    const valid = await platformSigned(p, claimsFor(p.id));
    const [, payload, signature] = valid.split(".");
    const token = `${encodeSegment({ alg: "none", kid: p.privateJwk.kid })}.${payload}.${signature}`;
    await expectRejected(p, `Bearer ${token}`, /algorithm none is not accepted/);
  });

  it("HS256 keyed with the platform's raw public key bytes (key confusion) → 401", async () => {
    const secret = base64url.decode(String(p.publicJwk.x));
    const token = await forge(
      { alg: "HS256", kid: p.privateJwk.kid, typ: "JWT" },
      claimsFor(p.id),
      await hmacKey(secret, "SHA-256"),
    );
    await expectRejected(p, `Bearer ${token}`, /algorithm HS256 is not accepted/);
  });

  it.each([
    ["HS256", "SHA-256"],
    ["HS384", "SHA-384"],
    ["HS512", "SHA-512"],
  ])("%s keyed with the platform's public JWK as registered (JSON bytes) → 401", async (alg, hash) => {
    const secret = new TextEncoder().encode(JSON.stringify(p.publicJwk));
    const token = await forge(
      { alg, kid: p.privateJwk.kid, typ: "JWT" },
      claimsFor(p.id),
      await hmacKey(secret, hash),
    );
    await expectRejected(p, `Bearer ${token}`, new RegExp(`algorithm ${alg} is not accepted`));
  });

  it("HS256 keyed with the ES256 platform's public point (x‖y) → 401", async () => {
    const x = base64url.decode(String(other.publicJwk.x));
    const y = base64url.decode(String(other.publicJwk.y));
    const point = new Uint8Array([4, ...x, ...y]);
    const token = await forge(
      { alg: "HS256", kid: other.privateJwk.kid },
      claimsFor(other.id),
      await hmacKey(point, "SHA-256"),
    );
    await expectRejected(other, `Bearer ${token}`, /algorithm HS256 is not accepted/);
  });

  it("RS256, validly signed by an RSA key under the platform's kid → 401", async () => {
    const rsa = await generateKeyPair("RS256", { extractable: true });
    const token = await forge(
      { alg: "RS256", kid: p.privateJwk.kid, typ: "JWT" },
      claimsFor(p.id),
      rsa.privateKey as CryptoKey,
    );
    await expectRejected(p, `Bearer ${token}`, /algorithm RS256 is not accepted/);
  });

  it("ES384, validly signed by a P-384 key under the platform's kid → 401", async () => {
    const ec = await generateKeyPair("ES384", { extractable: true });
    const token = await forge(
      { alg: "ES384", kid: p.privateJwk.kid, typ: "JWT" },
      claimsFor(p.id),
      ec.privateKey as CryptoKey,
    );
    await expectRejected(p, `Bearer ${token}`, /algorithm ES384 is not accepted/);
  });

  it("an allowed alg that does not match the key type (ES256 header, Ed25519 key) → 401", async () => {
    const token = await forge(
      { alg: "ES256", kid: p.privateJwk.kid, typ: "JWT" },
      claimsFor(p.id),
      await privateKeyOf(p.privateJwk),
      "EdDSA",
    );
    await expectRejected(p, `Bearer ${token}`, /no key of this issuer matches the kid/);
  });

  it("an allowed alg that does not match the key type (EdDSA header, P-256 key) → 401", async () => {
    const token = await forge(
      { alg: "EdDSA", kid: other.privateJwk.kid, typ: "JWT" },
      claimsFor(other.id),
      await privateKeyOf(other.privateJwk),
      "ES256",
    );
    await expectRejected(other, `Bearer ${token}`, /no key of this issuer matches the kid/);
  });

  it("an attacker's key embedded in the header (jwk) under the platform's kid → 401", async () => {
    const attacker = await newKeyPair("EdDSA", String(p.privateJwk.kid));
    const token = await forge(
      { alg: "EdDSA", kid: p.privateJwk.kid, jwk: attacker.publicJwk, typ: "JWT" },
      claimsFor(p.id),
      await privateKeyOf(attacker.privateJwk),
    );
    await expectRejected(p, `Bearer ${token}`, /signature verification failed/);
  });

  it("a jku header pointing at an attacker's key set is ignored → 401", async () => {
    const attacker = await newKeyPair("EdDSA", String(p.privateJwk.kid));
    const token = await forge(
      { alg: "EdDSA", kid: p.privateJwk.kid, jku: "https://attacker.example/jwks.json", typ: "JWT" },
      claimsFor(p.id),
      await privateKeyOf(attacker.privateJwk),
    );
    await expectRejected(p, `Bearer ${token}`, /signature verification failed/);
  });

  it("a crit header (even one validly signed) → 401", async () => {
    const token = await platformSigned(p, claimsFor(p.id), { crit: ["exp"], b64: true });
    await expectRejected(p, `Bearer ${token}`, /crit headers are not accepted/);
  });
});

describe("signature and payload integrity", () => {
  it("a tampered payload under a valid signature segment → 401", async () => {
    const valid = await platformSigned(p, claimsFor(p.id, { scope: "scores:read" }));
    const [header, , signature] = valid.split(".");
    const widened = encodeSegment({ ...decodeJwt(valid), scope: "reports:write scores:read" });
    await expectRejected(p, `Bearer ${header}.${widened}.${signature}`, /signature verification failed/);
  });

  it("a payload re-pointed at another platform under the first platform's signature → 401", async () => {
    const valid = await platformSigned(p, claimsFor(p.id));
    const [header, , signature] = valid.split(".");
    const moved = encodeSegment({ ...decodeJwt(valid), iss: other.id });
    const before = await reportCount(other.id);
    await expectRejected(
      p,
      `Bearer ${header}.${moved}.${signature}`,
      /no key of this issuer matches the kid/,
      {
        claimedIssuer: other.id,
      },
    );
    expect(await reportCount(other.id)).toBe(before);
  });

  it("a tampered header (typ changed) under a valid signature → 401", async () => {
    const valid = await platformSigned(p, claimsFor(p.id));
    const [, payload, signature] = valid.split(".");
    const header = encodeSegment({ alg: "EdDSA", kid: p.privateJwk.kid, typ: "at+jwt" });
    await expectRejected(p, `Bearer ${header}.${payload}.${signature}`, /signature verification failed/);
  });

  it("a signature with one bit flipped, and a signature removed → 401", async () => {
    const valid = await platformSigned(p, claimsFor(p.id));
    const [header, payload, signature = ""] = valid.split(".");
    const bytes = base64url.decode(signature);
    bytes[0] = (bytes[0] ?? 0) ^ 1;
    await expectRejected(
      p,
      `Bearer ${header}.${payload}.${base64url.encode(bytes)}`,
      /signature verification failed/,
    );
    await expectRejected(p, `Bearer ${header}.${payload}.`, /signature verification failed/);
  });

  it("a valid token of the platform signed by a stranger's key under its kid → 401", async () => {
    const stranger = await newKeyPair("EdDSA", String(p.privateJwk.kid));
    const token = await forge(
      { alg: "EdDSA", kid: p.privateJwk.kid, typ: "JWT" },
      claimsFor(p.id),
      await privateKeyOf(stranger.privateJwk),
    );
    await expectRejected(p, `Bearer ${token}`, /signature verification failed/);
  });
});

describe("claims (CONTRACT §2: iss, aud, iat, exp, jti required; kid required)", () => {
  it("missing iss → 401", async () => {
    const token = await platformSigned(p, without(claimsFor(p.id), "iss"));
    await expectRejected(p, `Bearer ${token}`, /no iss/, { claimedIssuer: null });
  });

  it.each(["aud", "iat", "exp", "jti"])("missing %s → 401", async (claim) => {
    const token = await platformSigned(p, without(claimsFor(p.id), claim));
    await expectRejected(p, `Bearer ${token}`, new RegExp(`\\b${claim}\\b`), { claimedIssuer: p.id });
  });

  it("missing kid in the header → 401", async () => {
    const alg = "EdDSA";
    const token = await forge({ alg, typ: "JWT" }, claimsFor(p.id), await privateKeyOf(p.privateJwk));
    await expectRejected(p, `Bearer ${token}`, /no kid/);
  });

  it("an empty kid → 401", async () => {
    const token = await platformSigned(p, claimsFor(p.id), { kid: "" });
    await expectRejected(p, `Bearer ${token}`, /no kid/);
  });

  it("an empty iss → 401", async () => {
    const token = await platformSigned(p, claimsFor(p.id, { iss: "" }));
    await expectRejected(p, `Bearer ${token}`, /no iss/);
  });

  it.each([
    ["empty", ""],
    ["65 characters", "j".repeat(65)],
    ["a number", 12345],
    ["an object", { id: "x" }],
  ])("a jti that is %s → 401", async (_name, jti) => {
    const token = await platformSigned(p, claimsFor(p.id, { jti }));
    await expectRejected(p, `Bearer ${token}`, /jti/);
  });

  it("a jti of exactly 64 characters (and of 1) is accepted", async () => {
    const long = await createReport(
      await platformSigned(p, claimsFor(p.id, { jti: uniqueId("j").padEnd(64, "x") })),
    );
    expect(long.status, JSON.stringify(long.body)).toBe(201);
    const short = await scoreQuery(await platformSigned(p, claimsFor(p.id, { jti: "1" })));
    expect(short.status, JSON.stringify(short.body)).toBe(200);
  });

  it.each([
    ["another audience", "pixiu-staging"],
    ["the audience in other case", "PIXIU"],
    ["an empty audience", ""],
    ["a list without the ledger", ["other-ledger"]],
    ["a list naming the ledger and another service", [AUDIENCE, "other-service"]],
  ])("wrong aud (%s) → 401", async (_name, aud) => {
    const token = await platformSigned(p, claimsFor(p.id, { aud }));
    await expectRejected(p, `Bearer ${token}`, /aud/);
  });

  it("aud as a one-element list holding the ledger's audience is accepted (RFC 7519 §4.1.3)", async () => {
    const res = await createReport(await platformSigned(p, claimsFor(p.id, { aud: [AUDIENCE] })));
    expect(res.status, JSON.stringify(res.body)).toBe(201);
  });

  it.each([
    ["a string", "soon"],
    ["null", null],
  ])("a non-numeric exp (%s) → 401", async (_name, exp) => {
    const token = await platformSigned(p, claimsFor(p.id, { exp }));
    await expectRejected(p, `Bearer ${token}`, /exp/);
  });

  it("a non-numeric iat → 401", async () => {
    const token = await platformSigned(p, claimsFor(p.id, { iat: "now" }));
    await expectRejected(p, `Bearer ${token}`, /iat/);
  });

  it("a scope that is not a string → 401", async () => {
    const token = await platformSigned(p, claimsFor(p.id, { scope: ["reports:write"] }));
    await expectRejected(p, `Bearer ${token}`, /scope must be a space-separated string/);
  });
});

describe("lifetime and clock (exp - iat ≤ 300 s; iat ≤ now + 60 s)", () => {
  it("expired → 401", async () => {
    const iat = nowSeconds() - 200;
    const token = await platformSigned(p, claimsFor(p.id, { iat, exp: iat + 120 }));
    await expectRejected(p, `Bearer ${token}`, /expired/);
  });

  it("a lifetime of 301 s → 401, of exactly 300 s → accepted", async () => {
    const iat = nowSeconds();
    const tooLong = await platformSigned(p, claimsFor(p.id, { iat, exp: iat + 301 }));
    await expectRejected(p, `Bearer ${tooLong}`, /lifetime exceeds 300/);
    const day = await platformSigned(p, claimsFor(p.id, { iat, exp: iat + 86_400 }));
    await expectRejected(p, `Bearer ${day}`, /lifetime exceeds 300/);
    const max = await createReport(await platformSigned(p, claimsFor(p.id, { iat, exp: iat + 300 })));
    expect(max.status, JSON.stringify(max.body)).toBe(201);
  });

  it("exp equal to or before iat → 401", async () => {
    const iat = nowSeconds() + 30;
    const same = await platformSigned(p, claimsFor(p.id, { iat, exp: iat }));
    await expectRejected(p, `Bearer ${same}`, /exp must be after iat/);
    const before = await platformSigned(p, claimsFor(p.id, { iat, exp: iat - 1 }));
    await expectRejected(p, `Bearer ${before}`, /exp must be after iat/);
  });

  it("iat 120 s in the future (beyond the 60 s skew) → 401", async () => {
    const iat = nowSeconds() + 120;
    const token = await platformSigned(p, claimsFor(p.id, { iat, exp: iat + 120 }));
    await expectRejected(p, `Bearer ${token}`, /iat is in the future/);
  });

  it("iat 30 s in the future (within the skew) is accepted", async () => {
    const iat = nowSeconds() + 30;
    const res = await createReport(await platformSigned(p, claimsFor(p.id, { iat, exp: iat + 120 })));
    expect(res.status, JSON.stringify(res.body)).toBe(201);
  });
});

describe("issuer and key identity", () => {
  it("an unknown kid for this platform → 401", async () => {
    const token = await platformSigned(p, claimsFor(p.id), { kid: uniqueId("nokey") });
    await expectRejected(p, `Bearer ${token}`, /no key of this issuer matches the kid/);
  });

  it("an unknown issuer → 401", async () => {
    const iss = uniqueId("ghost");
    const token = await platformSigned(p, claimsFor(iss));
    await expectRejected(p, `Bearer ${token}`, /unknown issuer/, { claimedIssuer: iss });
  });

  it("an unknown issuer of 4,000 characters is stored cut to 64", async () => {
    const iss = `${uniqueId("ghost")}${"x".repeat(4000)}`;
    const token = await platformSigned(p, claimsFor(iss));
    await expectRejected(p, `Bearer ${token}`, /unknown issuer/, { claimedIssuer: iss.slice(0, 64) });
  });

  it("this platform's iss with another platform's kid, signed by that platform's key → 401", async () => {
    const token = await platformSigned(other, claimsFor(p.id));
    await expectRejected(p, `Bearer ${token}`, /no key of this issuer matches the kid/, {
      claimedIssuer: p.id,
    });
  });

  it("vice versa: the other platform's iss with this platform's kid and key → 401", async () => {
    const token = await platformSigned(p, claimsFor(other.id));
    const before = await reportCount(other.id);
    await expectRejected(other, `Bearer ${token}`, /no key of this issuer matches the kid/, {
      claimedIssuer: other.id,
    });
    expect(await reportCount(other.id)).toBe(before);
  });

  it("iss pixiu-admin with a platform's kid and key → 401", async () => {
    const token = await platformSigned(p, claimsFor("pixiu-admin"));
    await expectRejected(p, `Bearer ${token}`, /no key of this issuer matches the kid/, {
      path: "/v1/admin/platforms",
      method: "GET",
      claimedIssuer: "pixiu-admin",
    });
  });

  it("a platform's iss with the admin's kid and the admin's key → 401", async () => {
    const adminJwk = JSON.parse(env.TEST_ADMIN_JWK) as JWK;
    expect(adminJwk.kid).toBe(ADMIN_KID);
    const token = await forge(
      { alg: "EdDSA", kid: ADMIN_KID, typ: "JWT" },
      claimsFor(p.id),
      await privateKeyOf(adminJwk),
    );
    await expectRejected(p, `Bearer ${token}`, /no key of this issuer matches the kid/);
  });

  it("an admin token with an unknown kid → 401", async () => {
    const stranger = await newKeyPair("EdDSA", "not-an-admin");
    const token = await forge(
      { alg: "EdDSA", kid: "not-an-admin", typ: "JWT" },
      claimsFor("pixiu-admin"),
      await privateKeyOf(stranger.privateJwk),
    );
    await expectRejected(p, `Bearer ${token}`, /no key of this issuer matches the kid/, {
      path: "/v1/admin/platforms",
      method: "GET",
    });
  });

  it("no platform can be registered under the admin issuer's name", async () => {
    const keys = await newKeyPair();
    const res = await callJson<Problem>("/v1/admin/platforms", {
      token: await adminToken(),
      body: {
        id: "pixiu-admin",
        name: "Impostor",
        scopes: ["reports:write"],
        jwks: { keys: [keys.publicJwk] },
      },
    });
    expect(res.status).toBe(422);
    expect(await countRows("platforms", "id = 'pixiu-admin'")).toBe(0);
  });
});

describe("jti replay (CONTRACT §2)", () => {
  it("a token used for a report create is refused (401) on the next state-changing request", async () => {
    const token = await p.token();
    const before = await reportCount(p.id);
    const first = await createReport(token);
    expect(first.status, JSON.stringify(first.body)).toBe(201);
    const source = freshSource();
    const replay = await callJson<Problem>("/v1/reports", {
      token,
      body: reportBody(await newBuyer()),
      headers: { "cf-connecting-ip": source },
    });
    expectProblem(replay, 401, UNAUTHENTICATED);
    expect(replay.body.detail).toMatch(/jti replay/);
    expect(replay.headers.get("www-authenticate")).toMatch(/^Bearer\b/);
    expect(await reportCount(p.id)).toBe(before + 1);
    const rows = await auditRowsEventually(replay.body.instance);
    expect(rows.map((r) => [r.actor, r.action, r.outcome])).toEqual([
      [`platform:${p.id}`, "report.create", "unauthenticated"],
    ]);
    const fresh = await createReport(await p.token());
    expect(fresh.status).toBe(201);
    expect(await reportCount(p.id)).toBe(before + 2);
  });

  it("replaying the identical request (same token, same body) is 401, not an idempotent 200", async () => {
    const token = await p.token();
    const body = reportBody(await newBuyer());
    const first = await callJson("/v1/reports", { token, body });
    expect(first.status).toBe(201);
    const replay = await callJson<Problem>("/v1/reports", { token, body });
    expectProblem(replay, 401, UNAUTHENTICATED);
    const again = await callJson("/v1/reports", { token: await p.token(), body });
    expect(again.status).toBe(200);
    expect(await countRows("reports", "case_id = ? AND platform_id = ?", body.caseId, p.id)).toBe(1);
  });

  it("a token used on a report create is refused on another state-changing route (retract)", async () => {
    const token = await p.token();
    const created = await createReport(token);
    expect(created.status).toBe(201);
    const retract = await callJson<Problem>(`/v1/reports/${created.body.id}/retract`, {
      token,
      body: { reason: "Entered by mistake." },
    });
    expectProblem(retract, 401, UNAUTHENTICATED);
    const row = await env.DB.prepare("SELECT status FROM reports WHERE id = ?")
      .bind(created.body.id)
      .first<{ status: string }>();
    expect(row?.status).toBe("active");
  });

  it("a score query may reuse its token within its lifetime (not state-changing)", async () => {
    const token = await p.token();
    const subjects = await newBuyer();
    const first = await scoreQuery(token, subjects);
    const second = await scoreQuery(token, subjects);
    const third = await scoreQuery(token, subjects);
    expect([first.status, second.status, third.status]).toEqual([200, 200, 200]);
  });

  it("a token already used for a write may still read (score query, report list)", async () => {
    const token = await p.token();
    expect((await createReport(token)).status).toBe(201);
    expect((await scoreQuery(token)).status).toBe(200);
    expect((await callJson("/v1/reports", { token })).status).toBe(200);
  });

  it("jti values are per issuer: two platforms may use the same jti", async () => {
    const jti = uniqueId("shared");
    const a = await createReport(await p.token({ jti }));
    const b = await createReport(await other.token({ jti }));
    expect([a.status, b.status]).toEqual([201, 201]);
  });
});

describe("suspended platform (403 on everything)", () => {
  it("suspension takes effect at once in this isolate (cache evicted), reactivation too", async () => {
    const s = await newPlatform();
    const subjects = await newBuyer();
    // Warm the platform cache so the suspension has to evict it.
    expect((await scoreQuery(await s.token(), subjects)).status).toBe(200);
    expect((await createReport(await s.token(), subjects)).status).toBe(201);
    const before = await reportCount(s.id);
    expect((await adminPatch(s.id, { status: "suspended" })).status).toBe("suspended");

    const write = await callJson<Problem>("/v1/reports", {
      token: await s.token(),
      body: reportBody(await newBuyer()),
    });
    expectProblem(write, 403, FORBIDDEN);
    expect(write.body.detail).toMatch(/suspended/);
    const score = await callJson<Problem>("/v1/scores/query", {
      token: await s.token(),
      body: { subjects, purpose: "refund_review" },
    });
    expectProblem(score, 403, FORBIDDEN);
    const list = await callJson<Problem>("/v1/reports", { token: await s.token() });
    expectProblem(list, 403, FORBIDDEN);
    const access = await callJson<Problem>("/v1/subject-access", {
      token: await s.token(),
      body: { requestRef: "T-1", subjects },
    });
    expectProblem(access, 403, FORBIDDEN);
    expect(await reportCount(s.id)).toBe(before);
    expect(await logCount("inquiries", "platform_id = ? AND request_id = ?", s.id, score.body.instance)).toBe(
      0,
    );
    const rows = await auditRowsEventually(write.body.instance);
    expect(rows.map((r) => [r.actor, r.outcome])).toEqual([[`platform:${s.id}`, "forbidden"]]);

    expect((await adminPatch(s.id, { status: "active" })).status).toBe("active");
    expect((await createReport(await s.token())).status).toBe(201);
    expect(await reportCount(s.id)).toBe(before + 1);
  });

  it("a suspended platform's bad token is still 401 (authentication comes first)", async () => {
    const s = await newPlatform();
    await adminPatch(s.id, { status: "suspended" });
    const token = await platformSigned(s, claimsFor(s.id, { aud: "elsewhere" }));
    await expectRejected(s, `Bearer ${token}`, /aud/);
  });
});

describe("scopes (a token's scope narrows, never widens)", () => {
  it("scope narrower than the grant: routes outside it → 403, inside it → 200", async () => {
    const before = await reportCount(p.id);
    const token = await p.token({ scope: "scores:read" });
    const write = await callJson<Problem>("/v1/reports", { token, body: reportBody(await newBuyer()) });
    expectProblem(write, 403, FORBIDDEN);
    expect(write.body.detail).toMatch(/reports:write/);
    const dispute = await callJson<Problem>("/v1/subject-access", {
      token,
      body: { requestRef: "T-1", subjects: await newBuyer() },
    });
    expectProblem(dispute, 403, FORBIDDEN);
    expect((await scoreQuery(token)).status).toBe(200);
    expect(await reportCount(p.id)).toBe(before);
  });

  it("an empty scope claim holds no scope at all", async () => {
    const token = await p.token({ scope: "" });
    expectProblem(await scoreQuery(token), 403, FORBIDDEN);
  });

  it("a scope the platform was not granted is simply not held (403), the rest still works", async () => {
    const narrow = await newPlatform({ scopes: ["scores:read"] });
    const token = await narrow.token({ scope: "scores:read reports:write disputes:write" });
    expect((await scoreQuery(token)).status).toBe(200);
    const write = await callJson<Problem>("/v1/reports", { token, body: reportBody(await newBuyer()) });
    expectProblem(write, 403, FORBIDDEN);
    expect(await reportCount(narrow.id)).toBe(0);
  });

  it("a platform token claiming the admin scope cannot reach admin routes", async () => {
    const token = await p.token({ scope: "admin reports:write scores:read disputes:write" });
    const list = await callJson<Problem>("/v1/admin/platforms", { token });
    expectProblem(list, 403, FORBIDDEN);
    const before = await countRows("platforms", "status = 'suspended' AND id = ?", other.id);
    const patch = await callJson<Problem>(`/v1/admin/platforms/${other.id}`, {
      method: "PATCH",
      token: await p.token({ scope: "admin" }),
      body: { status: "suspended" },
    });
    expectProblem(patch, 403, FORBIDDEN);
    expect(await countRows("platforms", "status = 'suspended' AND id = ?", other.id)).toBe(before);
  });

  it("scopes removed from the platform by an admin take effect at once", async () => {
    const s = await newPlatform();
    expect((await createReport(await s.token())).status).toBe(201);
    expect((await adminPatch(s.id, { scopes: ["scores:read"] })).scopes).toEqual(["scores:read"]);
    const write = await callJson<Problem>("/v1/reports", {
      token: await s.token(),
      body: reportBody(await newBuyer()),
    });
    expectProblem(write, 403, FORBIDDEN);
    expect((await scoreQuery(await s.token())).status).toBe(200);
    expect(await reportCount(s.id)).toBe(1);
  });

  it("an admin token narrowed to a platform scope loses admin", async () => {
    const res = await callJson<Problem>("/v1/admin/platforms", {
      token: await adminToken({ scope: "reports:write" }),
    });
    expectProblem(res, 403, FORBIDDEN);
    expect(
      (await callJson("/v1/admin/platforms", { token: await adminToken({ scope: "admin" }) })).status,
    ).toBe(200);
  });
});

describe("principal kinds", () => {
  it("an admin token on platform routes → 403", async () => {
    const token = await adminToken();
    const write = await callJson<Problem>("/v1/reports", { token, body: reportBody(await newBuyer()) });
    expectProblem(write, 403, FORBIDDEN);
    const score = await callJson<Problem>("/v1/scores/query", {
      token,
      body: { subjects: await newBuyer(), purpose: "refund_review" },
    });
    expectProblem(score, 403, FORBIDDEN);
    const list = await callJson<Problem>("/v1/reports", { token });
    expectProblem(list, 403, FORBIDDEN);
  });

  it.each([
    ["GET", "/v1/admin/platforms"],
    ["GET", "/v1/admin/audit"],
    ["GET", "/v1/admin/stats"],
    ["GET", "/v1/admin/reports"],
  ])("a platform token on %s %s → 403", async (method, path) => {
    const res = await callJson<Problem>(path, { method, token: await p.token() });
    expectProblem(res, 403, FORBIDDEN);
  });

  it("a platform token cannot rotate its own (or another's) keys", async () => {
    const attacker = await newKeyPair();
    const res = await callJson<Problem>(`/v1/admin/platforms/${other.id}/keys`, {
      method: "PUT",
      token: await p.token(),
      body: { keys: [attacker.publicJwk] },
    });
    expectProblem(res, 403, FORBIDDEN);
    const token = await forge(
      { alg: "EdDSA", kid: attacker.kid },
      claimsFor(other.id),
      await privateKeyOf(attacker.privateJwk),
    );
    await expectRejected(other, `Bearer ${token}`, /no key of this issuer matches the kid/);
  });
});

describe("key rotation through the admin API", () => {
  it("old and new keys during the overlap; once replaced, the old kid fails and the new works", async () => {
    const r = await newPlatform();
    const oldToken = () => r.token();
    // Warm the cache with the old key set, so rotation has to evict it.
    expect((await scoreQuery(await oldToken())).status).toBe(200);
    const next = await newKeyPair("ES256");
    const newToken = () => platformSigned({ ...r, privateJwk: next.privateJwk }, claimsFor(r.id));

    await expectRejected(r, `Bearer ${await newToken()}`, /no key of this issuer matches the kid/);
    await putKeys(r.id, [r.publicJwk, next.publicJwk]);
    expect((await createReport(await oldToken())).status).toBe(201);
    expect((await createReport(await newToken())).status).toBe(201);

    await putKeys(r.id, [next.publicJwk]);
    await expectRejected(r, `Bearer ${await oldToken()}`, /no key of this issuer matches the kid/, {
      claimedIssuer: r.id,
    });
    const after = await createReport(await newToken());
    expect(after.status, JSON.stringify(after.body)).toBe(201);
    expect(await reportCount(r.id)).toBe(3);
  });

  it("a key set with a private part is refused, and the platform's keys stay as they were", async () => {
    const r = await newPlatform();
    const res = await callJson<Problem>(`/v1/admin/platforms/${r.id}/keys`, {
      method: "PUT",
      token: await adminToken(),
      body: { keys: [r.privateJwk] },
    });
    expect(res.status).toBe(422);
    expect((await createReport(await r.token())).status).toBe(201);
  });
});

describe("happy paths", () => {
  it.each(["EdDSA", "ES256"] as const)("a %s platform writes, reads and scores", async (alg) => {
    const h = await newPlatform({ alg });
    expect(h.privateJwk.kty).toBe(alg === "EdDSA" ? "OKP" : "EC");
    const subjects = await newBuyer();
    const created = await createReport(await h.token(), subjects);
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    expect(created.body.platformId).toBe(h.id);
    const read = await callJson<{ id: string }>(`/v1/reports/${created.body.id}`, { token: await h.token() });
    expect(read.status).toBe(200);
    expect(read.body.id).toBe(created.body.id);
    const score = await scoreQuery(await h.token(), subjects);
    expect(score.status).toBe(200);
    expect(score.body.score).toBeGreaterThan(0);
    await drainAuditOutbox();
    const rows = await logQuery<{ actor: string }>(
      "SELECT actor FROM entries WHERE action = 'report.create' AND outcome = 'created' AND target = ?",
      created.body.id,
    );
    expect(rows.map((r) => r.actor)).toEqual([`platform:${h.id}`]);
  });

  it("an admin token is accepted on admin routes with actor admin:<kid>", async () => {
    const res = await call(`/v1/admin/platforms/${p.id}`, { token: await adminToken() });
    expect(res.status).toBe(200);
    const requestId = res.headers.get("x-request-id") ?? "";
    const rows = await auditRowsEventually(requestId);
    expect(rows.map((r) => r.actor)).toEqual([`admin:${ADMIN_KID}`]);
  });
});

describe("rejected-token audit is rate limited per source address", () => {
  it("a flood from one source is answered 401 throughout but audited at most 20 per minute", async () => {
    const source = freshSource();
    const sent = 2 * AUDITED_REJECTIONS_PER_PERIOD + 1;
    const statuses: number[] = [];
    for (let i = 0; i < sent; i++) {
      const res = await call("/v1/reports", {
        body: {},
        headers: { authorization: "Bearer not.a.jwt", "cf-connecting-ip": source },
      });
      statuses.push(res.status);
      expect(res.headers.get("content-type")).toMatch(/^application\/problem\+json/);
    }
    expect(new Set(statuses)).toEqual(new Set([401]));
    // Wait for the first window's entries to land; the flood spans at most two windows.
    for (let i = 0; i < 100 && (await rejectionsAuditedFor(source)) < AUDITED_REJECTIONS_PER_PERIOD; i++) {
      await new Promise((r) => setTimeout(r, 20));
    }
    const audited = await rejectionsAuditedFor(source);
    expect(audited).toBeGreaterThanOrEqual(AUDITED_REJECTIONS_PER_PERIOD);
    expect(audited).toBeLessThanOrEqual(2 * AUDITED_REJECTIONS_PER_PERIOD);
    expect(audited).toBeLessThan(sent);

    // Another source is still audited: the limit is per source, not global.
    await expectRejected(p, "Bearer not.a.jwt", /not a JWT/);
  });
});

describe("unauthenticated requests write at most the rejected-token budget", () => {
  /** Audit entries of anonymous requests that name `marker` in their target or details. */
  const anonymousEntriesFor = (marker: string) =>
    auditCount(
      "actor = 'anonymous' AND (instr(coalesce(target, ''), ?1) > 0 OR instr(coalesce(details, ''), ?1) > 0)",
      marker,
    );

  it("100 anonymous requests with a malformed Pixiu-Bookmark write at most 20 audit entries", async () => {
    const { marker, statuses } = await inOneRateLimitWindow(async () => {
      const marker = uniqueId("flood");
      const source = freshSource();
      const statuses: number[] = [];
      for (let chunk = 0; chunk < 4; chunk++) {
        const responses = await Promise.all(
          Array.from({ length: 25 }, () =>
            call(`/v1/reports/${marker}`, {
              headers: { "pixiu-bookmark": "not a bookmark", "cf-connecting-ip": source },
            }),
          ),
        );
        for (const res of responses) {
          statuses.push(res.status);
          await res.arrayBuffer();
        }
      }
      return { marker, statuses };
    });
    // Authentication comes first: no token is a 401 whatever the bookmark.
    expect(new Set(statuses)).toEqual(new Set([401]));
    for (let i = 0; i < 100 && (await anonymousEntriesFor(marker)) < AUDITED_REJECTIONS_PER_PERIOD; i++) {
      await new Promise((r) => setTimeout(r, 20));
    }
    // Entries written after the response (waitUntil) have had time to land.
    await new Promise((r) => setTimeout(r, 200));
    expect(await anonymousEntriesFor(marker)).toBe(AUDITED_REJECTIONS_PER_PERIOD);
  });

  it("stored paths and targets are cut to 256 characters, with a marker", async () => {
    const long = `/v1/reports/${uniqueId("long")}${"x".repeat(3000)}`;
    const anonymous = await call(long, { headers: { "cf-connecting-ip": freshSource() } });
    expect(anonymous.status).toBe(401);
    const [rejected] = await auditRowsEventually(anonymous.headers.get("x-request-id") as string);
    expect(rejected?.action).toBe("auth.reject");
    expect(rejected?.target).toHaveLength(256);
    expect(rejected?.target?.endsWith("…")).toBe(true);
    expect(rejected?.target?.startsWith("GET /v1/reports/long-")).toBe(true);

    const known = await call(long, { token: await p.token() });
    expect(known.status).toBe(422);
    const [refused] = await auditRowsEventually(known.headers.get("x-request-id") as string);
    const path = (JSON.parse(refused?.details ?? "{}") as { path: string }).path;
    expect(path).toHaveLength(256);
    expect(path.endsWith("…")).toBe(true);
  });
});

describe("the anonymous audit budgets: per source (an IPv6 /64) and for all sources", () => {
  /** A stand-in rate limiter that allows `allow` calls and records every key it was asked about. */
  const limiter = (allow: number) => {
    const keys: string[] = [];
    return {
      keys,
      limit: async ({ key }: { key: string }) => {
        keys.push(key);
        return { success: keys.length <= allow };
      },
    };
  };

  it("an entry is written only when both budgets allow it; a refused source spends nothing globally", async () => {
    const perSource = limiter(1);
    const global = limiter(10);
    const budgets = { RL_AUTH_FAILURES: perSource, RL_AUTH_FAILURES_GLOBAL: global };
    expect(await anonymousAuditAllowed(budgets, "2001:db8:1:2::1")).toBe(true);
    expect(await anonymousAuditAllowed(budgets, "2001:DB8:1:2:0:0:0:99")).toBe(false);
    expect(perSource.keys).toEqual(["auth-fail:2001:db8:1:2::/64", "auth-fail:2001:db8:1:2::/64"]);
    expect(global.keys).toEqual(["anonymous"]);

    const closed = { RL_AUTH_FAILURES: limiter(10), RL_AUTH_FAILURES_GLOBAL: limiter(0) };
    expect(await anonymousAuditAllowed(closed, "198.51.100.7")).toBe(false);
    expect(closed.RL_AUTH_FAILURES.keys).toEqual(["auth-fail:198.51.100.7"]);
  });

  it("an IPv4-mapped source shares its IPv4 address's budget", async () => {
    const perSource = limiter(10);
    const budgets = { RL_AUTH_FAILURES: perSource, RL_AUTH_FAILURES_GLOBAL: limiter(10) };
    await anonymousAuditAllowed(budgets, "198.51.100.7");
    await anonymousAuditAllowed(budgets, "::ffff:198.51.100.7");
    expect(new Set(perSource.keys)).toEqual(new Set(["auth-fail:198.51.100.7"]));
  });
});

describe("429 answers are audited within a budget per principal", () => {
  it("100 requests of one platform past its rate limit write at most 20 audit entries", async () => {
    const { flood, statuses } = await inOneRateLimitWindow(async () => {
      const flood = await newPlatform();
      await spendRateLimit(env.RL_WRITES, `writes:platform:${flood.id}`, 600);
      const token = await flood.token();
      const statuses: number[] = [];
      for (let chunk = 0; chunk < 4; chunk++) {
        const responses = await Promise.all(Array.from({ length: 25 }, () => call("/v1/reports", { token })));
        for (const res of responses) {
          statuses.push(res.status);
          await res.arrayBuffer();
        }
      }
      return { flood, statuses };
    });
    expect(new Set(statuses)).toEqual(new Set([429]));
    const limited = () => auditCount("actor = ? AND outcome = 'rate_limited'", `platform:${flood.id}`);
    for (let i = 0; i < 100 && (await limited()) < AUDITED_REJECTIONS_PER_PERIOD; i++) {
      await new Promise((r) => setTimeout(r, 20));
    }
    // Entries written after the response (waitUntil) have had time to land.
    await new Promise((r) => setTimeout(r, 200));
    expect(await limited()).toBe(AUDITED_REJECTIONS_PER_PERIOD);
  });
});

describe("admin keys come from ADMIN_JWKS", () => {
  it("a freshly generated key claiming the admin kid is refused", async () => {
    const pair = await generateKeyPair("EdDSA", { extractable: true });
    const jwk = { ...(await exportJWK(pair.privateKey)), kid: ADMIN_KID } as JWK;
    const token = await forge(
      { alg: "EdDSA", kid: ADMIN_KID },
      claimsFor("pixiu-admin"),
      await privateKeyOf(jwk),
    );
    await expectRejected(p, `Bearer ${token}`, /signature verification failed/, {
      path: "/v1/admin/platforms",
      method: "GET",
    });
  });
});
