/**
 * `npm run audit:verify -- export.ndjson [--keys keys.json]`: checks an audit export offline,
 * with no access to the ledger: the ledger chain, each log shard's chain (format 2 exports), every
 * signed checkpoint of both formats, and the heads a tree checkpoint signed.
 *
 * Pass --keys with the JWKS you fetched yourself from /.well-known/pixiu-audit-keys.json (or
 * held from earlier); without it the keys inside the export are used, which proves integrity
 * but not who signed. Exits 0 when everything verifies, 1 otherwise.
 */
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { verifyExport } from "../worker/audit/verify-export";

const { values, positionals } = parseArgs({ allowPositionals: true, options: { keys: { type: "string" } } });

async function main() {
  const file = positionals[0];
  if (!file) {
    throw new Error("usage: npm run audit:verify -- export.ndjson [--keys keys.json]");
  }
  const keys = values.keys
    ? (JSON.parse(readFileSync(values.keys, "utf8")) as { keys: JsonWebKey[] })
    : undefined;
  const v = await verifyExport(readFileSync(file, "utf8"), keys);
  for (const s of v.shards) {
    console.log(
      s.ok
        ? `shard ${s.shard}: OK, ${s.entries} entries, seq ${s.from}–${s.to}, signed through ${s.signedThrough || "none"}`
        : `shard ${s.shard}: FAIL at seq ${s.firstBadSeq}: ${s.error}`,
    );
  }
  if (!v.ok) {
    throw new Error(v.error ?? "verification failed");
  }
  if (v.usedEmbeddedKeys) {
    console.warn(
      "note: checkpoints were checked with the keys inside the export; pass --keys to check who signed",
    );
  }
  console.log(
    `OK (${v.format ?? "unknown format"}): ledger chain ${v.entries} entries, seq ${v.from}–${v.to}, intact; head ${v.head}`,
  );
  console.log(
    `    ${v.checkpoints} checkpoint(s) and ${v.treeCheckpoints} tree checkpoint(s) verified; ledger signed through seq ${v.signedThrough || "none"}`,
  );
  if (v.to !== undefined && v.signedThrough < v.to) {
    console.log(
      `    ${v.to - v.signedThrough} entries after the last checkpoint are chained but not yet signed`,
    );
  }
}

main().catch((err: Error) => {
  console.error(`FAIL: ${err.message}`);
  process.exit(1);
});
