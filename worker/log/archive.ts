import { sql } from "drizzle-orm";
import { importVerifyKey } from "../audit/chain";
import {
  publicAuditKeys,
  treeCheckpointById,
  treeCheckpointsAround,
  treeCheckpointsAt,
} from "../audit/ledger";
import { headFor, type TreeCheckpoint, verifyTreeCheckpoint } from "../audit/tree";
import { type ExportVerdict, verifyExport } from "../audit/verify-export";
import type { Config } from "../env";
import { all, batch } from "../lib/batch";
import type { Db } from "../lib/db";
import { DAY_MS, toRfc3339 } from "../lib/time";
import {
  GENESIS_HASH,
  keysCommitment,
  type LogEntry,
  lookupInquiry,
  type ShardHead,
  verifyEntries,
} from "./chain";
import { everyShard, shardStub } from "./client";
import { accountOutbox } from "./outbox";

/** Entries one archived segment holds at most. */
export const SEGMENT_MAX = 10_000;

/** The R2 key of a segment: sortable by shard and seq. */
export function segmentKey(shard: number, from: number, to: number): string {
  const pad = (n: number) => String(n).padStart(12, "0");
  return `log/shard-${String(shard).padStart(3, "0")}/${pad(from)}-${pad(to)}.ndjson`;
}

/**
 * A segment is an audit export (format `pixiu-audit-export/2`, docs/audit.md) of one shard's
 * entries `from`–`to`, without subject keys (an archive under object lock cannot erase them; the
 * shard keeps them until their retention ends), with the tree checkpoint that signs its last entry
 * (its id in `log_checkpoints` in the header's `segment.checkpointId`): the offline verifier
 * (`npm run audit:verify`) checks it as it is.
 */
export function segmentBody(
  shard: number,
  entries: readonly LogEntry[],
  signer: TreeCheckpoint & { id: number },
  keys: ReturnType<typeof publicAuditKeys>,
  now: number,
): string {
  const first = entries[0] as LogEntry;
  const last = entries[entries.length - 1] as LogEntry;
  const { id: checkpointId, ...checkpoint } = signer;
  const lines: unknown[] = [
    {
      type: "header",
      format: "pixiu-audit-export/2",
      segment: {
        shard,
        from: first.seq,
        to: last.seq,
        prevHash: first.prevHash,
        hash: last.hash,
        checkpointId,
      },
      from: 1,
      to: 0,
      shards: [{ shard, from: first.seq, to: last.seq }],
      exportedAt: toRfc3339(now),
    },
    { type: "keys", ...keys },
    ...entries.map((e) => ({ type: "log-entry", ...e, subjectKeys: null, salt: null })),
    { type: "tree-checkpoint", ...checkpoint },
  ];
  return `${lines.map((l) => JSON.stringify(l)).join("\n")}\n`;
}

export interface ArchiveResult {
  segments: string[];
  entries: number;
}

/**
 * Moves each shard's entries older than LOG_ARCHIVE_AFTER_DAYS to R2, a segment at a time: an
 * unbroken run of seqs right after the shard's archived head, stopping at the first entry not old
 * enough, and ending on the newest head in it that a tree checkpoint signed (so every segment
 * carries the signature that ties it to the rest of the log; `signedEnd` finds it). The segment is
 * written first, then the shard
 * removes those entries and records the segment's last hash as where its chain goes on. A run
 * that died between the two left a segment starting right after the archived head: the next run
 * finishes that one (the shard removes its entries) instead of writing another.
 */
