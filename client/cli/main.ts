#!/usr/bin/env node
/**
 * `pixiu`: the member platform's command line (client/README.md, "CLI").
 *
 *   pixiu hash <type> <value>                      the hash a platform sends for an identifier
 *   pixiu token --platform <id> [--scope …]        a fresh signed JWT (or --admin, locally)
 *   pixiu keygen --kid <id> [--alg EdDSA|ES256]    a key pair: public JWK set out, private to a file
 *   pixiu score --phone … [--email …] [--photo f]  a buyer's shared risk score
 *   pixiu report --case-id … --phone … …           report one confirmed case (the back-fill's columns as flags)
 *   pixiu fingerprint <photo>                      a photo's PDQ fingerprint and provenance
 *   pixiu backfill <file.csv|.ndjson> [--dry-run]  import a history of confirmed cases, resumable
 *
 * Talking to a ledger: --url (PIXIU_URL, default http://127.0.0.1:8787), --platform <id>, and
 * --key <private JWK file> (default, inside a checkout: .local/keys/<id>.private.jwk.json);
 * hashing: --consortium-key-file or PIXIU_CONSORTIUM_KEY (locally .dev.vars, then the demo key);
 * an identifier given as `-` is read from standard input, out of the process list.
 */
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { parseArgs } from "node:util";
import { exportJWK, generateKeyPair } from "jose";
import { PixiuError } from "../errors.ts";
import {
  consortiumKey,
  hashSubject,
  IDENTIFIER_TYPES,
  IdentifierError,
  type IdentifierType,
} from "../identifiers.ts";
import { type Photo, PixiuClient, type Purpose } from "../sdk.ts";
import { signToken } from "../token.ts";
import { backfill } from "./backfill.ts";
import { audience, consortiumKeyValue, ledgerUrl, privateKey, readConsortiumKeyFile } from "./config.ts";
import { BACKFILL_COLUMNS, type BackfillRow, prepareRow } from "./rows.ts";

const USAGE = `usage: pixiu <command> [options]

  hash <phone|email|national_id|device|payment_account> <value|->   [--consortium-key-file F]
  token (--platform <id> [--key file] | --admin) [--scope "scores:read"] [--lifetime 300] [--aud A]
  keygen --kid <id> [--alg EdDSA|ES256] [--out private.jwk.json]
  score --platform <id> (--phone|--email|--national-id|--device|--payment-account <value>)… [--photo f]… [--purpose p]
  report --platform <id> --case-id <id> <identifier flags> --category c --incident-at t --confirmed-at t
         --confirmation c --amount <minor units> --currency CNY [--note text]
  fingerprint <photo.jpg|png|webp>
  backfill <file.csv|file.ndjson> --platform <id> [--dry-run] [--fresh] [--concurrency 8] [--retention-days 1826]

common: --url <ledger> (PIXIU_URL)  --key <private JWK file>  --kid <id>  --aud <audience>
        --consortium-key-file <file> (PIXIU_CONSORTIUM_KEY; --consortium-key <base64url> shows it in the process list)
an identifier given as - is read from standard input (one, on its first line), so it is not in the process list`;

class UsageError extends Error {}

/**
 * Text from outside (a ledger's problem, a file's cell) as one printable line: control characters
 * (escape sequences that drive a terminal, newlines that forge lines in a log) shown as `\uXXXX`.
 */
