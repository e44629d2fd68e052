/**
 * `npm run bench:log`: where should a score query's log go (issue 10)? A benchmark of bare
 * Workers, one per log-write design, on miniflare 5 (workerd) with a persisted local D1.
 *
 * The question: the look-up should be one D1 read (replica-servable) while its log — an inquiry
 * row per subject key and an audit entry — is committed durably elsewhere before the answer is
 * sent. Every design below runs the real score read (`scoreReadSql`) for a known buyer (two
 * subject keys), so only the log's cost differs:
 *
 * 1. `today`: one D1 batch [read, inquiries, usage upsert, audit entry] on the ledger's D1.
 * 2. `D1 read ‖ DO append`: the read in parallel with an RPC to a SQLite-backed Durable Object
 *    (one of N shards, by a hash of the platform id) that inserts the inquiry rows and a
 *    SHA-256-chained audit entry in one `transactionSync`, one request per transaction.
 * 3. The same with group commit: the shard buffers the appends that arrive within one tick
 *    (`setTimeout(0)`, or a microtask) and writes them in one `transactionSync`.
 * 4. `D1 read ‖ LOG_DB batch`: a second D1 database takes [inquiries, audit entry].
 * 5. `D1 read + queue send`: the log goes to a Queue whose consumer writes LOG_DB. Local queues
 *    hold messages in memory, so this one is not durable before the answer.
 *
 * Designs 1, 3 and 4 are also run for a batch of 100 buyers (one read for 200 keys, 200 inquiry
 * rows, 100 audit entries). Each design runs BENCH_REPEAT times, rounds interleaved (so a
 * neighbour's load drifts across designs, not into one), and the table shows the median.
 *
 * Last, a kill -9 check of design 3: a child process serves the Worker, the bench loads the
 * group-commit append, SIGKILLs workerd mid-load, restarts it on the same files, and counts the
 * acknowledged appends found in the shards' storage (and re-verifies each shard's hash chain).
 *
 * Options (env): BENCH_LINKS (100000 report_subjects rows), BENCH_SECONDS (10 per run),
 * BENCH_CONNECTIONS (32), BENCH_BATCH_CONNECTIONS (8), BENCH_REPEAT (3), BENCH_ONLY (a
 * design-name substring), BENCH_KILL_AFTER (seconds of load before the kill, 4).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import autocannon from "autocannon";
import { SQLiteAsyncDialect } from "drizzle-orm/sqlite-core";
// esbuild comes with wrangler and tsx; it bundles @noble/hashes into the Durable Object's module.
import { build } from "esbuild";
import { convertV4MiniflareOptions, Miniflare } from "miniflare";
import { scoreReadSql } from "../worker/services/scores";
import { ROOT } from "./lib/local";

const LINKS = Number(process.env.BENCH_LINKS ?? 100_000);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 32);
const BATCH_CONNECTIONS = Number(process.env.BENCH_BATCH_CONNECTIONS ?? 8);
const REPEAT = Number(process.env.BENCH_REPEAT ?? 3);
const ONLY = process.env.BENCH_ONLY;
const KILL_AFTER = Number(process.env.BENCH_KILL_AFTER ?? 4);
/** Two links per report, one buyer per 2.5 reports: most buyers have 2–3 records. */
const REPORTS = Math.floor(LINKS / 2);
const BUYERS = Math.floor(REPORTS / 2.5);
const PLATFORMS = Array.from({ length: 8 }, (_, i) => `shop-${i}`);
/** What the Worker asks for with the default MAX_ACTIVE_REPORTS_PER_SUBJECT (50): one more. */
const READ_PER_PLATFORM = 51;
const PORT = 8811;
const SERVE_PORT = 8812;
const STATE = join(ROOT, ".wrangler", "bench-log");
const DAY = 86_400_000;

const log = (msg: string) => console.error(`[bench:log] ${msg}`);

/** A buyer's two ledger keys (stand-ins for the peppered HMACs: same length, same randomness). */
const keysOf = (buyer: number) =>
  ["phone", "device"].map((type) => createHash("sha256").update(`${type}:${buyer}`).digest("hex"));

const SCORE_READ = new SQLiteAsyncDialect().sqlToQuery(scoreReadSql("[]", READ_PER_PLATFORM));

/**
 * The Worker under test: one route per design. A request body is `{ platform, queries: [{ ref,
 * keys }] }` (one query for a single score, 100 for a batch); the answer carries the request id,
 * which the durability check collects from every 2xx.
 */
