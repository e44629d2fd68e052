/**
 * Where the CLI finds its ledger, keys and consortium key. Flags first, then the environment,
 * then (inside a Pixiu checkout, as `npm start` leaves it) the local files: `.local/keys/<id>.
 * private.jwk.json`, `.dev.vars` and `wrangler.toml`, found by walking up from the working
 * directory, the way `npm run token` finds them (scripts/lib/local.ts).
 */
import { existsSync, readFileSync, statSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import type { JWK } from "jose";
import { isLoopbackHost } from "../sdk.ts";

/** The public demo consortium key `npm start` uses (scripts/lib/local.ts); only ever a local fallback. */
export const DEMO_CONSORTIUM_KEY = "cGl4aXUtZGVtby1jb25zb3J0aXVtLWtleS0yMDI2LW9ubHkh";
export const DEFAULT_URL = "http://127.0.0.1:8787";

/** The nearest directory at or above `from` holding a Pixiu checkout's wrangler.toml, or null. */
export function localRoot(from = process.cwd()): string | null {
  let dir = resolve(from);
  for (;;) {
    const toml = join(dir, "wrangler.toml");
    if (existsSync(toml) && /^name\s*=\s*"pixiu"/m.test(readFileSync(toml, "utf8"))) {
      return dir;
    }
    const up = dirname(dir);
    if (up === dir) {
      return null;
    }
    dir = up;
  }
}

/**
 * A private JWK from a file. As ssh does with its keys, a file that group or others may read or
 * write is refused on POSIX systems (Windows has no such mode bits: not checked there).
 */
export function readJwkFile(path: string): JWK {
  let jwk: JWK;
  try {
    jwk = JSON.parse(readFileSync(path, "utf8")) as JWK;
  } catch (err) {
    throw new Error(`cannot read a JWK from ${path}: ${(err as Error).message}`);
  }
  if (!jwk.d) {
    throw new Error(`${path} holds no private key (no "d")`);
  }
  const mode = process.platform === "win32" ? 0 : statSync(path).mode & 0o777;
  if ((mode & 0o077) !== 0) {
    throw new Error(
      `${path} holds a private key and is open to group or others (mode ${mode.toString(8).padStart(3, "0")}): a private key must be readable by its owner only; run \`chmod 600 ${path}\``,
    );
  }
  return jwk;
}

/** `--key <file>`, else the local key of `name` (a platform id, or `admin`) under .local/keys. */
export function privateKey(name: string, keyFile: string | undefined): JWK {
  if (keyFile) {
    return readJwkFile(keyFile);
  }
  const root = localRoot();
  const dir = process.env.PIXIU_KEYS_DIR ?? (root ? join(root, ".local", "keys") : null);
  const path = dir ? join(dir, `${name}.private.jwk.json`) : null;
  if (!path || !existsSync(path)) {
    throw new Error(
      `no key for ${name}: give --key <private JWK file>${root ? `, or run \`npm start\` so ${path} exists` : ""}`,
    );
  }
  return readJwkFile(path);
}

function devVar(name: string): string | undefined {
  const root = localRoot();
  const file = root ? join(root, ".dev.vars") : null;
  if (!file || !existsSync(file)) {
    return undefined;
  }
  for (const line of readFileSync(file, "utf8").split(/\r?\n/)) {
    const m = /^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$/.exec(line);
    if (m?.[1] === name && m[2] !== undefined) {
      return m[2].replace(/^(['"])(.*)\1$/, "$2");
    }
  }
  return undefined;
}

/**
 * How to give the consortium key: never as an argument, which every user of the machine reads in
 * the process list (and the shell keeps in its history).
 */
const GIVE_KEY = "set PIXIU_CONSORTIUM_KEY or give --consortium-key-file <file>";

/** The consortium key kept in a file (`--consortium-key-file`): its first line, trimmed. */
export function readConsortiumKeyFile(path: string): string {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new Error(
      `cannot read the consortium key from ${path}: ${(err as NodeJS.ErrnoException).code ?? "unreadable"}`,
    );
  }
  return (text.split(/\r?\n/)[0] ?? "").trim();
}

/**
 * `--consortium-key`, else PIXIU_CONSORTIUM_KEY, else (locally) .dev.vars, else (locally, and
 * only against a ledger on this machine) the demo key: a hash under the published demo key can be
 * reversed by trying every phone number, so it never goes to a ledger elsewhere.
 */
export function consortiumKeyValue(flag: string | undefined, ledger?: string): string {
  const value = flag ?? process.env.PIXIU_CONSORTIUM_KEY ?? devVar("PIXIU_CONSORTIUM_KEY");
  if (value && value === DEMO_CONSORTIUM_KEY && ledger !== undefined && !isLoopback(ledger)) {
    // The demo key found anywhere (`npm start` writes it into .dev.vars) is still the demo key.
    throw new Error(
      `the consortium key is the public demo key, and ${ledger} is not a ledger on this machine; ${GIVE_KEY}`,
    );
  }
  if (value) {
    return value;
  }
  if (localRoot() && (ledger === undefined || isLoopback(ledger))) {
    return DEMO_CONSORTIUM_KEY;
  }
  if (ledger !== undefined && !isLoopback(ledger)) {
    throw new Error(
      `no consortium key for ${ledger}: the demo key is for a ledger on this machine only; ${GIVE_KEY}`,
    );
  }
  throw new Error(`no consortium key: ${GIVE_KEY}`);
}

/** Whether a ledger URL names this machine (127.0.0.0/8, ::1, localhost). */
export function isLoopback(url: string): boolean {
  try {
    return isLoopbackHost(new URL(url).hostname);
  } catch {
    return false;
  }
}

/** `--aud`, else PIXIU_AUDIENCE, else the local wrangler.toml's JWT_AUDIENCE, else `pixiu`. */
export function audience(flag: string | undefined): string {
  if (flag ?? process.env.PIXIU_AUDIENCE) {
    return (flag ?? process.env.PIXIU_AUDIENCE) as string;
  }
  const root = localRoot();
  if (root) {
    const toml = readFileSync(join(root, "wrangler.toml"), "utf8");
    return /^JWT_AUDIENCE\s*=\s*"([^"]+)"/m.exec(toml)?.[1] ?? "pixiu";
  }
  return "pixiu";
}

export function ledgerUrl(flag: string | undefined): string {
  return flag ?? process.env.PIXIU_URL ?? DEFAULT_URL;
}
