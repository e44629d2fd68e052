import { runInDurableObject } from "cloudflare:test";
import { env, exports } from "cloudflare:workers";
import type { SQL } from "drizzle-orm";
import { SQLiteAsyncDialect } from "drizzle-orm/sqlite-core";
import { exportJWK, generateKeyPair, type JWK } from "jose";
import { expect } from "vitest";
import { consortiumKey, hashSubject, type IdentifierType } from "../client/identifiers";
import { signToken, type TokenOptions } from "../client/token";
import type { RateLimiter } from "../worker/env";
import type { LogEntry } from "../worker/log/chain";
import { type LogConfig, shardOf, shardStub } from "../worker/log/client";
import { drainOutbox } from "../worker/log/outbox";
import type { AppendInput, LogShard } from "../worker/log/shard";

/** The consortium key the test "platforms" share (never given to the ledger). */
const CONSORTIUM_KEY = "dGVzdC1jb25zb3J0aXVtLWtleS0zMi1ieXRlcy1sb25nISE";
const hmacKey = consortiumKey(CONSORTIUM_KEY);

export const BASE = "http://pixiu.test";

export interface CallOptions {
  method?: string;
  token?: string | null;
  body?: unknown;
  /** Sent as is instead of JSON.stringify(body). */
  raw?: BodyInit;
  headers?: Record<string, string>;
}

/** Calls the Worker's fetch exactly as a platform's HTTP client would. */
export async function call(path: string, options: CallOptions = {}): Promise<Response> {
  const headers: Record<string, string> = { ...options.headers };
  if (options.token) {
    headers.authorization = `Bearer ${options.token}`;
  }
  let body: BodyInit | undefined = options.raw;
  if (options.body !== undefined) {
    body = JSON.stringify(options.body);
    headers["content-type"] ??= "application/json";
  }
  return exports.default.fetch(
    new Request(BASE + path, {
      method: options.method ?? (body === undefined ? "GET" : "POST"),
      headers,
      body,
    }),
  );
}

/** `call` and parse the JSON body. */
export async function callJson<T = Record<string, unknown>>(path: string, options: CallOptions = {}) {
  const res = await call(path, options);
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: (text ? JSON.parse(text) : null) as T };
}

export function adminToken(options: Partial<TokenOptions> = {}): Promise<string> {
  return signToken(JSON.parse(env.TEST_ADMIN_JWK) as JWK, { iss: "pixiu-admin", ...options });
}

let counter = 0;

/** A unique id per call, so tests sharing a database never collide. */
export function uniqueId(prefix: string): string {
  counter += 1;
  return `${prefix}-${Date.now().toString(36)}-${counter}-${Math.random().toString(36).slice(2, 8)}`;
}

export async function newKeyPair(alg: "EdDSA" | "ES256" = "EdDSA", kid = uniqueId("k")) {
  const pair = await generateKeyPair(alg, { extractable: true });
  return {
    kid,
    publicJwk: { ...(await exportJWK(pair.publicKey)), kid, alg, use: "sig" } as JWK,
    privateJwk: { ...(await exportJWK(pair.privateKey)), kid, alg } as JWK,
  };
}

export interface TestPlatform {
  id: string;
  privateJwk: JWK;
  publicJwk: JWK;
  token(options?: Partial<TokenOptions>): Promise<string>;
}

export const ALL_PLATFORM_SCOPES = ["reports:write", "scores:read", "disputes:write"];

