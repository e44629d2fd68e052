/**
 * The log chain, format 2 (docs/audit.md): one hash chain per log shard, computed as entries are
 * written, by the shard's single writer. Pure and synchronous (a Durable Object must chain inside
 * one synchronous transaction), shared by the shard, the online verify and the offline verifier.
 *
 *   hash(n)     = hex SHA-256( hash(n−1) + "\n" + canonical JSON of entry n )
 *   commitment  = hex SHA-256( salt + "\n" + JSON array of the subject keys, sorted )
 *
 * The chained content holds the commitment, never the subject keys themselves: keys are kept
 * beside the entry until their retention ends and are then erased, and the chain still verifies.
 */
import { sha256 } from "@noble/hashes/sha2.js";
import { canonicalJson, toHex } from "../lib/crypto";

export const LOG_FORMAT = "pixiu-log/2";
export const GENESIS_HASH = "0".repeat(64);

const encoder = new TextEncoder();

export function sha256HexSync(text: string): string {
  return toHex(sha256(encoder.encode(text)));
}

/**
 * Entry details: a JSON object. (Typed loosely: results crossing Durable Object RPC are cast back
 * to these types at the one boundary, `worker/log/client.ts`.)
 */
export type JsonObject = Record<string, unknown>;

/** What a writer hands the log: no seq, no hash (the shard assigns both). */
export interface LogEntryInput {
  at: number;
  actor: string;
  action: string;
  target?: string | null;
  requestId: string;
  outcome: string;
  /** Never a raw identifier; subject keys go in `subjectKeys`, not here. */
  details?: JsonObject | null;
  /** Peppered subject keys the entry concerns: committed to in the chain, erasable later. */
  subjectKeys?: readonly string[];
}

/** An entry as chained: what the hash covers. */
export interface ChainedContent {
  shard: number;
  seq: number;
  at: number;
  actor: string;
  action: string;
  target: string | null;
  requestId: string;
  outcome: string;
  details: JsonObject | null;
  /** Commitment to the entry's subject keys, or null when it has none. */
  keys: string | null;
}

export interface LogEntry extends ChainedContent {
  prevHash: string;
  hash: string;
  /** The subject keys and their salt, while retained; null once erased (or when none). */
  subjectKeys: string[] | null;
  salt: string | null;
}

export function keysCommitment(salt: string, keys: readonly string[]): string {
  return sha256HexSync(`${salt}\n${JSON.stringify([...keys].sort())}`);
}

export function contentOf(e: ChainedContent): ChainedContent {
  return {
    shard: e.shard,
    seq: e.seq,
    at: e.at,
    actor: e.actor,
    action: e.action,
    target: e.target,
    requestId: e.requestId,
    outcome: e.outcome,
    details: e.details,
    keys: e.keys,
  };
}

export function entryHash(prevHash: string, e: ChainedContent): string {
  return sha256HexSync(`${prevHash}\n${canonicalJson(contentOf(e))}`);
}

export type LogFault =
  | { kind: "gap"; seq: number; expected: number }
  | { kind: "prev_hash"; seq: number }
  | { kind: "hash"; seq: number }
  | { kind: "keys"; seq: number }
  | { kind: "keys_erased"; seq: number }
  | { kind: "inquiry"; seq: number };

/**
 * Checks consecutive entries of one shard: seqs contiguous, each prevHash the previous hash,
 * each hash recomputed, and retained subject keys matching their commitment.
 */
export function verifyEntries(
  entries: readonly LogEntry[],
  previous: { seq: number; hash: string },
): { fault: LogFault | null; last: { seq: number; hash: string } } {
  let last = previous;
  for (const e of entries) {
    if (e.seq !== last.seq + 1) {
      return { fault: { kind: "gap", seq: e.seq, expected: last.seq + 1 }, last };
    }
    if (e.prevHash !== last.hash) {
      return { fault: { kind: "prev_hash", seq: e.seq }, last };
    }
    if (entryHash(e.prevHash, e) !== e.hash) {
      return { fault: { kind: "hash", seq: e.seq }, last };
    }
    if (e.subjectKeys !== null && e.salt !== null && keysCommitment(e.salt, e.subjectKeys) !== e.keys) {
      return { fault: { kind: "keys", seq: e.seq }, last };
    }
    last = { seq: e.seq, hash: e.hash };
  }
  return { fault: null, last };
}

export function describeFault(f: LogFault): string {
  switch (f.kind) {
    case "gap":
      return `entry ${f.expected} is missing (next present: ${f.seq})`;
    case "prev_hash":
      return `entry ${f.seq} does not chain to the entry before it`;
    case "hash":
      return `entry ${f.seq} was altered: its content does not match its hash`;
    case "keys":
      return `entry ${f.seq}'s subject keys do not match the commitment in the chain`;
    case "keys_erased":
      return `entry ${f.seq} is a look-up whose subject keys were erased before their retention ended`;
    case "inquiry":
      return `entry ${f.seq} is a look-up whose inquiry rows are gone before their retention ended (subject access would not show it)`;
  }
}

