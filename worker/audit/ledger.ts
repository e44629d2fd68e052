import { sql } from "drizzle-orm";
import type { Config } from "../env";
import { all, batch } from "../lib/batch";
import type { Db } from "../lib/db";
import { DAY_MS } from "../lib/time";
import { archiveCoverage, segmentsEndingOn, verifySegment } from "../log/archive";
import { describeFault, type ShardHead, treeHead } from "../log/chain";
import { everyShard, type LogConfig } from "../log/client";
import { accountOutbox, drainAll, type OutboxAccount } from "../log/outbox";
import type { LogShard, ShardVerdict } from "../log/shard";
import type { AuditEntryRow } from "../services/audit";
import {
  type Checkpoint,
  entryHash,
  GENESIS_HASH,
  importVerifyKey,
  type SealedEntry,
  verifyCheckpoint,
  verifyRun,
} from "./chain";
import { headFor, LEDGER_LEAF, type TreeCheckpoint, treeMessage, verifyTreeCheckpoint } from "./tree";

/**
 * The D1 side of the audit chain: the ledger chain (format 1), now a closed legacy prefix. Its
 * entries were inserted unsealed (hash NULL) inside each request's own batch and chained by the
 * sealer in `seq` order; new entries go through the audit outbox to the log shards
 * (worker/log/outbox.ts), so the sealer only finishes a tail written before the outbox and is a
 * no-op after that. It still runs from the Cron Trigger and before every verify or export
 * (docs/audit.md).
 */
export const SEAL_CHUNK = 500;
export const READ_CHUNK = 1000;

type Row = AuditEntryRow & { seq: number; prev_hash: string | null; hash: string | null };

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

/**
 * The log as readers must see it: every shard that ever held entries, not only the `LOG_SHARDS`
 * now configured. Lowering `LOG_SHARDS` re-routes writers, but the shards left behind keep their
 * chains, look-ups and audit entries, so verify, export, the audit list, subject access, stats
 * and retention go on reading them. The count is carried by the tree checkpoints: each covers at
 * least as many shards as the one before (`currentHeads`), so the newest one knows them all.
 *
 * @example const all = await readableLog(d1, config); await everyShard(all, (stub) => …);
 */
export async function readableLog<T extends SpanConfig>(d1: Db, log: T): Promise<T> {
  // The newest by signing time, and only as far as its signature holds: an unsigned or copied
  // row neither narrows nor widens what readers walk (roots are unique, copies are refused).
  const newest = await all<CheckpointRow>(
    d1,
    sql`SELECT id, at, root, heads, kid, signature FROM log_checkpoints ORDER BY at DESC, id DESC LIMIT ${SPAN_LOOKBACK}`,
  );
  const keys = publicAuditKeys(log.AUDIT_SIGNING_JWK, log.AUDIT_RETIRED_KEYS).keys;
  for (const row of newest) {
    const cp = { ...row, heads: JSON.parse(row.heads) as ShardHead[] };
    const key = keys.find((k) => k.kid === cp.kid);
    if (!key || !(await verifyTreeCheckpoint(await importVerifyKey(key as JsonWebKey), cp))) {
      // Verify reports it too (`treeCheckpoints.invalid`); readers go on to the next one.
      console.error(JSON.stringify({ level: "error", alert: "unsigned_tree_checkpoint", id: cp.id }));
      continue;
    }
    const signed = Math.min(cp.heads.filter((h) => h.shard >= 0).length, MAX_LOG_SHARDS);
    return signed > log.LOG_SHARDS ? { ...log, LOG_SHARDS: signed } : log;
  }
  return log;
}

/** How many of the newest checkpoints `readableLog` tries, newest first, for one that verifies. */
const SPAN_LOOKBACK = 16;

/** The most log shards readers ever walk (LOG_SHARDS itself is bounded by the config schema). */
export const MAX_LOG_SHARDS = 1024;

