/**
 * Tree checkpoints (docs/audit.md, "Checkpoints"): one signature over every chain of the audit
 * log at once. Pure, shared by the scheduled job, the online verify and the offline verifier.
 *
 * The leaves are the D1 ledger chain's head as shard {@link LEDGER_LEAF} (−1) and each log
 * shard's head; `root = treeHead(heads)` and the signature covers
 * `treeCheckpointMessage({ at, root, shards: heads.length })`, i.e. the UTF-8 bytes of
 *
 *   "pixiu-log/2-checkpoint\n" + leaves + "\n" + root + "\n" + at
 */
import { base64UrlToBytes } from "../lib/crypto";
import { type ShardHead, treeCheckpointMessage, treeHead } from "../log/chain";

/** The D1 ledger chain (format 1) is the tree's leaf with this shard number, sorted first. */
export const LEDGER_LEAF = -1;

export interface TreeCheckpoint {
  at: number;
  root: string;
  /** Every leaf: the ledger chain's head (shard −1), then each log shard's head, in shard order. */
  heads: ShardHead[];
  kid: string;
  signature: string;
}

/** The exact bytes a tree checkpoint's signature covers. */
export function treeMessage(cp: Pick<TreeCheckpoint, "at" | "root" | "heads">): Uint8Array {
  return treeCheckpointMessage({ at: cp.at, root: cp.root, shards: cp.heads.length });
}

/**
 * True when the root is the tree head of the heads listed and the signature verifies with `key`:
 * a checkpoint whose heads were edited fails the first check, one whose root was edited the second.
 */
export async function verifyTreeCheckpoint(key: CryptoKey, cp: TreeCheckpoint): Promise<boolean> {
  if (!Array.isArray(cp.heads) || treeHead(cp.heads) !== cp.root) {
    return false;
  }
  try {
    return await crypto.subtle.verify("Ed25519", key, base64UrlToBytes(cp.signature), treeMessage(cp));
  } catch {
    return false;
  }
}

/** The head a tree checkpoint holds for one chain (−1: the ledger), or undefined. */
export function headFor(cp: Pick<TreeCheckpoint, "heads">, shard: number): ShardHead | undefined {
  return cp.heads.find((h) => h.shard === shard);
}