const WORKER_SOURCE = `
import { DurableObject } from "cloudflare:workers";
import { sha256 } from "@noble/hashes/sha2.js";
import { bytesToHex, utf8ToBytes } from "@noble/hashes/utils.js";

const READ = ${JSON.stringify(SCORE_READ.sql)};
const PER_PLATFORM = ${READ_PER_PLATFORM};

/** FNV-1a of the platform id picks its shard. */
function shardOf(platform, n) {
  let h = 0x811c9dc5;
  for (let i = 0; i < platform.length; i++) {
    h ^= platform.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0) % n;
}

/** One log shard: inquiry rows and a hash-chained audit log in the object's SQLite. */
export class LogShard extends DurableObject {
  constructor(ctx, env) {
    super(ctx, env);
    const sql = ctx.storage.sql;
    sql.exec(\`CREATE TABLE IF NOT EXISTS inquiries (id INTEGER PRIMARY KEY AUTOINCREMENT,
      subject_key TEXT NOT NULL, platform_id TEXT NOT NULL, purpose TEXT NOT NULL, at INTEGER NOT NULL,
      request_id TEXT NOT NULL)\`);
    sql.exec("CREATE INDEX IF NOT EXISTS inquiries_subject_at ON inquiries (subject_key, at)");
    sql.exec(\`CREATE TABLE IF NOT EXISTS audit_log (seq INTEGER PRIMARY KEY AUTOINCREMENT, at INTEGER NOT NULL,
      actor TEXT NOT NULL, action TEXT NOT NULL, target TEXT, request_id TEXT NOT NULL, outcome TEXT NOT NULL,
      details TEXT, prev_hash TEXT, hash TEXT NOT NULL)\`);
    sql.exec("CREATE INDEX IF NOT EXISTS audit_request ON audit_log (request_id)");
    this.head = sql.exec("SELECT hash FROM audit_log ORDER BY seq DESC LIMIT 1").toArray()[0]?.hash ?? null;
    this.pending = [];
    this.scheduled = false;
    this.stats = { flushes: 0, appends: 0, maxGroup: 0 };
  }

  /** Writes the log of the given requests in one transaction, chaining each audit entry. */
  write(batches) {
    const sql = this.ctx.storage.sql;
    this.ctx.storage.transactionSync(() => {
      for (const b of batches) {
        for (const q of b.queries) {
          for (const key of q.keys) {
            sql.exec("INSERT INTO inquiries (subject_key, platform_id, purpose, at, request_id) VALUES (?, ?, ?, ?, ?)",
              key, b.platform, b.purpose, b.at, b.requestId);
          }
          const details = JSON.stringify({ purpose: b.purpose, subjectKeys: q.keys });
          const hash = bytesToHex(sha256(utf8ToBytes(JSON.stringify([this.head, b.at, b.platform, "score.query", q.ref, b.requestId, "ok", details]))));
          sql.exec("INSERT INTO audit_log (at, actor, action, target, request_id, outcome, details, prev_hash, hash) VALUES (?, ?, 'score.query', ?, ?, 'ok', ?, ?, ?)",
            b.at, b.platform, q.ref, b.requestId, details, this.head, hash);
          this.head = hash;
        }
      }
    });
    this.stats.flushes++;
    this.stats.appends += batches.length;
    this.stats.maxGroup = Math.max(this.stats.maxGroup, batches.length);
  }

  /** Design 2: one request, one transaction. */
  append(batch) {
    this.write([batch]);
  }

  /** Design 3: appends arriving within one tick share a transaction; each caller waits for it. */
  appendGrouped(batch, tick) {
    return new Promise((resolve, reject) => {
      this.pending.push({ batch, resolve, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        const flush = () => {
          const group = this.pending;
          this.pending = [];
          this.scheduled = false;
          try {
            this.write(group.map((p) => p.batch));
            for (const p of group) p.resolve();
          } catch (err) {
            for (const p of group) p.reject(err);
          }
        };
        if (tick === "micro") queueMicrotask(flush);
        else setTimeout(flush, 0);
      }
    });
  }

  /** Nothing: the RPC round trip alone. */
  ping() {}

  getStats() {
    return this.stats;
  }

  /** How many of these request ids have their audit entry, and how many their inquiry rows. */
  found(ids) {
    const sql = this.ctx.storage.sql;
    const json = JSON.stringify(ids);
    const audit = sql.exec("SELECT count(DISTINCT request_id) AS n FROM audit_log WHERE request_id IN (SELECT value FROM json_each(?))", json).one().n;
    const inquiries = sql.exec("SELECT count(*) AS n FROM inquiries WHERE request_id IN (SELECT value FROM json_each(?))", json).one().n;
    const total = sql.exec("SELECT count(*) AS n FROM audit_log").one().n;
    return { audit, inquiries, total };
  }

  /** Recomputes the chain from the first entry: the number of entries whose hash does not follow. */
  verifyChain() {
    let prev = null;
    let broken = 0;
    let entries = 0;
    for (const r of this.ctx.storage.sql.exec("SELECT * FROM audit_log ORDER BY seq")) {
      const hash = bytesToHex(sha256(utf8ToBytes(JSON.stringify([prev, r.at, r.actor, r.action, r.target, r.request_id, r.outcome, r.details]))));
      if (r.prev_hash !== prev || r.hash !== hash) broken++;
      prev = r.hash;
      entries++;
    }
    return { entries, broken };
  }
}

/** Shard names: the design, a tag (the kill check uses its own objects), N and the shard index. */
const shardStub = (env, mode, url, n, platform) =>
  env.LOG.get(env.LOG.idFromName((url.searchParams.get("tag") ?? "") + mode + "-n" + n + "-" + shardOf(platform, n)));

/** The read alone: the statement the look-up becomes. */
const read = (env, keysJson) => env.DB.prepare(READ).bind(keysJson, PER_PLATFORM).all();

/** The log of a request as LOG_DB (or today's DB) stores it: inquiries and audit entries, set-based. */
const logStatements = (db, b, keysJson) => {
  const entries = JSON.stringify(b.queries.map((q) => ({ ref: q.ref ?? null, keys: q.keys })));
  return [
    db.prepare("INSERT INTO inquiries (subject_key, platform_id, purpose, at, request_id) SELECT value, ?, ?, ?, ? FROM json_each(?)")
      .bind(b.platform, b.purpose, b.at, b.requestId, keysJson),
    db.prepare("INSERT INTO audit_log (at, actor, action, target, request_id, outcome, details) SELECT ?, ?, 'score.query', e.value ->> 'ref', ?, 'ok', json_object('purpose', ?, 'subjectKeys', e.value -> 'keys') FROM json_each(?) e")
      .bind(b.at, b.platform, b.requestId, b.purpose, entries),
  ];
};

let sent = 0;
let consumed = 0;

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    const design = url.pathname.slice(1);
    if (design === "select1") {
      const r = await env.DB.prepare("SELECT 1 AS one").all();
      return Response.json(r.results[0]);
    }
    if (design === "stats") {
      const mode = url.searchParams.get("mode");
      const n = Number(url.searchParams.get("n"));
      const shards = await Promise.all(Array.from({ length: n }, (_, s) => env.LOG.get(env.LOG.idFromName(mode + "-n" + n + "-" + s)).getStats()));
      return Response.json({ shards, sent, consumed });
    }
    if (design === "found") {
      const { mode, n, ids } = await request.json();
      const stubs = Array.from({ length: n }, (_, s) => env.LOG.get(env.LOG.idFromName(mode + "-n" + n + "-" + s)));
      const found = await Promise.all(stubs.map((stub) => stub.found(ids)));
      const chains = await Promise.all(stubs.map((stub) => stub.verifyChain()));
      return Response.json({ found, chains });
    }
    const body = await request.json();
    const b = { platform: body.platform, purpose: "refund_review", at: Date.now(), requestId: crypto.randomUUID(), queries: body.queries };
    const keysJson = JSON.stringify(b.queries.flatMap((q) => q.keys));
    const n = Number(url.searchParams.get("n") ?? 1);
    let rows;
    switch (design) {
      case "read": {
        rows = (await read(env, keysJson)).results.length;
        break;
      }
      case "today": {
        const subjects = b.queries.reduce((s, q) => s + q.keys.length, 0);
        const [found] = await env.DB.batch([
          env.DB.prepare(READ).bind(keysJson, PER_PLATFORM),
          env.DB.prepare("INSERT INTO usage_daily (day, platform_id, queries, subjects, reports) VALUES (?, ?, ?, ?, 0) ON CONFLICT (day, platform_id) DO UPDATE SET queries = queries + excluded.queries, subjects = subjects + excluded.subjects")
            .bind(new Date(b.at).toISOString().slice(0, 10), b.platform, b.queries.length, subjects),
          ...logStatements(env.DB, b, keysJson),
        ]);
        rows = found.results.length;
        break;
      }
      case "do": {
        const stub = shardStub(env, "direct", url, n, b.platform);
        const [found] = await Promise.all([read(env, keysJson), stub.append(b)]);
        rows = found.results.length;
        break;
      }
      case "group":
      case "micro": {
        const stub = shardStub(env, design, url, n, b.platform);
        const [found] = await Promise.all([read(env, keysJson), stub.appendGrouped(b, design === "micro" ? "micro" : "timer")]);
        rows = found.results.length;
        break;
      }
      case "ping": {
        await shardStub(env, "ping", url, n, b.platform).ping();
        rows = 0;
        break;
      }
      case "alone": {
        await shardStub(env, "alone", url, n, b.platform).appendGrouped(b, "timer");
        rows = 0;
        break;
      }
      case "logdb": {
        const [found] = await Promise.all([read(env, keysJson), env.LOG_DB.batch(logStatements(env.LOG_DB, b, keysJson))]);
        rows = found.results.length;
        break;
      }
      case "queue": {
        const [found] = await Promise.all([read(env, keysJson), env.LOG_Q.send(b)]);
        sent++;
        rows = found.results.length;
        break;
      }
      default:
        return new Response("no such design", { status: 404 });
    }
    return Response.json({ requestId: b.requestId, rows });
  },

  /** The queue's consumer: one LOG_DB batch per message batch. */
  async queue(messages, env) {
    const statements = messages.messages.flatMap((m) =>
      logStatements(env.LOG_DB, m.body, JSON.stringify(m.body.queries.flatMap((q) => q.keys))));
    await env.LOG_DB.batch(statements);
    consumed += messages.messages.length;
    messages.ackAll();
  },
};
`;

