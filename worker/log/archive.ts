import { publicAuditKeys, treeCheckpoints } from "../audit/ledger";
import { headFor, type TreeCheckpoint } from "../audit/tree";
import { type ExportVerdict, verifyExport } from "../audit/verify-export";
import type { Config } from "../env";
import type { Db } from "../lib/db";
import { DAY_MS, toRfc3339 } from "../lib/time";
import type { LogEntry } from "./chain";
import { everyShard } from "./client";

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
 * shard keeps them until their retention ends), with every tree checkpoint that signs a head in
 * that range: the offline verifier (`npm run audit:verify`) checks it as it is.
 */
export function segmentBody(
  shard: number,
  entries: readonly LogEntry[],
  checkpoints: readonly TreeCheckpoint[],
  keys: ReturnType<typeof publicAuditKeys>,
  now: number,
): string {
  const first = entries[0] as LogEntry;
  const last = entries[entries.length - 1] as LogEntry;
  const lines: unknown[] = [
    {
      type: "header",
      format: "pixiu-audit-export/2",
      segment: { shard, from: first.seq, to: last.seq, prevHash: first.prevHash, hash: last.hash },
      from: 1,
      to: 0,
      shards: [{ shard, from: first.seq, to: last.seq }],
      exportedAt: toRfc3339(now),
    },
    { type: "keys", ...keys },
    ...entries.map((e) => ({ type: "log-entry", ...e, subjectKeys: null, salt: null })),
    ...checkpoints.map((cp) => ({ type: "tree-checkpoint", ...cp })),
  ];
  return `${lines.map((l) => JSON.stringify(l)).join("\n")}\n`;
}

export interface ArchiveResult {
  segments: string[];
  entries: number;
}

/**
 * Moves each shard's entries older than LOG_ARCHIVE_AFTER_DAYS to R2, a segment at a time, each
 * ending on a head that a tree checkpoint signed (so every segment carries the signature that
 * ties it to the rest of the log): the segment is written first, then the shard removes those
 * entries and records the segment's last hash as where its chain goes on. A run that dies
 * between the two writes the same segment again next time (same key, same content).
 */
export async function archiveLog(d1: Db, config: Config, now: number): Promise<ArchiveResult> {
  const bucket = config.LOG_ARCHIVE;
  const before = now - config.LOG_ARCHIVE_AFTER_DAYS * DAY_MS;
  const trees = await treeCheckpoints(d1);
  const keys = publicAuditKeys(config.AUDIT_SIGNING_JWK, config.AUDIT_RETIRED_KEYS);
  const perShard = await everyShard(config, async (stub, shard) => {
    const candidates = (await stub.archivable(before, SEGMENT_MAX)) as unknown as LogEntry[];
    const first = candidates[0];
    const lastCandidate = candidates[candidates.length - 1];
    if (!first || !lastCandidate) {
      return null;
    }
    // The segment ends on the newest signed head among the candidates.
    const signed = trees.filter((cp) => {
      const h = headFor(cp, shard);
      return h !== undefined && h.seq >= first.seq && h.seq <= lastCandidate.seq;
    });
    const end = signed.reduce((to, cp) => Math.max(to, headFor(cp, shard)?.seq ?? 0), 0);
    if (end === 0) {
      return null;
    }
    const entries = candidates.filter((e) => e.seq <= end);
    const last = entries[entries.length - 1] as LogEntry;
    const key = segmentKey(shard, first.seq, last.seq);
    await bucket.put(key, segmentBody(shard, entries, signed, keys, now), {
      httpMetadata: { contentType: "application/x-ndjson; charset=utf-8" },
      customMetadata: {
        shard: String(shard),
        from: String(first.seq),
        to: String(last.seq),
        hash: last.hash,
      },
    });
    await stub.markArchived(last.seq, last.hash);
    return { key, entries: entries.length };
  });
  const done = perShard.filter((s): s is { key: string; entries: number } => s !== null);
  return { segments: done.map((s) => s.key), entries: done.reduce((n, s) => n + s.entries, 0) };
}

/** Checks one archived segment with the ledger's published audit keys. */
export async function verifySegment(config: Config, key: string): Promise<ExportVerdict | null> {
  const object = await config.LOG_ARCHIVE.get(key);
  if (!object) {
    return null;
  }
  return verifyExport(
    await object.text(),
    publicAuditKeys(config.AUDIT_SIGNING_JWK, config.AUDIT_RETIRED_KEYS),
  );
}
