/**
 * `pixiu backfill` (the CLI process, as a platform runs it) against the real ledger `npm start`
 * runs, on a generated 10,000-row CSV with about 3 % bad rows:
 *
 * - `--dry-run` sends nothing and finds every locally detectable bad row;
 * - a run creates every good row once, puts every bad row (with its row number and problem) in
 *   the rejects file, and exits 1; the same command again sends nothing; `--fresh` sends all
 *   again and the ledger answers "already present" for every good row;
 * - a run killed with SIGKILL half-way and started again completes with no report missing and
 *   none twice (checked through the API), and resends at most the batches that were in flight.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parse } from "csv-parse/sync";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PixiuClient } from "../../client/sdk";
import { ROOT, readKey } from "../../scripts/lib/local";
import { type Fixture, writeFixture } from "./backfill-fixture";
import { freePort, killAll, type LocalLedger, preserveLocalFiles, startLedger } from "./local-ledger";

const ROWS = 10_000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let ledger: LocalLedger;
let restore: () => void;
let dir: string;
const children = new Set<ChildProcess>();
const run = Date.now().toString(36).toUpperCase();

interface Summary {
  rows: number;
  resumed: number;
  created: number;
  present: number;
  valid?: number;
  rejected: number;
  calls: number;
  seconds: number;
  complete: boolean;
}

/** The CLI in a process of its own (one process: node with tsx's loader), as a platform runs it. */
function cli(args: string[], url = ledger.base) {
  const child = spawn(
    process.execPath,
    ["--import", "tsx", join(ROOT, "client", "cli", "main.ts"), ...args],
    {
      cwd: ROOT,
      env: { ...process.env, PIXIU_URL: url },
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  children.add(child);
  let stdout = "";
  let stderr = "";
  child.stdout?.on("data", (d) => {
    stdout += d;
  });
  child.stderr?.on("data", (d) => {
    stderr += d;
  });
  const done = new Promise<{ code: number | null; signal: string | null; stdout: string; stderr: string }>(
    (resolve) =>
      child.on("close", (code, signal) => {
        children.delete(child);
        resolve({ code, signal, stdout, stderr });
      }),
  );
  return { child, done };
}

async function backfill(args: string[], url?: string) {
  const result = await cli(["backfill", ...args], url).done;
  const last = result.stdout.trim().split("\n").at(-1) ?? "";
  return { ...result, summary: JSON.parse(last) as Summary };
}

/** Case ids the platform holds, each with how many reports carry it, through the API. */
async function heldCaseIds(platform: string, prefix: string): Promise<Map<string, number>> {
  const pixiu = new PixiuClient({
    baseUrl: ledger.base,
    platformId: platform,
    privateJwk: readKey(platform),
  });
  const held = new Map<string, number>();
  for await (const report of pixiu.reports({ limit: 200 })) {
    if (report.caseId.startsWith(prefix)) {
      held.set(report.caseId, (held.get(report.caseId) ?? 0) + 1);
    }
  }
  return held;
}

beforeAll(async () => {
  restore = preserveLocalFiles();
  dir = mkdtempSync(join(tmpdir(), "pixiu-backfill-"));
  ledger = await startLedger({ port: await freePort(), stateDir: join(dir, "state") });
}, 150_000);

afterAll(async () => {
  for (const child of children) {
    child.kill("SIGKILL");
  }
  await ledger?.killHard().catch(() => undefined);
  killAll();
  restore?.();
  rmSync(dir, { recursive: true, force: true });
});

describe("pixiu backfill", () => {
  let fixture: Fixture;

  it("validates every row in a dry run and sends nothing", async () => {
    fixture = writeFixture(join(dir, "cases.csv"), ROWS, `BF${run}`);
    const { code, summary, stderr } = await backfill([
      fixture.path,
      "--dry-run",
      "--platform",
      "demo-shop-a",
    ]);
    expect(code).toBe(1);
    expect(summary).toMatchObject({ rows: ROWS, calls: 0, created: 0, dryRun: true });
    // The ledger's 409s (a case id reused with other content) cannot be seen without asking it.
    const conflicts = fixture.bad - Math.floor(ROWS / 33);
    expect(summary.rejected).toBe(fixture.bad - conflicts);
    expect(summary.valid).toBe(fixture.valid + conflicts);
    expect(stderr).toContain("row 33 ");
    expect(existsSync(`${fixture.path}.pixiu-state.json`)).toBe(false);
    expect(existsSync(`${fixture.path}.rejects.csv`)).toBe(false);
    expect(await heldCaseIds("demo-shop-a", `BF${run}`)).toHaveProperty("size", 0);
  });

  it("creates every good row once and rejects the bad ones, exit 1; the same command again sends nothing", async () => {
    const first = await backfill([fixture.path, "--platform", "demo-shop-a"]);
    expect(first.code).toBe(1);
    expect(first.summary).toMatchObject({
      rows: ROWS,
      created: fixture.valid,
      present: 0,
      rejected: fixture.bad,
      complete: true,
    });
    expect(first.summary.calls).toBe(Math.ceil((ROWS - Math.floor(ROWS / 33)) / 500));
    console.log(
      `back-fill: ${ROWS} rows in ${first.summary.seconds} s = ${Math.round(ROWS / first.summary.seconds)} rows/s`,
    );

    const rejects = parse(readFileSync(`${fixture.path}.rejects.csv`), { columns: true }) as Record<
      string,
      string
    >[];
    expect(rejects).toHaveLength(fixture.bad);
    const byRow = new Map(rejects.map((r) => [Number(r.row), r]));
    expect(byRow.get(33)?.status).toBe("invalid");
    expect(byRow.get(33)?.problem).toContain("incidentAt");
    expect(byRow.get(33)?.case_id).toBe(`BF${run}-000033`);
    expect(rejects.filter((r) => r.status === "409")).toHaveLength(fixture.bad - Math.floor(ROWS / 33));
    for (const r of rejects) {
      expect(r.problem).not.toBe("");
    }

    const held = await heldCaseIds("demo-shop-a", `BF${run}`);
    expect(held.size).toBe(fixture.valid);
    expect([...held.values()].every((n) => n === 1)).toBe(true);
    expect(fixture.caseIds.filter((id) => !held.has(id))).toEqual([]);

    const second = await backfill([fixture.path, "--platform", "demo-shop-a"]);
    expect(second.code).toBe(1);
    expect(second.summary).toMatchObject({ calls: 0, resumed: ROWS, created: fixture.valid, complete: true });

    const fresh = await backfill([fixture.path, "--platform", "demo-shop-a", "--fresh"]);
    expect(fresh.code).toBe(1);
    expect(fresh.summary).toMatchObject({ created: 0, present: fixture.valid, rejected: fixture.bad });
    expect((await heldCaseIds("demo-shop-a", `BF${run}`)).size).toBe(fixture.valid);
  });

  it("resumes after a SIGKILL half-way: nothing missing, nothing twice", async () => {
    const killed = writeFixture(join(dir, "killed.csv"), ROWS, `KB${run}`);
    const state = `${killed.path}.pixiu-state.json`;
    const first = cli(["backfill", killed.path, "--platform", "demo-shop-b", "--concurrency", "4"]);
    // Kill once some batches are recorded and well before the end.
    const deadline = Date.now() + 60_000;
    let doneRows = 0;
    while (Date.now() < deadline) {
      if (existsSync(state)) {
        try {
          const s = JSON.parse(readFileSync(state, "utf8")) as { done: [number, number][] };
          doneRows = s.done.reduce((n, [a, b]) => n + b - a + 1, 0);
        } catch {
          // being replaced: read again
        }
      }
      if (doneRows >= 2_000) {
        break;
      }
      await sleep(20);
    }
    first.child.kill("SIGKILL");
    const killedRun = await first.done;
    expect(killedRun.signal).toBe("SIGKILL");
    expect(doneRows).toBeGreaterThanOrEqual(2_000);
    expect(doneRows).toBeLessThan(ROWS);
    const recorded = JSON.parse(readFileSync(state, "utf8")) as {
      done: [number, number][];
      complete: boolean;
    };
    expect(recorded.complete).toBe(false);

    const resumed = await backfill([killed.path, "--platform", "demo-shop-b", "--concurrency", "4"]);
    expect(resumed.code).toBe(1);
    expect(resumed.summary.complete).toBe(true);
    expect(resumed.summary.resumed).toBeGreaterThanOrEqual(doneRows);
    expect(resumed.summary.created + resumed.summary.present).toBe(killed.valid);
    expect(resumed.summary.rejected).toBe(killed.bad);
    // Only what was in flight at the kill was sent twice (and answered "already present").
    expect(resumed.summary.present).toBeLessThanOrEqual(4 * 500);

    const rejects = parse(readFileSync(`${killed.path}.rejects.csv`), { columns: true }) as { row: string }[];
    expect(rejects).toHaveLength(killed.bad);
    expect(new Set(rejects.map((r) => r.row)).size).toBe(killed.bad);

    const held = await heldCaseIds("demo-shop-b", `KB${run}`);
    expect(held.size).toBe(killed.valid);
    expect([...held.values()].every((n) => n === 1)).toBe(true);
    expect(killed.caseIds.filter((id) => !held.has(id))).toEqual([]);
  });
  it("stops cleanly on SIGTERM (state written, lock released) and resumes under the same ledger spelled with a slash", async () => {
    const termed = writeFixture(join(dir, "termed.csv"), 4_000, `KT${run}`);
    const state = `${termed.path}.pixiu-state.json`;
    const first = cli(["backfill", termed.path, "--platform", "demo-shop-b", "--concurrency", "2"]);
    // Stop once some batches are recorded.
    const deadline = Date.now() + 60_000;
    let doneRows = 0;
    while (Date.now() < deadline && doneRows === 0) {
      try {
        const s = JSON.parse(readFileSync(state, "utf8")) as { done: [number, number][] };
        doneRows = s.done.reduce((n, [a, b]) => n + b - a + 1, 0);
      } catch {
        // not written yet, or being replaced: read again
      }
      await sleep(20);
    }
    first.child.kill("SIGTERM");
    const stopped = await first.done;
    expect(stopped.signal).toBeNull();
    expect(stopped.code, stopped.stderr).toBe(130);
    expect(stopped.stderr).toContain("run the same command again to resume");
    expect(existsSync(`${termed.path}.pixiu-lock`)).toBe(false);
    expect((JSON.parse(readFileSync(state, "utf8")) as { complete: boolean }).complete).toBe(false);

    const resumed = await backfill([termed.path, "--platform", "demo-shop-b"], `${ledger.base}/`);
    expect(resumed.code, resumed.stderr).toBe(1);
    expect(resumed.summary.complete).toBe(true);
    expect(resumed.summary.resumed).toBeGreaterThan(0);
    expect(resumed.summary.created + resumed.summary.present).toBe(termed.valid);
    const held = await heldCaseIds("demo-shop-b", `KT${run}`);
    expect(held.size).toBe(termed.valid);
    expect([...held.values()].every((n) => n === 1)).toBe(true);
  });
});