/** Registers a fresh platform through the admin API and returns a way to sign its tokens. */
export async function newPlatform(
  options: { scopes?: string[]; alg?: "EdDSA" | "ES256"; probation?: boolean } = {},
): Promise<TestPlatform> {
  const id = uniqueId("p");
  const keys = await newKeyPair(options.alg ?? "EdDSA");
  const res = await callJson("/v1/admin/platforms", {
    token: await adminToken(),
    body: {
      id,
      name: `Platform ${id}`,
      scopes: options.scopes ?? ALL_PLATFORM_SCOPES,
      jwks: { keys: [keys.publicJwk] },
    },
  });
  if (res.status !== 201) {
    throw new Error(`platform create failed: ${res.status} ${JSON.stringify(res.body)}`);
  }
  if (!options.probation) {
    // An established member in good standing (docs/scoring.md §2a), so the documented weights
    // hold; `probation: true` leaves the new member on probation, as the ledger starts it.
    await env.DB.prepare(
      `INSERT INTO platform_trust (platform_id, trust, probation, reports, corroborated, voided, withdrawn,
         retracted, computed_at) VALUES (?, 1, 0, 0, 0, 0, 0, 0, ?)`,
    )
      .bind(id, Date.now())
      .run();
  }
  return {
    id,
    privateJwk: keys.privateJwk,
    publicJwk: keys.publicJwk,
    token: (o = {}) => signToken(keys.privateJwk, { iss: id, ...o }),
  };
}

export function hashOf(type: IdentifierType, value: string) {
  return hmacKey.then((key) => hashSubject(key, type, value));
}

/** A buyer with a fresh phone and device, hashed as a platform would. */
export async function newBuyer() {
  const n = Math.floor(Math.random() * 1e8)
    .toString()
    .padStart(8, "0");
  return [await hashOf("phone", `+86139${n}`), await hashOf("device", uniqueId("dev"))];
}

const DAY = 86_400_000;

export function daysAgo(days: number, from = Date.now()): string {
  return new Date(from - days * DAY).toISOString();
}

/** A valid report body; override any field. */
export function reportBody(
  subjects: { type: string; hash: string }[],
  overrides: Record<string, unknown> = {},
) {
  return {
    caseId: uniqueId("CASE"),
    subjects,
    category: "ai_generated_image",
    incidentAt: daysAgo(10),
    confirmedAt: daysAgo(7),
    confirmation: "platform_forensics",
    amount: { value: 129900, currency: "CNY" },
    evidence: [{ kind: "image_sha256", value: "a".repeat(64) }],
    ...overrides,
  };
}

/** Opens a buyer's dispute of a record as platform `p` (any answer: the caller checks). */
export async function openDispute<T = Record<string, unknown>>(
  p: TestPlatform,
  reportRef: string,
  subjects: { type: string; hash: string }[],
  reason: string,
) {
  return callJson<T>("/v1/disputes", { token: await p.token(), body: { reportRef, subjects, reason } });
}

/** The reporting platform's answer to a dispute. */
export async function respondToDispute<T = Record<string, unknown>>(
  p: TestPlatform,
  id: string,
  decision: "uphold" | "withdraw",
  note = "Our forensic report stands.",
) {
  return callJson<T>(`/v1/disputes/${id}/respond`, { token: await p.token(), body: { decision, note } });
}

/** A score query that must answer 200; its answer. */
export async function scoreOk<T = Record<string, unknown>>(
  p: TestPlatform,
  subjects: { type: string; hash: string }[],
  purpose = "refund_review",
): Promise<T> {
  const res = await callJson<T>("/v1/scores/query", { token: await p.token(), body: { subjects, purpose } });
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res.body;
}

/** Rows in a table, for "changed nothing" assertions. */
export async function countRows(table: string, where = "1=1", ...binds: unknown[]): Promise<number> {
  const row = await env.DB.prepare(`SELECT count(*) AS n FROM ${table} WHERE ${where}`)
    .bind(...binds)
    .first<{ n: number }>();
  return row?.n ?? 0;
}

/** A report as the API returns it (CONTRACT §4). */
export interface ReportView {
  id: string;
  caseId: string;
  platformId: string;
  status: string;
  statusReason: string | null;
  subjects: { type: string; key: string }[];
  category: string;
  confirmation: string;
  incidentAt: string;
  confirmedAt: string;
  amount: { value: number; currency: string };
  subjectNotifiedAt: string | null;
  statement: string | null;
  createdAt: string;
  updatedAt: string;
}