export async function archiveLog(d1: Db, config: Config, now: number): Promise<ArchiveResult> {
  // The outbox's accounting passes every id drained so far before their entries can leave the
  // shards: once archived, an id counts as held only below the watermark (worker/log/outbox.ts).
  // Best effort: an accounting that fails here can only report more ids missing later, never fewer.
  await accountOutbox(config, d1, { advance: true }).catch((err) =>
    console.error(
      JSON.stringify({ level: "error", where: "archive: outbox accounting", error: String(err) }),
    ),
  );
  const bucket = config.LOG_ARCHIVE;
  const before = now - config.LOG_ARCHIVE_AFTER_DAYS * DAY_MS;
  const keys = publicAuditKeys(config.AUDIT_SIGNING_JWK, config.AUDIT_RETIRED_KEYS);
  const byKid = await verifyKeys(keys);
  const perShard = await everyShard(config, async (stub, shard) => {
    const candidates = (await stub.archivable(before, SEGMENT_MAX)) as unknown as LogEntry[];
    const first = candidates[0];
    const lastCandidate = candidates[candidates.length - 1];
    if (!first || !lastCandidate) {
      return null;
    }
    const mark = async (to: LogEntry, key: string) => {
      const marked = (await stub.markArchived(to.seq, to.hash, key)) as { refused?: string };
      if (marked.refused) {
        throw new Error(`archive of shard ${shard}: ${marked.refused}`);
      }
      // Which checkpoint signed an archived head is in its segment now: the notes go.
      await batch(d1, [sql`DELETE FROM log_signed_heads WHERE shard = ${shard} AND seq <= ${to.seq}`]);
      return { key, entries: to.seq - first.seq + 1 };
    };
    // A segment a run wrote before it died, starting right after the archived head: finish it.
    // (One written before segments carried their entry count is left: archiveCoverage accepts
    // the overlap.)
    const bySeq = new Map(candidates.map((e) => [e.seq, e]));
    const written = (await segmentsFrom(bucket, shard, first.seq)).filter(
      (w) => w.entries === w.to - first.seq + 1,
    );
    const finishable = written.filter((w) => bySeq.get(w.to)?.hash === w.hash).sort((a, b) => b.to - a.to)[0];
    if (finishable) {
      const to = bySeq.get(finishable.to) as LogEntry;
      // Its metadata is not enough: nothing leaves the shard unless the object holds those entries.
      if (!(await holdsRun(bucket, finishable.key, first, to))) {
        throw new Error(
          `archive of shard ${shard}: segment ${finishable.key} does not hold the shard's entries ${first.seq}–${to.seq}`,
        );
      }
      return mark(to, finishable.key);
    }
    if (written.some((w) => w.to > lastCandidate.seq)) {
      // Written when more entries were old enough (a clock ahead of this run's): a later run ends it.
      return null;
    }
    if (written[0]) {
      throw new Error(
        `archive of shard ${shard}: segment ${written[0].key} ends on a hash that the shard's entry ${written[0].to} does not have`,
      );
    }
    // The segment ends on the newest signed head among the candidates.
    const signer = await signedEnd(d1, byKid, shard, candidates);
    if (!signer) {
      return null;
    }
    const end = (headFor(signer, shard) as ShardHead).seq;
    const entries = candidates.filter((e) => e.seq <= end);
    const last = entries[entries.length - 1] as LogEntry;
    const key = segmentKey(shard, first.seq, last.seq);
    await bucket.put(key, segmentBody(shard, entries, signer, keys, now), {
      httpMetadata: { contentType: "application/x-ndjson; charset=utf-8" },
      customMetadata: {
        shard: String(shard),
        from: String(first.seq),
        to: String(last.seq),
        entries: String(entries.length),
        prevHash: first.prevHash,
        hash: last.hash,
        checkpointId: String(signer.id),
      },
    });
    return mark(last, key);
  });
  const done = perShard.filter((s): s is { key: string; entries: number } => s !== null);
  return { segments: done.map((s) => s.key), entries: done.reduce((n, s) => n + s.entries, 0) };
}

/** How many noted signers of a shard's newest heads `signedEnd` tries before the window. */
const NOTED_TRIES = 8;

/** The published audit keys, imported for verifying, by kid. */
async function verifyKeys(keys: ReturnType<typeof publicAuditKeys>): Promise<Map<string, CryptoKey>> {
  const byKid = new Map<string, CryptoKey>();
  for (const key of keys.keys) {
    byKid.set(key.kid, await importVerifyKey(key as JsonWebKey));
  }
  return byKid;
}

