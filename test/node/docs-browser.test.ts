/**
 * `/docs` in a real browser (issue 12, point 5): Debian's Chromium, driven by playwright-core,
 * loads the reference from the ledger as `npm start` runs it and finds the operations listed,
 * while every request the page makes goes to the ledger itself and the page's policy refuses
 * nothing it needs. CI installs Chromium (.ci/run); the path may be set with PIXIU_CHROMIUM.
 */
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Browser, chromium } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort, killAll, type LocalLedger, preserveLocalFiles, startLedger } from "./local-ledger";

const CHROMIUM = process.env.PIXIU_CHROMIUM ?? "/usr/bin/chromium";

/** The flags a closed network needs: no background connections, no component updates. */
const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

describe("GET /docs in Chromium", () => {
  let restoreLocalFiles: (() => void) | undefined;
  let stateDir = "";
  let ledger: LocalLedger | undefined;
  let browser: Browser | undefined;

  beforeAll(async () => {
    expect(existsSync(CHROMIUM), `Chromium is needed at ${CHROMIUM} (apt-get install chromium)`).toBe(true);
    restoreLocalFiles = preserveLocalFiles();
    stateDir = mkdtempSync(join(tmpdir(), "pixiu-docs-"));
    process.once("exit", killAll);
    ledger = await startLedger({ port: await freePort(), stateDir });
    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  }, 180_000);

  afterAll(async () => {
    try {
      await browser?.close();
      killAll();
    } finally {
      if (stateDir) {
        rmSync(stateDir, { recursive: true, force: true });
      }
      restoreLocalFiles?.();
    }
  });

  it("renders every operation of /openapi.json, with no request leaving the ledger and nothing refused", async () => {
    const base = (ledger as LocalLedger).base;
    const document = (await (await fetch(`${base}/openapi.json`)).json()) as {
      paths: Record<string, Record<string, unknown>>;
    };
    const operations = Object.values(document.paths).reduce((n, item) => n + Object.keys(item).length, 0);
    expect(operations).toBeGreaterThan(20);

    const page = await (browser as Browser).newPage();
    const requested: string[] = [];
    const refused: string[] = [];
    page.on("request", (req) => requested.push(req.url()));
    page.on("console", (msg) => {
      if (/Content Security Policy|Refused to/i.test(msg.text())) {
        refused.push(msg.text());
      }
    });
    page.on("pageerror", (err) => refused.push(String(err)));
    const res = await page.goto(`${base}/docs`, { waitUntil: "load" });
    expect(res?.status()).toBe(200);
    await page.locator(".opblock").first().waitFor({ timeout: 60_000 });
    // Swagger UI lists each operation as one block (tags expanded by default).
    await expect.poll(() => page.locator(".opblock").count(), { timeout: 30_000 }).toBe(operations);
    await expect(
      page.locator(".opblock-summary-path").filter({ hasText: "/v1/scores/query" }).count(),
    ).resolves.toBe(1);

    const elsewhere = requested.filter((url) => !url.startsWith(`${base}/`) && !url.startsWith("data:"));
    expect(elsewhere, "requests that left the ledger").toEqual([]);
    expect(requested).toContain(`${base}/openapi.json`);
    expect(refused, "refused by the page's policy, or thrown").toEqual([]);
    await page.close();
  }, 120_000);
});
