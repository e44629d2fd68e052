import { integer, primaryKey, sqliteTable, text, uniqueIndex } from "drizzle-orm/sqlite-core";
import { epochMs } from "./columns";

/**
 * One PDQ fingerprint (`image_pdq` evidence) of a report, indexed for matching at refund time
 * (`POST /v1/evidence/match`). The report's platform, category and incident time are copied
 * here so a match needs no read of `reports`; `counted` is 1 while the report is active or
 * disputed. A closed report's fingerprint leaves `fingerprint_chunks`, so it stops matching and
 * costs a look-up nothing.
 */
export const fingerprints = sqliteTable(
  "fingerprints",
  {
    /** The rowid: chunks refer to it compactly. */
    id: integer("id").primaryKey(),
    reportId: text("report_id").notNull(),
    platformId: text("platform_id").notNull(),
    /** The PDQ hash, 64 lower-case hex digits (256 bits). */
    hash: text("hash").notNull(),
    /** PDQ's quality metric, 50–100 (lower is refused at the API). */
    quality: integer("quality").notNull(),
    category: text("category").notNull(),
    incidentAt: epochMs("incident_at").notNull(),
    counted: integer("counted").notNull().default(1),
  },
  (t) => [uniqueIndex("fingerprints_report_hash").on(t.reportId, t.hash)],
);

/**
 * The multi-index hash of counted fingerprints: each 256-bit hash split into 16 chunks of 16
 * bits, one row per chunk. By pigeonhole, two hashes within distance 31 agree on some chunk to
 * within one bit, so probing every chunk's value and its 16 one-bit neighbours finds every
 * candidate (docs: `worker/routes/evidence-match.ts`). The primary key is the lookup index.
 *
 * The table is WITHOUT ROWID (migration 0010, hand-written: drizzle cannot declare it): its rows
 * are their key, so it is one B-tree, not a rowid table plus the key's index — 2.5 × smaller and
 * half the rows written per fingerprint, for the same reads (docs/benchmarks.md). A migration
 * drizzle-kit generates for a change to this table recreates it with a rowid: add WITHOUT ROWID
 * back by hand there.
 */
export const fingerprintChunks = sqliteTable(
  "fingerprint_chunks",
  {
    /** 0–15: bits 16·chunk … 16·chunk+15 of the hash, hex digits 4·chunk … 4·chunk+3. */
    chunk: integer("chunk").notNull(),
    /** 0–65535. */
    value: integer("value").notNull(),
    fingerprintId: integer("fingerprint_id").notNull(),
  },
  (t) => [primaryKey({ columns: [t.chunk, t.value, t.fingerprintId] })],
);