async function bundle(): Promise<string> {
  const out = await build({
    stdin: { contents: WORKER_SOURCE, resolveDir: ROOT, loader: "js", sourcefile: "bench-log-worker.js" },
    bundle: true,
    format: "esm",
    platform: "neutral",
    external: ["cloudflare:workers"],
    write: false,
    logLevel: "silent",
  });
  return out.outputFiles[0]?.text ?? "";
}

async function start(script: string, port: number): Promise<Miniflare> {
  const mf = new Miniflare(
    convertV4MiniflareOptions({
      resourcePersistencePath: STATE,
      workers: [
        {
          name: "bench-log",
          modules: true,
          script,
          compatibilityDate: "2026-11-01",
          d1Databases: { DB: "bench-log-ledger", LOG_DB: "bench-log-log" },
          durableObjects: { LOG: { className: "LogShard", useSQLite: true } },
          queueProducers: { LOG_Q: { queueName: "bench-log" } },
          queueConsumers: { "bench-log": { maxBatchSize: 100, maxBatchTimeout: 1 } },
          unsafeDirectSockets: [{ host: "127.0.0.1", port }],
        },
      ],
    } as Parameters<typeof convertV4MiniflareOptions>[0]),
  );
  await mf.ready;
  return mf;
}

/** The project's migrations, on both databases: the ledger's tables and the log's. */
async function migrate(mf: Miniflare) {
  const files = readdirSync(join(ROOT, "schema", "migrations"))
    .filter((f) => f.endsWith(".sql"))
    .sort();
  for (const binding of ["DB", "LOG_DB"]) {
    const d1 = await mf.getD1Database(binding, "bench-log");
    for (const file of files) {
      const statements = readFileSync(join(ROOT, "schema", "migrations", file), "utf8")
        .split("--> statement-breakpoint")
        .map((s) => s.trim())
        .filter(Boolean);
      await d1.batch(statements.map((s) => d1.prepare(s)));
    }
  }
}

