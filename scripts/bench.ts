/**
 * `npm run bench`: the ledger's speed, measured the way production runs it.
 *
 * 1. Builds the production bundle (`wrangler deploy --dry-run`) and serves it straight from
 *    workerd with miniflare, next to a "floor" Worker that only runs `SELECT 1` on the same D1:
 *    the physical floor of one D1 round trip.
 * 2. Seeds through the API (platforms, 1,000 reports), measures rows read per score query, then
 *    stops the server and writes the rest of the 1,000,000 reports (about 300,000 buyers, 10
 *    platforms) straight into the D1 SQLite file with node:sqlite, and measures again.
 * 3. Loads each route with autocannon and prints requests/s, p50/p99 latency, and the ratio of
 *    each route to the floor, against the targets in docs/benchmarks.md.
 *
 * Options (env): BENCH_REPORTS (1000000), BENCH_BUYERS (300000), BENCH_SECONDS (10 per route),
 * BENCH_CONNECTIONS (32), BENCH_ONLY (a route-name substring: run only those, print no report),
 * BENCH_PROFILE (a route-name substring: CPU-profile the Worker during those routes).
 */
import { spawnSync } from "node:child_process";
import { createHmac, randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import autocannon from "autocannon";
import { SQLiteAsyncDialect } from "drizzle-orm/sqlite-core";
import { exportJWK, generateKeyPair, type JWK } from "jose";
import { convertV4MiniflareOptions, Miniflare } from "miniflare";
import { signToken } from "../client/token";
import { newId } from "../worker/lib/ids";
import { scoreReadSql } from "../worker/services/scores";
import { ROOT } from "./lib/local";

const REPORTS = Number(process.env.BENCH_REPORTS ?? 1_000_000);
const BUYERS = Number(process.env.BENCH_BUYERS ?? 300_000);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 32);
const PLATFORMS = 10;
/** Log shards the ledger spreads its look-up log over (BENCH_LOG_SHARDS). */
const LOG_SHARDS = Number(process.env.BENCH_LOG_SHARDS ?? 1);
/** What the Worker asks for with the default MAX_ACTIVE_REPORTS_PER_SUBJECT (50): one more. */
const READ_PER_PLATFORM = 51;
const SMALL = 1_000;
const APP_PORT = 8801;
const FLOOR_PORT = 8802;
const APP = `http://127.0.0.1:${APP_PORT}`;
const FLOOR = `http://127.0.0.1:${FLOOR_PORT}`;
const STATE = join(ROOT, ".wrangler", "bench");
const OUT = join(ROOT, "dist", "bench");
const DAY = 86_400_000;

const log = (msg: string) => console.error(`[bench] ${msg}`);
const b64url = (b: Buffer) => b.toString("base64url");

// ── the buyers: deterministic identifiers, the platforms' hashes, and the ledger's keys ──────
const consortium = randomBytes(32);
const pepper = randomBytes(32);
const platformHash = (type: string, value: string) =>
  createHmac("sha256", consortium).update(`${type}:${value}`).digest("hex");
const ledgerKey = (type: string, hash: string) =>
  createHmac("sha256", pepper).update(`${type}:${hash}`).digest("hex");
const phoneOf = (i: number) => `+86139${String(i).padStart(8, "0")}`;
const buyerSubjects = (i: number) => [
  { type: "phone", hash: platformHash("phone", phoneOf(i)) },
  { type: "device", hash: platformHash("device", `device-${i}`) },
];
const unknownSubjects = () => [{ type: "phone", hash: randomBytes(32).toString("hex") }];

function build(): string {
  log("building the production bundle (wrangler deploy --dry-run)…");
  const r = spawnSync("wrangler", ["deploy", "--dry-run", "--outdir", OUT], {
    cwd: ROOT,
    encoding: "utf8",
    env: { ...process.env, WRANGLER_SEND_METRICS: "false" },
  });
  if (r.status !== 0) {
    throw new Error(`build failed:\n${r.stdout}\n${r.stderr}`);
  }
  return join(OUT, "index.js");
}

