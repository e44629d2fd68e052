/**
 * Offline verification of an audit export (NDJSON, docs/audit.md): pure, so the CLI
 * (`npm run audit:verify`) and the tests run the very same code, with no access to the ledger.
 */
import {
  type Checkpoint,
  GENESIS_HASH,
  importVerifyKey,
  type SealedEntry,
  verifyCheckpoint,
  verifyRun,
} from "./chain";

export interface ExportVerdict {
  ok: boolean;
  /** Why it failed, naming the first bad seq where there is one. */
  error?: string;
  firstBadSeq?: number;
  entries: number;
  from?: number;
  to?: number;
  head?: string;
  checkpoints: number;
  /** Highest seq covered by a verified checkpoint inside the export. */
  signedThrough: number;
  /** True when the keys came from the export itself rather than from the caller. */
  usedEmbeddedKeys: boolean;
}

export async function verifyExport(
  ndjson: string,
  trustedKeys?: { keys: JsonWebKey[] },
): Promise<ExportVerdict> {
  const entries: SealedEntry[] = [];
  const checkpoints: Checkpoint[] = [];
  let embedded: { keys: JsonWebKey[] } | undefined;
  const verdict = (v: Partial<ExportVerdict>): ExportVerdict => ({
    ok: false,
    entries: entries.length,
    checkpoints: checkpoints.length,
    signedThrough: 0,
    usedEmbeddedKeys: !trustedKeys,
    ...v,
  });
  const lines = ndjson.split("\n").filter((l) => l.trim().length > 0);
  for (const [i, line] of lines.entries()) {
    let item: Record<string, unknown>;
    try {
      item = JSON.parse(line) as Record<string, unknown>;
    } catch {
      return verdict({ error: `line ${i + 1} is not JSON` });
    }
    const { type, ...rest } = item;
    if (type === "entry") {
      entries.push(rest as unknown as SealedEntry);
    } else if (type === "checkpoint") {
      checkpoints.push(rest as unknown as Checkpoint);
    } else if (type === "keys") {
      embedded = rest as unknown as { keys: JsonWebKey[] };
    } else if (type !== "header") {
      return verdict({ error: `line ${i + 1} has an unknown type ${String(type)}` });
    }
  }
  const keySet = trustedKeys ?? embedded;
  if (!keySet) {
    return verdict({ error: "no keys to verify checkpoints with" });
  }
  const keys = new Map<string, CryptoKey>();
  for (const jwk of keySet.keys) {
    const kid = (jwk as { kid?: string }).kid;
    if (kid) {
      keys.set(kid, await importVerifyKey(jwk));
    }
  }
  const first = entries[0];
  if (!first) {
    return verdict({ error: "the export holds no entries" });
  }
  if (first.seq === 1 && first.prevHash !== GENESIS_HASH) {
    return verdict({ error: "entry 1 does not start from the genesis hash", firstBadSeq: 1 });
  }
  const { fault, last } = await verifyRun(entries, { seq: first.seq - 1, hash: first.prevHash });
  if (fault) {
    // A removed entry is named by its own seq, not by the next one still present.
    const bad = fault.kind === "gap" ? fault.expected : fault.seq;
    return verdict({ error: `chain broken at seq ${bad} (${fault.kind})`, firstBadSeq: bad });
  }
  const bySeq = new Map(entries.map((e) => [e.seq, e]));
  let signedThrough = 0;
  for (const cp of checkpoints) {
    const key = keys.get(cp.kid);
    if (!key || !(await verifyCheckpoint(key, cp))) {
      return verdict({
        error: `checkpoint at seq ${cp.seq} has an invalid signature (kid ${cp.kid})`,
        firstBadSeq: cp.seq,
      });
    }
    const entry = bySeq.get(cp.seq);
    if (entry && entry.hash !== cp.hash) {
      return verdict({ error: `entry ${cp.seq} differs from the signed checkpoint`, firstBadSeq: cp.seq });
    }
    if (entry) {
      signedThrough = Math.max(signedThrough, cp.seq);
    }
  }
  return verdict({ ok: true, from: first.seq, to: last.seq, head: last.hash, signedThrough });
}
