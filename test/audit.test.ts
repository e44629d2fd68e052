/**
 * The tamper-evident audit log (CONTRACT §7, docs/audit.md) through the HTTP API: one entry per
 * action with the right actor, action, target, outcome and details; the hash chain and what
 * `verify` reports when an entry is altered, removed, reordered or loses its hash; concurrent
 * writers; signed checkpoints checked against the published key; the NDJSON export and the
 * offline verifier; the list filters, cursor pagination, and stats.
 *
 * Each test file runs in its own workerd with its own in-memory D1 (vitest isolates files and
 * the Workers pool starts one Miniflare per pool worker), so the chain here is this file's
 * alone; still, every tampered row is restored in a `finally`, and assertions name the seqs
 * this file created. Chain hashes and subject keys are recomputed here independently of the
 * Worker's code, from the format in docs/audit.md.
 */
import { env } from "cloudflare:workers";
import { base64url, exportJWK, generateKeyPair, importJWK, type JWK } from "jose";
import { beforeAll, describe, expect, it } from "vitest";
import { signToken } from "../client/token";
import { publicAuditKeys, verifyLog } from "../worker/audit/ledger";
import { verifyExport } from "../worker/audit/verify-export";
import { loadConfig } from "../worker/env";
import type { AuditEntryRow } from "../worker/services/audit";
import {
  adminToken,
  call,
  callJson,
  drainAuditOutbox,
  logQuery,
  newBuyer,
  newKeyPair,
  newPlatform,
  reportBody,
  type TestPlatform,
  uniqueId,
} from "./harness";

const ADMIN_ACTOR = "admin:test-admin";
const GENESIS = "0".repeat(64);
const PURGE_CHUNK = 200;

type Subject = { type: string; hash: string };

type AuditRow = AuditEntryRow & { seq: number; prev_hash: string | null; hash: string | null };

interface Verdict {
  ok: boolean;
  checked: number;
  from: { seq: number; checkpoint: boolean };
  head: { seq: number; hash: string } | null;
  unsealed: number;
  checkpoints: { checked: number; invalid: number };
  firstBadSeq?: number;
  reason?: string;
  shards: { shard: number; ok: boolean; checked: number; unsealed: number }[];
}

interface ListedEntry {
  seq: number;
  at: string;
  actor: string;
  action: string;
  target: string | null;
  requestId: string;
  outcome: string;
  details: Record<string, unknown> | null;
  prevHash: string | null;
  hash: string | null;
}

interface AuditPage {
  items: ListedEntry[];
  nextCursor: string | null;
}

interface Report {
  id: string;
  caseId: string;
  subjects: { type: string; key: string }[];
}

interface MaintenanceBody {
  reportsPurged: number;
  inquiriesPurged: number;
  tokenUsesPurged: number;
  disputesMarkedOverdue: number;
  complete: boolean;
  checkpoint: { seq: number; hash: string; at: number; root: string; heads: Head[] } | null;
  archived: { segments: string[]; entries: number };
  outbox: { drained: number; failed: number };
}

interface Head {
  shard: number;
  seq: number;
  hash: string;
}

/** A stored tree checkpoint, with `seq`/`hash` its ledger leaf (shard −1). */
interface CheckpointRow {
  id: number;
  seq: number;
  hash: string;
  at: number;
  root: string;
  heads: Head[];
  kid: string;
  signature: string;
}

const LOG = loadConfig(env);

// ---------------------------------------------------------------------------------------------
// Independent re-implementations of the documented formats (docs/audit.md, CONTRACT §1).

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) {
    return value.map(sortKeys);
  }
  if (value !== null && typeof value === "object") {
    return Object.fromEntries(
      Object.keys(value)
        .sort()
        .map((k) => [k, sortKeys((value as Record<string, unknown>)[k])]),
    );
  }
  return value;
}

function hex(bytes: ArrayBuffer): string {
  return [...new Uint8Array(bytes)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

async function sha256Hex(text: string): Promise<string> {
  return hex(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text)));
}

/** hash(n) = hex SHA-256(hash(n−1) + "\n" + canonical(entry n)), as docs/audit.md defines it. */
function chainHash(prev: string, r: AuditRow): Promise<string> {
  const canonical = JSON.stringify(
    sortKeys({
      seq: r.seq,
      at: r.at,
      actor: r.actor,
      action: r.action,
      target: r.target,
      requestId: r.request_id,
      outcome: r.outcome,
      details: r.details === null ? null : JSON.parse(r.details),
    }),
  );
  return sha256Hex(`${prev}\n${canonical}`);
}

