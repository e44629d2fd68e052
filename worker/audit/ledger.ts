import { sql } from "drizzle-orm";
import type { Config } from "../env";
import { all, batch } from "../lib/batch";
import type { Db } from "../lib/db";
import {
  type ChainFault,
  type Checkpoint,
  checkpointMessage,
  entryHash,
  GENESIS_HASH,
  importVerifyKey,
  type SealedEntry,
  verifyCheckpoint,
  verifyRun,
} from "./chain";

/**
 * The D1 side of the audit chain. Entries are inserted unsealed (hash NULL) inside each
 * request's own batch, so auditing never adds a round trip; the sealer chains them in `seq`
 * order. It runs from the Cron Trigger (every minute) and before every verify or export, so an
 * entry is sealed within about a minute of being written (docs/audit.md).
 */
export const SEAL_CHUNK = 500;
export const READ_CHUNK = 1000;

interface Row {
  seq: number;
  at: number;
  actor: string;
  action: string;
  target: string | null;
  request_id: string;
  outcome: string;
  details: string | null;
  prev_hash: string | null;
  hash: string | null;
}

function toEntry(r: Row): SealedEntry {
  return {
    seq: r.seq,
    at: r.at,
    actor: r.actor,
    action: r.action,
    target: r.target,
    requestId: r.request_id,
    outcome: r.outcome,
    details: r.details === null ? null : (JSON.parse(r.details) as Record<string, unknown>),
    prevHash: r.prev_hash ?? "",
    hash: r.hash ?? "",
  };
}

const COLUMNS = sql.raw("seq, at, actor, action, target, request_id, outcome, details, prev_hash, hash");

async function sealedHead(d1: Db): Promise<{ seq: number; hash: string }> {
  const [head] = await all<{ seq: number; hash: string }>(
    d1,
    sql`SELECT seq, hash FROM audit_log WHERE hash IS NOT NULL ORDER BY seq DESC LIMIT 1`,
  );
  return head ?? { seq: 0, hash: GENESIS_HASH };
}

/**
 * Chains every unsealed entry after the sealed head, in seq order. Deterministic and
 * idempotent: two sealers racing compute the same hashes, and `hash IS NULL` lets only the
 * first write stand.
 */
export async function sealPending(
  d1: Db,
  maxChunks = 40,
): Promise<{ sealed: number; head: { seq: number; hash: string } }> {
  let sealed = 0;
  let head = await sealedHead(d1);
  for (let chunk = 0; chunk < maxChunks; chunk++) {
    const rows = await all<Row>(
      d1,
      sql`SELECT ${COLUMNS} FROM audit_log WHERE seq > ${head.seq} ORDER BY seq LIMIT ${SEAL_CHUNK}`,
    );
    if (rows.length === 0) {
      break;
    }
    const updates: { s: number; p: string; h: string }[] = [];
    let prev = head.hash;
    for (const row of rows) {
      const hash = await entryHash(prev, toEntry(row));
      updates.push({ s: row.seq, p: prev, h: hash });
      prev = hash;
    }
    await batch(d1, [
      sql`UPDATE audit_log SET prev_hash = j.value ->> 'p', hash = j.value ->> 'h'
          FROM json_each(${JSON.stringify(updates)}) j
          WHERE audit_log.seq = j.value ->> 's' AND audit_log.hash IS NULL`,
    ]);
    sealed += rows.length;
    const last = updates[updates.length - 1] as { s: number; h: string };
    head = { seq: last.s, hash: last.h };
  }
  return { sealed, head };
}

let signing: { source: Config["AUDIT_SIGNING_JWK"]; key: Promise<CryptoKey> } | undefined;

function signingKey(jwk: Config["AUDIT_SIGNING_JWK"]): Promise<CryptoKey> {
  if (signing?.source !== jwk) {
    const { kid: _kid, ...key } = jwk;
    signing = {
      source: jwk,
      key: crypto.subtle.importKey("jwk", key as JsonWebKey, { name: "Ed25519" }, false, ["sign"]),
    };
  }
  return signing.key;
}

