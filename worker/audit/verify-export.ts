/**
 * Offline verification of an audit export (NDJSON, docs/audit.md, formats 1 and 2): pure, so the
 * CLI (`npm run audit:verify`) and the tests run the very same code, with no access to the ledger.
 */
import { describeFault, GENESIS_HASH as LOG_GENESIS, type LogEntry, verifyEntries } from "../log/chain";
import {
  type Checkpoint,
  GENESIS_HASH,
  importVerifyKey,
  type SealedEntry,
  verifyCheckpoint,
  verifyRun,
} from "./chain";
import { LEDGER_LEAF, type TreeCheckpoint, verifyTreeCheckpoint } from "./tree";

/** One log shard's chain in the export. */
export interface ShardExportVerdict {
  shard: number;
  ok: boolean;
  entries: number;
  from?: number;
  to?: number;
  head?: string;
  /** Highest seq of this shard covered by a verified tree checkpoint inside the export. */
  signedThrough: number;
  firstBadSeq?: number;
  error?: string;
}

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
  /** The export's format line (`pixiu-audit-export/1` or `/2`). */
  format?: string;
  /** Tree checkpoints verified (format 2). */
  treeCheckpoints: number;
  /** The shard a failure is in; absent when it is in the ledger chain or in no chain. */
  badShard?: number;
  /** One verdict per shard present in the export (format 2), in shard order. */
  shards: ShardExportVerdict[];
}

export async function verifyExport(
  ndjson: string,
  trustedKeys?: { keys: JsonWebKey[] },
): Promise<ExportVerdict> {
  const entries: SealedEntry[] = [];
  const checkpoints: Checkpoint[] = [];
  const trees: TreeCheckpoint[] = [];
  const logEntries = new Map<number, LogEntry[]>();
  const shards: ShardExportVerdict[] = [];
  let embedded: { keys: JsonWebKey[] } | undefined;
  let format: string | undefined;
  const verdict = (v: Partial<ExportVerdict>): ExportVerdict => ({
    ok: false,
    entries: entries.length,
    checkpoints: checkpoints.length,
    treeCheckpoints: trees.length,
    signedThrough: 0,
    usedEmbeddedKeys: !trustedKeys,
    format,
    shards,
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
    } else if (type === "log-entry") {
      const e = rest as unknown as LogEntry;
      logEntries.set(e.shard, [...(logEntries.get(e.shard) ?? []), e]);
    } else if (type === "checkpoint") {
      checkpoints.push(rest as unknown as Checkpoint);
    } else if (type === "tree-checkpoint") {
      trees.push(rest as unknown as TreeCheckpoint);
    } else if (type === "keys") {
      embedded = rest as unknown as { keys: JsonWebKey[] };
    } else if (type === "header") {
      format = String(rest.format);
    } else {
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
  if (entries.length === 0 && logEntries.size === 0) {
    return verdict({ error: "the export holds no entries" });
  }
  // The ledger chain (format 1 entries).
  const first = entries[0];
  let last: { seq: number; hash: string } | undefined;
  if (first) {
    if (first.seq === 1 && first.prevHash !== GENESIS_HASH) {
      return verdict({ error: "entry 1 does not start from the genesis hash", firstBadSeq: 1 });
    }
    const run = await verifyRun(entries, { seq: first.seq - 1, hash: first.prevHash });
    if (run.fault) {
      // A removed entry is named by its own seq, not by the next one still present.
      const bad = run.fault.kind === "gap" ? run.fault.expected : run.fault.seq;
      return verdict({ error: `chain broken at seq ${bad} (${run.fault.kind})`, firstBadSeq: bad });
    }
    last = run.last;
  }
  // Each shard's chain (format 2), from its first entry's prevHash (the genesis for seq 1).
  const shardHashes = new Map<number, Map<number, string>>();
  for (const shard of [...logEntries.keys()].sort((a, b) => a - b)) {
    const run = logEntries.get(shard) as LogEntry[];
    const head = run[0] as LogEntry;
    const v: ShardExportVerdict = { shard, ok: false, entries: run.length, signedThrough: 0 };
    shards.push(v);
    if (head.seq === 1 && head.prevHash !== LOG_GENESIS) {
      v.firstBadSeq = 1;
      v.error = "entry 1 does not start from the genesis hash";
    } else {
      const { fault, last: reached } = verifyEntries(run, { seq: head.seq - 1, hash: head.prevHash });
      if (fault) {
        v.firstBadSeq = fault.kind === "gap" ? fault.expected : fault.seq;
        v.error = `chain broken at seq ${v.firstBadSeq} (${fault.kind}: ${describeFault(fault)})`;
      } else {
        Object.assign(v, { ok: true, from: head.seq, to: reached.seq, head: reached.hash });
      }
    }
    if (!v.ok) {
      return verdict({ error: `shard ${shard}: ${v.error}`, badShard: shard, firstBadSeq: v.firstBadSeq });
    }
    shardHashes.set(shard, new Map(run.map((e) => [e.seq, e.hash])));
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
  // Tree checkpoints: the signature over the root of the heads listed, then each head that falls
  // inside the export must be the entry at that seq.
  for (const cp of trees) {
    const key = keys.get(cp.kid);
    const ledgerHead = cp.heads?.find((h) => h.shard === LEDGER_LEAF);
    if (!key || !(await verifyTreeCheckpoint(key, cp))) {
      return verdict({
        error: `tree checkpoint signed at ${cp.at} has an invalid signature or root (kid ${cp.kid})`,
        firstBadSeq: ledgerHead?.seq,
      });
    }
    for (const h of cp.heads) {
      if (h.shard === LEDGER_LEAF) {
        const entry = bySeq.get(h.seq);
        if (entry && entry.hash !== h.hash) {
          return verdict({
            error: `entry ${h.seq} differs from the signed tree checkpoint`,
            firstBadSeq: h.seq,
          });
        }
        if (entry) {
          signedThrough = Math.max(signedThrough, h.seq);
        }
        continue;
      }
      const held = shardHashes.get(h.shard)?.get(h.seq);
      const v = shards.find((s) => s.shard === h.shard);
      if (held !== undefined && held !== h.hash && v) {
        Object.assign(v, {
          ok: false,
          firstBadSeq: h.seq,
          error: `entry ${h.seq} differs from the signed tree checkpoint`,
        });
        return verdict({ error: `shard ${h.shard}: ${v.error}`, badShard: h.shard, firstBadSeq: h.seq });
      }
      if (held !== undefined && v) {
        v.signedThrough = Math.max(v.signedThrough, h.seq);
      }
    }
  }
  return verdict({
    ok: true,
    ...(first && last ? { from: first.seq, to: last.seq, head: last.hash } : {}),
    signedThrough,
  });
}