/** Reports a case as the platform (a valid body, any field overridden); expects 201. */
export async function createReport(
  p: TestPlatform,
  subjects: { type: string; hash: string }[],
  overrides: Record<string, unknown> = {},
): Promise<ReportView> {
  const res = await callJson<ReportView>("/v1/reports", {
    token: await p.token(),
    body: reportBody(subjects, overrides),
  });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return res.body;
}

/**
 * Reports in the order the lists answer them, newest first: by `createdAt`, then by id, since
 * report ids are random and reports written in one batch (or one millisecond) share a time.
 */
export function newestFirst<T extends { id: string; createdAt: string }>(reports: readonly T[]): T[] {
  return [...reports].sort(
    (a, b) => Date.parse(b.createdAt) - Date.parse(a.createdAt) || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0),
  );
}

const dialect = new SQLiteAsyncDialect();

/** The `EXPLAIN QUERY PLAN` details of a drizzle statement, run on the local D1. */
export async function queryPlan(statement: SQL): Promise<string[]> {
  const q = dialect.sqlToQuery(statement);
  const { results } = await env.DB.prepare(`EXPLAIN QUERY PLAN ${q.sql}`)
    .bind(...q.params)
    .all<{ detail: string }>();
  return results.map((r) => r.detail);
}

/** An audit entry as the tests read it back. */
export interface AuditRowView {
  seq: number;
  actor: string;
  action: string;
  target: string | null;
  outcome: string;
  details: string | null;
}

/** Every log shard, as the Worker addresses them (worker/log/client.ts). */
export function logShards(): DurableObjectStub<LogShard>[] {
  return Array.from({ length: Number(env.LOG_SHARDS ?? 1) }, (_, i) =>
    shardStub(env as unknown as LogConfig, i),
  );
}

/** The log shard an actor (`platform:<id>`, `admin:<kid>`) writes to. */
export function logShardOf(actor: string): DurableObjectStub<LogShard> {
  const shards = Number(env.LOG_SHARDS ?? 1);
  return shardStub(env as unknown as LogConfig, shardOf(actor, shards));
}

/**
 * A look-up's log append written at `at` (e.g. long ago, for the archive), straight to a shard.
 * With `inquiredBy` (the platform's id) it also writes the inquiry rows, as `logLookups` does for
 * a look-up of the buyer's subjects.
 */
export function lookupAppend(
  id: string,
  at: number,
  actor: string,
  subjectKeys: string | string[],
  inquiredBy?: string,
): AppendInput {
  const keys = typeof subjectKeys === "string" ? [subjectKeys] : subjectKeys;
  return {
    id,
    entries: [
      {
        at,
        actor,
        action: "score.query",
        requestId: id,
        outcome: "ok",
        details: inquiredBy ? { purpose: "refund_review", inquired: true } : { purpose: "refund_review" },
        subjectKeys: keys,
      },
    ],
    ...(inquiredBy
      ? {
          inquiries: keys.map((subjectKey) => ({
            subjectKey,
            platformId: inquiredBy,
            purpose: "refund_review",
            requestId: id,
          })),
        }
      : {}),
  };
}

/** What the archive and offline verifiers answer, as the tests read it. */
export interface SegmentVerdict {
  ok: boolean;
  error?: string;
  badShard?: number;
  firstBadSeq?: number;
  treeCheckpoints?: number;
  shards: { shard: number; ok: boolean; from?: number; to?: number }[];
}

/** Runs one query on every log shard and returns all their rows: tests look inside the log store. */
export async function logQuery<T>(query: string, ...binds: unknown[]): Promise<T[]> {
  const perShard = await Promise.all(
    logShards().map((stub) =>
      runInDurableObject(stub, (_o, state) => state.storage.sql.exec(query, ...binds).toArray() as T[]),
    ),
  );
  return perShard.flat();
}

/** Rows of a log-store table (`inquiries`, `usage`, …) over every shard, for "logged" assertions. */
export async function logCount(table: string, where = "1=1", ...binds: unknown[]): Promise<number> {
  const rows = await logQuery<{ n: number }>(`SELECT count(*) AS n FROM ${table} WHERE ${where}`, ...binds);
  return rows.reduce((sum, r) => sum + r.n, 0);
}

