/**
 * `npm start`: the ledger at http://127.0.0.1:8787 on a local D1, migrated and seeded.
 *
 * 1. Keys: the admin's and each demo platform's key pair under .local/keys (git-ignored).
 * 2. .dev.vars: LEDGER_PEPPER, ADMIN_JWKS, AUDIT_SIGNING_JWK, WEBHOOK_ALLOW_LOOPBACK=true and
 *    PIXIU_CONSORTIUM_KEY added when missing; values already there are kept.
 * 3. Local D1: migrations applied, demo platforms upserted with their public keys.
 * 4. `wrangler dev` started; once it answers, demo cases are reported through the API
 *    (idempotent by caseId, so a second start changes nothing) and a short guide is printed.
 *
 * PIXIU_PORT (default 8787) and PIXIU_STATE_DIR (default wrangler's .wrangler/state, given to
 * every wrangler call as --persist-to) let a second ledger run beside a developer's, on its own
 * data: the durability test (test/node/durability.test.ts) starts one that way.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { consortiumKey, hashSubject } from "../client/identifiers";
import { signToken } from "../client/token";
import {
  ADMIN_KID,
  appendDevVars,
  DEMO_CONSORTIUM_KEY,
  DEMO_PLATFORMS,
  ensureKey,
  localAudience,
  publicOf,
  ROOT,
  randomBase64Url,
  readDevVars,
} from "./lib/local";

const HOST = "127.0.0.1";
const PORT = portFrom(process.env.PIXIU_PORT);
const BASE = `http://${HOST}:${PORT}`;
/** Where the local D1 and log store live: wrangler's own default unless PIXIU_STATE_DIR is set. */
const PERSIST = process.env.PIXIU_STATE_DIR ? ["--persist-to", resolve(process.env.PIXIU_STATE_DIR)] : [];
const quietEnv = { ...process.env, WRANGLER_SEND_METRICS: "false", CI: "true" };

function portFrom(value: string | undefined): number {
  if (value === undefined || value === "") {
    return 8787;
  }
  const port = Number(value);
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new Error(`PIXIU_PORT must be a port number, not ${JSON.stringify(value)}`);
  }
  return port;
}

function wrangler(args: string[]) {
  const result = spawnSync("wrangler", [...args, ...PERSIST], {
    cwd: ROOT,
    stdio: ["ignore", "pipe", "pipe"],
    env: quietEnv,
  });
  if (result.status !== 0) {
    process.stderr.write(result.stdout?.toString() ?? "");
    process.stderr.write(result.stderr?.toString() ?? "");
    throw new Error(`wrangler ${args.join(" ")} failed`);
  }
}

const sqlString = (s: string) => `'${s.replace(/'/g, "''")}'`;

async function prepare() {
  const adminKey = await ensureKey("admin", "EdDSA", ADMIN_KID);
  const platformKeys = await Promise.all(DEMO_PLATFORMS.map((p) => ensureKey(p.id, p.alg, `${p.id}-1`)));

  const vars = readDevVars();
  const missing: Record<string, string> = {};
  if (!vars.has("LEDGER_PEPPER")) {
    missing.LEDGER_PEPPER = randomBase64Url(32);
  }
  if (!vars.has("ADMIN_JWKS")) {
    missing.ADMIN_JWKS = JSON.stringify({ keys: [publicOf(adminKey)] });
  } else if (!(vars.get("ADMIN_JWKS") ?? "").includes(`"${ADMIN_KID}"`)) {
    console.warn(
      `note: ADMIN_JWKS in .dev.vars is kept; it has no key "${ADMIN_KID}", so \`npm run token -- --admin\` tokens will be refused`,
    );
  }
  if (!vars.has("AUDIT_SIGNING_JWK")) {
    const auditKey = await ensureKey("audit", "EdDSA", "local-audit-1");
    missing.AUDIT_SIGNING_JWK = JSON.stringify(auditKey);
  }
  if (!vars.has("WEBHOOK_ALLOW_LOOPBACK")) {
    // Locally a webhook may point at a receiver on this machine (http://127.0.0.1:…).
    missing.WEBHOOK_ALLOW_LOOPBACK = "true";
  }
  if (!vars.has("PIXIU_CONSORTIUM_KEY")) {
    missing.PIXIU_CONSORTIUM_KEY = DEMO_CONSORTIUM_KEY;
  }
  appendDevVars(missing);

  console.log("Applying migrations to the local D1…");
  wrangler(["d1", "migrations", "apply", "DB", "--local"]);

  const now = Date.now();
  const rows = DEMO_PLATFORMS.map((p, i) => {
    const jwks = JSON.stringify({ keys: [publicOf(platformKeys[i] as Record<string, unknown>)] });
    const scopes = JSON.stringify(["reports:write", "scores:read", "disputes:write"]);
    return `(${sqlString(p.id)}, ${sqlString(p.name)}, 'active', ${sqlString(scopes)}, ${sqlString(jwks)}, ${now}, ${now})`;
  });
  const seed = `INSERT INTO platforms (id, name, status, scopes, jwks, created_at, updated_at) VALUES
${rows.join(",\n")}
ON CONFLICT (id) DO UPDATE SET name = excluded.name, scopes = excluded.scopes, jwks = excluded.jwks, updated_at = excluded.updated_at;\n`;
  mkdirSync(join(ROOT, ".local"), { recursive: true });
  const seedFile = join(ROOT, ".local", "seed.sql");
  writeFileSync(seedFile, seed);
  console.log("Seeding demo platforms demo-shop-a, demo-shop-b, demo-shop-c…");
  wrangler(["d1", "execute", "DB", "--local", "--file", seedFile]);
  return platformKeys;
}