/** What `readableLog` needs: the log, and the keys its checkpoints are signed with. */
export type SpanConfig = LogConfig &
  Pick<Config, "AUDIT_SIGNING_JWK"> &
  Partial<Pick<Config, "AUDIT_RETIRED_KEYS">>;

/** The head of every chain now: the ledger's sealed head (shard −1), then each log shard's. */
export async function currentHeads(d1: Db, configured: SpanConfig): Promise<ShardHead[]> {
  const log = await readableLog(d1, configured);
  // Entries still in the outbox belong in the shards' heads: move them first.
  await drainAll(log, d1);
  const { head } = await sealPending(d1);
  // An unwritten shard does not know its number yet: the number is the one it is addressed by.
  const shards = await everyShard(log, async (stub, shard) => ({
    ...((await stub.headOf()) as unknown as ShardHead),
    shard,
  }));
  return [{ shard: LEDGER_LEAF, seq: head.seq, hash: head.hash }, ...shards];
}

/**
 * Seals the ledger chain, then signs and stores ONE tree checkpoint committing to its head and to
 * every log shard's head at once (docs/audit.md, "Checkpoints"), if any head moved since the last.
 */
export async function checkpoint(
  d1: Db,
  log: LogConfig,
  jwk: Config["AUDIT_SIGNING_JWK"],
  now: number,
): Promise<TreeCheckpoint | null> {
  const heads = await currentHeads(d1, { ...log, AUDIT_SIGNING_JWK: jwk });
  const root = treeHead(heads);
  const [latest] = await all<{ root: string }>(
    d1,
    sql`SELECT root FROM log_checkpoints ORDER BY id DESC LIMIT 1`,
  );
  if (heads.every((h) => h.seq === 0) || latest?.root === root) {
    return null;
  }
  const cp = { at: now, root, heads, kid: jwk.kid };
  const signature = toBase64Url(await crypto.subtle.sign("Ed25519", await signingKey(jwk), treeMessage(cp)));
  await batch(d1, [
    sql`INSERT INTO log_checkpoints (at, root, heads, kid, signature)
        VALUES (${cp.at}, ${cp.root}, ${JSON.stringify(heads)}, ${cp.kid}, ${signature})`,
    // In the same transaction, which shard heads it signed (the row just inserted has the highest
    // id): the archive finds a segment's signer by them, however late its entries were drained.
    // A head already noted keeps its first signer.
    sql`INSERT OR IGNORE INTO log_signed_heads (shard, seq, checkpoint_id)
        SELECT h.value ->> 'shard', h.value ->> 'seq', (SELECT max(id) FROM log_checkpoints)
        FROM json_each(${JSON.stringify(heads)}) h
        WHERE h.value ->> 'shard' >= 0 AND h.value ->> 'seq' > 0`,
  ]);
  return { ...cp, signature };
}

/**
 * How many of the newest tree checkpoints verify checks (a day's at one a minute). Older ones add
 * nothing: each shard's chain links every earlier entry to the newest signed head, so a rewrite
 * anywhere before it changes the hash that head signed.
 */
export const VERIFY_CHECKPOINT_WINDOW = 1440;

/** The newest `limit` tree checkpoints, oldest first, and how many are stored in all. */
export async function latestTreeCheckpoints(
  d1: Db,
  limit = VERIFY_CHECKPOINT_WINDOW,
): Promise<{ checkpoints: (TreeCheckpoint & { id: number })[]; stored: number }> {
  const [rows, count] = await Promise.all([
    all<{ id: number; at: number; root: string; heads: string; kid: string; signature: string }>(
      d1,
      // By signing time: rows copied from an older checkpoint rank where it does (roots are unique
      // besides, so exact copies are refused).
      sql`SELECT id, at, root, heads, kid, signature FROM log_checkpoints ORDER BY at DESC, id DESC LIMIT ${limit}`,
    ),
    all<{ n: number }>(d1, sql`SELECT count(*) AS n FROM log_checkpoints`),
  ]);
  return {
    checkpoints: rows.reverse().map((r) => ({ ...r, heads: JSON.parse(r.heads) as ShardHead[] })),
    stored: count[0]?.n ?? 0,
  };
}