/** The Worker's score read, as the floor Worker sends it: keys, then the per-platform limit. */
const SCORE_READ = new SQLiteAsyncDialect().sqlToQuery(scoreReadSql("[]", READ_PER_PLATFORM));
const FLOOR_SCRIPT = `export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    if (url.pathname === "/sql") {
      const { sql, params } = await request.json();
      const r = await env.DB.prepare(sql).bind(...params).all();
      return Response.json({ rows: r.results.length, rowsRead: r.meta.rows_read, first: r.results[0] });
    }
    if (url.pathname === "/write") {
      // The score query's batch without the Worker around it: the read, the inquiry rows, the
      // usage counter and the audit entry, for a buyer nobody reported.
      const keys = JSON.stringify([crypto.randomUUID(), crypto.randomUUID()]);
      const now = Date.now();
      await env.DB.batch([
        env.DB.prepare(${JSON.stringify(SCORE_READ.sql)}).bind(keys, ${READ_PER_PLATFORM}),
        env.DB.prepare("INSERT INTO inquiries (subject_key, platform_id, purpose, at, request_id) SELECT value, 'floor', 'refund_review', ?, 'floor' FROM json_each(?)").bind(now, keys),
        env.DB.prepare("INSERT INTO usage_daily (day, platform_id, queries, subjects, reports) VALUES ('floor', 'floor', 1, 2, 0) ON CONFLICT (day, platform_id) DO UPDATE SET queries = queries + 1"),
        env.DB.prepare("INSERT INTO audit_log (at, actor, action, target, request_id, outcome, details) VALUES (?, 'floor', 'score.query', NULL, 'floor', 'ok', json_object('subjectKeys', json(?)))").bind(now, keys),
      ]);
      return new Response("ok");
    }
    if (url.pathname === "/write100") {
      // The batch-of-100 score batch, bare: 200 keys read, 200 inquiry rows, 100 audit entries;
      // ?inquiries=0 leaves the inquiry rows out, to show what the per-subject log costs.
      const keys = JSON.stringify(Array.from({ length: 200 }, () => crypto.randomUUID()));
      const entries = JSON.stringify(Array.from({ length: 100 }, (_, i) => ({ ref: "o" + i, keys: [crypto.randomUUID(), crypto.randomUUID()] })));
      const now = Date.now();
      const statements = [
        env.DB.prepare(${JSON.stringify(SCORE_READ.sql)}).bind(keys, ${READ_PER_PLATFORM}),
        env.DB.prepare("INSERT INTO usage_daily (day, platform_id, queries, subjects, reports) VALUES ('floor', 'floor', 100, 200, 0) ON CONFLICT (day, platform_id) DO UPDATE SET queries = queries + 100"),
        env.DB.prepare("INSERT INTO audit_log (at, actor, action, target, request_id, outcome, details) SELECT ?, 'floor', 'score.batch', e.value ->> 'ref', 'floor', 'ok', json_object('subjectKeys', e.value -> 'keys') FROM json_each(?) e").bind(now, entries),
      ];
      if (url.searchParams.get("inquiries") !== "0") {
        statements.push(env.DB.prepare("INSERT INTO inquiries (subject_key, platform_id, purpose, at, request_id) SELECT value, 'floor', 'refund_review', ?, 'floor' FROM json_each(?)").bind(now, keys));
      }
      await env.DB.batch(statements);
      return new Response("ok");
    }
    if (url.pathname === "/logged" || url.pathname === "/logged100") {
      // The logged look-up floor: exactly the chosen design's work for a score query, bare: the
      // ledger read in parallel with the durable append to a log shard (the ledger's own
      // LogShard class, in an object of its own), nothing else.
      const buyers = url.pathname === "/logged" ? 1 : 100;
      const keys = Array.from({ length: 2 * buyers }, () => crypto.randomUUID());
      const now = Date.now();
      const id = crypto.randomUUID();
      const shard = env.LOG.get(env.LOG.idFromName("floor-shard"));
      await Promise.all([
        env.DB.prepare(${JSON.stringify(SCORE_READ.sql)}).bind(JSON.stringify(keys), ${READ_PER_PLATFORM}).all(),
        shard.append(0, {
          id,
          entries: Array.from({ length: buyers }, (_, i) => ({ at: now, actor: "platform:floor", action: "score.query",
            target: null, requestId: id, outcome: "ok", details: { purpose: "refund_review" }, subjectKeys: keys.slice(2 * i, 2 * i + 2) })),
          inquiries: keys.map((subjectKey) => ({ subjectKey, platformId: "floor", purpose: "refund_review", requestId: id })),
          usage: { platformId: "floor", day: "floor", queries: buyers, subjects: keys.length },
        }),
      ]);
      return new Response("ok");
    }
    if (url.pathname === "/groupstats") {
      // The ledger's log shards' group-commit counters (since each shard object started).
      const shards = Number(url.searchParams.get("shards") ?? "1");
      const stats = [];
      for (let i = 0; i < shards; i++) {
        stats.push(await env.LOG.get(env.LOG.idFromName("log-shard-" + i)).groupStats());
      }
      return Response.json(stats);
    }
    const r = await env.DB.prepare("SELECT 1 AS one").all();
    return Response.json(r.results[0]);
  },
};`;

async function start(script: string, bindings: Record<string, string>) {
  const unlimited = (id: string) => ({
    namespace_id: id,
    simple: { limit: 1_000_000_000, period: 60 as const },
  });
  const mf = new Miniflare(
    convertV4MiniflareOptions({
      resourcePersistencePath: STATE,
      ...(PROFILE ? { inspectorPort: INSPECTOR_PORT } : {}),
      workers: [
        {
          name: "pixiu",
          modules: true,
          scriptPath: script,
          compatibilityDate: "2026-11-01",
          d1Databases: { DB: "pixiu-bench" },
          bindings,
          durableObjects: { LOG: { className: "LogShard", useSQLite: true } },
          r2Buckets: { LOG_ARCHIVE: "pixiu-bench-log-archive" },
          queueProducers: { WEBHOOKS: { queueName: "pixiu-webhooks" } },
          ratelimits: {
            RL_SCORES: unlimited("1001"),
            RL_WRITES: unlimited("1002"),
            RL_ADMIN: unlimited("1003"),
            RL_AUTH_FAILURES: unlimited("1004"),
            RL_SUBJECT_ACCESS: unlimited("1005"),
            RL_AUTH_FAILURES_GLOBAL: unlimited("1006"),
          },
          unsafeDirectSockets: [{ host: "127.0.0.1", port: APP_PORT }],
        },
        {
          name: "floor",
          modules: true,
          script: FLOOR_SCRIPT,
          compatibilityDate: "2026-11-01",
          d1Databases: { DB: "pixiu-bench" },
          durableObjects: { LOG: { className: "LogShard", scriptName: "pixiu", useSQLite: true } },
          unsafeDirectSockets: [{ host: "127.0.0.1", port: FLOOR_PORT }],
        },
      ],
    } as Parameters<typeof convertV4MiniflareOptions>[0]),
  );
  await mf.ready;
  return mf;
}