/**
 * A look-up's entry says so in its chained details (`inquired: true`, set by `logLookups`): it
 * wrote one inquiry row per subject key, with the entry's time and the actor's platform. While the
 * inquiries' retention runs, verify checks those rows are still there (and the keys that name
 * them), so deleting a look-up from a buyer's subject access cannot go unnoticed.
 */
export function isInquiredLookup(e: Pick<ChainedContent, "details">): boolean {
  return e.details?.inquired === true;
}

/**
 * One inquiry row a look-up must still hold: everything subject access shows of it.
 * `[subjectKey, at, platformId, seq, requestId, purpose]`.
 */
/**
 * A claim photo's PDQ hash among an entry's subject keys: committed in the chain and erased with
 * the keys at retention, like them; it writes no inquiry row (a photo is not a subject).
 */
export const PHOTO_KEY_PREFIX = "photo:";

export function isPhotoKey(key: string): boolean {
  return key.startsWith(PHOTO_KEY_PREFIX);
}

export type ExpectedInquiry = [string, number, string, number, string, string];

/**
 * The inquiry rows a run of entries must still hold, and the first look-up whose keys are gone:
 * entries written at or after `since` (the start of the inquiries' retention, when verify runs)
 * that are inquired look-ups by a platform. A row is matched on key, time, platform, request
 * (the entry's, or `details.inquiryRequestId` for a later page of a paged request) and purpose.
 */
export function expectedInquiries(
  entries: readonly LogEntry[],
  since: number,
): { rows: ExpectedInquiry[]; fault: LogFault | null } {
  const rows: ExpectedInquiry[] = [];
  for (const e of entries) {
    const inquiry = e.at < since ? null : lookupInquiry(e);
    if (inquiry === null) {
      continue;
    }
    if (e.subjectKeys === null) {
      return { rows, fault: { kind: "keys_erased", seq: e.seq } };
    }
    for (const key of e.subjectKeys.filter((k) => !isPhotoKey(k))) {
      rows.push([key, e.at, inquiry.platformId, e.seq, inquiry.requestId, inquiry.purpose]);
    }
  }
  return { rows, fault: null };
}

/**
 * What a look-up's inquiry rows must say, read from its chained entry: the platform of its actor,
 * the request they are filed under (the entry's `requestId`, or `details.inquiryRequestId` when a
 * later page of a request files its rows under the first page's), and the purpose
 * (`details.purpose`). Null for an entry that is not an inquired look-up by a platform with
 * subject keys. Each row also carries one of the entry's subject keys and its `at`.
 */
export function lookupInquiry(
  e: Pick<ChainedContent, "actor" | "requestId" | "details" | "keys">,
): { platformId: string; requestId: string; purpose: string } | null {
  if (e.keys === null || !isInquiredLookup(e) || !e.actor.startsWith("platform:")) {
    return null;
  }
  const inquiryRequestId = e.details?.inquiryRequestId;
  const purpose = e.details?.purpose;
  return {
    platformId: e.actor.slice("platform:".length),
    requestId: typeof inquiryRequestId === "string" ? inquiryRequestId : e.requestId,
    purpose: typeof purpose === "string" ? purpose : "",
  };
}

/** One shard's head, as a checkpoint commits to it. */
export interface ShardHead {
  shard: number;
  seq: number;
  hash: string;
}

/**
 * The tree head over every shard's head: a Merkle root of the leaves
 * sha256("pixiu-log-leaf\n" + shard + "\n" + seq + "\n" + hash), in shard order, pairs hashed as
 * sha256(left + right) and an odd last node carried up as is. One signature over it commits to
 * every shard's head at once.
 */
export function treeHead(heads: readonly ShardHead[]): string {
  let level = [...heads]
    .sort((a, b) => a.shard - b.shard)
    .map((h) => sha256HexSync(`pixiu-log-leaf\n${h.shard}\n${h.seq}\n${h.hash}`));
  if (level.length === 0) {
    return GENESIS_HASH;
  }
  while (level.length > 1) {
    const next: string[] = [];
    for (let i = 0; i < level.length; i += 2) {
      const left = level[i] as string;
      const right = level[i + 1];
      next.push(right === undefined ? left : sha256HexSync(left + right));
    }
    level = next;
  }
  return level[0] as string;
}

/** The exact bytes a format-2 checkpoint signature covers. */
export function treeCheckpointMessage(cp: { at: number; root: string; shards: number }): Uint8Array {
  return encoder.encode(`${LOG_FORMAT}-checkpoint\n${cp.shards}\n${cp.root}\n${cp.at}`);
}