type CheckpointRow = { id: number; at: number; root: string; heads: string; kid: string; signature: string };

/**
 * Tree checkpoints by when they were signed, oldest first: up to `limit` signed at or after
 * `from` (`direction: "after"`), or the newest `limit` signed before it (`"before"`). Indexed on
 * `at`, so the archive reads a window, never the whole table.
 */
export async function treeCheckpointsAround(
  d1: Db,
  at: number,
  direction: "after" | "before",
  limit = 2 * VERIFY_CHECKPOINT_WINDOW,
): Promise<(TreeCheckpoint & { id: number })[]> {
  const rows =
    direction === "after"
      ? await all<CheckpointRow>(
          d1,
          sql`SELECT id, at, root, heads, kid, signature FROM log_checkpoints WHERE at >= ${at}
              ORDER BY at, id LIMIT ${limit}`,
        )
      : (
          await all<CheckpointRow>(
            d1,
            sql`SELECT id, at, root, heads, kid, signature FROM log_checkpoints WHERE at < ${at}
                ORDER BY at DESC, id DESC LIMIT ${limit}`,
          )
        ).reverse();
  return rows.map((r) => ({ ...r, heads: JSON.parse(r.heads) as ShardHead[] }));
}

/** Stored tree checkpoints, oldest first. */
export async function treeCheckpoints(
  d1: Db,
  afterId = 0,
  limit = 100_000,
): Promise<(TreeCheckpoint & { id: number })[]> {
  const rows = await all<{
    id: number;
    at: number;
    root: string;
    heads: string;
    kid: string;
    signature: string;
  }>(
    d1,
    sql`SELECT id, at, root, heads, kid, signature FROM log_checkpoints WHERE id > ${afterId} ORDER BY id LIMIT ${limit}`,
  );
  return rows.map((r) => ({ ...r, heads: JSON.parse(r.heads) as ShardHead[] }));
}

/** The tree checkpoint stored with this id (by primary key), or null. */
export async function treeCheckpointById(
  d1: Db,
  id: number,
): Promise<(TreeCheckpoint & { id: number }) | null> {
  const [row] = await all<CheckpointRow>(
    d1,
    sql`SELECT id, at, root, heads, kid, signature FROM log_checkpoints WHERE id = ${id}`,
  );
  return row ? { ...row, heads: JSON.parse(row.heads) as ShardHead[] } : null;
}

/** Up to `limit` tree checkpoints stored as signed exactly at `at` (indexed), oldest first. */
export async function treeCheckpointsAt(
  d1: Db,
  at: number,
  limit = 16,
): Promise<(TreeCheckpoint & { id: number })[]> {
  const rows = await all<CheckpointRow>(
    d1,
    sql`SELECT id, at, root, heads, kid, signature FROM log_checkpoints WHERE at = ${at} ORDER BY id LIMIT ${limit}`,
  );
  return rows.map((r) => ({ ...r, heads: JSON.parse(r.heads) as ShardHead[] }));
}

export interface ShardVerifyResult {
  shard: number;
  ok: boolean;
  checked: number;
  from: { seq: number; checkpoint: boolean };
  head: { seq: number; hash: string };
  /** Always 0: a shard chains each entry as it writes it, so there is never a backlog. */
  unsealed: 0;
  firstBadSeq?: number;
  reason?: string;
}

export interface VerifyResult {
  ok: boolean;
  checked: number;
  from: { seq: number; checkpoint: boolean };
  head: { seq: number; hash: string } | null;
  /** Ledger entries written but not sealed yet: not broken, just not chained yet. */
  unsealed: number;
  /** `checked`: ledger entries compared with a signed head; `invalid`: checkpoints of either format whose signature fails. */
  checkpoints: { checked: number; invalid: number };
  /** Tree checkpoints stored, and how many of them do not verify. */
  treeCheckpoints: { count: number; invalid: number };
  firstBadSeq?: number;
  reason?: string;
  /** The audit outbox's accounting (worker/log/outbox.ts): `missing` ids are a fault. */
  outbox: OutboxAccount;
  /** One verdict per log shard, in shard order. */
  shards: ShardVerifyResult[];
}

