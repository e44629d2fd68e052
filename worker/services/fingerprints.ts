import { type SQL, sql } from "drizzle-orm";

/**
 * The exact near-duplicate index of PDQ fingerprints (multi-index hashing, after Norouzi, Punjani
 * and Fleet): a 256-bit hash is split into 16 chunks of 16 bits, and `fingerprint_chunks` holds
 * one row per (chunk, value) of every counted fingerprint. Two hashes within distance 31 differ
 * in fewer than 32 bits spread over 16 chunks, so by pigeonhole some chunk differs in at most one
 * bit: probing each chunk's own value and its 16 one-bit neighbours (272 probes per hash) finds
 * every fingerprint within 31, with no false negative. Candidates are then verified on the full
 * distance. A distance above 31 needs more neighbours per chunk; MAX_MATCH_DISTANCE is capped to
 * what the probes guarantee (`PROBE_RADIUS`).
 */
export const CHUNKS = 16;
export const CHUNK_BITS = 16;
/** Bits a chunk may differ in and still be probed: the index is exact up to 16·(1+1)−1 = 31. */
export const PROBE_RADIUS = 1;
export const MAX_EXACT_DISTANCE = CHUNKS * (PROBE_RADIUS + 1) - 1;

const CHUNK_NUMBERS = JSON.stringify(Array.from({ length: CHUNKS }, (_, i) => i));
/** XOR masks of a chunk's probes: itself (0) and each one-bit neighbour. */
const PROBE_MASKS = JSON.stringify([0, ...Array.from({ length: CHUNK_BITS }, (_, b) => 2 ** b)]);

/** The 16 chunk values of a hash, as the index stores them (hex digits 4k … 4k+3 of chunk k). */
export function chunksOf(hash: string): number[] {
  return Array.from({ length: CHUNKS }, (_, k) => Number.parseInt(hash.slice(4 * k, 4 * k + 4), 16));
}

/**
 * Bits that differ between two hashes given as chunks. A constant-time 16-bit popcount (SWAR)
 * rather than a loop per set bit: the Worker verifies every candidate against every hash of a
 * request (up to 128 of them), so this runs hundreds of thousands of times in the largest one.
 */
export function chunkDistance(a: readonly number[], b: readonly number[]): number {
  let distance = 0;
  for (let k = 0; k < CHUNKS; k++) {
    let x = ((a[k] ?? 0) ^ (b[k] ?? 0)) & 0xffff;
    x -= (x >> 1) & 0x5555;
    x = (x & 0x3333) + ((x >> 2) & 0x3333);
    x = (x + (x >> 4)) & 0x0f0f;
    distance += (x + (x >> 8)) & 0x1f;
  }
  return distance;
}

/** Chunk `chunk` of the 64-hex-digit `hash`, in SQL (the same value `chunksOf` computes). */
function chunkValueSql(hash: SQL, chunk: SQL): SQL {
  const digit = (i: number) =>
    sql`(instr('0123456789abcdef', substr(${hash}, 4 * ${chunk} + ${i + 1}, 1)) - 1)`;
  return sql`(${digit(0)} * 4096 + ${digit(1)} * 256 + ${digit(2)} * 16 + ${digit(3)})`;
}

/** The index rows `(chunk, value, fingerprint_id)` of the fingerprints `f` selected by `where`. */
function chunkRowsSql(where: SQL): SQL {
  return sql`SELECT c.value AS chunk, ${chunkValueSql(sql`f.hash`, sql`c.value`)} AS value, f.id AS fingerprint_id
    FROM fingerprints f CROSS JOIN json_each(${CHUNK_NUMBERS}) c WHERE ${where}`;
}

/**
 * The statements that index the `image_pdq` evidence of newly created reports, for the report
 * write batch (`reportWriteStatements`), after the reports are inserted: `json` is that batch's
 * items parameter. Set-based like the subject links: two statements whatever the count. A
 * replayed or refused item has no report with its fresh id, so it indexes nothing; a hash given
 * twice in one report is indexed once.
 */
export function fingerprintWriteStatements(json: string): SQL[] {
  return [
    sql`INSERT INTO fingerprints (report_id, platform_id, hash, quality, category, incident_at, counted)
      SELECT r.id, r.platform_id, e.value ->> 'value', max(e.value ->> 'quality'), r.category, r.incident_at, 1
      FROM json_each(${json}) j
      CROSS JOIN reports r ON r.id = j.value ->> 'id'
      CROSS JOIN json_each(j.value -> 'evidence') e
      WHERE e.value ->> 'kind' = 'image_pdq'
      GROUP BY r.id, e.value ->> 'value'`,
    sql`INSERT INTO fingerprint_chunks (chunk, value, fingerprint_id)
      ${chunkRowsSql(sql`f.report_id IN (SELECT j.value ->> 'id' FROM json_each(${json}) j)`)}`,
  ];
}

/**
 * Stops the fingerprints of reports that left `active`/`disputed` matching: their index rows go
 * and they are marked uncounted. `reportIds` is a subquery of report ids; each statement reads
 * the status again, so a report still open is left alone. Put them in the closing batch, after
 * the status change.
 */
