/**
 * `@pixiu/client` against the real Worker on a real local D1, as `npm start` runs it (one ledger
 * for this file, started with a small LOOKUP_DAILY_CAP through .dev.vars):
 *
 * - the document the ledger serves is the one the client was generated from;
 * - every method's happy path, with the narrowest scope and a fresh jti per request, and the
 *   bookmark carried from answer to request;
 * - typed errors (401, 404, 409, 422) with the problem's type and errors[];
 * - a report whose answer is lost after the ledger committed it (a TCP proxy that forwards the
 *   request and drops the connection when the answer starts) is retried and not duplicated; a
 *   retract is not retried;
 * - 429s honour Retry-After: the daily cap's (hours) fails at once, the rate limit's (60 s) is
 *   waited for (the waits are recorded, not slept) up to the attempt bound;
 * - splitting: scoreBatch in calls of 100, reportBulk of 500, answers in order;
 * - `npm pack` of the client installs into an empty folder and docs/examples/score.mjs scores a
 *   buyer with it, on the machine's Node (20) when there is one.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server, type Socket, connect as tcpConnect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { decodeJwt } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PixiuError } from "../../client/errors";
import { consortiumKey, hashSubject } from "../../client/identifiers";
import openapi from "../../client/openapi.json" with { type: "json" };
import { PixiuClient, type PixiuClientOptions, type ReportBody } from "../../client/sdk";
import { appendDevVars, consortiumKeyValue, ROOT, readKey } from "../../scripts/lib/local";
import { freePort, killAll, type LocalLedger, preserveLocalFiles, startLedger } from "./local-ledger";

const DAILY_CAP = 400;

let ledger: LocalLedger;
let restore: () => void;
let stateDir: string;
let key: CryptoKey;
const run = Date.now().toString(36);

interface Seen {
  method: string;
  path: string;
  scope: string | undefined;
  jti: string | undefined;
  bookmark: string | null;
}

/** A client for a demo platform; `seen` records what each attempt sent. */
function clientFor(platformId: string, options: Partial<PixiuClientOptions> = {}, seen: Seen[] = []) {
  return new PixiuClient({
    baseUrl: ledger.base,
    platformId,
    privateJwk: readKey(platformId),
    fetch: (request) => {
      const auth = request.headers.get("authorization")?.replace(/^Bearer /, "");
      const claims = auth ? decodeJwt(auth) : {};
      seen.push({
        method: request.method,
        path: new URL(request.url).pathname,
        scope: claims.scope as string | undefined,
        jti: claims.jti,
        bookmark: request.headers.get("pixiu-bookmark"),
      });
      return fetch(request);
    },
    ...options,
  });
}

function body(caseId: string, subjects: ReportBody["subjects"], value = 12_900): ReportBody {
  return {
    caseId,
    subjects,
    category: "ai_generated_image",
    incidentAt: "2026-10-01T10:00:00+08:00",
    confirmedAt: "2026-10-03T10:00:00+08:00",
    confirmation: "platform_forensics",
    amount: { value, currency: "CNY" },
    evidence: [],
  };
}

const device = (name: string) => hashSubject(key, "device", `${run}-${name}`);

/**
 * A TCP proxy to the ledger that, when armed, forwards the next request whole and cuts both
 * connections as the answer's first bytes arrive: the ledger has done the work, the client
 * never hears of it.
 */
function dropProxy(target: URL): Promise<{ base: string; arm(): void; close(): Promise<void> }> {
  let armed = false;
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const upstream = tcpConnect(Number(target.port), target.hostname);
    sockets.add(client).add(upstream);
    client.on("data", (d) => upstream.write(d));
    upstream.on("data", (d) => {
      if (armed) {
        armed = false;
        client.destroy();
        upstream.destroy();
        return;
      }
      client.write(d);
    });
    const end = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on("close", end).on("error", end);
    upstream.on("close", end).on("error", end);
  });
  return new Promise((resolve) => {
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      resolve({
        base: `http://127.0.0.1:${port}`,
        arm: () => {
          armed = true;
        },
        close: () =>
          new Promise<void>((done) => {
            for (const s of sockets) {
              s.destroy();
            }
            server.close(() => done());
          }),
      });
    });
  });
}