/** A signed statement about one ledger seq, from either checkpoint format. */
interface SignedPoint {
  seq: number;
  hash: string;
  what: string;
}

interface CheckpointSet {
  /** Signed heads of the ledger chain that verify, from both formats. */
  ledger: SignedPoint[];
  /** Tree checkpoints that verify, oldest first. */
  trees: TreeCheckpoint[];
  invalid: number;
  treeCount: number;
  treeInvalid: number;
  /** The stored checkpoint of lowest ledger seq whose signature fails, if any. */
  forged: { seq: number; reason: string } | null;
}

function isoOf(at: number): string {
  return new Date(at).toISOString();
}

async function loadCheckpoints(
  d1: Db,
  jwk: Config["AUDIT_SIGNING_JWK"],
  retired: Config["AUDIT_RETIRED_KEYS"],
): Promise<CheckpointSet> {
  const verifyKeys = new Map<string, CryptoKey>();
  for (const key of publicAuditKeys(jwk, retired).keys) {
    verifyKeys.set(key.kid, await importVerifyKey(key as JsonWebKey));
  }
  const set: CheckpointSet = {
    ledger: [],
    trees: [],
    invalid: 0,
    treeCount: 0,
    treeInvalid: 0,
    forged: null,
  };
  const forged = (seq: number, reason: string) => {
    set.invalid++;
    if (set.forged === null || seq < set.forged.seq) {
      set.forged = { seq, reason };
    }
  };
  const legacy = await all<Checkpoint>(
    d1,
    sql`SELECT seq, hash, at, kid, signature FROM audit_checkpoints ORDER BY seq`,
  );
  for (const cp of legacy) {
    const verifyKey = verifyKeys.get(cp.kid);
    if (verifyKey && (await verifyCheckpoint(verifyKey, cp))) {
      set.ledger.push({ seq: cp.seq, hash: cp.hash, what: `the signed checkpoint at ${cp.seq}` });
    } else {
      forged(cp.seq, `the checkpoint at ${cp.seq} does not verify with the audit key (kid ${cp.kid})`);
    }
  }
  const latest = await latestTreeCheckpoints(d1);
  set.treeCount = latest.stored;
  for (const cp of latest.checkpoints) {
    const verifyKey = verifyKeys.get(cp.kid);
    const ledgerHead = headFor(cp, LEDGER_LEAF);
    if (verifyKey && (await verifyTreeCheckpoint(verifyKey, cp))) {
      set.trees.push(cp);
      if (ledgerHead && ledgerHead.seq > 0) {
        set.ledger.push({
          seq: ledgerHead.seq,
          hash: ledgerHead.hash,
          what: `the tree checkpoint signed at ${isoOf(cp.at)}`,
        });
      }
    } else {
      set.treeInvalid++;
      forged(
        ledgerHead?.seq ?? 0,
        `the tree checkpoint signed at ${isoOf(cp.at)} does not verify with the audit key (kid ${cp.kid})`,
      );
    }
  }
  set.ledger.sort((a, b) => a.seq - b.seq);
  return set;
}

/**
 * Verifies the whole audit log: the ledger chain in D1 and every log shard, from the genesis or
 * from the latest valid checkpoint, and every stored checkpoint of both formats (docs/audit.md,
 * "Verify online"). `ok` is the conjunction of the ledger's verdict and every shard's.
 */
