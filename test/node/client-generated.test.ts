/**
 * The client's generated files (client/openapi.json, client/generated/*) are what
 * `npm run -s client:generate` makes from the Worker now: a route, schema or bound changed
 * without regenerating fails here, with the command to run in the message.
 */
import { spawnSync } from "node:child_process";
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { ROOT } from "../../scripts/lib/local";

const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs) {
    rmSync(dir, { recursive: true, force: true });
  }
});

function check(env: NodeJS.ProcessEnv = {}) {
  return spawnSync(process.execPath, ["--import", "tsx", "scripts/client-openapi.ts", "--check"], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    encoding: "utf8",
  });
}

describe("client generated from the Worker's OpenAPI document", () => {
  it("matches the document the Worker builds now", () => {
    const result = check();
    expect(result.stderr).toContain("up to date");
    expect(result.status).toBe(0);
  });

  it("fails, naming the command, when a committed file drifts", () => {
    const copy = mkdtempSync(join(tmpdir(), "pixiu-client-"));
    dirs.push(copy);
    cpSync(join(ROOT, "client", "openapi.json"), join(copy, "openapi.json"));
    cpSync(join(ROOT, "client", "generated"), join(copy, "generated"), { recursive: true });
    const doc = JSON.parse(readFileSync(join(copy, "openapi.json"), "utf8"));
    doc.components.schemas.ReportBody.properties.caseId.pattern = "^[A-Z]{1,8}$";
    writeFileSync(join(copy, "openapi.json"), `${JSON.stringify(doc, null, 2)}\n`);
    const types = readFileSync(join(copy, "generated", "openapi.ts"), "utf8");
    writeFileSync(
      join(copy, "generated", "openapi.ts"),
      types.replace('"/v1/reports/bulk"', '"/v1/reports/many"'),
    );
    const result = check({ PIXIU_CLIENT_DIR: copy });
    expect(result.status).toBe(1);
    expect(result.stderr).toContain("npm run -s client:generate");
    expect(result.stderr).toContain("openapi.json");
    expect(result.stderr).toContain("openapi.ts");
  });
});