beforeAll(async () => {
  restore = preserveLocalFiles();
  appendDevVars({ LOOKUP_DAILY_CAP: String(DAILY_CAP) });
  stateDir = mkdtempSync(join(tmpdir(), "pixiu-sdk-"));
  ledger = await startLedger({ port: await freePort(), stateDir });
  key = await consortiumKey(consortiumKeyValue());
}, 150_000);

afterAll(async () => {
  await ledger?.killHard().catch(() => undefined);
  killAll();
  restore?.();
  rmSync(stateDir, { recursive: true, force: true });
});

describe("@pixiu/client against the ledger", () => {
  it("was generated from the document the ledger serves", async () => {
    const served = await (await fetch(`${ledger.base}/openapi.json`)).json();
    expect(served).toEqual(openapi);
  });

  it("reports, replays, reads back, lists and retracts, each with the narrowest scope and a fresh jti", async () => {
    const seen: Seen[] = [];
    const pixiu = clientFor("demo-shop-a", {}, seen);
    const report = body(`SDK-${run}-1`, [await device("one")]);
    const first = await pixiu.report(report);
    expect(first.created).toBe(true);
    expect(first.report.caseId).toBe(report.caseId);
    const again = await pixiu.report(report);
    expect(again).toMatchObject({ created: false, report: { id: first.report.id } });
    expect(pixiu.bookmark).toMatch(/\S/);
    const bookmark = pixiu.bookmark;
    expect((await pixiu.getReport(first.report.id)).id).toBe(first.report.id);
    expect(seen.at(-1)?.bookmark).toBe(bookmark);
    const page = await pixiu.listReports({ limit: 10 });
    expect(page.items.map((r) => r.id)).toContain(first.report.id);
    const retracted = await pixiu.retract(first.report.id, "entered by mistake");
    expect(retracted.status).toBe("retracted");
    const answer = await pixiu.score([await device("one")]);
    expect(typeof answer.score).toBe("number");
    expect(seen.map((s) => `${s.method} ${s.path} ${s.scope}`)).toEqual([
      "POST /v1/reports reports:write",
      "POST /v1/reports reports:write",
      `GET /v1/reports/${first.report.id} reports:write`,
      "GET /v1/reports reports:write",
      `POST /v1/reports/${first.report.id}/retract reports:write`,
      "POST /v1/scores/query scores:read",
    ]);
    expect(new Set(seen.map((s) => s.jti)).size).toBe(seen.length);
  });

  it("throws PixiuError with the problem: 401, 404, 409, 422", async () => {
    const pixiu = clientFor("demo-shop-a");
    const caught = async (p: Promise<unknown>) => {
      try {
        await p;
      } catch (err) {
        return err as PixiuError;
      }
      throw new Error("expected an error");
    };
    const invalid = await caught(pixiu.report(body("not a case id!", [await device("two")])));
    expect(invalid).toBeInstanceOf(PixiuError);
    expect(invalid).toMatchObject({ status: 422, type: "validation", attempts: 1 });
    expect(invalid.errors.map((e) => e.path)).toContain("caseId");
    expect(invalid.problem.instance).toMatch(/^req_/);

    const missing = await caught(pixiu.getReport("rpt_0000000000000000000000000Z"));
    expect(missing).toMatchObject({ status: 404, type: "not-found" });

    const original = body(`SDK-${run}-conflict`, [await device("three")]);
    await pixiu.report(original);
    const conflict = await caught(pixiu.report({ ...original, amount: { value: 1, currency: "CNY" } }));
    expect(conflict).toMatchObject({ status: 409, type: "conflict" });

    const impostor = new PixiuClient({
      baseUrl: ledger.base,
      platformId: "demo-shop-a",
      privateJwk: { ...readKey("demo-shop-c"), kid: readKey("demo-shop-a").kid },
    });
    const refused = await caught(impostor.score([await device("two")]));
    expect(refused).toMatchObject({ status: 401, type: "unauthenticated", attempts: 1 });
  });

  it("splits reportBulk into calls of 500 and scoreBatch into calls of 100, answers in order", async () => {
    const seen: Seen[] = [];
    const pixiu = clientFor("demo-shop-b", {}, seen);
    const reports = await Promise.all(
      Array.from({ length: 1_100 }, async (_, i) =>
        body(`SDK-${run}-bulk-${i}`, [await device(`bulk-${i}`)]),
      ),
    );
    const results = await pixiu.reportBulk(reports, { concurrency: 3 });
    expect(results.map((r) => r.index)).toEqual(reports.map((_, i) => i));
    expect(results.every((r) => r.status === 201)).toBe(true);
    expect(seen.filter((s) => s.path === "/v1/reports/bulk")).toHaveLength(3);

    const scorer = clientFor("demo-shop-a", {}, seen);
    const queries = await Promise.all(
      Array.from({ length: 250 }, async (_, i) => ({ ref: `q${i}`, subjects: [await device(`bulk-${i}`)] })),
    );
    // Buyer 173 was not reported: an answer out of place would show.
    queries[173] = { ref: "q173", subjects: [await device("nobody")] };
    const answers = await scorer.scoreBatch(queries);
    expect(answers.map((a) => a.ref)).toEqual(queries.map((q) => q.ref));
    expect(answers.filter((a) => a.score > 0).map((a) => a.ref)).not.toContain("q173");
    expect(answers[173]?.records).toEqual([]);
    expect(answers[172]?.records.length).toBe(1);
    expect(seen.filter((s) => s.path === "/v1/scores/batch")).toHaveLength(3);
  });

  it("retries a report whose answer was lost after the commit, without a duplicate; never a retract", async () => {
    const proxy = await dropProxy(new URL(ledger.base));
    try {
      const seen: Seen[] = [];
      const pixiu = clientFor(
        "demo-shop-a",
        { baseUrl: proxy.base, retry: { sleep: async () => undefined } },
        seen,
      );
      const report = body(`SDK-${run}-dropped`, [await device("dropped")]);
      proxy.arm();
      const sent = await pixiu.report(report);
      // The first attempt was committed (its answer cut off): the retry is the replay.
      expect(seen.filter((s) => s.path === "/v1/reports")).toHaveLength(2);
      expect(sent.created).toBe(false);
      const direct = clientFor("demo-shop-a");
      const mine = [];
      for await (const r of direct.reports({ limit: 200 })) {
        if (r.caseId === report.caseId) {
          mine.push(r.id);
        }
        if (mine.length > 0 && r.createdAt < sent.report.createdAt) {
          break;
        }
      }
      expect(mine).toEqual([sent.report.id]);

      proxy.arm();
      const lost = await pixiu.retract(sent.report.id, "duplicate of another case").catch((err) => err);
      expect(lost).toBeInstanceOf(PixiuError);
      expect(lost).toMatchObject({ status: 0, attempts: 1 });
      expect((await direct.getReport(sent.report.id)).status).toBe("retracted");
    } finally {
      await proxy.close();
    }
  });

  it("fails at once on a Retry-After longer than it waits: the daily look-up cap", async () => {
    const sleeps: number[] = [];
    const seen: Seen[] = [];
    const pixiu = clientFor("demo-shop-c", { retry: { sleep: async (ms) => void sleeps.push(ms) } }, seen);
    const queries = await Promise.all(
      Array.from({ length: DAILY_CAP }, async (_, i) => ({
        ref: `c${i}`,
        subjects: [await device(`cap-${i}`)],
      })),
    );
    expect(await pixiu.scoreBatch(queries)).toHaveLength(DAILY_CAP);
    seen.length = 0;
    const err = await pixiu.score([await device("one-too-many")]).catch((e) => e);
    expect(err).toBeInstanceOf(PixiuError);
    expect(err).toMatchObject({ status: 429, type: "rate-limited", attempts: 1 });
    expect(err.retryAfter).toBeGreaterThan(60);
    expect(err.retryAfter).toBeLessThanOrEqual(86_400);
    expect(seen).toHaveLength(1);
    expect(sleeps).toEqual([]);
  });

  it("waits Retry-After on a rate limit, up to its attempts: subject access, 60 a minute", async () => {
    const subjects = [await device("subject-access")];
    let verdict: PixiuError | undefined;
    for (let round = 0; round < 3 && !verdict; round++) {
      // Spend the minute's budget (a fresh window may open meanwhile: then again).
      const spender = clientFor("demo-shop-b", { retry: { attempts: 1 } });
      for (let i = 0; i < 100; i++) {
        const err = await spender
          .subjectAccess({ requestRef: `SA-${run}-${round}-${i}`, subjects, limit: 1 })
          .then(() => null)
          .catch((e) => e as PixiuError);
        if (err) {
          expect(err.status).toBe(429);
          break;
        }
      }
      const sleeps: number[] = [];
      const seen: Seen[] = [];
      const patient = clientFor(
        "demo-shop-b",
        { retry: { attempts: 3, sleep: async (ms) => void sleeps.push(ms) } },
        seen,
      );
      const err = await patient
        .subjectAccess({ requestRef: `SA-${run}-${round}-last`, subjects, limit: 1 })
        .then(() => undefined)
        .catch((e) => e as PixiuError);
      if (err) {
        expect(err).toMatchObject({ status: 429, retryAfter: 60, attempts: 3 });
        expect(seen).toHaveLength(3);
        expect(sleeps).toHaveLength(2);
        for (const ms of sleeps) {
          expect(ms).toBeGreaterThanOrEqual(60_000);
          expect(ms).toBeLessThanOrEqual(66_000);
        }
        verdict = err;
      }
    }
    expect(verdict).toBeInstanceOf(PixiuError);
  });

  it("packs into a tarball that installs in an empty folder; the example scores a buyer", () => {
    const dir = mkdtempSync(join(tmpdir(), "pixiu-pack-"));
    try {
      const packed = JSON.parse(
        execFileSync("npm", ["pack", "-w", "@pixiu/client", "--pack-destination", dir, "--json"], {
          cwd: ROOT,
          encoding: "utf8",
          stdio: ["ignore", "pipe", "pipe"],
        }),
      ) as { filename: string; files: { path: string }[] }[];
      const files = packed[0]?.files.map((f) => f.path) ?? [];
      expect(files).toContain("dist/index.js");
      expect(files).toContain("dist/index.d.ts");
      expect(files).toContain("dist/cli/main.js");
      expect(files.filter((f) => f.endsWith(".ts") && !f.endsWith(".d.ts"))).toEqual([]);
      const app = join(dir, "app");
      execFileSync("mkdir", ["-p", app]);
      writeFileSync(join(app, "package.json"), '{ "name": "app", "private": true, "type": "module" }\n');
      const install = spawnSync(
        "npm",
        ["install", join(dir, packed[0]?.filename ?? ""), "--prefer-offline", "--no-audit", "--no-fund"],
        { cwd: app, encoding: "utf8" },
      );
      expect(install.stderr + install.stdout).not.toMatch(/ERR!/);
      expect(install.status).toBe(0);
      copyFileSync(join(ROOT, "docs", "examples", "score.mjs"), join(app, "score.mjs"));
      // The machine's own Node when there is one (20 here): the package's floor, not the repo's 24.
      const node = existsSync("/usr/bin/node") ? "/usr/bin/node" : process.execPath;
      const env = {
        ...process.env,
        PIXIU_URL: ledger.base,
        PIXIU_PLATFORM: "demo-shop-a",
        PIXIU_KEY: join(ROOT, ".local", "keys", "demo-shop-a.private.jwk.json"),
        PIXIU_CONSORTIUM_KEY: consortiumKeyValue(),
      };
      const scored = spawnSync(node, ["score.mjs", "13800138000"], { cwd: app, env, encoding: "utf8" });
      expect(scored.stderr).toBe("");
      // The demo buyer `npm start` reports from two platforms.
      const answer = JSON.parse(scored.stdout) as { score: number; band: string };
      expect(answer.score).toBeGreaterThan(0);
      const hashed = spawnSync(
        node,
        [join(app, "node_modules", ".bin", "pixiu"), "hash", "phone", "13800138000"],
        {
          cwd: app,
          env,
          encoding: "utf8",
        },
      );
      expect(hashed.status).toBe(0);
      expect(hashed.stdout.trim()).toMatch(/^[0-9a-f]{64}$/);
      expect(readFileSync(join(app, "node_modules", "@pixiu", "client", "package.json"), "utf8")).toContain(
        '"name": "@pixiu/client"',
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
