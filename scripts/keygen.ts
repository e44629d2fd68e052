/**
 * Makes a signing key pair for a platform or an admin.
 *   npm run -s keygen -- --kid shop-a-2026-11 [--alg EdDSA|ES256] [--out private.jwk.json]
 * Prints the public JWK set (what the admin registers, or what goes into ADMIN_JWKS) on stdout
 * and writes the private JWK to --out (default: <kid>.private.jwk.json), never to stdout.
 */
import { existsSync, writeFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { exportJWK, generateKeyPair } from "jose";

const { values } = parseArgs({
  options: { kid: { type: "string" }, alg: { type: "string", default: "EdDSA" }, out: { type: "string" } },
});

async function main() {
  const alg = values.alg;
  if (alg !== "EdDSA" && alg !== "ES256") {
    throw new Error("--alg must be EdDSA or ES256");
  }
  if (!values.kid || !/^[A-Za-z0-9._:-]{1,128}$/.test(values.kid)) {
    throw new Error("--kid <id> is required (1–128 of A–Z a–z 0–9 . _ : -)");
  }
  const out = values.out ?? `${values.kid}.private.jwk.json`;
  if (existsSync(out)) {
    throw new Error(`${out} exists; refusing to overwrite a private key`);
  }
  const pair = await generateKeyPair(alg, { extractable: true });
  const meta = { kid: values.kid, alg };
  writeFileSync(out, `${JSON.stringify({ ...(await exportJWK(pair.privateKey)), ...meta }, null, 2)}\n`, {
    mode: 0o600,
  });
  const publicJwk = { ...(await exportJWK(pair.publicKey)), ...meta, use: "sig" };
  process.stdout.write(`${JSON.stringify({ keys: [publicJwk] }, null, 2)}\n`);
  console.error(`private key written to ${out}`);
}

main().catch((err: Error) => {
  console.error(`keygen: ${err.message}`);
  process.exit(1);
});