/** Whether `cp` verifies with the published key its kid names. */
async function verifies(byKid: Map<string, CryptoKey>, cp: TreeCheckpoint): Promise<boolean> {
  const key = byKid.get(cp.kid);
  return key !== undefined && (await verifyTreeCheckpoint(key, cp));
}

/**
 * The stored tree checkpoint, verifying with a published key, that signed the newest head of
 * `shard` among `candidates` (a run of its entries) with that entry's hash; null if none did.
 *
 * By the notes `checkpoint()` writes with each checkpoint (`log_signed_heads`: shard, seq and the
 * checkpoint's id), read by primary key, newest head first: an entry's `at` is the time of the
 * event it records, not of its chaining (an outbox row may be drained days late), so no window of
 * checkpoints by time is sure to hold its signer. Heads signed before those notes existed are
 * looked for as before, in the window of checkpoints signed from the first candidate's time on.
 */
async function signedEnd(
  d1: Db,
  byKid: Map<string, CryptoKey>,
  shard: number,
  candidates: readonly LogEntry[],
): Promise<(TreeCheckpoint & { id: number }) | null> {
  const first = candidates[0] as LogEntry;
  const last = candidates[candidates.length - 1] as LogEntry;
  const hashAt = new Map(candidates.map((e) => [e.seq, e.hash]));
  const signs = (cp: TreeCheckpoint) => {
    const h = headFor(cp, shard);
    return h !== undefined && hashAt.get(h.seq) === h.hash;
  };
  const noted = await all<{ seq: number; checkpoint_id: number }>(
    d1,
    sql`SELECT seq, checkpoint_id FROM log_signed_heads
        WHERE shard = ${shard} AND seq >= ${first.seq} AND seq <= ${last.seq}
        ORDER BY seq DESC LIMIT ${NOTED_TRIES}`,
  );
  for (const note of noted) {
    const cp = await treeCheckpointById(d1, note.checkpoint_id);
    if (cp && headFor(cp, shard)?.seq === note.seq && signs(cp) && (await verifies(byKid, cp))) {
      return cp;
    }
  }
  const window = (await treeCheckpointsAround(d1, first.at, "after"))
    .filter(signs)
    .sort((a, b) => (headFor(b, shard)?.seq ?? 0) - (headFor(a, shard)?.seq ?? 0));
  for (const cp of window) {
    if (await verifies(byKid, cp)) {
      return cp;
    }
  }
  return null;
}

/**
 * Whether the segment at `key` holds exactly the entries `first`–`to` of the shard: they chain
 * (each hash recomputed) from `first`'s prevHash, without a gap, to `to`'s hash.
 */
async function holdsRun(bucket: R2Bucket, key: string, first: LogEntry, to: LogEntry): Promise<boolean> {
  const object = await bucket.get(key);
  if (!object) {
    return false;
  }
  const entries = (await object.text())
    .split("\n")
    .filter((l) => l.trim().length > 0)
    .map((l) => JSON.parse(l) as LogEntry & { type: string })
    .filter((l) => l.type === "log-entry");
  const chained = verifyEntries(entries, { seq: first.seq - 1, hash: first.prevHash });
  return chained.fault === null && chained.last.seq === to.seq && chained.last.hash === to.hash;
}

/** Segments of a shard already in the bucket that start at `from` (key order is by from, then to). */
async function segmentsFrom(
  bucket: R2Bucket,
  shard: number,
  from: number,
): Promise<{ key: string; to: number; hash: string; entries: number | null }[]> {
  const found: { key: string; to: number; hash: string; entries: number | null }[] = [];
  for await (const o of listObjects(bucket, `${segmentPrefix(shard)}${String(from).padStart(12, "0")}-`)) {
    const meta = o.customMetadata ?? {};
    found.push({
      key: o.key,
      to: Number(meta.to ?? 0),
      hash: meta.hash ?? "",
      entries: meta.entries === undefined ? null : Number(meta.entries),
    });
  }
  return found;
}

/** The R2 key prefix of one shard's segments. */
export function segmentPrefix(shard: number): string {
  return `log/shard-${String(shard).padStart(3, "0")}/`;
}