/** The ledger's D1 file: the one holding `reports` rows after the seed is the biggest. */
function ledgerSqlite(): string {
  const dir = join(STATE, "d1", "miniflare-D1DatabaseObject");
  const files = readdirSync(dir).filter((f) => f.endsWith(".sqlite") && f !== "metadata.sqlite");
  for (const f of files) {
    const db = new DatabaseSync(join(dir, f));
    const marked = db.prepare("SELECT count(*) AS n FROM usage_daily WHERE platform_id = 'ledger'").get() as {
      n: number;
    };
    db.close();
    if (marked.n > 0) {
      return join(dir, f);
    }
  }
  throw new Error(`no ledger database under ${dir}`);
}

/** REPORTS reports over BUYERS buyers and 8 platforms, two subject links each, straight into SQLite. */
function seed() {
  const db = new DatabaseSync(ledgerSqlite());
  db.exec("PRAGMA journal_mode = WAL; PRAGMA synchronous = OFF; BEGIN");
  const report = db.prepare(`INSERT INTO reports (id, platform_id, case_id, status, category, confirmation,
    incident_at, confirmed_at, amount_value, amount_currency, evidence, content_hash, created_at, updated_at)
    VALUES (?, ?, ?, 'active', 'ai_generated_image', 'platform_forensics', ?, ?, 29900, 'CNY', ?, ?, ?, ?)`);
  const link = db.prepare(
    "INSERT INTO report_subjects (subject_key, report_id, subject_type, platform_id, incident_at, counted) VALUES (?, ?, ?, ?, ?, 1)",
  );
  const now = Date.now();
  for (let n = 0; n < REPORTS; n++) {
    const buyer = (n * 7919) % BUYERS;
    // Random-looking ids, as the API makes them: sequential ones would pack the B-tree tighter.
    const digest = createHash("sha256").update(`report:${n}`).digest("hex");
    const id = `rpt_${digest.slice(0, 26)}`;
    const platform = PLATFORMS[n % PLATFORMS.length] as string;
    const incident = now - ((n * 7919) % 1400) * DAY - DAY;
    report.run(
      id,
      platform,
      `SEED-${n}`,
      incident,
      incident + DAY,
      `[{"kind":"image_sha256","value":"${digest}"}]`,
      digest,
      now,
      now,
    );
    const [phone, device] = keysOf(buyer) as [string, string];
    link.run(phone, id, "phone", platform, incident);
    link.run(device, id, "device", platform, incident);
  }
  db.exec("COMMIT; PRAGMA wal_checkpoint(TRUNCATE)");
  db.close();
}