/** A request's entries in the log shards, shaped like D1 rows; retained subject keys in `details`. */
export async function logRows(requestId: string): Promise<(AuditRowView & { shard: number })[]> {
  const perShard = await Promise.all(
    logShards().map(async (stub, shard) => {
      const entries = (await stub.entries({ requestId, limit: 1000 })) as unknown as LogEntry[];
      return entries.reverse().map((e) => ({
        shard,
        seq: e.seq,
        actor: e.actor,
        action: e.action,
        target: e.target,
        outcome: e.outcome,
        details: JSON.stringify({ ...e.details, ...(e.subjectKeys ? { subjectKeys: e.subjectKeys } : {}) }),
      }));
    }),
  );
  return perShard.flat();
}

/**
 * Moves every audit outbox row to the log shards now, as the drain after each write and the
 * scheduled job do: tests call it instead of waiting for a `waitUntil`.
 */
export async function drainAuditOutbox(): Promise<void> {
  for (let chunk = 0; chunk < 100; chunk++) {
    const r = await drainOutbox(env as unknown as LogConfig, env.DB);
    if (r.failed > 0) {
      throw new Error(`the outbox drain failed for ${r.failed} rows`);
    }
    if (!r.more) {
      return;
    }
  }
}

/**
 * Audit entries matching `where` (over the columns both chains have: actor, action, target,
 * request_id, outcome, details), in the ledger chain and every log shard, after draining the
 * outbox.
 */
export async function auditCount(where: string, ...binds: unknown[]): Promise<number> {
  await drainAuditOutbox();
  return (await countRows("audit_log", where, ...binds)) + (await logCount("entries", where, ...binds));
}

/**
 * The audit entries a request wrote, in order: those of the ledger's own chain (D1, the legacy
 * prefix), then those of the log shards, after draining the outbox into them.
 */
export async function auditRows(requestId: string | null): Promise<AuditRowView[]> {
  await drainAuditOutbox();
  const { results } = await env.DB.prepare(
    "SELECT seq, actor, action, target, outcome, details FROM audit_log WHERE request_id = ? ORDER BY seq",
  )
    .bind(requestId)
    .all<AuditRowView>();
  return requestId === null ? results : [...results, ...(await logRows(requestId))];
}