interface SegmentHeader {
  shard: number;
  from: number;
  to: number;
  prevHash: string;
  hash: string;
  /** The id in `log_checkpoints` of the tree checkpoint that signs `to`; absent in older segments. */
  checkpointId?: number;
}

/**
 * Checks one archived segment: its chain and embedded checkpoints with the ledger's published
 * audit keys (the offline verifier), and that it is whole: its entries run exactly from the
 * header's `from` to its `to`, end on the header's and the object's `hash`, and that last entry
 * is a head a tree checkpoint stored in the ledger (not only a copy inside the object) signed
 * for this shard, found by the checkpoint id the segment records (`storedSigner`). A segment cut
 * short, or rewritten without its signed end, fails.
 */
export async function verifySegment(config: Config, db: Db, key: string): Promise<ExportVerdict | null> {
  const object = await config.LOG_ARCHIVE.get(key);
  if (!object) {
    return null;
  }
  const text = await object.text();
  const keys = publicAuditKeys(config.AUDIT_SIGNING_JWK, config.AUDIT_RETIRED_KEYS);
  const verdict = await verifyExport(text, keys);
  if (!verdict.ok) {
    return verdict;
  }
  const items = text
    .split("\n")
    .filter((l) => l.trim().length > 0)
    .map((l) => JSON.parse(l) as { type: string; segment?: SegmentHeader } & Partial<LogEntry>);
  const segment = items.find((i) => i.type === "header")?.segment;
  const entries = items.filter((i) => i.type === "log-entry") as (LogEntry & { type: string })[];
  const first = entries[0];
  const last = entries[entries.length - 1];
  const fail = (error: string, seq?: number): ExportVerdict => ({
    ...verdict,
    ok: false,
    error,
    ...(segment ? { badShard: segment.shard } : {}),
    ...(seq !== undefined ? { firstBadSeq: seq } : {}),
  });
  if (!segment || !first || !last) {
    return fail("the object is not a whole segment: no segment header or no entries");
  }
  if (first.seq !== segment.from || last.seq !== segment.to || last.hash !== segment.hash) {
    return fail(
      `the segment's entries run ${first.seq}–${last.seq} but its header says ${segment.from}–${segment.to}: entries are missing`,
      (last.seq ?? 0) + 1,
    );
  }
  const meta = object.customMetadata ?? {};
  if (
    meta.to !== String(segment.to) ||
    meta.hash !== segment.hash ||
    meta.shard !== String(segment.shard) ||
    meta.from !== String(segment.from) ||
    (meta.entries !== undefined && meta.entries !== String(entries.length)) ||
    (meta.prevHash !== undefined && meta.prevHash !== segment.prevHash) ||
    meta.checkpointId !== (segment.checkpointId === undefined ? undefined : String(segment.checkpointId)) ||
    first.prevHash !== segment.prevHash
  ) {
    return fail("the segment's header and the object's metadata disagree", segment.to);
  }
  // It starts right after the shard's previous archived head: the end of a segment before it.
  if (
    segment.from > 1 &&
    !(await endsOn(config.LOG_ARCHIVE, segment.shard, segment.from - 1, segment.prevHash))
  ) {
    return fail(
      `no archived segment of shard ${segment.shard} ends on entry ${segment.from - 1} with the hash this segment chains on from`,
      segment.from,
    );
  }
  const embedded = items.filter((i) => i.type === "tree-checkpoint") as unknown as TreeCheckpoint[];
  if (!(await storedSigner(db, await verifyKeys(keys), segment, embedded, last.at))) {
    return fail(
      `no tree checkpoint stored in the ledger signed entry ${segment.to} of shard ${segment.shard} with this hash${
        segment.checkpointId === undefined ? "" : ` (the segment names checkpoint ${segment.checkpointId})`
      }`,
      segment.to,
    );
  }
  const lost = await unkeptLookup(config, segment.shard, entries, Date.now());
  if (lost) {
    return fail(lost.reason, lost.seq);
  }
  return verdict;
}

