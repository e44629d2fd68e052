/**
 * The audit hash chain, as pure functions shared by the Worker and the offline verifier
 * (`npm run audit:verify`). Format: docs/audit.md.
 *
 *   hash(n) = hex SHA-256( hash(n−1) + "\n" + canonical JSON of entry n )
 *
 * where the canonical JSON has the keys action, actor, at, details, outcome, requestId, seq,
 * target, sorted, no whitespace, and hash(0) is 64 zeros.
 */
import { base64UrlToBytes, canonicalJson, sha256Hex } from "../lib/crypto";

export const GENESIS_HASH = "0".repeat(64);
export const CHECKPOINT_FORMAT = "pixiu-audit-checkpoint/1";

export interface ChainEntry {
  seq: number;
  /** Milliseconds since the epoch. */
  at: number;
  actor: string;
  action: string;
  target: string | null;
  requestId: string;
  outcome: string;
  details: Record<string, unknown> | null;
}

export interface SealedEntry extends ChainEntry {
  prevHash: string;
  hash: string;
}

export interface Checkpoint {
  seq: number;
  hash: string;
  at: number;
  kid: string;
  signature: string;
}

export function entryHash(prevHash: string, entry: ChainEntry): Promise<string> {
  const content = canonicalJson({
    seq: entry.seq,
    at: entry.at,
    actor: entry.actor,
    action: entry.action,
    target: entry.target,
    requestId: entry.requestId,
    outcome: entry.outcome,
    details: entry.details,
  });
  return sha256Hex(`${prevHash}\n${content}`);
}

/** The exact bytes a checkpoint signature covers. */
export function checkpointMessage(cp: Pick<Checkpoint, "seq" | "hash" | "at">): Uint8Array {
  return new TextEncoder().encode(`${CHECKPOINT_FORMAT}\n${cp.seq}\n${cp.hash}\n${cp.at}`);
}

export type ChainFault =
  | { kind: "gap"; seq: number; expected: number }
  | { kind: "prev_hash"; seq: number }
  | { kind: "hash"; seq: number };

/**
 * Checks consecutive sealed entries: seqs contiguous, each prevHash equal to the previous
 * entry's hash, each hash recomputed. `previous` is the entry before the first one (or the
 * genesis). Returns the first fault, or null.
 */
export async function verifyRun(
  entries: readonly SealedEntry[],
  previous: { seq: number; hash: string },
): Promise<{ fault: ChainFault | null; last: { seq: number; hash: string } }> {
  let last = previous;
  for (const e of entries) {
    if (e.seq !== last.seq + 1) {
      return { fault: { kind: "gap", seq: e.seq, expected: last.seq + 1 }, last };
    }
    if (e.prevHash !== last.hash) {
      return { fault: { kind: "prev_hash", seq: e.seq }, last };
    }
    if ((await entryHash(e.prevHash, e)) !== e.hash) {
      return { fault: { kind: "hash", seq: e.seq }, last };
    }
    last = { seq: e.seq, hash: e.hash };
  }
  return { fault: null, last };
}

/** Imports an Ed25519 public JWK for checkpoint verification. */
export function importVerifyKey(jwk: JsonWebKey): Promise<CryptoKey> {
  const { d: _private, key_ops: _ops, ...pub } = jwk as JsonWebKey & { kid?: string };
  return crypto.subtle.importKey("jwk", pub, { name: "Ed25519" }, false, ["verify"]);
}

export async function verifyCheckpoint(key: CryptoKey, cp: Checkpoint): Promise<boolean> {
  try {
    return await crypto.subtle.verify("Ed25519", key, base64UrlToBytes(cp.signature), checkpointMessage(cp));
  } catch {
    return false;
  }
}