function printable(text: string): string {
  return text.replace(
    // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it removes
    /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}

const common = {
  url: { type: "string" },
  platform: { type: "string" },
  key: { type: "string" },
  kid: { type: "string" },
  aud: { type: "string" },
  "consortium-key": { type: "string" },
  "consortium-key-file": { type: "string" },
  help: { type: "boolean", short: "h" },
} as const;

/** The identifier flags, named as the back-fill's columns are (with dashes). */
const identifierFlags = Object.fromEntries(
  IDENTIFIER_TYPES.map((t) => [t.replace(/_/g, "-"), { type: "string" as const, multiple: true as const }]),
) as Record<string, { type: "string"; multiple: true }>;

/**
 * The consortium key the flags, the environment or the checkout give (config.ts), imported. A
 * key that is missing or malformed is a usage error; one given on the command line works but
 * is named as visible to every user of the machine.
 */
async function hashingKey(
  values: { "consortium-key"?: string; "consortium-key-file"?: string },
  ledger: string | undefined,
): Promise<CryptoKey> {
  if (values["consortium-key"] !== undefined) {
    process.stderr.write(
      "note: --consortium-key puts the key in the process list; prefer PIXIU_CONSORTIUM_KEY or --consortium-key-file\n",
    );
  }
  const flag =
    values["consortium-key"] ??
    (values["consortium-key-file"] ? readConsortiumKeyFile(values["consortium-key-file"]) : undefined);
  try {
    return await consortiumKey(consortiumKeyValue(flag, ledger));
  } catch (err) {
    throw err instanceof IdentifierError ? new UsageError(err.message) : err;
  }
}

let stdinTaken = false;

/** An identifier's value; `-` reads it from standard input (its first line), once per command. */
function identifierValue(value: string): string {
  if (value !== "-") {
    return value;
  }
  if (stdinTaken) {
    throw new UsageError("only one identifier can be read from standard input (-)");
  }
  stdinTaken = true;
  return (readFileSync(0, "utf8").split(/\r?\n/)[0] ?? "").trim();
}

/** A whole-number flag within bounds, or a usage error naming it (NaN once slipped past every bound). */
function intFlag(name: string, value: string | undefined, min: number, max: number): number | undefined {
  if (value === undefined) {
    return undefined;
  }
  const n = Number(value);
  if (!/^\s*\d+\s*$/.test(value) || !Number.isSafeInteger(n) || n < min || n > max) {
    throw new UsageError(`--${name} must be a whole number from ${min} to ${max}`);
  }
  return n;
}

function client(values: { url?: string; platform?: string; key?: string; kid?: string; aud?: string }) {
  if (!values.platform) {
    throw new UsageError("--platform <id> is required");
  }
  return new PixiuClient({
    baseUrl: ledgerUrl(values.url),
    platformId: values.platform,
    privateJwk: privateKey(values.platform, values.key),
    ...(values.kid ? { kid: values.kid } : {}),
    audience: audience(values.aud),
  });
}

async function hash(args: string[]) {
  const { values, positionals } = parseArgs({ args, options: common, allowPositionals: true });
  const [type, ...rest] = positionals;
  if (!type || !IDENTIFIER_TYPES.includes(type as IdentifierType) || rest.length === 0) {
    throw new UsageError(`usage: pixiu hash <${IDENTIFIER_TYPES.join("|")}> <value|->`);
  }
  // A ledger named by --url or PIXIU_URL decides, as for the other commands, whether the demo key
  // may be used: a hash printed for a ledger elsewhere must not be one under the published key.
  const key = await hashingKey(values, values.url ?? process.env.PIXIU_URL);
  const result = await hashSubject(key, type as IdentifierType, identifierValue(rest.join(" ")));
  process.stdout.write(`${result.hash}\n`);
}

async function token(args: string[]) {
  const { values } = parseArgs({
    args,
    options: {
      ...common,
      admin: { type: "boolean" },
      scope: { type: "string" },
      lifetime: { type: "string" },
    },
  });
  if (values.admin === Boolean(values.platform)) {
    throw new UsageError('give exactly one of --admin or --platform <id> (optionally --scope "…")');
  }
  const lifetime = intFlag("lifetime", values.lifetime, 1, 300) ?? 300;
  const name = values.admin ? "admin" : (values.platform as string);
  const jwk = privateKey(name, values.key);
  const signed = await signToken(values.kid ? { ...jwk, kid: values.kid } : jwk, {
    iss: values.admin ? "pixiu-admin" : name,
    aud: audience(values.aud),
    lifetime,
    scope: values.scope,
  });
  process.stdout.write(`${signed}\n`);
}

async function keygen(args: string[]) {
  const { values } = parseArgs({
    args,
    options: { kid: { type: "string" }, alg: { type: "string", default: "EdDSA" }, out: { type: "string" } },
  });
  const alg = values.alg;
  if (alg !== "EdDSA" && alg !== "ES256") {
    throw new UsageError("--alg must be EdDSA or ES256");
  }
  if (!values.kid || !/^[A-Za-z0-9._:-]{1,128}$/.test(values.kid)) {
    throw new UsageError("--kid <id> is required (1–128 of A–Z a–z 0–9 . _ : -)");
  }
  const out = values.out ?? `${values.kid}.private.jwk.json`;
  if (existsSync(out)) {
    throw new Error(`${out} exists; refusing to overwrite a private key`);
  }
  const pair = await generateKeyPair(alg, { extractable: true });
  const meta = { kid: values.kid, alg };
  // `wx`: created here or not at all, even if another process wrote the file since the check.
  writeFileSync(out, `${JSON.stringify({ ...(await exportJWK(pair.privateKey)), ...meta }, null, 2)}\n`, {
    mode: 0o600,
    flag: "wx",
  });
  const publicJwk = { ...(await exportJWK(pair.publicKey)), ...meta, use: "sig" };
  process.stdout.write(`${JSON.stringify({ keys: [publicJwk] }, null, 2)}\n`);
  process.stderr.write(`private key written to ${out}\n`);
}

async function fingerprint(args: string[]) {
  const { positionals } = parseArgs({ args, options: {}, allowPositionals: true });
  const [path, ...rest] = positionals;
  if (!path || rest.length > 0) {
    throw new UsageError("usage: pixiu fingerprint <image.jpg|image.png|image.webp>");
  }
  let bytes: Uint8Array;
  try {
    bytes = new Uint8Array(await readFile(path));
  } catch (err) {
    throw new Error(`cannot read ${path}: ${(err as Error).message}`);
  }
  // Loaded on demand: the image decoder is WebAssembly, which the other commands do not need.
  const { fingerprintImage } = await import("../fingerprint.ts");
  process.stdout.write(`${JSON.stringify(fingerprintImage(bytes))}\n`);
}

async function score(args: string[]) {
  const { values } = parseArgs({
    args,
    options: {
      ...common,
      ...identifierFlags,
      purpose: { type: "string", default: "refund_review" },
      photo: { type: "string", multiple: true },
    },
  });
  const key = await hashingKey(values, ledgerUrl(values.url));
  const subjects = [];
  for (const type of IDENTIFIER_TYPES) {
    for (const value of (values as unknown as Record<string, string[] | undefined>)[
      type.replace(/_/g, "-")
    ] ?? []) {
      subjects.push(await hashSubject(key, type, identifierValue(value)));
    }
  }
  if (subjects.length === 0) {
    throw new UsageError(
      "give at least one identifier: --phone, --email, --national-id, --device, --payment-account",
    );
  }
  const evidence: Photo[] = [];
  for (const path of values.photo ?? []) {
    const { fingerprintImage } = await import("../fingerprint.ts");
    const { pdq, dihedral } = fingerprintImage(new Uint8Array(await readFile(path)));
    evidence.push({ pdq, dihedral });
  }
  const answer = await client(values).score(subjects, {
    purpose: values.purpose as Purpose,
    ...(evidence.length > 0 ? { evidence } : {}),
  });
  process.stdout.write(`${JSON.stringify(answer, null, 2)}\n`);
}

async function report(args: string[]) {
  const columnFlags = Object.fromEntries(
    BACKFILL_COLUMNS.filter((c) => !(IDENTIFIER_TYPES as readonly string[]).includes(c)).map((c) => [
      c.replace(/_/g, "-"),
      { type: "string" as const },
    ]),
  );
  const { values } = parseArgs({
    args,
    options: { ...common, ...columnFlags, ...identifierFlags, "retention-days": { type: "string" } },
  });
  const row: BackfillRow = {};
  for (const column of BACKFILL_COLUMNS) {
    const value = (values as Record<string, unknown>)[column.replace(/_/g, "-")];
    const given = Array.isArray(value) ? (value[0] as string) : (value as string | undefined);
    row[column] =
      given !== undefined && (IDENTIFIER_TYPES as readonly string[]).includes(column)
        ? identifierValue(given)
        : given;
  }
  const retentionDays = intFlag("retention-days", values["retention-days"], 1, 36_500);
  const key = await hashingKey(values, ledgerUrl(values.url));
  const prepared = await prepareRow(row, {
    key,
    now: Date.now(),
    ...(retentionDays ? { retentionDays } : {}),
  });
  if (!prepared.ok) {
    throw new Error(`not sent: ${prepared.errors.map((e) => `${e.path}: ${e.message}`).join("; ")}`);
  }
  const { report: sent, created } = await client(values).report(prepared.body);
  process.stdout.write(`${JSON.stringify({ created, report: sent }, null, 2)}\n`);
}

async function backfillCommand(args: string[]) {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      ...common,
      "dry-run": { type: "boolean" },
      fresh: { type: "boolean" },
      concurrency: { type: "string" },
      "retention-days": { type: "string" },
    },
  });
  const [file, ...rest] = positionals;
  if (!file || rest.length > 0) {
    throw new UsageError("usage: pixiu backfill <file.csv|file.ndjson> --platform <id> [--dry-run]");
  }
  if (!existsSync(file)) {
    throw new Error(`no file ${file}`);
  }
  const concurrency = intFlag("concurrency", values.concurrency, 1, 64);
  const retentionDays = intFlag("retention-days", values["retention-days"], 1, 36_500);
  const key = await hashingKey(values, ledgerUrl(values.url));
  const dryRun = values["dry-run"] === true;
  const controller = new AbortController();
  let interrupts = 0;
  // Ctrl-C and a service manager's SIGTERM stop the same way: the batches in flight finish, the
  // state and the lock are written and released. A second signal quits at once.
  const stop = (signal: NodeJS.Signals) => {
    interrupts++;
    if (interrupts > 1) {
      process.exit(signal === "SIGTERM" ? 143 : 130);
    }
    process.stderr.write(
      "\nstopping: the batches in flight finish and are recorded (Ctrl-C again to quit now)\n",
    );
    controller.abort();
  };
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
  const summary = await backfill({
    file,
    client: dryRun ? null : client(values),
    key,
    // One ledger, however its URL is spelled: "http://x" and "http://x/" resume the same state.
    ledger: new URL(ledgerUrl(values.url)).href.replace(/\/+$/, ""),
    platform: values.platform ?? "",
    ...(concurrency ? { concurrency } : {}),
    ...(retentionDays ? { retentionDays } : {}),
    fresh: values.fresh === true,
    signal: controller.signal,
  });
  for (const p of summary.problems ?? []) {
    process.stderr.write(
      `row ${p.row} (${printable(p.caseId) || "no case_id"}): ${printable(p.errors.map((e) => `${e.path}: ${e.message}`).join("; "))}\n`,
    );
  }
  const { problems: _p, ...printed } = summary;
  process.stdout.write(`${JSON.stringify(printed)}\n`);
  if (summary.error) {
    process.stderr.write(
      `backfill stopped: ${printable(summary.error)}\nrun the same command again to resume\n`,
    );
    process.exitCode = 2;
  } else if (!summary.complete) {
    process.stderr.write("backfill interrupted; run the same command again to resume\n");
    process.exitCode = 130;
  } else if (summary.rejected > 0) {
    process.stderr.write(
      summary.dryRun
        ? `${summary.rejected} rows would be rejected\n`
        : `${summary.rejected} rows rejected: see ${summary.rejectsFile}\n`,
    );
    process.exitCode = 1;
  }
}