export async function verifyLog(
  d1: Db,
  configured: Config,
  jwk: Config["AUDIT_SIGNING_JWK"],
  from: "genesis" | "checkpoint",
  retired: Config["AUDIT_RETIRED_KEYS"] = undefined,
): Promise<VerifyResult> {
  const log = await readableLog(d1, { ...configured, AUDIT_SIGNING_JWK: jwk, AUDIT_RETIRED_KEYS: retired });
  // As the sealer runs first, so does the outbox's drain: what was written is checked chained.
  await drainAll(log, d1);
  await sealPending(d1);
  const set = await loadCheckpoints(d1, jwk, retired);
  // A look-up's inquiry rows must be there as long as their retention runs (and its keys with them).
  const inquiriesSince =
    Date.now() - Math.min(log.RETENTION_DAYS, log.INQUIRY_RETENTION_DAYS ?? log.RETENTION_DAYS) * DAY_MS;
  const [ledger, shards, outbox] = await Promise.all([
    verifyLedger(d1, set, from),
    everyShard(log, (stub, shard) => verifyShard(d1, log, stub, shard, set.trees, from, inquiriesSince)),
    accountOutbox(log, d1),
  ]);
  const lost = outbox.missing[0];
  return {
    ...ledger,
    ok: ledger.ok && shards.every((s) => s.ok) && lost === undefined,
    ...(ledger.ok && lost
      ? {
          reason: `audit outbox entries ${lost[0]}–${lost[1]} never reached the log: deleted before their drain`,
        }
      : {}),
    treeCheckpoints: { count: set.treeCount, invalid: set.treeInvalid },
    outbox,
    shards,
  };
}

/** One shard, in place (the shard walks its own chain), then every signed head it must still hold. */
async function verifyShard(
  d1: Db,
  log: Config,
  stub: DurableObjectStub<LogShard>,
  shard: number,
  trees: readonly TreeCheckpoint[],
  from: "genesis" | "checkpoint",
  inquiriesSince: number,
): Promise<ShardVerifyResult> {
  const signed = trees
    .map((cp) => headFor(cp, shard))
    .filter((h): h is ShardHead => h !== undefined && h.seq > 0);
  const latest = signed.reduce<ShardHead | null>((a, h) => (a === null || h.seq > a.seq ? h : a), null);
  const start =
    from === "checkpoint" && latest ? { seq: latest.seq, hash: latest.hash } : { seq: 0, hash: GENESIS_HASH };
  const verdict = (await stub.verify(start, { inquiriesSince })) as unknown as ShardVerdict;
  const result: ShardVerifyResult = {
    ...verdict,
    shard,
    from: { seq: start.seq, checkpoint: start.seq > 0 },
    unsealed: 0,
  };
  if (!verdict.ok) {
    return result;
  }
  // What the shard removed as archived must be in the archive, whole, up to its archived head.
  if ((verdict.archivedThrough ?? 0) > 0) {
    const archived = (await stub.archivedHead()) as { seq: number; hash: string };
    const gap = await archiveCoverage(log.LOG_ARCHIVE, shard, archived);
    if (gap) {
      return { ...result, ok: false, firstBadSeq: gap.seq, reason: gap.reason };
    }
    // And the newest segment's content, not only its metadata: the archived head moves only by
    // writing the segment that ends on it, so that is where entries deleted as "archived" would be
    // excused by an object that does not hold them. (Older segments: `verifySegment` on demand.)
    let content: Awaited<ReturnType<typeof verifySegment>> = null;
    for (const key of await segmentsEndingOn(log.LOG_ARCHIVE, shard, archived)) {
      content = await verifySegment(log, d1, key);
      if (content?.ok) {
        break;
      }
    }
    if (!content?.ok) {
      return {
        ...result,
        ok: false,
        firstBadSeq: content?.firstBadSeq ?? archived.seq,
        reason: `the archived segment ending on entry ${archived.seq} does not verify: ${content?.error ?? "missing"}`,
      };
    }
  }
  // Every signed head at or after the start must still be there, with the signed hash; heads in
  // the archived part are checked with their archived segment (`verifySegment`).
  const archivedThrough = verdict.archivedThrough ?? 0;
  const wanted = new Map<number, string>();
  for (const h of signed) {
    if (h.seq >= start.seq && h.seq >= archivedThrough) {
      wanted.set(h.seq, h.hash);
    }
  }
  const held = new Map(
    ((await stub.hashesAt([...wanted.keys()])) as unknown as { seq: number; hash: string }[]).map((r) => [
      r.seq,
      r.hash,
    ]),
  );
  for (const [seq, hash] of [...wanted.entries()].sort((a, b) => a[0] - b[0])) {
    const stored = held.get(seq);
    if (stored === undefined) {
      return {
        ...result,
        ok: false,
        firstBadSeq: verdict.head.seq + 1,
        reason: `entries up to ${seq} were signed in a tree checkpoint but are gone`,
      };
    }
    if (stored !== hash) {
      return {
        ...result,
        ok: false,
        firstBadSeq: seq,
        reason: `entry ${seq} differs from the signed tree checkpoint at ${seq}`,
      };
    }
  }
  return result;
}