/** `auditRows`, waiting up to a second for entries written after the response (waitUntil). */
export async function auditRowsEventually(requestId: string | null, atLeast = 1): Promise<AuditRowView[]> {
  for (let i = 0; i < 50; i++) {
    const rows = await auditRows(requestId);
    if (rows.length >= atLeast) {
      return rows;
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  return auditRows(requestId);
}

/** The `errors[].path` of a validation problem. */
export function errorPaths(body: unknown): string[] {
  return ((body as { errors?: { path: string }[] }).errors ?? []).map((e) => e.path);
}

/** The period of every `[[ratelimits]]` binding in wrangler.toml. */
const RATE_LIMIT_PERIOD_MS = 60_000;

/**
 * Runs `attempt` so that it starts and ends inside one window of the local rate limiter, and
 * returns its result. Miniflare's limiter counts in fixed windows aligned to the wall clock
 * (`floor(now / period)`, every key rolling over at once), so a burst that straddles a minute
 * boundary gets a fresh budget midway. An attempt that straddled one is run again (a fresh
 * platform each time, since limits are keyed per principal); an attempt takes well under a
 * second, so the second run always fits.
 */
export async function inOneRateLimitWindow<T>(attempt: () => Promise<T>): Promise<T> {
  for (let tries = 0; tries < 3; tries++) {
    const window = Math.floor(Date.now() / RATE_LIMIT_PERIOD_MS);
    const result = await attempt();
    if (Math.floor(Date.now() / RATE_LIMIT_PERIOD_MS) === window) {
      return result;
    }
  }
  throw new Error("three attempts each straddled a rate-limit window");
}

/**
 * Spends `n` of a principal's budget in one route class directly on the binding, with the key
 * `rateLimit()` uses (`<class>:<actor>`), so a test reaches the limit without sending `n`
 * requests through the Worker. (The simulator the test pool runs has no `delta` option yet, so
 * it is `n` calls, 100 at a time.)
 */
export async function spendRateLimit(limiter: RateLimiter, key: string, n: number): Promise<void> {
  for (let done = 0; done < n; done += 100) {
    const calls = Array.from({ length: Math.min(100, n - done) }, () => limiter.limit({ key }));
    const results = await Promise.all(calls);
    expect(results.every((r) => r.success)).toBe(true);
  }
}

/**
 * Rows the score read may read (`meta.rows_read`), measured on the local D1: per record
 * returned its index entry, its IN-list entry and its report; per key the platform walk's first
 * seek and queue rows; per (key, platform) the next-platform seek and the entry that ends the
 * range. `matches` is at most (MAX_ACTIVE_REPORTS_PER_SUBJECT + 1) × pairs, whatever the table.
 */
export function scoreRowsBound(x: { matches: number; keys: number; pairs: number }): number {
  // 6 per pair: the walk's probes, the platform's trust (docs/scoring.md §2a) and its collusion
  // group (§3d), each a primary-key probe.
  return 3 * x.matches + 4 * x.keys + 6 * x.pairs;
}

/** What `GET /v1/admin/audit/verify` answers, as the red-team tests read it. */
export type AuditVerdict = {
  ok: boolean;
  reason?: string;
  outbox: { through: number; top: number; pending: number; missing: [number, number][] };
  shards: { shard: number; ok: boolean; reason?: string; firstBadSeq?: number }[];
};

/** `GET /v1/admin/audit/verify` as an admin, answered 200. */
export async function verifyAudit(): Promise<AuditVerdict> {
  const res = await callJson<AuditVerdict>("/v1/admin/audit/verify", { token: await adminToken() });
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res.body;
}

/** A platform whose look-ups go to log shard `shard`. */
export async function platformOnShard(shard: number): Promise<TestPlatform> {
  for (;;) {
    const p = await newPlatform();
    if (shardOf(`platform:${p.id}`, Number(env.LOG_SHARDS ?? 1)) === shard) {
      return p;
    }
  }
}

/** One score query (refund review), answered 200; its request id. */
export async function lookUp(p: TestPlatform, subjects: { type: string; hash: string }[]): Promise<string> {
  const res = await callJson("/v1/scores/query", {
    token: await p.token(),
    body: { subjects, purpose: "refund_review" },
  });
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res.headers.get("x-request-id") as string;
}

/** `hash` (64 hex) with the given bits (0–255) flipped. */
export function flipBits(hash: string, bits: readonly number[]): string {
  const bytes = hash.match(/../g)?.map((b) => Number.parseInt(b, 16)) ?? [];
  for (const bit of bits) {
    bytes[bit >> 3] = (bytes[bit >> 3] ?? 0) ^ (1 << (bit & 7));
  }
  return bytes.map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** `n` distinct random bit positions of 256. */
export function randomBits(n: number): number[] {
  const all = Array.from({ length: 256 }, (_, i) => i);
  for (let i = all.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [all[i], all[j]] = [all[j] as number, all[i] as number];
  }
  return all.slice(0, n);
}

/** A random PDQ-shaped hash: 128 of 256 bits set, as PDQ prints a photo's (the ledger refuses other counts). */
export function randomPdqHash(): string {
  return flipBits("0".repeat(64), randomBits(128));
}

/**
 * The red-team scenes' start: one platform reports a buyer, a platform writing to log shard
 * `shard` looks the buyer up, and the audit outbox is drained.
 */
export async function lookUpOnShard(shard: number) {
  const [reporter, asker] = await Promise.all([newPlatform(), platformOnShard(shard)]);
  const buyer = await newBuyer();
  await createReport(reporter, buyer);
  const requestId = await lookUp(asker, buyer);
  await drainAuditOutbox();
  return { reporter, asker, buyer, requestId };
}