const COMMANDS: Record<string, (args: string[]) => Promise<void>> = {
  hash,
  token,
  keygen,
  score,
  report,
  fingerprint,
  backfill: backfillCommand,
};

async function main(argv: string[]) {
  const [command, ...args] = argv;
  const run = command ? COMMANDS[command] : undefined;
  if (!run || command === "--help" || command === "-h") {
    process.stderr.write(`${USAGE}\n`);
    process.exitCode = command && command !== "--help" && command !== "-h" ? 2 : 0;
    return;
  }
  try {
    await run(args);
  } catch (err) {
    if (err instanceof PixiuError) {
      // The ledger's words (or those of whatever answered for it): printed, never interpreted.
      process.stderr.write(`pixiu ${command}: ${printable(err.message)}\n`);
      if (err.errors.length > 0) {
        process.stderr.write(
          `${err.errors.map((e) => `  ${printable(`${e.path}: ${e.message}`)}`).join("\n")}\n`,
        );
      }
    } else {
      process.stderr.write(`pixiu ${command}: ${printable(String((err as Error)?.message ?? err))}\n`);
    }
    // A back-fill's exit 1 means "rows rejected", so anything that stops one is 2, as a usage error is.
    // (A DOMException's `code` is a number: only a string code can be parseArgs's.)
    const code = (err as { code?: unknown } | null)?.code;
    const usage =
      err instanceof UsageError || (typeof code === "string" && code.startsWith("ERR_PARSE_ARGS"));
    process.exitCode = usage || command === "backfill" ? 2 : 1;
  }
}

await main(process.argv.slice(2));