type LedgerResult = Omit<VerifyResult, "shards" | "treeCheckpoints" | "outbox">;

/**
 * The ledger chain from the genesis or from the latest valid signed head: recomputes every hash,
 * checks contiguity, and compares every signed head in range (format-1 checkpoints and the ledger
 * leaf of tree checkpoints) with the entry it names, which catches a chain rewritten wholesale.
 */
async function verifyLedger(
  d1: Db,
  set: CheckpointSet,
  from: "genesis" | "checkpoint",
): Promise<LedgerResult> {
  const signedAt = new Map<number, SignedPoint[]>();
  for (const p of set.ledger) {
    signedAt.set(p.seq, [...(signedAt.get(p.seq) ?? []), p]);
  }
  let previous = { seq: 0, hash: GENESIS_HASH };
  let fromCheckpoint = false;
  if (from === "checkpoint") {
    const latest = set.ledger[set.ledger.length - 1];
    if (latest) {
      previous = { seq: latest.seq, hash: latest.hash };
      fromCheckpoint = true;
    }
  }
  const start = previous.seq;
  let checked = 0;
  let cpChecked = 0;
  const invalid = set.invalid;
  // A stored checkpoint whose signature does not verify was edited or forged: that is a fault
  // (else rewriting an entry, every later hash and the checkpoint's hash would pass).
  const forged = set.forged;
  const fail = (seq: number, reason: string): LedgerResult => ({
    ok: false,
    checked,
    from: { seq: start, checkpoint: fromCheckpoint },
    head: null,
    unsealed: 0,
    checkpoints: { checked: cpChecked, invalid },
    ...(forged && forged.seq < seq
      ? { firstBadSeq: forged.seq, reason: forged.reason }
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
    const firstUnsealed = rows.findIndex((r) => r.hash === null);
    const run = firstUnsealed === -1 ? rows : rows.slice(0, firstUnsealed);
    const { fault, last: reached } = await verifyRun(run.map(toEntry), last);
    checked += reached.seq - last.seq;
    if (fault) {
      // A removed entry is named by its own seq, not by the next one still present.
      return fail(fault.kind === "gap" ? fault.expected : fault.seq, describeFault(fault));
    }
    for (const r of run) {
      for (const p of signedAt.get(r.seq) ?? []) {
        cpChecked++;
        if (p.hash !== r.hash) {
          return fail(r.seq, `entry ${r.seq} differs from ${p.what}`);
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
    return fail(forged.seq, forged.reason);
  }
  // A signed head beyond the verified head means signed entries are gone.
  const beyond = set.ledger.find((p) => p.seq > last.seq);
  if (beyond !== undefined) {
    return fail(last.seq + 1, `entries up to ${beyond.seq} were signed in a checkpoint but are gone`);
  }
  return {
    ok: true,
    checked,
    from: { seq: start, checkpoint: fromCheckpoint },
    head: last.seq === 0 ? null : last,
    unsealed: tail?.n ?? 0,
    checkpoints: { checked: cpChecked, invalid },
  };
}