// ── load ─────────────────────────────────────────────────────────────────────────────────────
const pick = <T>(list: readonly T[]) => list[Math.floor(Math.random() * list.length)] as T;
const randomBuyer = () => Math.floor(Math.random() * BUYERS);
/** Request bodies, built before the clock starts so the client spends its core on sending. */
const singleBodies = Array.from({ length: 2000 }, () =>
  JSON.stringify({ platform: pick(PLATFORMS), queries: [{ keys: keysOf(randomBuyer()) }] }),
);
const batchBodies = Array.from({ length: 100 }, () =>
  JSON.stringify({
    platform: pick(PLATFORMS),
    queries: Array.from({ length: 100 }, (_, k) => ({ ref: `o${k}`, keys: keysOf(randomBuyer()) })),
  }),
);

interface Design {
  name: string;
  path: string;
  shape: "single" | "batch of 100";
  /** The shards whose group sizes to report: `{ mode, n }`. */
  shards?: { mode: string; n: number };
}

const DESIGNS: Design[] = [
  { name: "floor: SELECT 1", path: "/select1", shape: "single" },
  { name: "look-up floor: the read alone", path: "/read", shape: "single" },
  { name: "1. today: D1 batch [read, inquiries, usage, audit]", path: "/today", shape: "single" },
  {
    name: "2. D1 read ‖ DO append, N = 1",
    path: "/do?n=1",
    shape: "single",
    shards: { mode: "direct", n: 1 },
  },
  {
    name: "2. D1 read ‖ DO append, N = 4",
    path: "/do?n=4",
    shape: "single",
    shards: { mode: "direct", n: 4 },
  },
  {
    name: "3. D1 read ‖ DO group commit (setTimeout 0), N = 1",
    path: "/group?n=1",
    shape: "single",
    shards: { mode: "group", n: 1 },
  },
  {
    name: "3. D1 read ‖ DO group commit (setTimeout 0), N = 4",
    path: "/group?n=4",
    shape: "single",
    shards: { mode: "group", n: 4 },
  },
  {
    name: "3. D1 read ‖ DO group commit (microtask), N = 1",
    path: "/micro?n=1",
    shape: "single",
    shards: { mode: "micro", n: 1 },
  },
  { name: "4. D1 read ‖ LOG_DB batch [inquiries, audit]", path: "/logdb", shape: "single" },
  { name: "DO RPC alone (a no-op method), N = 1", path: "/ping?n=1", shape: "single" },
  {
    name: "DO group commit alone (no read), N = 1",
    path: "/alone?n=1",
    shape: "single",
    shards: { mode: "alone", n: 1 },
  },
  { name: "5. D1 read + queue send (not durable locally)", path: "/queue", shape: "single" },
  { name: "look-up floor: the read alone, 200 keys", path: "/read", shape: "batch of 100" },
  { name: "1. today, batch of 100", path: "/today", shape: "batch of 100" },
  {
    name: "3. DO group commit (setTimeout 0), N = 4, batch of 100",
    path: "/group?n=4",
    shape: "batch of 100",
    shards: { mode: "group", n: 4 },
  },
  { name: "4. LOG_DB batch, batch of 100", path: "/logdb", shape: "batch of 100" },
];

