/**
 * Local state for `npm start`, `npm run token` and `npm run hash`: the demo platforms' and the
 * admin's key pairs (git-ignored, under .local/keys), and the values in .dev.vars.
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { exportJWK, generateKeyPair, type JWK } from "jose";

export const ROOT = join(import.meta.dirname, "..", "..");
export const KEYS_DIR = join(ROOT, ".local", "keys");
export const DEV_VARS = join(ROOT, ".dev.vars");
export const ADMIN_KID = "local-admin";

/** A fixed, public demo key so hashes in the docs reproduce; real consortia generate their own. */
export const DEMO_CONSORTIUM_KEY = "cGl4aXUtZGVtby1jb25zb3J0aXVtLWtleS0yMDI2LW9ubHkh";

export const DEMO_PLATFORMS = [
  { id: "demo-shop-a", name: "Demo Shop A", alg: "EdDSA" as const },
  { id: "demo-shop-b", name: "Demo Shop B", alg: "ES256" as const },
  { id: "demo-shop-c", name: "Demo Shop C", alg: "EdDSA" as const },
];

export function randomBase64Url(bytes = 32): string {
  return Buffer.from(crypto.getRandomValues(new Uint8Array(bytes))).toString("base64url");
}

/** Reads KEY=VALUE lines (values optionally quoted); comments and blank lines are skipped. */
export function readDevVars(): Map<string, string> {
  const vars = new Map<string, string>();
  if (!existsSync(DEV_VARS)) {
    return vars;
  }
  for (const line of readFileSync(DEV_VARS, "utf8").split(/\r?\n/)) {
    const m = /^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)\s*$/.exec(line);
    if (m?.[1] && m[2] !== undefined) {
      let value = m[2];
      if (/^(['"]).*\1$/.test(value)) {
        value = value.slice(1, -1);
      }
      vars.set(m[1], value);
    }
  }
  return vars;
}

/** Appends the given variables to .dev.vars, leaving every existing line as it was. */
export function appendDevVars(values: Record<string, string>): void {
  const entries = Object.entries(values);
  if (entries.length === 0) {
    return;
  }
  const existing = existsSync(DEV_VARS) ? readFileSync(DEV_VARS, "utf8") : "";
  const prefix = existing.length > 0 && !existing.endsWith("\n") ? "\n" : "";
  const lines = entries.map(([k, v]) => `${k}='${v}'`).join("\n");
  writeFileSync(DEV_VARS, `${existing}${prefix}${lines}\n`, { mode: 0o600 });
}

function keyPath(name: string): string {
  return join(KEYS_DIR, `${name}.private.jwk.json`);
}

/** The private JWK stored under `name`, generated on first use. */
export async function ensureKey(name: string, alg: "EdDSA" | "ES256", kid: string): Promise<JWK> {
  const path = keyPath(name);
  if (existsSync(path)) {
    // The CLI refuses a private key others may read (client/cli/config.ts): one made loose (a
    // copy, an old checkout) is tightened here, so `npm start` leaves keys the CLI takes.
    if (process.platform !== "win32" && (statSync(path).mode & 0o077) !== 0) {
      chmodSync(path, 0o600);
    }
    return JSON.parse(readFileSync(path, "utf8")) as JWK;
  }
  mkdirSync(KEYS_DIR, { recursive: true });
  const pair = await generateKeyPair(alg, { extractable: true });
  const jwk = { ...(await exportJWK(pair.privateKey)), kid, alg };
  writeFileSync(path, `${JSON.stringify(jwk, null, 2)}\n`, { mode: 0o600 });
  return jwk;
}

export function readKey(name: string): JWK {
  const path = keyPath(name);
  if (!existsSync(path)) {
    throw new Error(`no key at ${path}: run \`npm start\` first`);
  }
  return JSON.parse(readFileSync(path, "utf8")) as JWK;
}

/** The public half of a private JWK. */
export function publicOf(jwk: JWK): JWK {
  const { d: _d, ...pub } = jwk;
  return { ...pub, use: "sig" };
}

/** The audience the local ledger expects, from wrangler.toml. */
export function localAudience(): string {
  const toml = readFileSync(join(ROOT, "wrangler.toml"), "utf8");
  return /^JWT_AUDIENCE\s*=\s*"([^"]+)"/m.exec(toml)?.[1] ?? "pixiu";
}

export function consortiumKeyValue(): string {
  return process.env.PIXIU_CONSORTIUM_KEY ?? readDevVars().get("PIXIU_CONSORTIUM_KEY") ?? DEMO_CONSORTIUM_KEY;
}