async function api(path: string, token: string, body: unknown): Promise<{ status: number; json: unknown }> {
  const res = await fetch(APP + path, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  return { status: res.status, json: await res.json() };
}

const dialect = new SQLiteAsyncDialect();

/**
 * Rows read by the real score SELECT for a sample of buyers, next to the buyer's matches: the
 * (subject key, report) pairs the subject index holds for the buyer's keys.
 */
async function rowsRead(sample: number[]) {
  const out: { buyer: number; matches: number; keys: number; pairs: number; rowsRead: number }[] = [];
  const run = async (query: { sql: string; params: unknown[] }) => {
    const res = await fetch(`${FLOOR}/sql`, { method: "POST", body: JSON.stringify(query) });
    return (await res.json()) as { rows: number; rowsRead: number; first?: Record<string, number> };
  };
  for (const i of sample) {
    const keys = buyerSubjects(i).map((s) => ledgerKey(s.type, s.hash));
    const read = await run(dialect.sqlToQuery(scoreReadSql(JSON.stringify(keys), READ_PER_PLATFORM)));
    const count = await run({
      sql: "SELECT count(*) AS n FROM report_subjects WHERE subject_key IN (SELECT value FROM json_each(?))",
      params: [JSON.stringify(keys)],
    });
    const pairs = await run({
      sql: "SELECT count(*) AS n FROM (SELECT DISTINCT subject_key, platform_id FROM report_subjects WHERE subject_key IN (SELECT value FROM json_each(?)) AND counted = 1)",
      params: [JSON.stringify(keys)],
    });
    out.push({
      buyer: i,
      matches: count.first?.n ?? -1,
      keys: keys.length,
      pairs: pairs.first?.n ?? -1,
      rowsRead: read.rowsRead,
    });
  }
  return out;
}

function reportBody(buyer: number, caseId: string, daysAgo: number) {
  const incident = Date.now() - daysAgo * DAY;
  return {
    caseId,
    subjects: buyerSubjects(buyer),
    category: "ai_generated_image",
    incidentAt: new Date(incident).toISOString(),
    confirmedAt: new Date(incident + DAY).toISOString(),
    confirmation: "platform_forensics",
    amount: { value: 29_900, currency: "CNY" },
    evidence: [{ kind: "image_sha256", value: "a".repeat(64) }],
  };
}

/** Bytes on disk per row of the big tables, indexes included (SQLite's dbstat). */
function storage() {
  const db = new DatabaseSync(findSqlite());
  // The floor Worker's rows are not the ledger's: drop them and compact, so pages hold real rows.
  db.exec(`DELETE FROM audit_log WHERE actor = 'floor'; DELETE FROM inquiries WHERE platform_id = 'floor';
    DELETE FROM usage_daily WHERE platform_id = 'floor'; VACUUM;`);
  const bytes = new Map(
    (
      db
        .prepare(
          `SELECT m.tbl_name AS t, SUM(d.pgsize) AS b FROM dbstat d JOIN sqlite_master m ON m.name = d.name
           GROUP BY m.tbl_name`,
        )
        .all() as { t: string; b: number }[]
    ).map((r) => [r.t, r.b]),
  );
  const count = (t: string) => (db.prepare(`SELECT count(*) AS n FROM ${t}`).get() as { n: number }).n;
  const rows = {
    reports: count("reports"),
    links: count("report_subjects"),
    audit: count("audit_log"),
    inquiries: count("inquiries"),
  };
  const file = (
    db.prepare("SELECT page_count * page_size AS b FROM pragma_page_count(), pragma_page_size()").get() as {
      b: number;
    }
  ).b;
  db.close();
  const per = (table: string, n: number) => (bytes.get(table) ?? 0) / Math.max(1, n);
  return {
    rows,
    fileBytes: file,
    perReport: per("reports", rows.reports) + (bytes.get("report_subjects") ?? 0) / Math.max(1, rows.reports),
    perLink: per("report_subjects", rows.links),
    perAudit: per("audit_log", rows.audit),
    perInquiry: per("inquiries", rows.inquiries),
  };
}

function findSqlite(): string {
  const dir = join(STATE, "d1", "miniflare-D1DatabaseObject");
  const file = readdirSync(dir).find((f) => f.endsWith(".sqlite") && f !== "metadata.sqlite");
  if (!file) {
    throw new Error(`no D1 database under ${dir}`);
  }
  return join(dir, file);
}

/** Writes reports SMALL..REPORTS straight into the SQLite file (server stopped). */
function seedDirect(platformIds: string[]) {
  const db = new DatabaseSync(findSqlite());
  db.exec("PRAGMA journal_mode = WAL; PRAGMA synchronous = OFF;");
  const insertReport =
    db.prepare(`INSERT INTO reports (id, platform_id, case_id, status, category, confirmation,
    incident_at, confirmed_at, amount_value, amount_currency, evidence, note, subject_notified_at, content_hash,
    status_reason, dispute_deadline_at, statement, created_at, updated_at)
    VALUES (?, ?, ?, 'active', 'ai_generated_image', 'platform_forensics', ?, ?, 29900, 'CNY', ?, NULL, NULL, ?, NULL, NULL, NULL, ?, ?)`);
  const insertLink = db.prepare(
    "INSERT INTO report_subjects (subject_key, report_id, subject_type, platform_id, incident_at, counted) VALUES (?, ?, ?, ?, ?, 1)",
  );
  const keysOf = new Map<number, [string, string]>();
  const keys = (buyer: number): [string, string] => {
    let k = keysOf.get(buyer);
    if (!k) {
      const [phone, device] = buyerSubjects(buyer) as [
        { type: string; hash: string },
        { type: string; hash: string },
      ];
      k = [ledgerKey("phone", phone.hash), ledgerKey("device", device.hash)];
      keysOf.set(buyer, k);
    }
    return k;
  };
  const now = Date.now();
  const started = performance.now();
  db.exec("BEGIN");
  for (let n = SMALL; n < REPORTS; n++) {
    const buyer = n % BUYERS;
    // Random, as the API makes them: sequential ids would append to the primary-key B-tree
    // and make the seeded table more compact than the real one.
    const id = newId("rpt");
    const incident = now - ((n * 7919) % 1400) * DAY - DAY;
    const platform = platformIds[n % PLATFORMS] as string;
    // Realistic row sizes: one evidence digest and a 64-hex content hash, as the API stores them.
    const digest = createHmac("sha256", "bench").update(String(n)).digest("hex");
    const evidence = `[{"kind":"image_sha256","value":"${digest}"}]`;
    insertReport.run(id, platform, `SEED-${n}`, incident, incident + DAY, evidence, digest, now, now);
    const [phone, device] = keys(buyer);
    insertLink.run(phone, id, "phone", platform, incident);
    insertLink.run(device, id, "device", platform, incident);
    if (n % 100_000 === 0) {
      db.exec("COMMIT; BEGIN");
      log(`  ${n.toLocaleString()} reports written`);
    }
  }
  db.exec("COMMIT");
  db.exec("PRAGMA wal_checkpoint(TRUNCATE)");
  db.close();
  return (performance.now() - started) / 1000;
}

interface Measured {
  name: string;
  /** Requests answered (2xx or not) during the run. */
  total: number;
  rps: number;
  p50: number;
  p99: number;
  non2xx: number;
  errors: number;
}

/**
 * BENCH_PROFILE=score CPU-profiles the Worker (V8 inspector) while the routes whose name
 * contains "score" run, prints the functions with the most self time, and writes the profile to
 * bench-results/<route>.cpuprofile (open it in Chrome DevTools).
 */
const PROFILE = process.env.BENCH_PROFILE;
const INSPECTOR_PORT = 9229;

async function profiler(): Promise<{ stop(): Promise<CpuProfile> }> {
  const targets = (await (await fetch(`http://127.0.0.1:${INSPECTOR_PORT}/json/list`)).json()) as {
    webSocketDebuggerUrl: string;
    title?: string;
    id: string;
  }[];
  const target = targets.find((t) => `${t.title ?? ""}${t.id}`.includes("pixiu")) ?? targets[0];
  if (!target) {
    throw new Error("no inspector target");
  }
  const ws = new WebSocket(target.webSocketDebuggerUrl);
  await new Promise((resolve, reject) => {
    ws.addEventListener("open", resolve);
    ws.addEventListener("error", reject);
  });
  let id = 0;
  const pending = new Map<number, (result: unknown) => void>();
  ws.addEventListener("message", (event: { data: unknown }) => {
    const msg = JSON.parse(String(event.data)) as { id?: number; result?: unknown };
    if (msg.id !== undefined) {
      pending.get(msg.id)?.(msg.result);
      pending.delete(msg.id);
    }
  });
  const send = (method: string, params: object = {}) =>
    new Promise<unknown>((resolve) => {
      id++;
      pending.set(id, resolve);
      ws.send(JSON.stringify({ id, method, params }));
    });
  await send("Profiler.enable");
  await send("Profiler.setSamplingInterval", { interval: 100 });
  await send("Profiler.start");
  return {
    async stop() {
      const { profile } = (await send("Profiler.stop")) as { profile: CpuProfile };
      ws.close();
      return profile;
    },
  };
}

interface CpuProfile {
  nodes: {
    id: number;
    callFrame: { functionName: string; url: string; lineNumber: number };
    hitCount?: number;
  }[];
  samples: number[];
}

function topSelfTime(profile: CpuProfile, n = 25): string[] {
  const total = profile.samples.length;
  const byFrame = new Map<string, number>();
  for (const node of profile.nodes) {
    const { functionName, url, lineNumber } = node.callFrame;
    const key = `${functionName || "(anonymous)"} ${url.split("/").pop()}:${lineNumber + 1}`;
    byFrame.set(key, (byFrame.get(key) ?? 0) + (node.hitCount ?? 0));
  }
  return [...byFrame.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, n)
    .map(([frame, hits]) => `${((100 * hits) / total).toFixed(1).padStart(5)} %  ${frame}`);
}

/** BENCH_ONLY=score runs just the routes whose name contains "score" (a quick look, no report). */
const ONLY = process.env.BENCH_ONLY;

async function load(
  name: string,
  url: string,
  request: () => { method: "GET" | "POST"; path: string; headers?: Record<string, string>; body?: string },
  options: { connections?: number; seconds?: number; amount?: number } = {},
): Promise<Measured> {
  if (ONLY && !name.includes(ONLY) && !name.includes("floor")) {
    return { name, total: 0, rps: 0, p50: 0, p99: 0, non2xx: 0, errors: 0 };
  }
  // The floors run in the other Worker: profiling the ledger then would profile an idle isolate.
  const profiling =
    PROFILE && name.includes(PROFILE) && !name.includes("floor") ? await profiler() : undefined;
  const r = await autocannon({
    url,
    connections: options.connections ?? CONNECTIONS,
    ...(options.amount ? { amount: options.amount } : { duration: options.seconds ?? SECONDS }),
    requests: [
      {
        setupRequest: (req) => {
          const next = request();
          return { ...req, ...next, headers: { ...next.headers } };
        },
      },
    ],
  });
  if (profiling) {
    const profile = await profiling.stop();
    mkdirSync(join(ROOT, "bench-results"), { recursive: true });
    const file = join(ROOT, "bench-results", `${name.replace(/[^a-z0-9]+/gi, "-")}.cpuprofile`);
    writeFileSync(file, JSON.stringify(profile));
    log(`CPU profile of ${name} (self time, top 25) → ${file}\n${topSelfTime(profile).join("\n")}`);
  }
  const m = {
    name,
    total: r.requests.total,
    rps: r.requests.average,
    p50: r.latency.p50,
    p99: r.latency.p99,
    non2xx: r.non2xx,
    errors: r.errors,
  };
  log(
    `${name}: ${m.rps.toFixed(0)} req/s, p50 ${m.p50} ms, p99 ${m.p99} ms, non-2xx ${m.non2xx}, errors ${m.errors}`,
  );
  return m;
}

async function main() {
  const startedAt = Date.now();
  const script = build();
  const bundleBytes = readFileSync(script).byteLength;
  rmSync(STATE, { recursive: true, force: true });
  mkdirSync(STATE, { recursive: true });

  // Keys: admin, audit, and one per platform.
  const admin = await generateKeyPair("EdDSA", { extractable: true });
  const adminJwk = { ...(await exportJWK(admin.privateKey)), kid: "bench-admin", alg: "EdDSA" } as JWK;
  const auditKey = await generateKeyPair("EdDSA", { extractable: true });
  const bindings = {
    LEDGER_PEPPER: b64url(pepper),
    ADMIN_JWKS: JSON.stringify({
      keys: [{ ...(await exportJWK(admin.publicKey)), kid: "bench-admin", alg: "EdDSA" }],
    }),
    AUDIT_SIGNING_JWK: JSON.stringify({ ...(await exportJWK(auditKey.privateKey)), kid: "bench-audit" }),
    JWT_AUDIENCE: "pixiu",
    RETENTION_DAYS: "1826",
    DISPUTE_DEADLINE_DAYS: "20",
    PLATFORM_CACHE_TTL_SECONDS: "30",
    LOG_SHARDS: String(LOG_SHARDS),
    // The bench looks up far more buyers than any platform may in a day: no cap here.
    LOOKUP_DAILY_CAP: "100000000",
  };
  const platforms: { id: string; jwk: JWK }[] = [];
  for (let p = 0; p < PLATFORMS; p++) {
    const pair = await generateKeyPair("EdDSA", { extractable: true });
    const kid = `bench-${p}`;
    platforms.push({
      id: `bench-shop-${p}`,
      jwk: { ...(await exportJWK(pair.privateKey)), kid, alg: "EdDSA" } as JWK,
    });
  }
  const adminToken = () => signToken(adminJwk, { iss: "pixiu-admin", lifetime: 300 });
  const tokenOf = (p: number, lifetime = 300) =>
    signToken(platforms[p]?.jwk as JWK, { iss: platforms[p]?.id as string, lifetime });

  // Phase 1: migrate, register platforms and report SMALL cases through the API.
  let mf = await start(script, bindings);
  const d1 = await mf.getD1Database("DB", "pixiu");
  const migrations = readdirSync(join(ROOT, "schema", "migrations"))
    .filter((f) => f.endsWith(".sql"))
    .sort();
  for (const file of migrations) {
    const statements = readFileSync(join(ROOT, "schema", "migrations", file), "utf8")
      .split("--> statement-breakpoint")
      .map((s) => s.trim())
      .filter(Boolean);
    await d1.batch(statements.map((s) => d1.prepare(s)));
  }
  for (const [p, platform] of platforms.entries()) {
    const { d: _d, ...pub } = platform.jwk;
    const res = await api("/v1/admin/platforms", await adminToken(), {
      id: platform.id,
      name: `Bench Shop ${p}`,
      scopes: ["reports:write", "scores:read", "disputes:write"],
      jwks: { keys: [pub] },
    });
    if (res.status !== 201) {
      throw new Error(`platform ${platform.id}: ${res.status} ${JSON.stringify(res.json)}`);
    }
  }
  for (let start = 0; start < SMALL; start += 500) {
    const items = Array.from({ length: 500 }, (_, k) =>
      reportBody((start + k) % BUYERS, `SMALL-${start + k}`, 30 + ((start + k) % 700)),
    );
    const res = await api("/v1/reports/bulk", await tokenOf(start / 500), { reports: items });
    if (res.status !== 200) {
      throw new Error(`bulk seed: ${res.status} ${JSON.stringify(res.json)}`);
    }
  }
  // Twenty known buyers and one never reported (-1: an identifier the seed never uses).
  const sample = [...Array.from({ length: 20 }, (_, k) => (k * 37) % SMALL), -1];
  const small = await rowsRead(sample);
  await mf.dispose();

  // Phase 2: the rest of the reports, straight into the SQLite file.
  log(
    `writing ${(REPORTS - SMALL).toLocaleString()} reports for ${BUYERS.toLocaleString()} buyers into the D1 file…`,
  );
  const seedSeconds = seedDirect(platforms.map((p) => p.id));
  log(`seeded in ${seedSeconds.toFixed(1)} s`);
  mf = await start(script, bindings);
  const large = await rowsRead(sample);

  // Phase 3: load.
  const scoreToken = await tokenOf(0);
  const pick = () => Math.floor(Math.random() * Math.min(BUYERS, REPORTS));
  const json = (token: string, body: unknown) => ({
    method: "POST" as const,
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  // Report submissions need a fresh jti each: sign them before the clock starts.
  const submitTokens: string[] = [];
  const expected = Math.ceil(SECONDS * 2500);
  log(`signing ${expected.toLocaleString()} single-use tokens for the submission run…`);
  for (let k = 0; k < expected; k++) {
    submitTokens.push(await tokenOf(1 + (k % (PLATFORMS - 1))));
  }
  let submitted = 0;

  const results: Measured[] = [];
  await load("warm-up", APP, () => ({ method: "GET", path: "/healthz" }), { seconds: 2 });
  results.push(await load("floor (SELECT 1)", FLOOR, () => ({ method: "GET", path: "/" })));
  results.push(
    await load("write floor (score batch, bare)", FLOOR, () => ({ method: "GET", path: "/write" })),
  );
  results.push(
    await load("write floor, batch of 100 (bare)", FLOOR, () => ({ method: "GET", path: "/write100" }), {
      connections: 8,
    }),
  );
  results.push(
    await load(
      "write floor, batch of 100 without inquiry rows (bare)",
      FLOOR,
      () => ({ method: "GET", path: "/write100?inquiries=0" }),
      { connections: 8 },
    ),
  );
  results.push(
    await load("logged look-up floor (D1 read ‖ log append, bare)", FLOOR, () => ({
      method: "GET",
      path: "/logged",
    })),
  );
  results.push(
    await load(
      "logged look-up floor, batch of 100 (bare)",
      FLOOR,
      () => ({ method: "GET", path: "/logged100" }),
      { connections: 8 },
    ),
  );
  results.push(await load("GET /healthz", APP, () => ({ method: "GET", path: "/healthz" })));
  // What the score queries write on the ledger database (its primary): rows of the old log tables,
  // the counters, token claims and reports, before and after the score routes. The target is none.
  const ledgerRows = async () => {
    const res = await fetch(`${FLOOR}/sql`, {
      method: "POST",
      body: JSON.stringify({
        sql: `SELECT (SELECT count(*) FROM audit_log) + (SELECT count(*) FROM audit_outbox) + (SELECT count(*) FROM inquiries)
          + (SELECT coalesce(sum(queries), 0) + coalesce(sum(subjects), 0) FROM usage_daily)
          + (SELECT count(*) FROM token_uses) + (SELECT count(*) FROM reports) AS n`,
        params: [],
      }),
    });
    return ((await res.json()) as { first: { n: number } }).first.n;
  };
  const groupStats = async () => {
    const res = await fetch(`${FLOOR}/groupstats?shards=${LOG_SHARDS}`);
    return (await res.json()) as {
      flushes: number;
      appends: number;
      entries: number;
      largestGroup: number;
    }[];
  };
  const ledgerBefore = await ledgerRows();
  const groupsBefore = await groupStats();
  const scoreStarted = performance.now();
  results.push(
    await load("score, known buyer", APP, () => ({
      path: "/v1/scores/query",
      ...json(scoreToken, { purpose: "refund_review", subjects: buyerSubjects(pick()) }),
    })),
  );
  results.push(
    await load("score, unknown buyer", APP, () => ({
      path: "/v1/scores/query",
      ...json(scoreToken, { purpose: "refund_review", subjects: unknownSubjects() }),
    })),
  );
  results.push(
    await load(
      "score batch of 100",
      APP,
      () => ({
        path: "/v1/scores/batch",
        ...json(scoreToken, {
          purpose: "refund_review",
          queries: Array.from({ length: 100 }, (_, k) => ({ ref: `o${k}`, subjects: buyerSubjects(pick()) })),
        }),
      }),
      { connections: 8 },
    ),
  );
  const scoreSeconds = (performance.now() - scoreStarted) / 1000;
  const ledgerAfter = await ledgerRows();
  const groupsAfter = await groupStats();
  const lookups = ["score, known buyer", "score, unknown buyer", "score batch of 100"]
    .map((n) => results.find((r) => r.name === n)?.total ?? 0)
    .reduce((a, b) => a + b, 0);
  const ledgerWritesPerQuery = lookups === 0 ? 0 : (ledgerAfter - ledgerBefore) / lookups;
  const shardsLoad = groupsAfter.map((g, i) => {
    const b = groupsBefore[i] ?? { flushes: 0, appends: 0, entries: 0, largestGroup: 0 };
    const flushes = g.flushes - b.flushes;
    return {
      shard: i,
      entriesPerSecond: (g.entries - b.entries) / scoreSeconds,
      appendsPerFlush: flushes === 0 ? 0 : (g.appends - b.appends) / flushes,
      largestGroup: g.largestGroup,
    };
  });
  results.push(
    await load("report submission", APP, () => {
      const token = submitTokens[submitted % submitTokens.length] as string;
      submitted++;
      return {
        path: "/v1/reports",
        ...json(token, reportBody(pick(), `LOAD-${submitted}-${Date.now()}`, 5)),
      };
    }),
  );
  // Bulk back-fill: 40 calls of 500 reports, 2 at a time.
  const bulkTokens = await Promise.all(Array.from({ length: 40 }, (_, k) => tokenOf(k % PLATFORMS)));
  let bulkCall = 0;
  const bulkStarted = performance.now();
  const bulk = await load(
    "bulk back-fill (500/call)",
    APP,
    () => {
      const k = bulkCall++;
      return {
        path: "/v1/reports/bulk",
        ...json(bulkTokens[k % bulkTokens.length] as string, {
          reports: Array.from({ length: 500 }, (_, j) =>
            reportBody(pick(), `BULK-${k}-${j}-${startedAt}`, 10 + (j % 300)),
          ),
        }),
      };
    },
    { connections: 2, amount: 40 },
  );
  const bulkReportsPerSecond = (40 * 500) / ((performance.now() - bulkStarted) / 1000);
  results.push(bulk);
  // A burst of 100,000 look-ups (1,000 batches of 100), then verify: the shards chain as they
  // write, so nothing waits to be sealed; the ledger chain gains nothing from look-ups.
  const burstStarted = performance.now();
  const burst = await load(
    "burst: 100,000 look-ups (1,000 batches of 100)",
    APP,
    () => ({
      path: "/v1/scores/batch",
      ...json(scoreToken, {
        purpose: "account_review",
        queries: Array.from({ length: 100 }, (_, k) => ({ ref: `b${k}`, subjects: unknownSubjects() })),
      }),
    }),
    { connections: 8, amount: 1000 },
  );
  const burstSeconds = (performance.now() - burstStarted) / 1000;
  const verifyRes = await fetch(`${APP}/v1/admin/audit/verify`, {
    headers: { authorization: `Bearer ${await adminToken()}` },
  });
  const verified = (await verifyRes.json()) as {
    ok: boolean;
    unsealed: number;
    shards: { shard: number; ok: boolean; checked: number; unsealed: number }[];
  };
  await mf.dispose();
  if (ONLY) {
    return;
  }
  const disk = storage();

  // Report.
  const floor = results[0]?.rps ?? 1;
  const byName = (n: string) => results.find((r) => r.name === n) as Measured;
  const single = byName("score, known buyer");
  const batch = byName("score batch of 100");
  const submit = byName("report submission");
  // The score read's bound (test/harness.ts scoreRowsBound): 3 × matches + 4 × keys + 5 × pairs.
  const maxExcess = (rows: typeof small) =>
    rows.reduce((m, r) => Math.max(m, r.rowsRead - 3 * r.matches - 4 * r.keys - 5 * r.pairs), -Infinity);
  const loggedFloor = byName("logged look-up floor (D1 read ‖ log append, bare)").rps || 1;
  const unknown = byName("score, unknown buyer");
  const targets = [
    ["single score query (known) ≥ 0.8 × logged look-up floor", single.rps / loggedFloor, 0.8],
    ["single score query (unknown) ≥ 0.8 × logged look-up floor", unknown.rps / loggedFloor, 0.8],
    ["single score query (known) ≥ 0.4 × SELECT 1", single.rps / floor, 0.4],
    ["single score query (unknown) ≥ 0.4 × SELECT 1", unknown.rps / floor, 0.4],
    ["report submission ≥ 0.5 × floor", submit.rps / floor, 0.5],
    ["batch buyers/s ≥ 20 × single queries/s", (batch.rps * 100) / single.rps, 20],
    ["bulk back-fill ≥ 2,000 reports/s", bulkReportsPerSecond, 2000],
  ] as const;
  const rowsOk = maxExcess(small) <= 0 && maxExcess(large) <= 0;
  // v1's bound, which issue 10 kept as its target: 2 × matches + 4 (before the per-platform cap).
  const v1Excess = (rows: typeof small) =>
    rows.reduce((m, r) => Math.max(m, r.rowsRead - 2 * r.matches - 4), -Infinity);
  const v1RowsOk = v1Excess(small) <= 0 && v1Excess(large) <= 0;
  const writesOk = ledgerWritesPerQuery === 0;

  const lines: string[] = [];
  lines.push(
    `Run ${new Date().toISOString()} on ${os.cpus().length} × ${os.cpus()[0]?.model ?? "cpu"}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}`,
  );
  lines.push(
    `Reports: ${REPORTS.toLocaleString()} over ${BUYERS.toLocaleString()} buyers on ${PLATFORMS} platforms; ${SECONDS} s per route, ${CONNECTIONS} connections; bundle ${(bundleBytes / 1024).toFixed(0)} KiB`,
  );
  lines.push("");
  const writeFloor = byName("write floor (score batch, bare)").rps;
  lines.push("| route | req/s | p50 ms | p99 ms | × floor | × write floor | non-2xx |");
  lines.push("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
  for (const r of results) {
    lines.push(
      `| ${r.name} | ${r.rps.toFixed(0)} | ${r.p50} | ${r.p99} | ${(r.rps / floor).toFixed(2)} | ${(r.rps / writeFloor).toFixed(2)} | ${r.non2xx + r.errors} |`,
    );
  }
  lines.push("");
  lines.push(
    `Batch of 100: ${(batch.rps * 100).toFixed(0)} buyers/s. Bulk back-fill: ${bulkReportsPerSecond.toFixed(0)} reports/s.`,
  );
  lines.push("");
  lines.push(
    "| rows read per score query | buyers sampled | matching records (max) | rows read (max) | max(rows read − (3 × matches + 4 × keys + 5 × pairs)) |",
  );
  lines.push("| --- | ---: | ---: | ---: | ---: |");
  for (const [label, rows] of [
    [`at ${SMALL.toLocaleString()} reports`, small],
    [`at ${REPORTS.toLocaleString()} reports`, large],
  ] as const) {
    lines.push(
      `| ${label} | ${rows.length} | ${Math.max(...rows.map((r) => r.matches))} | ${Math.max(...rows.map((r) => r.rowsRead))} | ${maxExcess(rows)} |`,
    );
  }
  lines.push("");
  lines.push(
    `Storage (indexes included): ${Math.round(disk.perReport)} B per report with its ${(disk.rows.links / disk.rows.reports).toFixed(1)} subject links, ${Math.round(disk.perAudit)} B per audit entry, ${Math.round(disk.perInquiry)} B per inquiry row; database ${(disk.fileBytes / 2 ** 20).toFixed(0)} MiB for ${disk.rows.reports.toLocaleString()} reports, ${disk.rows.audit.toLocaleString()} audit entries, ${disk.rows.inquiries.toLocaleString()} inquiries.`,
  );
  lines.push("");
  lines.push("| target | measured | goal | met |");
  lines.push("| --- | ---: | ---: | :---: |");
  for (const [label, value, goal] of targets) {
    lines.push(`| ${label} | ${value.toFixed(2)} | ${goal} | ${value >= goal ? "yes" : "**no**"} |`);
  }
  lines.push(
    `| rows read ≤ 3 × matches + 4 × keys + 4 × (key, platform) pairs, at both sizes | ${Math.max(maxExcess(small), maxExcess(large))} over | ≤ 0 | ${rowsOk ? "yes" : "**no**"} |`,
    `| rows read ≤ 2 × matches + 4 (v1's bound), at both sizes | ${Math.max(v1Excess(small), v1Excess(large))} over | ≤ 0 | ${v1RowsOk ? "yes" : "**no**"} |`,
  );
  lines.push(
    `| ledger-primary writes per score query | ${ledgerWritesPerQuery.toFixed(3)} | 0 | ${writesOk ? "yes" : "**no**"} |`,
  );
  lines.push("");
  lines.push(`Log store (${LOG_SHARDS} shard${LOG_SHARDS === 1 ? "" : "s"}), during the score routes:`);
  lines.push("");
  lines.push("| shard | entries/s | appends per group commit (mean) | largest group |");
  lines.push("| ---: | ---: | ---: | ---: |");
  for (const sh of shardsLoad) {
    lines.push(
      `| ${sh.shard} | ${sh.entriesPerSecond.toFixed(0)} | ${sh.appendsPerFlush.toFixed(2)} | ${sh.largestGroup} |`,
    );
  }
  lines.push("");
  lines.push(
    `Burst of 100,000 look-ups: ${burst.total} batches answered in ${burstSeconds.toFixed(1)} s (${((burst.total * 100) / burstSeconds).toFixed(0)} look-ups/s, ${burst.non2xx + burst.errors} not 2xx); then verify: ok ${verified.ok}, ledger unsealed ${verified.unsealed}, shards ${verified.shards.map((v) => `${v.shard}: ok ${v.ok}, ${v.checked} checked, unsealed ${v.unsealed}`).join("; ")}.`,
  );
  lines.push("");
  lines.push(
    `Total time: ${((Date.now() - startedAt) / 1000).toFixed(0)} s (seeding ${seedSeconds.toFixed(0)} s).`,
  );
  const report = lines.join("\n");
  console.log(report);
  if (!existsSync(join(ROOT, "bench-results"))) {
    mkdirSync(join(ROOT, "bench-results"));
  }
  writeFileSync(join(ROOT, "bench-results", "latest.md"), `${report}\n`);
}

main().catch((err: Error) => {
  console.error(`bench: ${err.stack ?? err.message}`);
  process.exit(1);
});