/**
 * The public half of the audit signing key, then any retired keys (AUDIT_RETIRED_KEYS), as
 * published at the well-known path: a checkpoint verifies against the key its `kid` names.
 */
export function publicAuditKeys(
  jwk: Config["AUDIT_SIGNING_JWK"],
  retired: Config["AUDIT_RETIRED_KEYS"] = undefined,
) {
  const current = { kty: jwk.kty, crv: jwk.crv, x: jwk.x, kid: jwk.kid, alg: "EdDSA", use: "sig" };
  const older = (retired?.keys ?? [])
    .filter((k) => k.kid !== jwk.kid)
    .map((k) => ({ kty: k.kty, crv: k.crv, x: k.x, kid: k.kid, alg: "EdDSA", use: "sig" }));
  return { keys: [current, ...older] };
}

function toBase64Url(bytes: ArrayBuffer): string {
  let bin = "";
  for (const b of new Uint8Array(bytes)) {
    bin += String.fromCharCode(b);
  }
  return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/** Seals, then signs and stores a checkpoint of the head if it moved since the last one. */
export async function checkpoint(
  d1: Db,
  jwk: Config["AUDIT_SIGNING_JWK"],
  now: number,
): Promise<Checkpoint | null> {
  const { head } = await sealPending(d1);
  const [latest] = await all<{ seq: number }>(
    d1,
    sql`SELECT seq FROM audit_checkpoints ORDER BY seq DESC LIMIT 1`,
  );
  if (head.seq === 0 || (latest && latest.seq >= head.seq)) {
    return null;
  }
  const cp = { seq: head.seq, hash: head.hash, at: now, kid: jwk.kid };
  const signature = toBase64Url(
    await crypto.subtle.sign("Ed25519", await signingKey(jwk), checkpointMessage(cp)),
  );
  await batch(d1, [
    sql`INSERT INTO audit_checkpoints (seq, hash, at, kid, signature)
        VALUES (${cp.seq}, ${cp.hash}, ${cp.at}, ${cp.kid}, ${signature}) ON CONFLICT (seq) DO NOTHING`,
  ]);
  return { ...cp, signature };
}

export interface VerifyResult {
  ok: boolean;
  checked: number;
  from: { seq: number; checkpoint: boolean };
  head: { seq: number; hash: string } | null;
  /** Entries written but not sealed yet: not broken, just not chained yet. */
  unsealed: number;
  checkpoints: { checked: number; invalid: number };
  firstBadSeq?: number;
  reason?: string;
}

function describe(fault: ChainFault): string {
  switch (fault.kind) {
    case "gap":
      return `entry ${fault.expected} is missing (next present: ${fault.seq})`;
    case "prev_hash":
      return `entry ${fault.seq} does not chain to the entry before it`;
    case "hash":
      return `entry ${fault.seq} was altered: its content does not match its hash`;
  }
}

/**
 * Verifies the chain from the genesis or from the latest valid checkpoint: recomputes every
 * hash, checks contiguity, and compares every signed checkpoint in range with the entry it
 * names (which catches a chain rewritten wholesale after an edit).
 */
export async function verifyChain(
  d1: Db,
  jwk: Config["AUDIT_SIGNING_JWK"],
  from: "genesis" | "checkpoint",
  retired: Config["AUDIT_RETIRED_KEYS"] = undefined,
): Promise<VerifyResult> {
  await sealPending(d1);
  const verifyKeys = new Map<string, CryptoKey>();
  for (const key of publicAuditKeys(jwk, retired).keys) {
    verifyKeys.set(key.kid, await importVerifyKey(key as JsonWebKey));
  }
  const checkpoints = await all<Checkpoint>(
    d1,
    sql`SELECT seq, hash, at, kid, signature FROM audit_checkpoints ORDER BY seq`,
  );
  const valid = new Map<number, Checkpoint>();
  let invalid = 0;
  for (const cp of checkpoints) {
    const verifyKey = verifyKeys.get(cp.kid);
    if (verifyKey && (await verifyCheckpoint(verifyKey, cp))) {
      valid.set(cp.seq, cp);
    } else {
      invalid++;
    }
  }
  let previous = { seq: 0, hash: GENESIS_HASH };
  let fromCheckpoint = false;
  if (from === "checkpoint") {
    const latest = [...valid.values()].pop();
    if (latest) {
      previous = { seq: latest.seq, hash: latest.hash };
      fromCheckpoint = true;
    }
  }
  const start = previous.seq;
  let checked = 0;
  let cpChecked = 0;
  // A stored checkpoint whose signature does not verify was edited or forged: that is a fault
  // (else rewriting an entry, every later hash and the checkpoint's hash would pass).
  const forged = checkpoints.find((cp) => !valid.has(cp.seq));
  const forgedReason = forged
    ? `the checkpoint at ${forged.seq} does not verify with the audit key (kid ${forged.kid})`
    : "";
  const fail = (seq: number, reason: string): VerifyResult => ({
    ok: false,
    checked,
    from: { seq: start, checkpoint: fromCheckpoint },
    head: null,
    unsealed: 0,
    checkpoints: { checked: cpChecked, invalid },
    ...(forged && forged.seq < seq
      ? { firstBadSeq: forged.seq, reason: forgedReason }
      : { firstBadSeq: seq, reason }),
  });
  if (fromCheckpoint) {
    const [row] = await all<Row>(d1, sql`SELECT ${COLUMNS} FROM audit_log WHERE seq = ${start}`);
    if (!row || row.hash !== previous.hash) {
      return fail(start, `entry ${start} no longer matches the signed checkpoint`);
    }
  }
  let last = previous;
  for (;;) {
    const rows = await all<Row>(
      d1,
      sql`SELECT ${COLUMNS} FROM audit_log WHERE seq > ${last.seq} ORDER BY seq LIMIT ${READ_CHUNK}`,
    );
    const sealed = rows.filter((r) => r.hash !== null);
    const firstUnsealed = rows.findIndex((r) => r.hash === null);
    const run = firstUnsealed === -1 ? sealed : rows.slice(0, firstUnsealed);
    const { fault, last: reached } = await verifyRun(run.map(toEntry), last);
    checked += reached.seq - last.seq;
    if (fault) {
      // A removed entry is named by its own seq, not by the next one still present.
      return fail(fault.kind === "gap" ? fault.expected : fault.seq, describe(fault));
    }
    for (const r of run) {
      const cp = valid.get(r.seq);
      if (cp) {
        cpChecked++;
        if (cp.hash !== r.hash) {
          return fail(r.seq, `entry ${r.seq} differs from the signed checkpoint at ${r.seq}`);
        }
      }
    }
    last = reached;
    if (firstUnsealed !== -1 || rows.length < READ_CHUNK) {
      break;
    }
  }
  // Unsealed entries are legitimate only at the tail: one before a sealed entry lost its hash.
  const [tail] = await all<{ n: number; firstUnsealed: number | null; sealedAfter: number | null }>(
    d1,
    sql`SELECT count(*) AS n, min(seq) AS firstUnsealed,
          (SELECT min(seq) FROM audit_log WHERE seq > ${last.seq} AND hash IS NOT NULL) AS sealedAfter
        FROM audit_log WHERE seq > ${last.seq}`,
  );
  if (tail?.sealedAfter != null) {
    return fail(
      tail.firstUnsealed ?? last.seq + 1,
      `entry ${tail.firstUnsealed} lost its hash inside the chain`,
    );
  }
  if (forged) {
    return fail(forged.seq, forgedReason);
  }
  // A signed checkpoint beyond the verified head means signed entries are gone.
  const beyond = [...valid.keys()].find((seq) => seq > last.seq);
  if (beyond !== undefined) {
    return fail(last.seq + 1, `entries up to ${beyond} were signed in a checkpoint but are gone`);
  }
  const pending = { n: tail?.n ?? 0 };
  return {
    ok: true,
    checked,
    from: { seq: start, checkpoint: fromCheckpoint },
    head: last.seq === 0 ? null : last,
    unsealed: pending.n,
    checkpoints: { checked: cpChecked, invalid },
  };
}
