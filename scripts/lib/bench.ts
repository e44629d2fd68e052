/**
 * What the ledger's benchmarks share (`npm run bench`, `npm run bench:evidence`): the production
 * bundle served straight from workerd with miniflare 5 next to a bare "floor" Worker on the same
 * local D1, the migrations, the bench's keys and platforms, autocannon loads (with an optional CPU
 * profile of the Worker), the D1 SQLite file, its size per table (dbstat), and the results file.
 *
 * Options (env) every bench reads: BENCH_SECONDS (per route), BENCH_CONNECTIONS (32),
 * BENCH_ONLY (a route-name substring: run only those and the floors), BENCH_PROFILE (a
 * route-name substring: CPU-profile the Worker during those routes).
 *
 * @example
 *   const mf = await startWorkers({ ports, state, script, floor: floorScript(""), bindings });
 *   const r = await load("floor (SELECT 1)", ports.floorUrl, () => ({ method: "GET", path: "/" }));
 */
import { spawnSync } from "node:child_process";
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import autocannon from "autocannon";
import { exportJWK, generateKeyPair, type JWK } from "jose";
import { convertV4MiniflareOptions, type Miniflare, Miniflare as MiniflareServer } from "miniflare";
import { signToken } from "../../client/token";
import { ROOT } from "./local";

export const RESULTS = join(ROOT, "bench-results");
/** BENCH_ONLY=score runs just the routes whose name contains "score" (a quick look, no report). */
export const ONLY = process.env.BENCH_ONLY;
const PROFILE = process.env.BENCH_PROFILE;
const INSPECTOR_PORT = 9229;
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 32);

export function benchLog(tag: string) {
  return (msg: string) => console.error(`[${tag}] ${msg}`);
}

export interface Ports {
  app: number;
  floor: number;
}

export const urlOf = (port: number) => `http://127.0.0.1:${port}`;

/** Builds the production bundle (`wrangler deploy --dry-run`) into `out`; returns its entry. */
export function buildBundle(out: string, log: (msg: string) => void): string {
  log("building the production bundle (wrangler deploy --dry-run)…");
  const r = spawnSync("wrangler", ["deploy", "--dry-run", "--outdir", out], {
    cwd: ROOT,
    encoding: "utf8",
    env: { ...process.env, WRANGLER_SEND_METRICS: "false" },
  });
  if (r.status !== 0) {
    throw new Error(`build failed:\n${r.stdout}\n${r.stderr}`);
  }
  return join(out, "index.js");
}

/**
 * The floor Worker's module: `POST /sql` runs one statement on the ledger's D1 and answers its
 * row count, `meta.rows_read`, `meta.rows_written` and first row (and every row with `?results=1`); anything else not
 * handled by `routes` (statements inside `fetch(request, env)`, `url` in scope) runs `SELECT 1`,
 * the physical floor of one D1 round trip.
 */
export function floorScript(routes: string): string {
  return `export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    if (url.pathname === "/sql") {
      const { sql, params } = await request.json();
      const r = await env.DB.prepare(sql).bind(...params).all();
      return Response.json({ rows: r.results.length, rowsRead: r.meta.rows_read, rowsWritten: r.meta.rows_written, first: r.results[0],
        results: url.searchParams.get("results") === "1" ? r.results : undefined });
    }
${routes}
    const r = await env.DB.prepare("SELECT 1 AS one").all();
    return Response.json(r.results[0]);
  },
};`;
}

/**
 * Serves the bundle (`pixiu`, with every binding the Worker needs and unlimited rate limits) and
 * the floor Worker on one persisted local D1 (and the ledger's LogShard class, which the floor
 * may bind as `LOG`).
 */
export async function startWorkers(opts: {
  state: string;
  script: string;
  floor: string;
  bindings: Record<string, string>;
  ports: Ports;
}): Promise<Miniflare> {
  const unlimited = (id: string) => ({
    namespace_id: id,
    simple: { limit: 1_000_000_000, period: 60 as const },
  });
  const mf = new MiniflareServer(
    convertV4MiniflareOptions({
      resourcePersistencePath: opts.state,
      ...(PROFILE ? { inspectorPort: INSPECTOR_PORT } : {}),
      workers: [
        {
          name: "pixiu",
          modules: true,
          scriptPath: opts.script,
          compatibilityDate: "2026-11-01",
          d1Databases: { DB: "pixiu-bench" },
          bindings: opts.bindings,
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
          unsafeDirectSockets: [{ host: "127.0.0.1", port: opts.ports.app }],
        },
        {
          name: "floor",
          modules: true,
          script: opts.floor,
          compatibilityDate: "2026-11-01",
          d1Databases: { DB: "pixiu-bench" },
          durableObjects: { LOG: { className: "LogShard", scriptName: "pixiu", useSQLite: true } },
          unsafeDirectSockets: [{ host: "127.0.0.1", port: opts.ports.floor }],
        },
      ],
    } as Parameters<typeof convertV4MiniflareOptions>[0]),
  );
  await mf.ready;
  return mf;
}