async function waitForServer(child: ChildProcess, timeoutMs = 60_000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) {
      throw new Error("wrangler dev exited");
    }
    try {
      const res = await fetch(`${BASE}/healthz`);
      if (res.ok) {
        return;
      }
    } catch {
      // not up yet
    }
    await new Promise((r) => setTimeout(r, 300));
  }
  throw new Error(`the ledger did not answer on ${BASE} within ${timeoutMs / 1000} s`);
}

const DAY = 86_400_000;
const iso = (ms: number) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z");

/** A demo buyer reported by two platforms, so the guide's score query has something to show. */
async function reportDemoCases(platformKeys: Awaited<ReturnType<typeof prepare>>) {
  const key = await consortiumKey(readDevVars().get("PIXIU_CONSORTIUM_KEY") ?? DEMO_CONSORTIUM_KEY);
  const buyer = [
    await hashSubject(key, "phone", "13800138000"),
    await hashSubject(key, "email", "Demo.Buyer+refunds@gmail.com"),
  ];
  const aud = localAudience();
  const day = Math.floor(Date.now() / DAY) * DAY;
  const cases = [
    { platform: 0, caseId: "DEMO-A-0001", days: 40, confirmation: "platform_forensics", value: 129900 },
    { platform: 1, caseId: "DEMO-B-0001", days: 12, confirmation: "merchant_evidence", value: 459900 },
  ];
  for (const c of cases) {
    const p = DEMO_PLATFORMS[c.platform];
    const jwk = platformKeys[c.platform];
    if (!p || !jwk) {
      continue;
    }
    const res = await fetch(`${BASE}/v1/reports`, {
      method: "POST",
      headers: {
        authorization: `Bearer ${await signToken(jwk, { iss: p.id, aud })}`,
        "content-type": "application/json",
      },
      body: JSON.stringify({
        caseId: c.caseId,
        subjects: buyer,
        category: "ai_generated_image",
        incidentAt: iso(day - c.days * DAY),
        confirmedAt: iso(day - (c.days - 3) * DAY),
        confirmation: c.confirmation,
        amount: { value: c.value, currency: "CNY" },
        evidence: [{ kind: "ai_label", value: "C2PA: generated" }],
      }),
    });
    if (res.status !== 201 && res.status !== 200) {
      console.warn(`demo case ${c.caseId}: ${res.status} ${await res.text()}`);
    }
  }
  return buyer;
}

function guide(buyer: { type: string; hash: string }[]) {
  const today = Math.floor(Date.now() / DAY) * DAY;
  const report = JSON.stringify({
    caseId: "TRY-0001",
    subjects: [buyer[0]],
    category: "edited_image",
    incidentAt: iso(today - 5 * DAY),
    confirmedAt: iso(today - 2 * DAY),
    confirmation: "manual_review",
    amount: { value: 25900, currency: "CNY" },
  });
  const query = JSON.stringify({ purpose: "refund_review", subjects: buyer });
  console.log(`
────────────────────────────────────────────────────────────────────────
 Pixiu ledger on ${BASE}   (API reference: ${BASE}/docs)
 Demo platforms: demo-shop-a, demo-shop-b, demo-shop-c. Demo buyer: phone 13800138000.

 Report a case as demo-shop-c:
   curl -s ${BASE}/v1/reports \\
     -H "authorization: Bearer $(npm run -s token -- --platform demo-shop-c)" \\
     -H 'content-type: application/json' \\
     -d '${report}'

 Score the buyer as demo-shop-a:
   curl -s ${BASE}/v1/scores/query \\
     -H "authorization: Bearer $(npm run -s token -- --platform demo-shop-a)" \\
     -H 'content-type: application/json' \\
     -d '${query}'

 Hash an identifier:  npm run -s hash -- phone "+86 138 0013 8000"
 Admin token:         npm run -s token -- --admin
────────────────────────────────────────────────────────────────────────
`);
}

async function main() {
  const platformKeys = await prepare();
  console.log(`Starting wrangler dev on ${BASE}…`);
  const child = spawn("wrangler", ["dev", "--ip", HOST, "--port", String(PORT), ...PERSIST], {
    cwd: ROOT,
    stdio: "inherit",
    env: { ...process.env, WRANGLER_SEND_METRICS: "false" },
  });
  const stop = () => child.kill("SIGINT");
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
  child.on("exit", (code) => process.exit(code ?? 0));
  await waitForServer(child);
  const buyer = await reportDemoCases(platformKeys);
  guide(buyer);
}

main().catch((err: Error) => {
  console.error(`start: ${err.message}`);
  process.exit(1);
});