/** Every object under `prefix` with its custom metadata, page after page. */
async function* listObjects(bucket: R2Bucket, prefix: string): AsyncGenerator<R2Object> {
  let cursor: string | undefined;
  do {
    const page = await bucket.list({ prefix, include: ["customMetadata"], ...(cursor ? { cursor } : {}) });
    yield* page.objects;
    cursor = page.truncated ? page.cursor : undefined;
  } while (cursor);
}

/** Whether one of a shard's segments ends on entry `seq` with `hash`. */
async function endsOn(bucket: R2Bucket, shard: number, seq: number, hash: string): Promise<boolean> {
  for await (const o of listObjects(bucket, segmentPrefix(shard))) {
    if (o.customMetadata?.to === String(seq) && o.customMetadata?.hash === hash) {
      return true;
    }
  }
  return false;
}

/** The start of the inquiries' retention at `now`, as verify holds look-ups to it (with their keys). */
export function inquiriesSince(
  config: Pick<Config, "RETENTION_DAYS" | "INQUIRY_RETENTION_DAYS">,
  now: number,
): number {
  return (
    now - Math.min(config.RETENTION_DAYS, config.INQUIRY_RETENTION_DAYS ?? config.RETENTION_DAYS) * DAY_MS
  );
}

/**
 * The first inquired look-up of a segment, still within the inquiries' retention, that its shard
 * no longer keeps as it must: its `archived_lookups` row (what online verify holds its inquiry
 * rows to) matching the archived entry, and its subject keys matching the entry's commitment.
 * Deleting or rewriting that row, or the keys, to hide the look-up from online verify fails here.
 */
async function unkeptLookup(
  config: Config,
  shard: number,
  entries: readonly LogEntry[],
  now: number,
): Promise<{ seq: number; reason: string } | null> {
  const since = inquiriesSince(config, now);
  const wanted = entries
    .filter((e) => e.at >= since)
    .map((e) => ({ e, inquiry: lookupInquiry(e) }))
    .filter((w) => w.inquiry !== null);
  if (wanted.length === 0) {
    return null;
  }
  const kept = new Map(
    (await shardStub(config, shard).archivedLookups(wanted.map((w) => w.e.seq))).map((r) => [r.seq, r]),
  );
  for (const { e, inquiry } of wanted) {
    const row = kept.get(e.seq);
    const lookup = `entry ${e.seq} is an archived look-up within the inquiries' retention`;
    if (
      !row ||
      !inquiry ||
      row.at !== e.at ||
      row.platformId !== inquiry.platformId ||
      row.requestId !== inquiry.requestId ||
      row.purpose !== inquiry.purpose
    ) {
      return {
        seq: e.seq,
        reason: `${lookup}, but its shard no longer keeps what its inquiry rows must say`,
      };
    }
    if (row.keys === null || row.salt === null) {
      return { seq: e.seq, reason: `${lookup}, but its shard no longer keeps its subject keys` };
    }
    if (keysCommitment(row.salt, row.keys) !== e.keys) {
      return {
        seq: e.seq,
        reason: `${lookup}, but the subject keys its shard keeps do not match its commitment`,
      };
    }
  }
  return null;
}

/**
 * Whether a tree checkpoint stored in the ledger (D1, the trusted copy: never the object's own
 * copies), verifying with a key the ledger publishes, signed the segment's end (shard, `to`,
 * `hash`). Read by primary key: the checkpoint the segment names (`checkpointId`). A segment
 * written before segments named it, or whose named checkpoint does not sign its end, is looked up
 * as before: the stored checkpoints signed at the time of a copy embedded in it that signs its end,
 * then the window of checkpoints signed from its last entry's time on.
 */