/** Applies the project's migrations, in order, to the ledger's D1. */
export async function migrate(mf: Miniflare): Promise<void> {
  const d1 = await mf.getD1Database("DB", "pixiu");
  const dir = join(ROOT, "schema", "migrations");
  const migrations = readdirSync(dir)
    .filter((f) => f.endsWith(".sql"))
    .sort();
  for (const file of migrations) {
    const statements = readFileSync(join(dir, file), "utf8")
      .split("--> statement-breakpoint")
      .map((s) => s.trim())
      .filter(Boolean);
    await d1.batch(statements.map((s) => d1.prepare(s)));
  }
}

export interface BenchPlatform {
  id: string;
  jwk: JWK;
}

/**
 * Fresh keys for one run: the admin's, the audit signer's and one per platform, and the
 * Worker's bindings around them (`extra` added or overriding).
 */
export async function benchSecrets(platforms: number, extra: Record<string, string>) {
  const admin = await generateKeyPair("EdDSA", { extractable: true });
  const adminJwk = { ...(await exportJWK(admin.privateKey)), kid: "bench-admin", alg: "EdDSA" } as JWK;
  const auditKey = await generateKeyPair("EdDSA", { extractable: true });
  const bindings = {
    ADMIN_JWKS: JSON.stringify({
      keys: [{ ...(await exportJWK(admin.publicKey)), kid: "bench-admin", alg: "EdDSA" }],
    }),
    AUDIT_SIGNING_JWK: JSON.stringify({ ...(await exportJWK(auditKey.privateKey)), kid: "bench-audit" }),
    JWT_AUDIENCE: "pixiu",
    RETENTION_DAYS: "1826",
    DISPUTE_DEADLINE_DAYS: "20",
    PLATFORM_CACHE_TTL_SECONDS: "30",
    ...extra,
  };
  const list: BenchPlatform[] = [];
  for (let p = 0; p < platforms; p++) {
    const pair = await generateKeyPair("EdDSA", { extractable: true });
    const kid = `bench-${p}`;
    list.push({
      id: `bench-shop-${p}`,
      jwk: { ...(await exportJWK(pair.privateKey)), kid, alg: "EdDSA" } as JWK,
    });
  }
  return {
    bindings,
    platforms: list,
    adminToken: () => signToken(adminJwk, { iss: "pixiu-admin", lifetime: 300 }),
    tokenOf: (p: number, lifetime = 300) =>
      signToken(list[p]?.jwk as JWK, { iss: list[p]?.id as string, lifetime }),
  };
}