/** The ledger's subject keys: HMAC-SHA256(ledger pepper, type + ":" + platform hash), hex. */
async function pepperedKeys(subjects: readonly Subject[]): Promise<string[]> {
  const key = await crypto.subtle.importKey(
    "raw",
    base64url.decode(env.LEDGER_PEPPER),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  return Promise.all(
    subjects.map(async (s) =>
      hex(await crypto.subtle.sign("HMAC", key, new TextEncoder().encode(`${s.type}:${s.hash}`))),
    ),
  );
}

/** Leaf = SHA-256("pixiu-log-leaf\n" + shard + "\n" + seq + "\n" + hash); pairs hashed left+right. */
async function treeRoot(heads: readonly Head[]): Promise<string> {
  let level = await Promise.all(
    [...heads]
      .sort((a, b) => a.shard - b.shard)
      .map((h) => sha256Hex(`pixiu-log-leaf\n${h.shard}\n${h.seq}\n${h.hash}`)),
  );
  while (level.length > 1) {
    const next: string[] = [];
    for (let i = 0; i < level.length; i += 2) {
      next.push(i + 1 < level.length ? await sha256Hex(`${level[i]}${level[i + 1]}`) : (level[i] as string));
    }
    level = next;
  }
  return level[0] ?? GENESIS;
}

function treeMessage(cp: { at: number; root: string; heads: readonly Head[] }): Uint8Array {
  return new TextEncoder().encode(`pixiu-log/2-checkpoint\n${cp.heads.length}\n${cp.root}\n${cp.at}`);
}

// ---------------------------------------------------------------------------------------------
// Helpers.

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * A request's entries: the ledger chain's (its legacy prefix) and the log shards', after moving
 * every outbox row to the shards as the drain after a write would.
 */
async function auditRows(requestId: string): Promise<AuditRow[]> {
  await drainAuditOutbox();
  const { results } = await env.DB.prepare("SELECT * FROM audit_log WHERE request_id = ? ORDER BY seq")
    .bind(requestId)
    .all<AuditRow>();
  return [...results, ...(await lookupRows(requestId))];
}

/**
 * A request's entries in the log shards (look-ups), shaped like D1 rows, retained subject keys
 * folded into `details` as the D1 chain keeps them.
 */
async function lookupRows(requestId: string): Promise<(AuditRow & { shard: number })[]> {
  return shardRows("e.request_id = ?", requestId);
}

/** Shard entries matching `where` (over `entries e`), shaped like D1 rows as `lookupRows`. */
async function shardRows(where: string, ...binds: unknown[]): Promise<(AuditRow & { shard: number })[]> {
  const rows = await logQuery<AuditRow & { subject_keys: string | null }>(
    `SELECT e.seq, e.at, e.actor, e.action, e.target, e.request_id, e.outcome, e.details, e.prev_hash, e.hash,
       k.keys AS subject_keys, (SELECT v FROM meta WHERE k = 'shard') AS shard
     FROM entries e LEFT JOIN entry_keys k ON k.seq = e.seq WHERE ${where} ORDER BY e.seq`,
    ...binds,
  );
  return rows.map(({ subject_keys, ...r }) => ({
    ...r,
    shard: Number((r as unknown as { shard: string }).shard),
    details: JSON.stringify({
      ...(r.details ? (JSON.parse(r.details) as object) : {}),
      ...(subject_keys ? { subjectKeys: JSON.parse(subject_keys) as string[] } : {}),
    }),
  }));
}

/** Entries written after the response (waitUntil) need a moment to land. */
async function auditRowsEventually(requestId: string, atLeast: number): Promise<AuditRow[]> {
  for (let i = 0; i < 100; i++) {
    const rows = await auditRows(requestId);
    if (rows.length >= atLeast) {
      return rows;
    }
    await sleep(20);
  }
  return auditRows(requestId);
}

async function rowAt(seq: number): Promise<AuditRow> {
  const row = await env.DB.prepare("SELECT * FROM audit_log WHERE seq = ?").bind(seq).first<AuditRow>();
  if (!row) {
    throw new Error(`no audit entry ${seq}`);
  }
  return row;
}

async function rowsBetween(from: number, to: number): Promise<AuditRow[]> {
  const { results } = await env.DB.prepare("SELECT * FROM audit_log WHERE seq >= ? AND seq <= ? ORDER BY seq")
    .bind(from, to)
    .all<AuditRow>();
  return results;
}

function toCheckpoint(row: Omit<CheckpointRow, "seq" | "hash" | "heads"> & { heads: string }): CheckpointRow {
  const heads = JSON.parse(row.heads) as Head[];
  const ledger = heads.find((h) => h.shard === -1) as Head;
  return { ...row, heads, seq: ledger.seq, hash: ledger.hash };
}

/** The latest tree checkpoint whose ledger leaf is at `seq`. */
async function checkpointAt(seq: number): Promise<CheckpointRow> {
  const row = await env.DB.prepare(
    "SELECT * FROM log_checkpoints WHERE json_extract(heads, '$[0].seq') = ? ORDER BY id DESC LIMIT 1",
  )
    .bind(seq)
    .first<Omit<CheckpointRow, "seq" | "hash" | "heads"> & { heads: string }>();
  if (!row) {
    throw new Error(`no checkpoint at ${seq}`);
  }
  return toCheckpoint(row);
}

async function verify(from?: "genesis" | "checkpoint"): Promise<Verdict> {
  const res = await callJson<Verdict>(`/v1/admin/audit/verify${from ? `?from=${from}` : ""}`, {
    token: await adminToken(),
  });
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res.body;
}

async function runMaintenance() {
  const res = await callJson<MaintenanceBody>("/v1/admin/maintenance/run", {
    token: await adminToken(),
    body: {},
  });
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return { body: res.body, requestId: res.headers.get("x-request-id") ?? "" };
}

/** Runs the scheduled job and returns the checkpoint it signed (the head moved: it always does). */
/**
 * Seals and signs through every entry written so far. One run seals at most 20,000 entries, and
 * the test files share one local D1, so a backlog left by other files (bulk uploads, floods) can
 * outlast a single run: run again until the checkpoint reaches the entries this test wrote.
 */
async function sealAndSign(): Promise<CheckpointRow> {
  const top = await env.DB.prepare("SELECT max(seq) AS seq FROM audit_log").first<{ seq: number }>();
  for (let run = 0; run < 50; run++) {
    const { body } = await runMaintenance();
    if (!body.checkpoint) {
      throw new Error("the maintenance run signed no checkpoint");
    }
    if (body.checkpoint.seq >= (top?.seq ?? 0)) {
      return checkpointAt(body.checkpoint.seq);
    }
  }
  throw new Error("the audit backlog did not seal within 50 maintenance runs");
}

async function exportText(query = ""): Promise<string> {
  const res = await call(`/v1/admin/audit/export${query}`, { token: await adminToken() });
  expect(res.status).toBe(200);
  expect(res.headers.get("content-type")).toContain("application/x-ndjson");
  return res.text();
}

async function createReport(p: TestPlatform, subjects: Subject[], overrides: Record<string, unknown> = {}) {
  const res = await callJson<Report>("/v1/reports", {
    token: await p.token(),
    body: reportBody(subjects, overrides),
  });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return { report: res.body, requestId: res.headers.get("x-request-id") ?? "" };
}

/**
 * Inserts `n` unsealed entries straight into the ledger chain and returns their seqs, ascending:
 * API writes go to the log shards now (through the outbox), so the format-1 chain these tests
 * tamper with is built as the legacy prefix it has become. Each has its own request id.
 */
async function legacyEntries(n: number): Promise<number[]> {
  const actor = `platform:legacy-${crypto.randomUUID().slice(0, 8)}`;
  const seqs: number[] = [];
  for (let i = 0; i < n; i++) {
    const row = await env.DB.prepare(
      `INSERT INTO audit_log (at, actor, action, target, request_id, outcome, details)
       VALUES (?, ?, 'report.create', ?, ?, 'created', ?) RETURNING seq`,
    )
      .bind(
        Date.now(),
        actor,
        `rpt_legacy${i}`,
        `req_legacy_${crypto.randomUUID()}`,
        JSON.stringify({ caseId: `legacy-${i}`, item: 0, subjectKeys: [] }),
      )
      .first<{ seq: number }>();
    seqs.push(row?.seq ?? 0);
  }
  return seqs;
}

async function restoreRow(row: AuditRow) {
  await env.DB.prepare(
    `INSERT OR REPLACE INTO audit_log (seq, at, actor, action, target, request_id, outcome, details, prev_hash, hash)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  )
    .bind(
      row.seq,
      row.at,
      row.actor,
      row.action,
      row.target,
      row.request_id,
      row.outcome,
      row.details,
      row.prev_hash,
      row.hash,
    )
    .run();
}

/** Sets an entry's content columns (not its seq or hashes) to those of `from`. */
function setContent(seq: number, from: AuditRow) {
  return env.DB.prepare(
    `UPDATE audit_log SET at = ?, actor = ?, action = ?, target = ?, request_id = ?, outcome = ?, details = ?
     WHERE seq = ?`,
  ).bind(from.at, from.actor, from.action, from.target, from.request_id, from.outcome, from.details, seq);
}

/**
 * Re-chains every sealed entry from `seq` on with the documented hash rule, in one batch: the way
 * an operator would cover an edit, and the way a test puts the genuine chain back afterwards.
 */
async function rechainFrom(seq: number) {
  const prev = seq === 1 ? GENESIS : (await rowAt(seq - 1)).hash;
  const { results } = await env.DB.prepare(
    "SELECT * FROM audit_log WHERE seq >= ? AND hash IS NOT NULL ORDER BY seq",
  )
    .bind(seq)
    .all<AuditRow>();
  let last = prev as string;
  const updates: D1PreparedStatement[] = [];
  for (const r of results) {
    const h = await chainHash(last, r);
    updates.push(
      env.DB.prepare("UPDATE audit_log SET prev_hash = ?, hash = ? WHERE seq = ?").bind(last, h, r.seq),
    );
    last = h;
  }
  await env.DB.batch(updates);
}

/** Asserts the chain over [from, to]: contiguous seqs, each prevHash links, each hash recomputes. */
async function expectChained(from: number, to: number) {
  const rows = await rowsBetween(from, to);
  expect(rows.map((r) => r.seq)).toEqual(Array.from({ length: to - from + 1 }, (_, i) => from + i));
  let prev = from === 1 ? GENESIS : (await rowAt(from - 1)).hash;
  for (const r of rows) {
    expect(r.hash, `entry ${r.seq} is sealed`).toMatch(/^[0-9a-f]{64}$/);
    expect(r.prev_hash, `entry ${r.seq} links to ${r.seq - 1}`).toBe(prev);
    expect(r.hash, `entry ${r.seq} recomputes`).toBe(await chainHash(prev as string, r));
    prev = r.hash;
  }
}

function parseLines(text: string): Record<string, unknown>[] {
  return text
    .split("\n")
    .filter((l) => l.length > 0)
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

// ---------------------------------------------------------------------------------------------

interface Expected {
  action: string;
  actor: string;
  target: string | null;
  outcome: string;
  details?: Record<string, unknown>;
}

interface CaseResult {
  status: number;
  requestId: string;
  expected: Expected[];
  /** Further checks of the rows (already matched against `expected`). */
  check?: (rows: AuditRow[]) => Promise<void> | void;
}

interface Fixture {
  reporter: TestPlatform;
  other: TestPlatform;
  buyer: Subject[];
  report: Report;
}

async function requestIdOf(res: { headers: Headers }) {
  const id = res.headers.get("x-request-id");
  expect(id).toMatch(/^req_/);
  return id as string;
}

const CASES: { name: string; run: (f: Fixture) => Promise<CaseResult> }[] = [
  {
    name: "report create",
    async run({ reporter }) {
      const buyer = await newBuyer();
      const body = reportBody(buyer);
      const res = await callJson<Report>("/v1/reports", { token: await reporter.token(), body });
      return {
        status: res.status,
        requestId: await requestIdOf(res),
        expected: [
          {
            action: "report.create",
            actor: `platform:${reporter.id}`,
            target: res.body.id,
            outcome: "created",
            details: { caseId: body.caseId, item: 0, subjectKeys: (await pepperedKeys(buyer)).sort() },
          },
        ],
        check: (rows) => {
          for (const s of buyer) {
            expect(rows[0]?.details).not.toContain(s.hash);
          }
        },
      };
    },
  },
  {
    name: "idempotent replay",
    async run({ reporter }) {
      const body = reportBody(await newBuyer());
      const first = await callJson<Report>("/v1/reports", { token: await reporter.token(), body });
      expect(first.status).toBe(201);
      const res = await callJson<Report>("/v1/reports", { token: await reporter.token(), body });
      expect(res.body.id).toBe(first.body.id);
      return {
        status: res.status,
        requestId: await requestIdOf(res),
        expected: [
          {
            action: "report.create",
            actor: `platform:${reporter.id}`,
            target: first.body.id,
            outcome: "replayed",
            details: { caseId: body.caseId },
          },
        ],
      };
    },
  },
  {
    name: "conflicting replay (same caseId, other content)",
    async run({ reporter }) {
      const body = reportBody(await newBuyer());
      const first = await callJson<Report>("/v1/reports", { token: await reporter.token(), body });
      const res = await callJson("/v1/reports", {
        token: await reporter.token(),
        body: { ...body, amount: { value: 1, currency: "CNY" } },
      });
      return {
        status: res.status,
        requestId: await requestIdOf(res),
        expected: [
          {
            action: "report.create",
            actor: `platform:${reporter.id}`,
            target: first.body.id,
            outcome: "conflict",
            details: { caseId: body.caseId },
          },
        ],
      };
    },
  },
  {
    name: "retract",
    async run({ reporter }) {
      const { report } = await createReport(reporter, await newBuyer());
      const res = await callJson(`/v1/reports/${report.id}/retract`, {
        token: await reporter.token(),
        body: { reason: "Filed in error." },
      });
      return {
        status: res.status,
        requestId: await requestIdOf(res),
        expected: [
          {
            action: "report.retract",
            actor: `platform:${reporter.id}`,
            target: report.id,
            outcome: "ok",
            details: { from: "active", to: "retracted", reason: "Filed in error." },
          },
        ],
      };
    },
  },
  {
    name: "bulk: one entry per item (created, invalid, replayed, conflict)",
    async run({ reporter }) {
      const replayBody = reportBody(await newBuyer());
      const replayed = await callJson<Report>("/v1/reports", {
        token: await reporter.token(),
        body: replayBody,
      });
      const conflictBody = reportBody(await newBuyer());
      const conflicted = await callJson<Report>("/v1/reports", {
        token: await reporter.token(),
        body: conflictBody,
      });
      const fresh = reportBody(await newBuyer());
      const res = await callJson<{ results: { index: number; status: number; id?: string }[] }>(
        "/v1/reports/bulk",
        {
          token: await reporter.token(),
          body: {
            reports: [
              fresh,
              { ...reportBody(await newBuyer()), category: "not_a_category" },
              replayBody,
              { ...conflictBody, note: "different content" },
            ],
          },
        },
      );
      expect(res.body.results.map((r) => r.status)).toEqual([201, 422, 200, 409]);
      const actor = `platform:${reporter.id}`;
      return {
        status: res.status,
        requestId: await requestIdOf(res),
        // The written items first (in item order), then the rejected ones.
        expected: [
          {
            action: "report.create",
            actor,
            target: res.body.results[0]?.id ?? "?",
            outcome: "created",
            details: { caseId: fresh.caseId, item: 0 },
          },
          {
            action: "report.create",
            actor,
            target: replayed.body.id,
            outcome: "replayed",
            details: { caseId: replayBody.caseId, item: 2 },
          },
          {
            action: "report.create",
            actor,
            target: conflicted.body.id,
            outcome: "conflict",
            details: { caseId: conflictBody.caseId, item: 3 },
          },
          { action: "report.create", actor, target: null, outcome: "invalid", details: { item: 1 } },
        ],
      };
    },
  },
  {
    name: "score query: purpose and peppered subject keys, never the platform's hash",
    async run({ other, buyer }) {
      const res = await callJson("/v1/scores/query", {
        token: await other.token(),
        body: { subjects: buyer, purpose: "account_review" },
      });
      return {
        status: res.status,
        requestId: await requestIdOf(res),
        expected: [
          {
            action: "score.query",
            actor: `platform:${other.id}`,
            target: null,
            outcome: "ok",
            details: { purpose: "account_review", subjectKeys: await pepperedKeys(buyer) },
          },
        ],
        check: (rows) => {
          for (const s of buyer) {
            expect(rows[0]?.details).not.toContain(s.hash);
          }
        },
      };
    },
  },
  {
    name: "score batch: one entry per buyer, the ref as target",
    async run({ other, buyer }) {
      const buyers = [buyer, await newBuyer(), await newBuyer()];
      const res = await callJson("/v1/scores/batch", {
        token: await other.token(),
        body: {
          purpose: "refund_review",
          queries: buyers.map((subjects, i) => ({ ref: `order-${i}`, subjects })),
        },
      });
      return {
        status: res.status,
        requestId: await requestIdOf(res),
        expected: await Promise.all(
          buyers.map(async (subjects, i) => ({
            action: "score.query",
            actor: `platform:${other.id}`,
            target: `order-${i}`,
            outcome: "ok",
            details: { purpose: "refund_review", subjectKeys: await pepperedKeys(subjects) },
          })),
        ),
        check: (rows) => {
          for (const s of buyers.flat()) {
            expect(rows.map((r) => r.details).join("")).not.toContain(s.hash);
          }
        },
      };
    },
  },
  {
    name: "dispute open",
    async run({ reporter, other }) {
      const buyer = await newBuyer();
      const { report } = await createReport(reporter, buyer);
      const res = await callJson<{ id: string }>("/v1/disputes", {
        token: await other.token(),
        body: { reportRef: report.id, subjects: buyer, reason: "Never received it." },
      });
      return {
        status: res.status,
        requestId: await requestIdOf(res),
        expected: [
          {
            action: "dispute.open",
            actor: `platform:${other.id}`,
            target: res.body.id,
            outcome: "created",
            details: { report: report.id, subjectKeys: await pepperedKeys(buyer) },
          },
        ],
      };
    },
  },
  {
    name: "dispute respond",
    async run({ reporter, other }) {
      const buyer = await newBuyer();
      const { report } = await createReport(reporter, buyer);
      const open = await callJson<{ id: string }>("/v1/disputes", {
        token: await other.token(),
        body: { reportRef: report.id, subjects: buyer, reason: "Never received it." },
      });
      const res = await callJson(`/v1/disputes/${open.body.id}/respond`, {
        token: await reporter.token(),
        body: { decision: "withdraw", note: "Our mistake." },
      });
      return {
        status: res.status,
        requestId: await requestIdOf(res),
        expected: [
          {
            action: "dispute.respond",
            actor: `platform:${reporter.id}`,
            target: open.body.id,
            outcome: "ok",
            details: { report: report.id, reportStatus: "retracted" },
          },
        ],
      };
    },
  },
  {
    name: "dispute resolve",
    async run({ reporter, other }) {
      const buyer = await newBuyer();
      const { report } = await createReport(reporter, buyer);
      const open = await callJson<{ id: string }>("/v1/disputes", {
        token: await other.token(),
        body: { reportRef: report.id, subjects: buyer, reason: "Never received it." },
      });
      const res = await callJson(`/v1/admin/disputes/${open.body.id}/resolve`, {
        token: await adminToken(),
        body: { outcome: "report_upheld", note: "Evidence holds." },
      });
      return {
        status: res.status,
        requestId: await requestIdOf(res),
        expected: [
          {
            action: "dispute.resolve",
            actor: ADMIN_ACTOR,
            target: open.body.id,
            outcome: "ok",
            details: { report: report.id, decision: "report_upheld", reportStatus: "active" },
          },
        ],
      };
    },
  },
  {
    name: "subject access",
    async run({ other, buyer }) {
      const res = await callJson("/v1/subject-access", {
        token: await other.token(),
        body: { requestRef: "T-1", subjects: buyer },
      });
      const requestId = await requestIdOf(res);
      return {
        status: res.status,
        requestId,
        expected: [
          {
            action: "subject.access",
            actor: `platform:${other.id}`,
            target: "T-1",
            outcome: "ok",
            details: {
              requestRef: "T-1",
              subjectKeys: await pepperedKeys(buyer),
              page: 1,
              accessRequestId: requestId,
            },
          },
        ],
      };
    },
  },
  {
    name: "admin platform create",
    async run() {
      const id = uniqueId("p");
      const keys = await newKeyPair();
      const res = await callJson("/v1/admin/platforms", {
        token: await adminToken(),
        body: { id, name: "Shop Audit", scopes: ["scores:read"], jwks: { keys: [keys.publicJwk] } },
      });
      return {
        status: res.status,
        requestId: await requestIdOf(res),
        expected: [
          {
            action: "platform.create",
            actor: ADMIN_ACTOR,
            target: id,
            outcome: "created",
            details: { name: "Shop Audit", scopes: ["scores:read"], kids: [keys.kid] },
          },
        ],
      };
    },
  },
  {
    name: "admin platform patch",
    async run() {
      const p = await newPlatform();
      const res = await callJson(`/v1/admin/platforms/${p.id}`, {
        method: "PATCH",
        token: await adminToken(),
        body: { status: "suspended" },
      });
      return {
        status: res.status,
        requestId: await requestIdOf(res),
        expected: [
          {
            action: "platform.update",
            actor: ADMIN_ACTOR,
            target: p.id,
            outcome: "ok",
            details: { changes: { status: "suspended" } },
          },
        ],
      };
    },
  },
  {
    name: "admin key rotation",
    async run() {
      const p = await newPlatform();
      const next = await newKeyPair();
      const res = await callJson(`/v1/admin/platforms/${p.id}/keys`, {
        method: "PUT",
        token: await adminToken(),
        body: { keys: [p.publicJwk, next.publicJwk] },
      });
      return {
        status: res.status,
        requestId: await requestIdOf(res),
        expected: [
          {
            action: "platform.keys",
            actor: ADMIN_ACTOR,
            target: p.id,
            outcome: "ok",
            details: { kids: [p.publicJwk.kid, next.kid] },
          },
        ],
      };
    },
  },
  {
    name: "report void",
    async run({ reporter }) {
      const { report } = await createReport(reporter, await newBuyer());
      const res = await callJson(`/v1/admin/reports/${report.id}/void`, {
        token: await adminToken(),
        body: { reason: "Court ruling reversed." },
      });
      return {
        status: res.status,
        requestId: await requestIdOf(res),
        expected: [
          {
            action: "report.void",
            actor: ADMIN_ACTOR,
            target: report.id,
            outcome: "ok",
            details: { from: "active", to: "voided", reason: "Court ruling reversed." },
          },
        ],
      };
    },
  },
  {
    name: "maintenance run: one maintenance.run, plus one retention.purge per purged chunk",
    async run() {
      const res = await callJson<MaintenanceBody>("/v1/admin/maintenance/run", {
        token: await adminToken(),
        body: {},
      });
      const { checkpoint: _cp, archived: _archived, outbox: _outbox, ...result } = res.body;
      const purges = Math.ceil(result.reportsPurged / PURGE_CHUNK);
      return {
        status: res.status,
        requestId: await requestIdOf(res),
        expected: [
          ...Array.from({ length: purges }, () => ({
            action: "retention.purge",
            actor: ADMIN_ACTOR,
            target: null,
            outcome: "ok",
          })),
          { action: "maintenance.run", actor: ADMIN_ACTOR, target: null, outcome: "ok", details: result },
        ],
      };
    },
  },
  {
    name: "rejected token (a key the issuer does not have)",
    async run({ reporter }) {
      const stranger = await newKeyPair();
      const token = await signToken(stranger.privateJwk as JWK, { iss: reporter.id });
      const source = `198.51.100.${Math.floor(Math.random() * 250) + 1}-${uniqueId("src")}`;
      const res = await call("/v1/reports", { token, headers: { "cf-connecting-ip": source } });
      expect(res.headers.get("www-authenticate")).toMatch(/^Bearer/);
      return {
        status: res.status,
        requestId: await requestIdOf(res),
        expected: [
          {
            action: "auth.reject",
            actor: "anonymous",
            target: "GET /v1/reports",
            outcome: "unauthenticated",
            details: { claimedIssuer: reporter.id, source },
          },
        ],
        check: (rows) => {
          const details = JSON.parse(rows[0]?.details ?? "{}") as { reason?: string };
          expect(details.reason).toEqual(expect.any(String));
          expect(details.reason?.length).toBeGreaterThan(0);
        },
      };
    },
  },
  {
    name: "rejected token (none at all)",
    async run() {
      const source = uniqueId("src");
      const res = await call("/v1/admin/audit", { headers: { "cf-connecting-ip": source } });
      return {
        status: res.status,
        requestId: await requestIdOf(res),
        expected: [
          {
            action: "auth.reject",
            actor: "anonymous",
            target: "GET /v1/admin/audit",
            outcome: "unauthenticated",
            details: { claimedIssuer: null, source },
          },
        ],
      };
    },
  },
  {
    name: "replayed token (jti seen before) on a write",
    async run({ reporter }) {
      const token = await reporter.token();
      const first = await callJson("/v1/reports", { token, body: reportBody(await newBuyer()) });
      expect(first.status).toBe(201);
      const res = await callJson("/v1/reports", { token, body: reportBody(await newBuyer()) });
      return {
        status: res.status,
        requestId: await requestIdOf(res),
        expected: [
          {
            action: "report.create",
            actor: `platform:${reporter.id}`,
            target: null,
            outcome: "unauthenticated",
            details: { method: "POST", path: "/v1/reports", status: 401 },
          },
        ],
      };
    },
  },
  {
    name: "missing scope",
    async run() {
      const p = await newPlatform({ scopes: ["scores:read"] });
      const res = await callJson("/v1/reports", {
        token: await p.token(),
        body: reportBody(await newBuyer()),
      });
      return {
        status: res.status,
        requestId: await requestIdOf(res),
        expected: [
          {
            action: "report.create",
            actor: `platform:${p.id}`,
            target: null,
            outcome: "forbidden",
            details: { method: "POST", path: "/v1/reports", status: 403 },
          },
        ],
      };
    },
  },
  {
    name: "a read",
    async run({ reporter, report }) {
      const res = await callJson(`/v1/reports/${report.id}`, { token: await reporter.token() });
      return {
        status: res.status,
        requestId: await requestIdOf(res),
        expected: [
          {
            action: "report.read",
            actor: `platform:${reporter.id}`,
            target: report.id,
            outcome: "ok",
            details: { method: "GET", path: `/v1/reports/${report.id}`, status: 200 },
          },
        ],
      };
    },
  },
];

const EXPECTED_STATUS: Record<string, number> = {
  "report create": 201,
  "idempotent replay": 200,
  "conflicting replay (same caseId, other content)": 409,
  "admin platform create": 201,
  "dispute open": 201,
  "rejected token (a key the issuer does not have)": 401,
  "rejected token (none at all)": 401,
  "replayed token (jti seen before) on a write": 401,
  "missing scope": 403,
};

describe("every action leaves exactly one entry (or one per item)", () => {
  let fixture: Fixture;
  const seen: { name: string; requestId: string; count: number }[] = [];

  beforeAll(async () => {
    const reporter = await newPlatform();
    const other = await newPlatform();
    const buyer = await newBuyer();
    const { report } = await createReport(reporter, buyer);
    fixture = { reporter, other, buyer, report };
  });

  it.each(CASES.map((c) => [c.name, c] as const))("%s", async (name, c) => {
    const result = await c.run(fixture);
    expect(result.status).toBe(EXPECTED_STATUS[name] ?? 200);
    const rows = await auditRowsEventually(result.requestId, result.expected.length);
    expect(
      rows.map((r) => `${r.action} ${r.outcome}`),
      "entries of the request",
    ).toEqual(result.expected.map((e) => `${e.action} ${e.outcome}`));
    for (const [i, e] of result.expected.entries()) {
      const row = rows[i] as AuditRow;
      expect({ actor: row.actor, action: row.action, target: row.target, outcome: row.outcome }).toEqual({
        actor: e.actor,
        action: e.action,
        target: e.target,
        outcome: e.outcome,
      });
      expect(row.request_id).toBe(result.requestId);
      if (e.details) {
        expect(JSON.parse(row.details ?? "null")).toMatchObject(e.details);
      }
    }
    await result.check?.(rows);
    seen.push({ name, requestId: result.requestId, count: result.expected.length });
  });

  // Late writers (after the response) would show up by now: the counts must still be exact.
  it("no request gained a late second entry", async () => {
    expect(seen).toHaveLength(CASES.length);
    await verify(); // seals everything, and gives straggling after-response writes time to land
    for (const s of seen) {
      expect((await auditRows(s.requestId)).length, s.name).toBe(s.count);
    }
  });
});

describe("the hash chain", () => {
  it("verifies from the genesis, every entry recomputing with the documented rule", async () => {
    await legacyEntries(3);
    const v = await verify();
    expect(v).toMatchObject({ ok: true, from: { seq: 0, checkpoint: false } });
    expect(v.firstBadSeq).toBeUndefined();
    const head = v.head as { seq: number; hash: string };
    expect(v.checked).toBe(head.seq);
    expect(head.hash).toBe((await rowAt(head.seq)).hash);
    await expectChained(1, head.seq);
    expect((await rowAt(1)).prev_hash).toBe(GENESIS);
  });

  it("an altered entry is reported at its seq, online and offline; restored, it verifies again", async () => {
    const [, victim, after] = await legacyEntries(3);
    await sealAndSign();
    const original = await rowAt(victim as number);
    try {
      await env.DB.prepare("UPDATE audit_log SET outcome = 'replayed' WHERE seq = ?").bind(victim).run();
      const bad = await verify();
      expect(bad.ok).toBe(false);
      expect(bad.firstBadSeq).toBe(victim);
      expect(bad.reason).toContain(String(victim));
      const offline = await verifyExport(await exportText());
      expect(offline.ok).toBe(false);
      expect(offline.firstBadSeq).toBe(victim);

      // Any field counts, details included.
      await env.DB.prepare(
        "UPDATE audit_log SET outcome = ?, details = json_set(details, '$.item', 7) WHERE seq = ?",
      )
        .bind(original.outcome, victim)
        .run();
      expect((await verify()).firstBadSeq).toBe(victim);
    } finally {
      await restoreRow(original);
    }
    const good = await verify();
    expect(good.ok).toBe(true);
    expect(good.head?.seq).toBeGreaterThanOrEqual(after as number);
  });

  it("a removed entry is reported at the removed seq", async () => {
    const [, victim, after] = await legacyEntries(3);
    await verify();
    const original = await rowAt(victim as number);
    try {
      await env.DB.prepare("DELETE FROM audit_log WHERE seq = ?").bind(victim).run();
      const bad = await verify();
      expect(bad.ok).toBe(false);
      expect(bad.firstBadSeq).toBe(victim);
      expect(bad.reason).toContain("missing");
      const offline = await verifyExport(await exportText());
      expect(offline.ok).toBe(false);
      expect(offline.firstBadSeq).toBe(victim);
    } finally {
      await restoreRow(original);
    }
    expect((await verify()).ok).toBe(true);
    expect(await rowAt(after as number)).toMatchObject({ prev_hash: original.hash });
  });

  it("two entries swapped (reordered) are reported at the lower seq", async () => {
    const [low, , high] = await legacyEntries(3);
    await verify();
    const a = await rowAt(low as number);
    const b = await rowAt(high as number);
    try {
      await env.DB.batch([setContent(a.seq, b), setContent(b.seq, a)]);
      const bad = await verify();
      expect(bad.ok).toBe(false);
      expect(bad.firstBadSeq).toBe(low);
    } finally {
      await env.DB.batch([setContent(a.seq, a), setContent(b.seq, b)]);
    }
    expect((await verify()).ok).toBe(true);
  });

  it("unsealed entries at the tail are reported apart from broken ones, and sealed by verify", async () => {
    await verify();
    const mine = await legacyEntries(2);
    const before = await callJson<{ audit: { entries: number; unsealed: number } }>("/v1/admin/stats", {
      token: await adminToken(),
    });
    expect(before.status).toBe(200);
    for (const seq of mine) {
      expect((await rowAt(seq)).hash, "written unsealed").toBeNull();
    }
    // Not chained yet, and counted as such: at least these two are past the sealed head.
    expect(before.body.audit.unsealed).toBeGreaterThanOrEqual(2);
    const listed = await callJson<AuditPage>(
      `/v1/admin/audit?actor=${encodeURIComponent((await rowAt(mine[0] as number)).actor)}`,
      {
        token: await adminToken(),
      },
    );
    expect(listed.body.items.map((i) => i.hash)).toEqual([null, null]);

    const v = await verify();
    expect(v.ok).toBe(true);
    expect(v.firstBadSeq).toBeUndefined();
    expect(v.unsealed).toEqual(expect.any(Number));
    expect(v.head?.seq).toBeGreaterThanOrEqual(mine[1] as number);
    await expectChained(mine[0] as number, mine[1] as number);
  });

  it("an entry that lost its hash between sealed ones is a fault at its seq, not 'unsealed'", async () => {
    const [, victim] = await legacyEntries(3);
    await verify();
    const original = await rowAt(victim as number);
    try {
      await env.DB.prepare("UPDATE audit_log SET hash = NULL, prev_hash = NULL WHERE seq = ?")
        .bind(victim)
        .run();
      const bad = await verify();
      expect(bad.ok).toBe(false);
      expect(bad.firstBadSeq).toBe(victim);
      expect(bad.reason).toContain("lost its hash");
    } finally {
      await restoreRow(original);
    }
    expect((await verify()).ok).toBe(true);
  });

  it("30 concurrent writers: every request one entry, seqs strictly increasing, one unforked chain", async () => {
    const [p1, p2, p3] = await Promise.all([newPlatform(), newPlatform(), newPlatform()]);
    const buyers = await Promise.all(Array.from({ length: 30 }, () => newBuyer()));
    const jobs = await Promise.all(
      buyers.map(async (buyer, i) => {
        if (i % 3 === 0) {
          return { path: "/v1/reports", token: await (p1 as TestPlatform).token(), body: reportBody(buyer) };
        }
        if (i % 3 === 1) {
          return {
            path: "/v1/scores/query",
            token: await (p2 as TestPlatform).token(),
            body: { subjects: buyer, purpose: "refund_review" },
          };
        }
        return {
          path: "/v1/subject-access",
          token: await (p3 as TestPlatform).token(),
          body: { requestRef: "T-1", subjects: buyer },
        };
      }),
    );
    const responses = await Promise.all(jobs.map((j) => call(j.path, { token: j.token, body: j.body })));
    expect(responses.map((r) => r.status)).toEqual(jobs.map((j) => (j.path === "/v1/reports" ? 201 : 200)));
    const ids = responses.map((r) => r.headers.get("x-request-id") as string);
    expect(new Set(ids).size).toBe(30);

    // Sealers racing each other must agree.
    const verdicts = await Promise.all([verify(), verify(), verify()]);
    for (const v of verdicts) {
      expect(v.ok, JSON.stringify(v)).toBe(true);
    }
    // Reports (through the outbox) and look-ups alike are in the log shards, chained as written:
    // one entry each, the reports' at distinct seqs of their platform's shard.
    const seqs: number[] = [];
    for (const [i, id] of ids.entries()) {
      const rows = await lookupRows(id);
      expect(rows, id).toHaveLength(1);
      if (jobs[i]?.path === "/v1/reports") {
        seqs.push((rows[0] as AuditRow).seq);
      }
    }
    expect(new Set(seqs).size).toBe(10);
    for (const v of verdicts) {
      expect(v.shards.every((sh) => sh.ok && sh.unsealed === 0)).toBe(true);
    }
    const forks = await logQuery(
      "SELECT prev_hash, count(*) AS n FROM entries GROUP BY prev_hash HAVING n > 1",
    );
    expect(forks).toEqual([]);
    const distinct = await logQuery<{ n: number; d: number }>(
      "SELECT count(hash) AS n, count(DISTINCT hash) AS d FROM entries",
    );
    expect(distinct.every((r) => r.d === r.n)).toBe(true);
  });
});

describe("signed checkpoints", () => {
  it("the scheduled job signs the head with the key published at the well-known path", async () => {
    await legacyEntries(2);
    const { body, requestId } = await runMaintenance();
    const run = (await lookupRows(requestId)).find((r) => r.action === "maintenance.run");
    expect(body.checkpoint).not.toBeNull();
    const cp = await checkpointAt(body.checkpoint?.seq as number);
    // The run's own entry (drained to its shard before signing) is inside what it signed.
    expect(run, "the run's entry is in a log shard").toBeDefined();
    expect(cp.heads.find((h) => h.shard === run?.shard)?.seq).toBeGreaterThanOrEqual(run?.seq ?? Infinity);
    expect(cp.hash).toBe(body.checkpoint?.hash);
    expect(cp.hash).toBe((await rowAt(cp.seq)).hash);

    const keysRes = await callJson<{ keys: (JWK & { kid: string })[] }>("/.well-known/pixiu-audit-keys.json");
    expect(keysRes.status).toBe(200);
    expect(keysRes.headers.get("content-type")).toMatch(/^application\/json/);
    const published = keysRes.body.keys.find((k) => k.kid === cp.kid);
    if (!published) {
      throw new Error(`no published key ${cp.kid}`);
    }
    const signing = JSON.parse(env.AUDIT_SIGNING_JWK) as JWK;
    expect(published).toMatchObject({ kty: "OKP", crv: "Ed25519", x: signing.x, alg: "EdDSA" });
    expect(published.d, "the private half is never published").toBeUndefined();

    // One tree checkpoint: the ledger as leaf −1, then every shard's head, under one root.
    expect(cp.heads.map((h) => h.shard)).toEqual([
      -1,
      ...Array.from({ length: LOG.LOG_SHARDS }, (_, i) => i),
    ]);
    expect(cp.root).toBe(await treeRoot(cp.heads));
    expect(body.checkpoint?.root).toBe(cp.root);
    const key = (await importJWK(published, "EdDSA")) as CryptoKey;
    const signature = base64url.decode(cp.signature);
    expect(await crypto.subtle.verify("Ed25519", key, signature, treeMessage(cp))).toBe(true);
    // The signature covers the root (so every head), the number of leaves and the time.
    const wrongLedger = [
      { shard: -1, seq: cp.seq - 1, hash: (await rowAt(cp.seq - 1)).hash as string },
      ...cp.heads.slice(1),
    ];
    const wrongRoot = { ...cp, root: await treeRoot(wrongLedger) };
    expect(await crypto.subtle.verify("Ed25519", key, signature, treeMessage(wrongRoot))).toBe(false);
    expect(await crypto.subtle.verify("Ed25519", key, signature, treeMessage({ ...cp, at: cp.at + 1 }))).toBe(
      false,
    );
  });

  it("after a key rotation, old checkpoints verify only while the retired key is kept", async () => {
    await sealAndSign();
    const old = JSON.parse(env.AUDIT_SIGNING_JWK) as JWK & { kid: string; x: string };
    const next = await generateKeyPair("EdDSA", { extractable: true });
    const rotated = { ...(await exportJWK(next.privateKey)), kid: "audit-rotated" } as Parameters<
      typeof verifyLog
    >[2];
    const retired = { keys: [{ kty: "OKP" as const, crv: "Ed25519" as const, x: old.x, kid: old.kid }] };

    const kept = await verifyLog(env.DB, LOG, rotated, "genesis", retired);
    expect(kept.ok, JSON.stringify(kept)).toBe(true);
    expect(kept.checkpoints.invalid).toBe(0);
    expect(kept.checkpoints.checked).toBeGreaterThan(0);

    const dropped = await verifyLog(env.DB, LOG, rotated, "genesis");
    expect(dropped.ok).toBe(false);
    expect(dropped.checkpoints.invalid).toBeGreaterThan(0);

    // Both keys are published, current first; the private halves never.
    const published = publicAuditKeys(rotated, retired).keys;
    expect(published.map((k) => k.kid)).toEqual(["audit-rotated", old.kid]);
    expect(published.every((k) => !("d" in k))).toBe(true);
  });

  it("a forged checkpoint (a head or the signature edited in D1) is rejected", async () => {
    // The ledger head moves, so no earlier checkpoint names the same head.
    await legacyEntries(1);
    const cp = await sealAndSign();
    await legacyEntries(1);
    const clean = await verify();
    expect(clean.ok).toBe(true);
    expect(clean.checkpoints.invalid).toBe(0);
    const otherHash = (await rowAt(cp.seq - 1)).hash as string;
    const flipped = `${cp.signature.slice(0, 10)}${cp.signature[10] === "A" ? "B" : "A"}${cp.signature.slice(11)}`;
    const heads = JSON.stringify([{ shard: -1, seq: cp.seq, hash: otherHash }, ...cp.heads.slice(1)]);
    const original = { heads: JSON.stringify(cp.heads), signature: cp.signature };
    for (const [column, value] of [
      ["heads", heads],
      ["signature", flipped],
    ] as const) {
      try {
        await env.DB.prepare(`UPDATE log_checkpoints SET ${column} = ? WHERE id = ?`)
          .bind(value, cp.id)
          .run();
        const bad = await verify();
        expect(bad.ok, column).toBe(false);
        expect(bad.firstBadSeq, column).toBe(cp.seq);
        expect(bad.checkpoints.invalid, column).toBe(1);
        // Never trusted as a starting point either.
        const fromCp = await verify("checkpoint");
        expect(fromCp.ok, column).toBe(false);
        expect(fromCp.from.seq, column).not.toBe(cp.seq);
        // Offline, the export's checkpoint line fails its signature.
        const offline = await verifyExport(await exportText(`?sinceSeq=${cp.seq}`));
        expect(offline.ok, column).toBe(false);
        expect(offline.firstBadSeq, column).toBe(cp.seq);
      } finally {
        await env.DB.prepare(`UPDATE log_checkpoints SET ${column} = ? WHERE id = ?`)
          .bind(original[column], cp.id)
          .run();
      }
    }
    const again = await verify();
    expect(again.ok).toBe(true);
    expect(again.checkpoints.invalid).toBe(0);
  });

  it("an edit covered by re-chaining every later hash is still caught by the signed checkpoint", async () => {
    const [victim] = await legacyEntries(2);
    const cp = await sealAndSign();
    await legacyEntries(1);
    await verify();
    const original = await rowAt(victim as number);
    try {
      await env.DB.prepare("UPDATE audit_log SET outcome = 'replayed' WHERE seq = ?").bind(victim).run();
      await rechainFrom(victim as number);
      // Internally consistent again…
      await expectChained(victim as number, cp.seq);
      // …but no longer what was signed.
      const bad = await verify();
      expect(bad.ok).toBe(false);
      expect(bad.firstBadSeq).toBe(cp.seq);
      expect(bad.reason).toContain("checkpoint");
      const fromCp = await verify("checkpoint");
      expect(fromCp.ok).toBe(false);
      expect(fromCp.firstBadSeq).toBe(cp.seq);
      const offline = await verifyExport(await exportText(`?sinceSeq=${victim}`));
      expect(offline.ok).toBe(false);
      expect(offline.firstBadSeq).toBe(cp.seq);
    } finally {
      await restoreRow(original);
      await rechainFrom(victim as number);
    }
    expect(await checkpointAt(cp.seq)).toMatchObject({ hash: (await rowAt(cp.seq)).hash });
    expect((await verify()).ok).toBe(true);
  });

  it("verify from the latest checkpoint checks only what came after it, and catches edits there", async () => {
    const [before] = await legacyEntries(1);
    const cp = await sealAndSign();
    const [, victim] = await legacyEntries(3);
    const v = await verify("checkpoint");
    expect(v.ok).toBe(true);
    expect(v.from).toEqual({ seq: cp.seq, checkpoint: true });
    expect(v.checked).toBe((v.head?.seq ?? 0) - cp.seq);
    expect(v.head?.seq).toBeGreaterThan(victim as number);

    const afterOriginal = await rowAt(victim as number);
    try {
      await env.DB.prepare("UPDATE audit_log SET actor = 'platform:someone-else' WHERE seq = ?")
        .bind(victim)
        .run();
      const bad = await verify("checkpoint");
      expect(bad.ok).toBe(false);
      expect(bad.firstBadSeq).toBe(victim);
    } finally {
      await restoreRow(afterOriginal);
    }

    // Before the checkpoint: outside a checkpoint verify's range, caught from the genesis.
    const beforeOriginal = await rowAt(before as number);
    try {
      await env.DB.prepare("UPDATE audit_log SET actor = 'platform:someone-else' WHERE seq = ?")
        .bind(before)
        .run();
      expect((await verify("checkpoint")).ok).toBe(true);
      const full = await verify("genesis");
      expect(full.ok).toBe(false);
      expect(full.firstBadSeq).toBe(before);
    } finally {
      await restoreRow(beforeOriginal);
    }
    expect((await verify("genesis")).ok).toBe(true);
  });
});

describe("export and offline verification", () => {
  it("streams the chain from `since` with the covering checkpoints, and verifies offline", async () => {
    await sealAndSign();
    const mine = await legacyEntries(3);
    const cp = await sealAndSign();
    const first = await rowAt(mine[0] as number);
    const since = new Date(first.at).toISOString();
    const text = await exportText(`?since=${encodeURIComponent(since)}`);
    const lines = parseLines(text);

    const expectedFrom = await env.DB.prepare("SELECT min(seq) AS s FROM audit_log WHERE at >= ?")
      .bind(first.at)
      .first<{ s: number }>();
    expect(lines[0]).toMatchObject({ type: "header", format: "pixiu-audit-export/2", from: expectedFrom?.s });
    expect(expectedFrom?.s).toBeLessThanOrEqual(first.seq);
    const header = lines[0] as { from: number; to: number };
    expect(header.to).toBeGreaterThanOrEqual(cp.seq);
    const wellKnown = await callJson<{ keys: unknown[] }>("/.well-known/pixiu-audit-keys.json");
    expect(lines[1]).toEqual({ type: "keys", keys: wellKnown.body.keys });

    const entries = lines.filter((l) => l.type === "entry") as unknown as (ListedEntry & { at: number })[];
    expect(entries.map((e) => e.seq)).toEqual(
      Array.from({ length: header.to - header.from + 1 }, (_, i) => header.from + i),
    );
    for (const seq of mine) {
      const e = entries.find((x) => x.seq === seq);
      const row = await rowAt(seq);
      expect(e).toEqual({
        type: "entry",
        seq,
        at: row.at,
        actor: row.actor,
        action: row.action,
        target: row.target,
        requestId: row.request_id,
        outcome: row.outcome,
        details: JSON.parse(row.details ?? "null"),
        prevHash: row.prev_hash,
        hash: row.hash,
      });
    }
    // Every tree checkpoint whose ledger head is at or after `from`, as stored, after the entries.
    const { results: storedRows } = await env.DB.prepare(
      "SELECT * FROM log_checkpoints WHERE json_extract(heads, '$[0].seq') >= ? ORDER BY id",
    )
      .bind(header.from)
      .all<Omit<CheckpointRow, "seq" | "hash" | "heads"> & { heads: string }>();
    const stored = storedRows.map(toCheckpoint);
    const cps = lines.filter((l) => l.type === "tree-checkpoint");
    expect(cps).toEqual(
      stored.map(({ id: _id, seq: _seq, hash: _hash, ...c }) => ({ type: "tree-checkpoint", ...c })),
    );
    expect(cps.map((c) => c.root)).toContain(cp.root);
    expect(lines.findIndex((l) => l.type === "tree-checkpoint")).toBeGreaterThan(
      Math.max(
        lines.findLastIndex((l) => l.type === "entry"),
        lines.findLastIndex((l) => l.type === "log-entry"),
      ),
    );

    const embedded = await verifyExport(text);
    expect(embedded).toMatchObject({
      ok: true,
      entries: entries.length,
      from: header.from,
      to: header.to,
      head: entries[entries.length - 1]?.hash,
      signedThrough: Math.max(...stored.filter((c) => c.seq <= header.to).map((c) => c.seq)),
      usedEmbeddedKeys: true,
    });
    const trusted = await verifyExport(text, wellKnown.body as { keys: JsonWebKey[] });
    expect(trusted).toMatchObject({ ok: true, usedEmbeddedKeys: false });
    // Someone else's key under the same kid does not verify the ledger's signatures.
    const impostor = await newKeyPair("EdDSA", cp.kid);
    const foreign = await verifyExport(text, { keys: [impostor.publicJwk as JsonWebKey] });
    expect(foreign.ok).toBe(false);
    expect(foreign.error).toContain("invalid signature");
  });

  it("one changed byte fails at the right seq; a dropped line fails at the missing seq", async () => {
    await sealAndSign();
    const mine = await legacyEntries(3);
    const cp = await sealAndSign();
    const text = await exportText(`?sinceSeq=${mine[0]}`);
    expect((await verifyExport(text)).ok).toBe(true);
    const lines = text.split("\n");
    const target = mine[1] as number;
    const at = lines.findIndex((l) => l.startsWith('{"type":"entry"') && JSON.parse(l).seq === target);
    expect(at).toBeGreaterThan(0);
    const line = lines[at] as string;
    const rid = (JSON.parse(line) as { requestId: string }).requestId;
    const pos = line.indexOf(rid) + rid.length - 1;
    const changed = `${line.slice(0, pos)}${line[pos] === "0" ? "1" : "0"}${line.slice(pos + 1)}`;
    expect(changed.length).toBe(line.length);
    const edited = await verifyExport([...lines.slice(0, at), changed, ...lines.slice(at + 1)].join("\n"));
    expect(edited.ok).toBe(false);
    expect(edited.firstBadSeq).toBe(target);
    expect(edited.error).toContain(String(target));

    const dropped = await verifyExport([...lines.slice(0, at), ...lines.slice(at + 1)].join("\n"));
    expect(dropped.ok).toBe(false);
    expect(dropped.firstBadSeq).toBe(target);

    const cpAt = lines.findIndex(
      (l) => l.startsWith('{"type":"tree-checkpoint"') && JSON.parse(l).root === cp.root,
    );
    const cpLine = lines[cpAt] as string;
    const sigPos = cpLine.indexOf(cp.signature) + 10;
    const forged = `${cpLine.slice(0, sigPos)}${cpLine[sigPos] === "A" ? "B" : "A"}${cpLine.slice(sigPos + 1)}`;
    const badCp = await verifyExport([...lines.slice(0, cpAt), forged, ...lines.slice(cpAt + 1)].join("\n"));
    expect(badCp.ok).toBe(false);
    expect(badCp.firstBadSeq).toBe(cp.seq);
    expect(badCp.error).toContain("invalid signature");
  });

  it("refuses since together with sinceSeq, and exports nothing past the head", async () => {
    const both = await callJson("/v1/admin/audit/export?since=2026-01-01T00:00:00Z&sinceSeq=1", {
      token: await adminToken(),
    });
    expect(both.status).toBe(422);
    const future = parseLines(
      await exportText(`?since=${encodeURIComponent(new Date(Date.now() + 3_600_000).toISOString())}`),
    );
    expect(future.filter((l) => l.type === "entry")).toEqual([]);
    const platform = await newPlatform();
    expect((await callJson("/v1/admin/audit/export", { token: await platform.token() })).status).toBe(403);
  });
});

describe("GET /v1/admin/audit", () => {
  let p: TestPlatform;
  let rows: AuditRow[];
  let reports: Report[];
  const list = async (query: string) => {
    const res = await callJson<AuditPage>(`/v1/admin/audit?${query}`, { token: await adminToken() });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    return res.body;
  };

  beforeAll(async () => {
    p = await newPlatform();
    reports = [];
    for (let i = 0; i < 5; i++) {
      await sleep(3); // distinct milliseconds, for the since/until filters
      reports.push((await createReport(p, await newBuyer())).report);
    }
    await drainAuditOutbox(); // the reports' entries are in the shard before the look-up's
    await sleep(3);
    const q = await callJson("/v1/scores/query", {
      token: await p.token(),
      body: { subjects: await newBuyer(), purpose: "refund_review" },
    });
    expect(q.status).toBe(200);
    // Reports (through the outbox) and the look-up are all in the platform's log shard, one
    // chain; the look-up is the newest entry.
    rows = (await shardRows("e.actor = ?", `platform:${p.id}`)).reverse();
  });

  it("filters by actor, newest first, with every field", async () => {
    expect(rows).toHaveLength(6);
    const page = await list(`actor=${encodeURIComponent(`platform:${p.id}`)}`);
    expect(page.nextCursor).toBeNull();
    expect(page.items.map((i) => i.seq)).toEqual(rows.map((r) => r.seq));
    const top = rows[0] as AuditRow & { shard: number };
    const { subjectKeys, ...chained } = JSON.parse(top.details ?? "null") as { subjectKeys: string[] };
    expect(page.items[0]).toEqual({
      seq: top.seq,
      at: new Date(top.at).toISOString(),
      actor: `platform:${p.id}`,
      action: "score.query",
      target: null,
      requestId: top.request_id,
      outcome: "ok",
      details: chained,
      prevHash: top.prev_hash,
      hash: top.hash,
      shard: top.shard,
      keys: expect.stringMatching(/^[0-9a-f]{64}$/),
      subjectKeys,
    });
    const second = rows[1] as AuditRow;
    expect(page.items[1]).toMatchObject({
      seq: second.seq,
      action: "report.create",
      shard: top.shard,
      keys: expect.stringMatching(/^[0-9a-f]{64}$/),
      subjectKeys: (JSON.parse(second.details ?? "{}") as { subjectKeys: string[] }).subjectKeys,
    });
    expect((await list("actor=platform:nobody-at-all")).items).toEqual([]);
  });

  it("filters by since (inclusive) and until (exclusive)", async () => {
    const asc = [...rows].reverse();
    const ats = asc.map((r) => r.at);
    expect(new Set(ats).size, "entries at distinct milliseconds").toBe(ats.length);
    const since = ats[2] as number;
    const until = ats[4] as number;
    const page = await list(
      `actor=${encodeURIComponent(`platform:${p.id}`)}&since=${new Date(since).toISOString()}&until=${new Date(until).toISOString()}`,
    );
    expect(page.items.map((i) => i.seq)).toEqual([asc[3]?.seq, asc[2]?.seq]);
    const onlySince = await list(
      `actor=${encodeURIComponent(`platform:${p.id}`)}&since=${new Date(since).toISOString()}`,
    );
    expect(onlySince.items).toHaveLength(4);
    const onlyUntil = await list(
      `actor=${encodeURIComponent(`platform:${p.id}`)}&until=${new Date(until).toISOString()}`,
    );
    expect(onlyUntil.items).toHaveLength(4);
  });

  it("pages with a cursor: no entry twice, none skipped, the last page says so", async () => {
    const actor = encodeURIComponent(`platform:${p.id}`);
    for (const limit of [1, 2, 3, 4, 5]) {
      const seen: number[] = [];
      let cursor: string | null = null;
      let pages = 0;
      do {
        const page: AuditPage = await list(
          `actor=${actor}&limit=${limit}${cursor ? `&cursor=${cursor}` : ""}`,
        );
        pages++;
        expect(page.items.length).toBeLessThanOrEqual(limit);
        seen.push(...page.items.map((i) => i.seq));
        cursor = page.nextCursor;
        if (cursor !== null) {
          expect(page.items).toHaveLength(limit);
        }
      } while (cursor !== null && pages < 10);
      expect(seen, `limit ${limit}`).toEqual(rows.map((r) => r.seq));
      expect(pages, `limit ${limit}`).toBe(Math.ceil(rows.length / limit));
    }
  });

  it("refuses a bad cursor, limit or time, and anyone but an admin", async () => {
    for (const q of [
      "cursor=abc",
      "cursor=-1",
      "limit=0",
      "limit=201",
      "since=yesterday",
      "until=2026-13-01T00:00:00Z",
    ]) {
      const res = await callJson(`/v1/admin/audit?${q}`, { token: await adminToken() });
      expect(res.status, q).toBe(422);
    }
    expect((await callJson("/v1/admin/audit", { token: await p.token() })).status).toBe(403);
  });

  it("filters by action and by target", async () => {
    const actor = encodeURIComponent(`platform:${p.id}`);
    const creates = await list(`actor=${actor}&action=report.create`);
    expect(creates.items.map((i) => i.seq)).toEqual(
      rows.filter((r) => r.action === "report.create").map((r) => r.seq),
    );
    expect(creates.items).toHaveLength(5);
    expect((await list(`actor=${actor}&action=score.query`)).items).toHaveLength(1);

    const victim = reports[2] as Report;
    const one = await list(`target=${victim.id}`);
    expect(one.items.map((i) => [i.action, i.target])).toEqual([["report.create", victim.id]]);
    const retract = await callJson(`/v1/reports/${victim.id}/retract`, {
      token: await p.token(),
      body: { reason: "Filed in error." },
    });
    expect(retract.status).toBe(200);
    await drainAuditOutbox(); // the list reads the shards; the retraction's entry is drained after its answer
    const two = await list(`target=${victim.id}`);
    expect(two.items.map((i) => i.action)).toEqual(["report.retract", "report.create"]);
    expect((await list(`target=${victim.id}&action=report.retract`)).items).toHaveLength(1);
  });
});

describe("GET /v1/admin/stats", () => {
  interface Stats {
    platforms: Record<string, number>;
    reports: Record<string, number>;
    disputes: Record<string, number>;
    queriesPerDay: { day: string; queries: number; subjects: number }[];
    usage: {
      platformId: string;
      queries: number;
      subjects: number;
      reports: number;
      lookupsPerReport: number | null;
    }[];
    audit: { entries: number; unsealed: number; lastCheckpoint: { seq: number; at: string } | null };
  }
  const stats = async () => {
    const res = await callJson<Stats>("/v1/admin/stats", { token: await adminToken() });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    return res.body;
  };
  const today = () => new Date().toISOString().slice(0, 10);
  const n = (r: Record<string, number>, k: string) => r[k] ?? 0;

  it("counts platforms, reports and disputes by status, queries per day, usage, and the audit head", async () => {
    const before = await stats();
    const day = today();
    const dayBefore = before.queriesPerDay.find((d) => d.day === day) ?? { queries: 0, subjects: 0 };

    const p = await newPlatform();
    const asker = await newPlatform();
    const idle = await newPlatform();
    const suspend = await callJson(`/v1/admin/platforms/${idle.id}`, {
      method: "PATCH",
      token: await adminToken(),
      body: { status: "suspended" },
    });
    expect(suspend.status).toBe(200);
    const b1 = await newBuyer();
    const b2 = await newBuyer();
    const b3 = await newBuyer();
    const { report: r1 } = await createReport(p, b1);
    const { report: r2 } = await createReport(p, b2);
    await createReport(p, b3);
    expect(
      (await callJson(`/v1/reports/${r1.id}/retract`, { token: await p.token(), body: { reason: "x" } }))
        .status,
    ).toBe(200);
    const open = await callJson("/v1/disputes", {
      token: await asker.token(),
      body: { reportRef: r2.id, subjects: b2, reason: "Not me." },
    });
    expect(open.status).toBe(201);
    const single = await callJson("/v1/scores/query", {
      token: await p.token(),
      body: { subjects: b1, purpose: "refund_review" },
    });
    expect(single.status).toBe(200);
    const batch = await callJson("/v1/scores/batch", {
      token: await p.token(),
      body: {
        purpose: "refund_review",
        queries: [
          { ref: "a", subjects: b2 },
          { ref: "b", subjects: [...b3, ...(await newBuyer())] },
        ],
      },
    });
    expect(batch.status).toBe(200);
    const cp = await sealAndSign();

    const after = await stats();
    expect(n(after.platforms, "active") - n(before.platforms, "active")).toBe(2);
    expect(n(after.platforms, "suspended") - n(before.platforms, "suspended")).toBe(1);
    expect(n(after.reports, "active") - n(before.reports, "active")).toBe(1);
    expect(n(after.reports, "retracted") - n(before.reports, "retracted")).toBe(1);
    expect(n(after.reports, "disputed") - n(before.reports, "disputed")).toBe(1);
    expect(n(after.disputes, "open") - n(before.disputes, "open")).toBe(1);
    if (today() === day) {
      const dayAfter = after.queriesPerDay.find((d) => d.day === day);
      expect(dayAfter?.queries).toBe(dayBefore.queries + 3);
      expect(dayAfter?.subjects).toBe(dayBefore.subjects + 2 + 2 + 4);
    }
    expect(after.usage.find((u) => u.platformId === p.id)).toEqual({
      platformId: p.id,
      queries: 3,
      subjects: 8,
      reports: 3,
      lookupsPerReport: 2.7,
      subjectAccess: 0,
      disputesOpened: 0,
      distinctSubjectsToday: 8,
    });
    // The opener of the dispute is listed for it alone.
    expect(after.usage.find((u) => u.platformId === asker.id)).toEqual({
      platformId: asker.id,
      queries: 0,
      subjects: 0,
      reports: 0,
      lookupsPerReport: null,
      subjectAccess: 0,
      disputesOpened: 1,
      distinctSubjectsToday: 0,
    });

    expect(cp.seq).toBeGreaterThan(0);
    expect(after.audit.lastCheckpoint).toEqual({ seq: cp.seq, at: new Date(cp.at).toISOString() });
    // Entries: the ledger chain's (legacy prefix), every shard's, and the outbox's.
    const max = await env.DB.prepare("SELECT max(seq) AS m FROM audit_log").first<{ m: number }>();
    const inShards = cp.heads.filter((h) => h.shard >= 0).reduce((sum, h) => sum + h.seq, 0);
    expect(after.audit.entries).toBeGreaterThanOrEqual((max?.m ?? 0) + inShards);
    // Sealed and drained by the run: at most the after-response entries of the last few requests
    // can be waiting in the outbox.
    expect(after.audit.unsealed).toBeLessThanOrEqual(3);
  });
});