export function uncountFingerprintsSql(reportIds: SQL): SQL[] {
  const closed = sql`f.counted = 1 AND f.report_id IN (SELECT r.id FROM reports r
      WHERE r.id IN (${reportIds}) AND r.status NOT IN ('active', 'disputed'))`;
  return [
    sql`DELETE FROM fingerprint_chunks WHERE (chunk, value, fingerprint_id) IN (${chunkRowsSql(closed)})`,
    sql`UPDATE fingerprints SET counted = 0 WHERE id IN (SELECT f.id FROM fingerprints f WHERE ${closed})`,
  ];
}

/** Deletes the fingerprints of purged reports (`reportIds`, a subquery) with their index rows. */
export function purgeFingerprintsSql(reportIds: SQL): SQL[] {
  return [
    sql`DELETE FROM fingerprint_chunks WHERE (chunk, value, fingerprint_id) IN (${chunkRowsSql(
      sql`f.report_id IN ${reportIds}`,
    )})`,
    sql`DELETE FROM fingerprints WHERE report_id IN ${reportIds}`,
  ];
}

export interface CandidateRow {
  hash: string;
  platform_id: string;
  category: string;
  incident_at: number;
}

/** A photo as a request gives it: its PDQ hash and, optionally, its eight dihedral hashes. */
export interface PhotoHashes {
  pdq: string;
  dihedral?: readonly string[];
}

/** Each photo's distinct hashes as chunks: the photo's own and, given, its dihedral variants. */
export function photoVariants(photos: readonly PhotoHashes[]): number[][][] {
  return photos.map((p) => [...new Set([p.pdq, ...(p.dihedral ?? [])])].map(chunksOf));
}

/**
 * The match read's one JSON parameter: the distinct `[chunk, value]` pairs of every hash of
 * every photo, so the read probes each once (one request's photos, or a whole batch's).
 */
export function probePairsJson(variants: readonly (readonly (readonly number[])[])[]): string {
  const pairs = new Set(variants.flat().flatMap((h) => h.map((v, k) => `[${k},${v}]`)));
  return `[${[...pairs].join(",")}]`;
}

/** The best distance between a stored hash (as chunks) and any of one photo's hashes. */
export function nearestDistance(photo: readonly (readonly number[])[], stored: readonly number[]): number {
  let best = Number.POSITIVE_INFINITY;
  for (const h of photo) {
    best = Math.min(best, chunkDistance(h, stored));
  }
  return best;
}

/**
 * The CTEs `probes` and `candidates` of the match read (see `matchReadSql`): the distinct probes
 * of `chunksJson` and the distinct fingerprint ids they find. For a WITH clause, alone or beside
 * the score read's (`scoreWithPhotosReadSql` in worker/services/scores.ts).
 */
export function candidateCtes(chunksJson: string): SQL {
  return sql`probes AS (
      SELECT DISTINCT p.value ->> 0 AS chunk, ((p.value ->> 1) | m.value) - ((p.value ->> 1) & m.value) AS value
      FROM json_each(${chunksJson}) p CROSS JOIN json_each(${PROBE_MASKS}) m),
    candidates AS (
      SELECT DISTINCT c.fingerprint_id AS id FROM probes
      CROSS JOIN fingerprint_chunks c ON c.chunk = probes.chunk AND c.value = probes.value)`;
}

/**
 * The match read, one statement for every photo of a request: `chunksJson` is a JSON array of
 * `[chunk, value]` pairs, the distinct chunk values of every hash asked about (a photo and its
 * dihedral variants; `probePairsJson`). Each pair is expanded in SQL into its 17 probes (the
 * value and its one-bit neighbours; XOR as `(v | m) - (v & m)`); each distinct probe is one seek
 * on the primary key of `fingerprint_chunks` (a WITHOUT ROWID table: the key is the table), each
 * distinct candidate one primary-key probe of `fingerprints` and one of its report. Rows read are
 * 18 per pair plus a few per candidate (the fingerprints sharing a chunk to within one bit with a
 * hash asked about): about 0.42 % of the index per random hash, so they grow with the table
 * (docs/benchmarks.md, "Evidence match"). The Worker verifies the full distance
 * (`nearestDistance`) and answers only those within the limit. CROSS JOIN fixes the order: probes
 * outermost, as the planner might otherwise walk the index. A case past the retention period
 * (`since`: not yet purged) or under a dispute past its deadline (`now`) is not shown, the rule
 * the score applies (docs/scoring.md §3b).
 */
export function matchReadSql(
  chunksJson: string,
  at: { now: number; since: number } = { now: 0, since: 0 },
): SQL {
  return sql`WITH ${candidateCtes(chunksJson)}
    SELECT f.hash, f.platform_id, f.category, f.incident_at
    FROM candidates CROSS JOIN fingerprints f ON f.id = candidates.id
      CROSS JOIN reports r ON r.id = f.report_id
    WHERE f.counted = 1 AND r.incident_at >= ${at.since}
      AND (r.dispute_deadline_at IS NULL OR r.dispute_deadline_at >= ${at.now})`;
}