interface Run {
  rps: number;
  p50: number;
  p99: number;
  failed: number;
  group?: number;
}

async function stats(mode: string, n: number) {
  const res = await fetch(`http://127.0.0.1:${PORT}/stats?mode=${mode}&n=${n}`);
  const body = (await res.json()) as {
    shards: { flushes: number; appends: number; maxGroup: number }[];
    sent: number;
    consumed: number;
  };
  return {
    flushes: body.shards.reduce((s, x) => s + x.flushes, 0),
    appends: body.shards.reduce((s, x) => s + x.appends, 0),
    maxGroup: Math.max(0, ...body.shards.map((x) => x.maxGroup)),
    perShard: body.shards.map((x) => x.appends),
    sent: body.sent,
    consumed: body.consumed,
  };
}

async function load(design: Design, seconds = SECONDS): Promise<Run> {
  const bodies = design.shape === "single" ? singleBodies : batchBodies;
  let next = 0;
  const before = design.shards ? await stats(design.shards.mode, design.shards.n) : undefined;
  const r = await autocannon({
    url: `http://127.0.0.1:${PORT}`,
    connections: design.shape === "single" ? CONNECTIONS : BATCH_CONNECTIONS,
    duration: seconds,
    requests: [
      {
        setupRequest: (req) => ({
          ...req,
          method: "POST",
          path: design.path,
          headers: { "content-type": "application/json" },
          body: bodies[next++ % bodies.length] as string,
        }),
      },
    ],
  });
  const run: Run = {
    rps: r.requests.average,
    p50: r.latency.p50,
    p99: r.latency.p99,
    failed: r.non2xx + r.errors,
  };
  log(
    `${design.name} [${design.shape}]: ${run.rps.toFixed(0)} req/s, p50 ${run.p50} ms, p99 ${run.p99} ms, failed ${run.failed}`,
  );
  if (design.shards && before) {
    const after = await stats(design.shards.mode, design.shards.n);
    run.group = (after.appends - before.appends) / Math.max(1, after.flushes - before.flushes);
    log(
      `  appends per flush ${run.group.toFixed(2)} (largest since the shard started ${after.maxGroup}); appends per shard since it started ${after.perShard.join(" / ")}`,
    );
  }
  return run;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
};

/** Waits until the queue's consumer has written every message sent; returns the wait in ms. */
async function drainQueue(): Promise<{ waitedMs: number; sent: number; consumed: number }> {
  const started = performance.now();
  for (;;) {
    const s = await stats("group", 1);
    if (s.consumed >= s.sent || performance.now() - started > 60_000) {
      return { waitedMs: performance.now() - started, sent: s.sent, consumed: s.consumed };
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

// ── the kill -9 check ──────────────────────────────────────────────────────────────────────────

/** Every process below `pid` (its children, theirs, …), deepest first, from /proc. */
function descendants(pid: number): { pid: number; comm: string }[] {
  const parentOf = new Map<number, number>();
  const commOf = new Map<number, string>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) {
      continue;
    }
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const close = stat.lastIndexOf(")");
      const fields = stat.slice(close + 2).split(" ");
      parentOf.set(Number(entry), Number(fields[1]));
      commOf.set(Number(entry), stat.slice(stat.indexOf("(") + 1, close));
    } catch {
      // The process ended while we looked.
    }
  }
  const out: { pid: number; comm: string }[] = [];
  const walk = (p: number) => {
    for (const [child, parent] of parentOf) {
      if (parent === p) {
        walk(child);
        out.push({ pid: child, comm: commOf.get(child) ?? "?" });
      }
    }
  };
  walk(pid);
  return out;
}

/** This script in `serve` mode, in a child process: the Worker on SERVE_PORT until killed. */
async function serveChild(): Promise<ChildProcess> {
  const child = spawn(process.execPath, ["--import", "tsx", import.meta.filename, "serve"], {
    cwd: ROOT,
    stdio: ["ignore", "pipe", "inherit"],
  });
  await new Promise<void>((resolve, reject) => {
    child.stdout?.on("data", (chunk: Buffer) => {
      if (chunk.toString().includes("ready")) {
        resolve();
      }
    });
    child.on("exit", (code) => reject(new Error(`serve child exited with ${code}`)));
  });
  return child;
}

interface Durability {
  acknowledged: number;
  auditFound: number;
  inquiriesFound: number;
  missing: number;
  stored: number;
  failedRequests: number;
  killedAfterMs: number;
  chains: { entries: number; broken: number }[];
}