/** POSTs JSON with a bearer token; the answer's status and parsed body. */
export async function postJson(
  base: string,
  path: string,
  token: string,
  body: unknown,
): Promise<{ status: number; json: unknown }> {
  const res = await fetch(base + path, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  return { status: res.status, json: await res.json() };
}

/** Registers the bench's platforms through the admin API. */
export async function registerPlatforms(
  app: string,
  secrets: Awaited<ReturnType<typeof benchSecrets>>,
): Promise<void> {
  for (const [p, platform] of secrets.platforms.entries()) {
    const { d: _d, ...pub } = platform.jwk;
    const res = await postJson(app, "/v1/admin/platforms", await secrets.adminToken(), {
      id: platform.id,
      name: `Bench Shop ${p}`,
      scopes: ["reports:write", "scores:read", "disputes:write"],
      jwks: { keys: [pub] },
    });
    if (res.status !== 201) {
      throw new Error(`platform ${platform.id}: ${res.status} ${JSON.stringify(res.json)}`);
    }
  }
}

/** The local D1's SQLite file under a persistence directory. */
export function findSqlite(state: string): string {
  const dir = join(state, "d1", "miniflare-D1DatabaseObject");
  const file = readdirSync(dir).find((f) => f.endsWith(".sqlite") && f !== "metadata.sqlite");
  if (!file) {
    throw new Error(`no D1 database under ${dir}`);
  }
  return join(dir, file);
}

/**
 * Opens the local D1's SQLite file for seeding (the server stopped): no fsync, WAL as workerd
 * keeps it, and a page cache big enough to hold the indexes being written.
 */
export function openForSeeding(state: string): DatabaseSync {
  const db = new DatabaseSync(findSqlite(state));
  db.exec("PRAGMA journal_mode = WAL; PRAGMA synchronous = OFF; PRAGMA cache_size = -2000000;");
  return db;
}

/**
 * Inserts of an active report (confirmed by platform forensics, CNY 299, confirmed a day after the
 * incident) and of a subject link, with the columns the API writes.
 */
export function reportInserts(db: DatabaseSync) {
  const report = db.prepare(`INSERT INTO reports (id, platform_id, case_id, status, category, confirmation,
    incident_at, confirmed_at, amount_value, amount_currency, evidence, note, subject_notified_at, content_hash,
    status_reason, dispute_deadline_at, statement, created_at, updated_at)
    VALUES (?, ?, ?, 'active', ?, 'platform_forensics', ?, ? + 86400000, 29900, 'CNY', ?, NULL, NULL, ?, NULL, NULL, NULL, ?, ?)`);
  const link = db.prepare(
    "INSERT INTO report_subjects (subject_key, report_id, subject_type, platform_id, incident_at, counted) VALUES (?, ?, ?, ?, ?, 1)",
  );
  return {
    report: (r: {
      id: string;
      platformId: string;
      caseId: string;
      category: string;
      incidentAt: number;
      evidence: string;
      contentHash: string;
      now: number;
    }) =>
      report.run(
        r.id,
        r.platformId,
        r.caseId,
        r.category,
        r.incidentAt,
        r.incidentAt,
        r.evidence,
        r.contentHash,
        r.now,
        r.now,
      ),
    link: (subjectKey: string, reportId: string, type: string, platformId: string, incidentAt: number) =>
      link.run(subjectKey, reportId, type, platformId, incidentAt),
  };
}

/** Bytes of pages per table, its indexes included (SQLite's dbstat), and the file's size. */
export function tableBytes(db: DatabaseSync): { bytes: Map<string, number>; fileBytes: number } {
  const rows = db
    .prepare(
      `SELECT m.tbl_name AS t, SUM(d.pgsize) AS b FROM dbstat d JOIN sqlite_master m ON m.name = d.name
       GROUP BY m.tbl_name`,
    )
    .all() as { t: string; b: number }[];
  const file = db
    .prepare("SELECT page_count * page_size AS b FROM pragma_page_count(), pragma_page_size()")
    .get() as {
    b: number;
  };
  return { bytes: new Map(rows.map((r) => [r.t, r.b])), fileBytes: file.b };
}

export interface Measured {
  name: string;
  /** Requests answered (2xx or not) during the run. */
  total: number;
  rps: number;
  p50: number;
  p99: number;
  non2xx: number;
  errors: number;
}

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

/**
 * Loads `url` with autocannon for `seconds` (or `amount` requests), each request made by
 * `request`. With BENCH_PROFILE matching `name`, writes the Worker's CPU profile to
 * bench-results/<route>.cpuprofile and prints the top self time.
 */
export async function load(
  name: string,
  url: string,
  request: () => { method: "GET" | "POST"; path: string; headers?: Record<string, string>; body?: string },
  options: {
    connections?: number;
    seconds: number;
    amount?: number;
    timeout?: number;
    log: (msg: string) => void;
  },
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
    ...(options.amount ? { amount: options.amount } : { duration: options.seconds }),
    ...(options.timeout ? { timeout: options.timeout } : {}),
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
    mkdirSync(RESULTS, { recursive: true });
    const file = join(RESULTS, `${name.replace(/[^a-z0-9]+/gi, "-")}.cpuprofile`);
    writeFileSync(file, JSON.stringify(profile));
    options.log(`CPU profile of ${name} (self time, top 25) → ${file}\n${topSelfTime(profile).join("\n")}`);
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
  options.log(
    `${name}: ${m.rps.toFixed(0)} req/s, p50 ${m.p50} ms, p99 ${m.p99} ms, non-2xx ${m.non2xx}, errors ${m.errors}`,
  );
  return m;
}

/** "2 × <cpu>, 24 GiB, Node v24…": the machine a run's numbers come from. */
export function machine(): string {
  return `${os.cpus().length} × ${os.cpus()[0]?.model ?? "cpu"}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}, load average ${os
    .loadavg()
    .map((l) => l.toFixed(2))
    .join(" ")}`;
}

/** Prints a run's report and writes it to bench-results/<file> (git-ignored). */
export function writeReport(file: string, report: string): void {
  console.log(report);
  mkdirSync(RESULTS, { recursive: true });
  writeFileSync(join(RESULTS, file), `${report}\n`);
}