async function storedSigner(
  db: Db,
  byKid: Map<string, CryptoKey>,
  segment: SegmentHeader,
  embedded: readonly TreeCheckpoint[],
  lastAt: number,
): Promise<boolean> {
  const signsEnd = (cp: TreeCheckpoint) => {
    const h = headFor(cp, segment.shard);
    return h !== undefined && h.seq === segment.to && h.hash === segment.hash;
  };
  const named = Number.isSafeInteger(segment.checkpointId)
    ? await treeCheckpointById(db, segment.checkpointId as number)
    : null;
  if (named && signsEnd(named) && (await verifies(byKid, named))) {
    return true;
  }
  const ats = [...new Set(embedded.filter(signsEnd).map((cp) => cp.at))];
  for (const at of ats) {
    for (const cp of await treeCheckpointsAt(db, at)) {
      if (signsEnd(cp) && (await verifies(byKid, cp))) {
        return true;
      }
    }
  }
  for (const cp of await treeCheckpointsAround(db, lastAt, "after")) {
    if (signsEnd(cp) && (await verifies(byKid, cp))) {
      return true;
    }
  }
  return false;
}

/**
 * Whether the archive holds every entry a shard says it archived: segments that chain from seq 1
 * to `archived.seq` without a gap and end on the shard's archived hash. Null when they do, else
 * the first seq not covered and why.
 *
 * Segments may overlap: a run that died before the shard recorded its segment, under a version
 * that did not finish such a segment on the next run, left one that a longer segment from the same
 * seq supersedes (and under object lock it stays). Coverage follows every segment that chains on
 * from one before it (its `prevHash`, where its metadata has one, is the hash that one ends on);
 * two segments ending on the same seq with different hashes, or one that does not chain on, fail.
 */
export async function archiveCoverage(
  bucket: R2Bucket,
  shard: number,
  archived: { seq: number; hash: string },
): Promise<{ seq: number; reason: string } | null> {
  const segments: { key: string; from: number; to: number; hash: string; prevHash?: string }[] = [];
  for await (const o of listObjects(bucket, segmentPrefix(shard))) {
    const meta = o.customMetadata ?? {};
    segments.push({
      key: o.key,
      from: Number(meta.from ?? 0),
      to: Number(meta.to ?? 0),
      hash: meta.hash ?? "",
      ...(meta.prevHash !== undefined ? { prevHash: meta.prevHash } : {}),
    });
  }
  segments.sort((a, b) => a.from - b.from || a.to - b.to);
  // The seqs the segments reach from the genesis, each with the hash of the entry there. A
  // segment's predecessors start before it, so in `from` order they are all in by its turn.
  const reached = new Map<number, string>([[0, GENESIS_HASH]]);
  for (const seg of segments) {
    if (seg.from > archived.seq) {
      break;
    }
    const before = reached.get(seg.from - 1);
    if (before === undefined || seg.to < seg.from) {
      continue;
    }
    if (seg.prevHash !== undefined && seg.prevHash !== before) {
      return {
        seq: seg.from,
        reason: `segment ${seg.key} does not chain on from the archived entry ${seg.from - 1}`,
      };
    }
    const known = reached.get(seg.to);
    if (known !== undefined && known !== seg.hash) {
      return { seq: seg.to, reason: `two archived segments end on entry ${seg.to} with different hashes` };
    }
    reached.set(seg.to, seg.hash);
  }
  const end = reached.get(archived.seq);
  if (end === archived.hash) {
    return null;
  }
  if (end !== undefined) {
    return {
      seq: archived.seq,
      reason: `the archive does not end on the shard's archived head ${archived.seq}`,
    };
  }
  const next = Math.max(...[...reached.keys()].filter((seq) => seq < archived.seq)) + 1;
  return {
    seq: next,
    reason: `entries ${next}–${archived.seq} were removed as archived but no segment in R2 holds them`,
  };
}

/**
 * The keys of the segments of `shard` that end on its archived head (one, or an older version's
 * overlapping copy too). Online verify reads their content (`verifySegment`): a shard's archived head moves only by writing the
 * segment that ends on it, so an object made to excuse entries deleted from the shard is this one.
 */
export async function segmentsEndingOn(
  bucket: R2Bucket,
  shard: number,
  archived: { seq: number; hash: string },
): Promise<string[]> {
  const keys: string[] = [];
  for await (const o of listObjects(bucket, segmentPrefix(shard))) {
    if (o.customMetadata?.to === String(archived.seq) && o.customMetadata?.hash === archived.hash) {
      keys.push(o.key);
    }
  }
  return keys;
}