async function durabilityCheck(): Promise<Durability> {
  const tag = "kill-";
  const n = 4;
  log(`kill -9 check: loading /group?n=${n} on a child workerd, SIGKILL after ${KILL_AFTER} s…`);
  let child = await serveChild();
  const acknowledged: string[] = [];
  let next = 0;
  const started = performance.now();
  const instance = autocannon(
    {
      url: `http://127.0.0.1:${SERVE_PORT}`,
      connections: CONNECTIONS,
      duration: KILL_AFTER + 3,
      requests: [
        {
          setupRequest: (req) => ({
            ...req,
            method: "POST",
            path: `/group?n=${n}&tag=${tag}`,
            headers: { "content-type": "application/json" },
            body: singleBodies[next++ % singleBodies.length] as string,
          }),
          onResponse: (status, body) => {
            if (status >= 200 && status < 300) {
              acknowledged.push((JSON.parse(body) as { requestId: string }).requestId);
            }
          },
        },
      ],
    },
    () => {},
  );
  const result = new Promise<autocannon.Result>((resolve) => instance.on("done", resolve));
  await new Promise((resolve) => setTimeout(resolve, KILL_AFTER * 1000));
  const tree = descendants(child.pid as number);
  const killedAfterMs = performance.now() - started;
  // workerd first (it holds the files and the socket), then the node processes above it.
  for (const p of [
    ...tree.filter((p) => p.comm.includes("workerd")),
    ...tree.filter((p) => !p.comm.includes("workerd")),
  ]) {
    process.kill(p.pid, "SIGKILL");
  }
  process.kill(child.pid as number, "SIGKILL");
  log(
    `  SIGKILLed ${tree.map((p) => `${p.comm} ${p.pid}`).join(", ")} and the child ${child.pid} after ${(killedAfterMs / 1000).toFixed(1)} s`,
  );
  const r = await result;
  const ids = [...acknowledged];
  log(`  ${ids.length} appends acknowledged with a 2xx before the kill; restarting on the same files…`);
  child = await serveChild();
  const res = await fetch(`http://127.0.0.1:${SERVE_PORT}/found`, {
    method: "POST",
    body: JSON.stringify({ mode: `${tag}group`, n, ids }),
  });
  const found = (await res.json()) as {
    found: { audit: number; inquiries: number; total: number }[];
    chains: { entries: number; broken: number }[];
  };
  child.kill("SIGTERM");
  await new Promise((resolve) => child.once("exit", resolve));
  const auditFound = found.found.reduce((s, f) => s + f.audit, 0);
  return {
    acknowledged: ids.length,
    auditFound,
    inquiriesFound: found.found.reduce((s, f) => s + f.inquiries, 0),
    missing: ids.length - auditFound,
    stored: found.found.reduce((s, f) => s + f.total, 0),
    failedRequests: r.errors + r.non2xx,
    killedAfterMs,
    chains: found.chains,
  };
}

// ── main ───────────────────────────────────────────────────────────────────────────────────────

async function main() {
  const startedAt = Date.now();
  const script = await bundle();
  rmSync(STATE, { recursive: true, force: true });
  mkdirSync(STATE, { recursive: true });
  let mf = await start(script, PORT);
  await migrate(mf);
  // Marks the ledger's database, so the seed finds its file among the two.
  await (await mf.getD1Database("DB", "bench-log"))
    .prepare("INSERT INTO usage_daily (day, platform_id) VALUES ('seed', 'ledger')")
    .run();
  await mf.dispose();
  const seedStarted = performance.now();
  seed();
  const seedSeconds = (performance.now() - seedStarted) / 1000;
  log(
    `seeded ${REPORTS.toLocaleString()} reports, ${LINKS.toLocaleString()} subject links, ${BUYERS.toLocaleString()} buyers in ${seedSeconds.toFixed(1)} s`,
  );
  mf = await start(script, PORT);

  const designs = DESIGNS.filter((d) => !ONLY || d.name.includes(ONLY) || d.path === "/select1");
  // Warm-up: every route once (creates the shards' tables), then 2 s of SELECT 1.
  for (const d of designs) {
    const res = await fetch(`http://127.0.0.1:${PORT}${d.path}`, {
      method: "POST",
      body: d.shape === "single" ? singleBodies[0] : batchBodies[0],
    });
    if (d.path !== "/select1" && !res.ok) {
      throw new Error(`${d.path}: ${res.status} ${await res.text()}`);
    }
  }
  await load(designs[0] as Design, 2);

  const runs = new Map<Design, Run[]>(designs.map((d) => [d, []]));
  let queueLag = { waitedMs: 0, sent: 0, consumed: 0 };
  for (let round = 1; round <= REPEAT; round++) {
    log(`round ${round} of ${REPEAT}`);
    for (const d of designs) {
      runs.get(d)?.push(await load(d));
      if (d.path === "/queue") {
        queueLag = await drainQueue();
        log(
          `  queue drained ${queueLag.waitedMs.toFixed(0)} ms after the run (${queueLag.consumed}/${queueLag.sent})`,
        );
      }
    }
  }
  await mf.dispose();
  const durability = ONLY ? undefined : await durabilityCheck();

  // Report.
  const summary = designs.map((d) => {
    const rs = runs.get(d) ?? [];
    return {
      design: d,
      rps: median(rs.map((r) => r.rps)),
      p50: median(rs.map((r) => r.p50)),
      p99: median(rs.map((r) => r.p99)),
      failed: rs.reduce((s, r) => s + r.failed, 0),
      group: d.shards ? median(rs.map((r) => r.group ?? 0)) : undefined,
      spread: rs.map((r) => r.rps.toFixed(0)).join(" / "),
    };
  });
  const floor = summary[0]?.rps ?? 1;
  const readSingle = summary.find((s) => s.design.path === "/read" && s.design.shape === "single")?.rps;
  const readBatch = summary.find((s) => s.design.path === "/read" && s.design.shape === "batch of 100")?.rps;
  const lines: string[] = [];
  lines.push(
    `Run ${new Date().toISOString()} on ${os.cpus().length} × ${os.cpus()[0]?.model ?? "cpu"}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}; ` +
      `${REPORTS.toLocaleString()} reports, ${LINKS.toLocaleString()} subject links, ${BUYERS.toLocaleString()} buyers, ${PLATFORMS.length} platforms; ` +
      `${SECONDS} s per run, ${CONNECTIONS} connections (batch of 100: ${BATCH_CONNECTIONS}); median of ${REPEAT} interleaved runs.`,
  );
  lines.push("");
  lines.push(
    "| design | shape | req/s | p50 ms | p99 ms | × SELECT 1 | × read alone | appends per flush | runs (req/s) | failed |",
  );
  lines.push("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |");
  for (const s of summary) {
    const lookup = s.design.shape === "single" ? readSingle : readBatch;
    lines.push(
      `| ${s.design.name} | ${s.design.shape} | ${s.rps.toFixed(0)} | ${s.p50} | ${s.p99} | ${(s.rps / floor).toFixed(2)} | ${lookup ? (s.rps / lookup).toFixed(2) : "–"} | ${s.group === undefined ? "–" : s.group.toFixed(2)} | ${s.spread} | ${s.failed} |`,
    );
  }
  lines.push("");
  if (designs.some((d) => d.path === "/queue")) {
    lines.push(
      `Queue: the consumer had written ${queueLag.consumed.toLocaleString()} of ${queueLag.sent.toLocaleString()} messages ${(queueLag.waitedMs / 1000).toFixed(1)} s after the last run ended.`,
    );
  }
  if (durability) {
    lines.push(
      `kill -9 check (design 3, N = 4, ${CONNECTIONS} connections, workerd SIGKILLed after ${(durability.killedAfterMs / 1000).toFixed(1)} s): ` +
        `${durability.acknowledged.toLocaleString()} appends acknowledged with a 2xx; after restart on the same files ` +
        `${durability.auditFound.toLocaleString()} found (audit entry), ${durability.inquiriesFound.toLocaleString()} inquiry rows for them (2 each expected), ` +
        `**${durability.missing} missing**; ${durability.stored.toLocaleString()} entries stored in all; hash chains: ` +
        `${durability.chains.map((c) => `${c.entries} entries, ${c.broken} broken`).join("; ")}; ${durability.failedRequests} requests failed once workerd was down (autocannon reconnects in a loop).`,
    );
  }
  lines.push(
    `Total ${((Date.now() - startedAt) / 1000).toFixed(0)} s (seeding ${seedSeconds.toFixed(1)} s).`,
  );
  const report = lines.join("\n");
  console.log(report);
  mkdirSync(join(ROOT, "bench-results"), { recursive: true });
  writeFileSync(join(ROOT, "bench-results", "log-options.md"), `${report}\n`);
}

async function serve() {
  const mf = await start(await bundle(), SERVE_PORT);
  process.stdout.write("ready\n");
  process.on("SIGTERM", () => {
    mf.dispose().finally(() => process.exit(0));
  });
}

(process.argv[2] === "serve" ? serve() : main()).catch((err: Error) => {
  console.error(`bench:log: ${err.stack ?? err.message}`);
  process.exit(1);
});
