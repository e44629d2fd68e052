/**
 * `npm run bench:evidence`: `POST /v1/evidence/match` against a ledger of 1,000 and of 1,000,000
 * fingerprints (issue 11), measured the way production runs it (the bundle, workerd, local D1).
 *
 * 1. Builds the production bundle and serves it with miniflare next to the floor Worker
 *    (`SELECT 1`, and `/sql` for the real match statement's `meta.rows_read`); migrates,
 *    registers 10 platforms and files ~225 reports (1–5 photos each) with image_pdq evidence
 *    through the API: the fixture photos, real edits of them hashed with `client/pdq.ts`,
 *    clusters of near copies and uniform random hashes (`scripts/lib/fingerprint-population.ts`).
 * 2. Stops the server and writes the rest of the population (reports, their subject links,
 *    fingerprints and the chunk index) straight into the D1 SQLite file with node:sqlite, up to
 *    1,000 fingerprints, then up to 1,000,000; at each size:
 *    - rows read and candidates of the real statement (`matchReadSql`) per request shape;
 *    - recall through the route: copies of stored fingerprints at every distance 0–40 (bits
 *      flipped at random, and spread over the chunks, the index's worst case), each answer
 *      compared with brute force over the whole population;
 *    - false matches: unrelated random hashes, and real photos nobody reported;
 *    - throughput of the route (1 photo; 1 photo with its 8 dihedral hashes; 16 photos) next to
 *      the `SELECT 1` floor, and the largest request (16 × 8 hashes) once.
 * 3. Builds `fingerprint_chunks` in the other layout (rowid table with its primary-key index, or
 *    WITHOUT ROWID) next to the live one; measures both with dbstat, times the match statement and
 *    index writes on each in turn, then makes each live in the Worker in turn (A, B, A, B): rows
 *    written per fingerprint, a worst-case recall check, one photo, and bulk filing.
 *
 * Options (env): BENCH_FINGERPRINTS (1000000), BENCH_SECONDS (8 per route; 4 in step 3's
 * rounds), BENCH_CONNECTIONS (32; 8 for a photo with its dihedral hashes, 4 for 16 photos),
 * BENCH_ONLY / BENCH_PROFILE (as `npm run bench`), BENCH_ALTERNATIVE=0 skips step 3, BENCH_SEED
 * (11). Writes bench-results/evidence.md.
 */
import { createHash, randomBytes } from "node:crypto";
import { mkdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import type { DatabaseSync } from "node:sqlite";
import { SQLiteAsyncDialect } from "drizzle-orm/sqlite-core";
import { newId } from "../worker/lib/ids";
import { CATEGORIES, PDQ_PROBE_MAX_BITS, pdqBits } from "../worker/schemas/reports";
import { MAX_EXACT_DISTANCE, matchReadSql, probePairsJson } from "../worker/services/fingerprints";
import {
  benchLog,
  benchSecrets,
  buildBundle,
  floorScript,
  load,
  type Measured,
  machine,
  migrate,
  openForSeeding,
  postJson,
  registerPlatforms,
  reportInserts,
  startWorkers,
  tableBytes,
  urlOf,
  writeReport,
} from "./lib/bench";
import {
  type Chunks,
  chunksOfHex,
  distance,
  flipRandom,
  flipSpread,
  hexOfChunks,
  ORIGINS,
  Population,
  randomChunks,
  realPhotos,
  swapBits,
} from "./lib/fingerprint-population";
import { ROOT } from "./lib/local";
import { rng } from "./lib/market";
import type { Photo } from "./lib/photos";

const FINGERPRINTS = Number(process.env.BENCH_FINGERPRINTS ?? 1_000_000);
const SMALL = Math.min(1_000, FINGERPRINTS);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 8);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 32);
/** Heavier requests get fewer connections, as `npm run bench` loads its batches. */
const DIHEDRAL_CONNECTIONS = 8;
const SIXTEEN_CONNECTIONS = 4;
/** Bulk calls (100 reports × 4 photos) per layout in the layout comparison. */
/** Rounds of each layout live in the Worker (interleaved), and statements timed on each. */
const LAYOUT_ROUNDS = 2;
const STATEMENT_SAMPLES = 40;
const ALTERNATIVE = process.env.BENCH_ALTERNATIVE !== "0";
const SEED = Number(process.env.BENCH_SEED ?? 11);
const PLATFORMS = 10;
/** Synthetic fingerprints filed through the API next to the real photos. */
const API_SYNTHETIC = 450;
const MAX = MAX_EXACT_DISTANCE;
const DISTANCES = Array.from({ length: 41 }, (_, d) => d);
const PORTS = { app: 8821, floor: 8822 };
const APP = urlOf(PORTS.app);
const FLOOR = urlOf(PORTS.floor);
const STATE = join(ROOT, ".wrangler", "bench-evidence");
const OUT = join(ROOT, "dist", "bench-evidence");
const DAY = 86_400_000;

const log = benchLog("bench:evidence");
const dialect = new SQLiteAsyncDialect();
const random = rng(SEED);
const fmt = (n: number, digits = 0) =>
  n.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });

// ── the population and the reports that carry it ─────────────────────────────────────────

/** Photos of one report: 1–5, as a refund claim carries them. */
const photosPerReport = () => 1 + Math.floor(random() * 5);
const randomHex = (bytes = 32) => randomBytes(bytes).toString("hex");
const pickCategory = () => CATEGORIES[Math.floor(random() * 3)] as string;

function reportOf(photos: { hash: string; quality: number }[], caseId: string) {
  const incident = Date.now() - (2 + Math.floor(random() * 900)) * DAY;
  return {
    caseId,
    subjects: [
      { type: "phone", hash: randomHex() },
      { type: "device", hash: randomHex() },
    ],
    category: pickCategory(),
    incidentAt: new Date(incident).toISOString(),
    confirmedAt: new Date(incident + DAY).toISOString(),
    confirmation: "platform_forensics",
    amount: { value: 29_900, currency: "CNY" },
    evidence: photos.map((p) => ({ kind: "image_pdq", value: p.hash, quality: p.quality })),
  };
}

/** Cuts fingerprints `from`..`to` of the population into reports of 1–5 distinct photos. */
function reportsOf(pop: Population, from: number, to: number): [number, number][] {
  const out: [number, number][] = [];
  for (let i = from; i < to; ) {
    // A report carries a hash once (the ledger would index it once): a repeat starts the next.
    const seen = new Set<string>();
    let n = 0;
    const want = Math.min(photosPerReport(), to - i);
    while (n < want && !seen.has(pop.hex(i + n))) {
      seen.add(pop.hex(i + n));
      n++;
    }
    out.push([i, i + n]);
    i += n;
  }
  return out;
}

/**
 * Writes fingerprints `from`..`to` of the population with their reports (two subject links
 * each) into the D1 file, then their chunk rows in key order (each chunk's values counted and
 * sorted here: SQLite appends instead of seeking, which makes 16 rows a fingerprint affordable).
 */
function seed(pop: Population, from: number, to: number, platformIds: string[]): number {
  const started = performance.now();
  const db = openForSeeding(STATE);
  const insert = reportInserts(db);
  const fingerprint = db.prepare(
    "INSERT INTO fingerprints (id, report_id, platform_id, hash, quality, category, incident_at, counted) VALUES (?, ?, ?, ?, ?, ?, ?, 1)",
  );
  const chunk = db.prepare("INSERT INTO fingerprint_chunks (chunk, value, fingerprint_id) VALUES (?, ?, ?)");
  const firstId =
    (db.prepare("SELECT coalesce(max(id), 0) AS m FROM fingerprints").get() as { m: number }).m + 1;
  const now = Date.now();
  db.exec("BEGIN");
  let written = 0;
  for (const [a, b] of reportsOf(pop, from, to)) {
    const id = newId("rpt");
    const platformId = platformIds[Math.floor(random() * platformIds.length)] as string;
    const category = pickCategory();
    const incidentAt = now - (2 + Math.floor(random() * 900)) * DAY;
    const photos = Array.from({ length: b - a }, (_, k) => ({
      kind: "image_pdq",
      value: pop.hex(a + k),
      quality: pop.quality[a + k],
    }));
    const evidence = JSON.stringify(photos);
    const contentHash = createHash("sha256").update(evidence).digest("hex");
    insert.report({ id, platformId, caseId: `SEED-${a}`, category, incidentAt, evidence, contentHash, now });
    insert.link(randomHex(), id, "phone", platformId, incidentAt);
    insert.link(randomHex(), id, "device", platformId, incidentAt);
    for (const [k, p] of photos.entries()) {
      fingerprint.run(firstId + a - from + k, id, platformId, p.value, p.quality ?? 90, category, incidentAt);
    }
    written += b - a;
    if (written >= 100_000) {
      written = 0;
      db.exec("COMMIT; BEGIN");
    }
  }
  db.exec("COMMIT");
  log(`  reports, links and fingerprints: ${((performance.now() - started) / 1000).toFixed(1)} s`);
  const n = to - from;
  for (let k = 0; k < 16; k++) {
    // Counting sort of chunk k's values over the range: the rows go in in (value, id) order.
    const start = new Uint32Array(65537);
    for (let i = from; i < to; i++) {
      const v = pop.chunks[i * 16 + k] as number;
      start[v + 1] = (start[v + 1] as number) + 1;
    }
    for (let v = 0; v < 65536; v++) {
      start[v + 1] = (start[v + 1] as number) + (start[v] as number);
    }
    const order = new Uint32Array(n);
    for (let i = from; i < to; i++) {
      const v = pop.chunks[i * 16 + k] as number;
      order[start[v] as number] = i;
      start[v] = (start[v] as number) + 1;
    }
    db.exec("BEGIN");
    for (const i of order) {
      chunk.run(k, pop.chunks[i * 16 + k] as number, firstId + i - from);
    }
    db.exec("COMMIT");
  }
  db.exec("PRAGMA wal_checkpoint(TRUNCATE)");
  db.close();
  return (performance.now() - started) / 1000;
}

// ── measuring ────────────────────────────────────────────────────────────────────────────

/** How much of each measurement a stage takes: all of it at 10³, less where the route is slow. */
interface Effort {
  /** Copies per distance in the recall check (half random, half spread). */
  copies: number;
  /** Uniform random hashes asked about for false matches. */
  uniform: number;
  /** Statements sampled per request shape (single hashes; 16 photos; the largest). */
  singles: number;
  sixteens: number;
  largest: number;
}

const FULL: Effort = { copies: 16, uniform: 512, singles: 32, sixteens: 8, largest: 2 };
const LARGE: Effort = { copies: 8, uniform: 128, singles: 16, sixteens: 4, largest: 1 };

/** The match read's clock, as the route passes it: now, and the start of the retention period. */
const readAt = () => ({ now: Date.now(), since: Date.now() - Number(secrets.bindings.RETENTION_DAYS) * DAY });

interface Read {
  /** Distinct (chunk, value) pairs probed: the read expands each into 17 probes. */
  pairs: number;
  rowsRead: number;
  candidates: number;
  /** Distinct hashes within MAX of a hash asked about; -1 when the rows were not fetched. */
  matches: number;
}

async function floorSql(query: { sql: string; params: unknown[] }, results = false) {
  const res = await fetch(`${FLOOR}/sql${results ? "?results=1" : ""}`, {
    method: "POST",
    body: JSON.stringify(query),
  });
  return (await res.json()) as {
    rows: number;
    rowsRead: number;
    rowsWritten: number;
    first?: Record<string, number>;
    results?: Record<string, unknown>[];
  };
}

/** The real match statement for `hashes` through the floor Worker: rows read, candidates, matches. */
async function readOf(hashes: Chunks[], fetchRows = true): Promise<Read> {
  const json = probePairsJson([hashes.map((h) => Array.from(h))]);
  const body = await floorSql(dialect.sqlToQuery(matchReadSql(json, readAt())), fetchRows);
  let matches = -1;
  if (body.results) {
    const near = new Set<string>();
    for (const row of body.results) {
      const c = chunksOfHex(row.hash as string);
      if (hashes.some((h) => distance(h, c) <= MAX)) {
        near.add(row.hash as string);
      }
    }
    matches = near.size;
  }
  const pairs = (JSON.parse(json) as unknown[]).length;
  return { pairs, rowsRead: body.rowsRead, candidates: body.rows, matches };
}

interface Shape {
  name: string;
  reads: Read[];
}

const stat = (xs: number[]) => ({
  mean: xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length),
  max: xs.length === 0 ? 0 : Math.max(...xs),
});

interface MatchAnswer {
  photos: { index: number; matches: { distance: number }[] }[];
}

async function matchCall(token: string, photos: { pdq: string; dihedral?: string[] }[]) {
  const res = await postJson(APP, "/v1/evidence/match", token, { purpose: "refund_review", photos });
  if (res.status !== 200) {
    throw new Error(`match: ${res.status} ${JSON.stringify(res.json)}`);
  }
  return (res.json as MatchAnswer).photos.map((p) => p.matches.map((m) => m.distance).sort((a, b) => a - b));
}

/** A photo given as its hashes (its own, or its eight dihedral ones), as the route takes it. */
const photoOf = (hashes: Chunks[]) =>
  hashes.length === 1
    ? { pdq: hexOfChunks(hashes[0] as Chunks) }
    : { pdq: hexOfChunks(hashes[0] as Chunks), dihedral: hashes.map(hexOfChunks) };

/** Brute force's answer for a photo given as its hashes: the best distance per stored hash. */
function bruteForce(pop: Population, hashes: Chunks[]): number[] {
  const best = new Map<string, number>();
  for (const h of hashes) {
    for (const [hex, d] of pop.within(h, MAX)) {
      best.set(hex, Math.min(d, best.get(hex) ?? d));
    }
  }
  return [...best.values()].sort((a, b) => a - b);
}

const same = (a: number[], b: number[]) => a.length === b.length && a.every((x, i) => x === b[i]);

/** Runs `work` over `items`, two at a time (the box has two cores). */
async function pairwise<T, R>(items: T[], work: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await work(items[i] as T);
    }
  };
  await Promise.all([worker(), worker()]);
  return out;
}

/** Asks the route about photos (16 a request) and compares each answer with brute force. */
async function ask(pop: Population, token: string, photos: Chunks[][]) {
  const batches: number[][] = [];
  for (let i = 0; i < photos.length; i += 16) {
    batches.push(Array.from({ length: Math.min(16, photos.length - i) }, (_, k) => i + k));
  }
  const answers: { answer: number[]; exact: boolean }[] = new Array(photos.length);
  await pairwise(batches, async (batch) => {
    const got = await matchCall(
      token,
      batch.map((i) => photoOf(photos[i] as Chunks[])),
    );
    for (const [k, i] of batch.entries()) {
      const answer = got[k] ?? [];
      answers[i] = { answer, exact: same(answer, bruteForce(pop, photos[i] as Chunks[])) };
    }
  });
  return answers;
}

interface RecallRow {
  distance: number;
  queries: number;
  /** Copies whose stored original was answered at exactly its distance. */
  found: number;
  /** Copies for which the route answered something (the original or a sibling within 31). */
  answered: number;
  /** Answers equal to brute force over the whole population. */
  exact: number;
}

/**
 * Copies of stored fingerprints at each distance, through the route: half with random bits
 * flipped, half spread over the chunks (the worst case); a quarter of the originals are real
 * photos. Each answer is compared with brute force; within MAX the original must be answered.
 */
async function recall(
  pop: Population,
  token: string,
  realIndexes: number[],
  copies: number,
  distances = DISTANCES,
) {
  const queries = distances.flatMap((d) =>
    Array.from({ length: copies }, (_, j) => {
      const source =
        j < copies / 4 && realIndexes.length > 0
          ? (realIndexes[Math.floor(random() * realIndexes.length)] as number)
          : Math.floor(random() * pop.size);
      // A hash asked about may have up to 159 bits set (PDQ_PROBE_MAX_BITS): draw again past that.
      let copy = (j % 2 === 0 ? flipRandom : flipSpread)(pop.at(source), d, random);
      while (pdqBits(hexOfChunks(copy)) > PDQ_PROBE_MAX_BITS) {
        copy = (j % 2 === 0 ? flipRandom : flipSpread)(pop.at(source), d, random);
      }
      return { d, copy };
    }),
  );
  const answers = await ask(
    pop,
    token,
    queries.map((q) => [q.copy]),
  );
  return distances.map((d): RecallRow => {
    const of = answers.filter((_, i) => queries[i]?.d === d);
    return {
      distance: d,
      queries: of.length,
      found: of.filter((a) => a.answer.includes(d)).length,
      answered: of.filter((a) => a.answer.length > 0).length,
      exact: of.filter((a) => a.exact).length,
    };
  });
}

interface AskedRow {
  name: string;
  queries: number;
  withMatch: number;
  /** Matches answered in all. */
  matches: number;
  exact: number;
}

async function asked(pop: Population, token: string, name: string, photos: Chunks[][]): Promise<AskedRow> {
  const answers = await ask(pop, token, photos);
  return {
    name,
    queries: photos.length,
    withMatch: answers.filter((a) => a.answer.length > 0).length,
    matches: answers.reduce((n, a) => n + a.answer.length, 0),
    exact: answers.filter((a) => a.exact).length,
  };
}

/** Unrelated photos through the route: how many come back with any match, against brute force. */
async function falseMatches(pop: Population, token: string, heldOut: Photo[], uniform: number) {
  const real = heldOut.map((p) => p.dihedral.map(chunksOfHex));
  return [
    await asked(
      pop,
      token,
      "random hashes (128 bits set, as PDQ makes them)",
      Array.from({ length: uniform }, () => [randomChunks(random)]),
    ),
    await asked(
      pop,
      token,
      "real photos nobody reported",
      real.map((hs) => [hs[0] as Chunks]),
    ),
    await asked(pop, token, "real photos nobody reported, with their 8 dihedral hashes", real),
  ];
}

/** Rows read and candidates of the real statement, per request shape. */
async function shapes(pop: Population, heldOut: Photo[], effort: Effort): Promise<Shape[]> {
  const many = (n: number, make: () => Chunks[], rows = true) =>
    pairwise(
      Array.from({ length: n }, () => make()),
      (hs) => readOf(hs, rows),
    );
  const randomHashes = (n: number) => Array.from({ length: n }, () => randomChunks(random));
  const nearCopy = () => [swapBits(pop.at(Math.floor(random() * pop.size)), 4, random)];
  const real = heldOut.map((p) => p.dihedral.map(chunksOfHex));
  return [
    { name: "1 hash: random (128 bits set)", reads: await many(effort.singles, () => randomHashes(1)) },
    { name: "1 hash: 8 bits from a stored one", reads: await many(effort.singles / 2, nearCopy) },
    {
      name: "1 hash: a real photo nobody reported",
      reads: await pairwise(real, (hs) => readOf([hs[0] as Chunks])),
    },
    {
      name: "1 photo + 8 dihedral: a real photo nobody reported",
      reads: await pairwise(real, (hs) => readOf(hs)),
    },
    {
      name: "16 photos (16 hashes): random",
      reads: await many(effort.sixteens, () => randomHashes(16)),
    },
    {
      name: "16 photos × 8 dihedral (128 hashes, the largest request)",
      reads: await many(effort.largest, () => randomHashes(128), false),
    },
  ];
}

const randomHex64 = () => hexOfChunks(randomChunks(random));

/** A match body for photos of random hashes (an innocent refund; 128 bits set each), `dihedral` hashes each. */
function matchBody(photos: number, dihedral: boolean): string {
  return JSON.stringify({
    purpose: "refund_review",
    photos: Array.from({ length: photos }, () => {
      const hashes = Array.from({ length: dihedral ? 8 : 1 }, randomHex64);
      return dihedral ? { pdq: hashes[0], dihedral: hashes } : { pdq: hashes[0] };
    }),
  });
}

/** `name` loaded with the route: bodies from `pool`, one token for the run (look-ups may reuse one). */
async function loadMatch(
  name: string,
  pool: string[],
  connections: number,
  seconds = SECONDS,
): Promise<Measured> {
  const t = await tokenOfChecker();
  let k = 0;
  return load(
    name,
    APP,
    () => ({
      method: "POST",
      path: "/v1/evidence/match",
      headers: { authorization: `Bearer ${t}`, "content-type": "application/json" },
      body: pool[k++ % pool.length] as string,
    }),
    { connections, seconds, timeout: 120, log },
  );
}

const loadFloor = (label: string, seconds = SECONDS) =>
  load(`${label}: floor (SELECT 1)`, FLOOR, () => ({ method: "GET", path: "/" }), {
    connections: CONNECTIONS,
    seconds,
    log,
  });

const pool = (make: () => string) => Array.from({ length: 1024 }, make);

/** Throughput of the route for unrelated photos (random hashes: the common refund), next to the floor. */
async function loads(label: string): Promise<Measured[]> {
  return [
    await loadFloor(label),
    await loadMatch(
      `${label}: 1 photo`,
      pool(() => matchBody(1, false)),
      CONNECTIONS,
    ),
    await loadMatch(
      `${label}: 1 photo + 8 dihedral hashes`,
      pool(() => matchBody(1, true)),
      DIHEDRAL_CONNECTIONS,
    ),
    await loadMatch(
      `${label}: 16 photos`,
      pool(() => matchBody(16, false)),
      SIXTEEN_CONNECTIONS,
    ),
  ];
}

/**
 * Filing through the API with the index written in the report's batch: bulk calls of 100 reports
 * with 4 photos each (random hashes), 2 at a time for `seconds`; reports per second of wall
 * time, checked against the ledger afterwards (a bulk call answers 200 even when items fail).
 * Each call has its own token and cases (a replay would be answered from the first).
 */
async function bulkFiling(label: string, tag: string, seconds: number) {
  const calls = 100 * seconds;
  const tokens = await Promise.all(Array.from({ length: calls }, (_, k) => secrets.tokenOf(k % PLATFORMS)));
  const bodies = tokens.map((_, k) =>
    JSON.stringify({
      reports: Array.from({ length: 100 }, (_, j) =>
        reportOf(
          Array.from({ length: 4 }, () => ({ hash: randomHex64(), quality: 90 })),
          `BULK-${tag}-${k}-${j}`,
        ),
      ),
    }),
  );
  let call = 0;
  const started = performance.now();
  const measured = await load(
    `${label}: bulk filing, 100 reports × 4 photos a call`,
    APP,
    () => {
      const k = call++;
      return {
        method: "POST",
        path: "/v1/reports/bulk",
        headers: { authorization: `Bearer ${tokens[k % calls]}`, "content-type": "application/json" },
        body: bodies[k % calls] as string,
      };
    },
    { connections: 2, seconds, timeout: 120, log },
  );
  const elapsed = (performance.now() - started) / 1000;
  const created = await floorSql({
    sql: "SELECT count(*) AS n FROM reports WHERE case_id LIKE ?",
    params: [`BULK-${tag}-%`],
  });
  // Calls still in flight when the run ends are completed by the server but not counted.
  const n = created.first?.n ?? 0;
  if (n < measured.total * 100 || n > (measured.total + 2) * 100) {
    throw new Error(`bulk filing ${label}: ${n} reports created by ${measured.total} calls of 100`);
  }
  return { measured, reportsPerSecond: (measured.total * 100) / elapsed };
}

// ── the chunk index's two layouts ──────────────────────────────────────────────────────────

const WITHOUT_ROWID = "WITHOUT ROWID";
const ROWID = "rowid table + primary-key index";

const layoutOf = (db: DatabaseSync, table = "fingerprint_chunks") =>
  /WITHOUT\s+ROWID/i.test(
    (db.prepare("SELECT sql FROM sqlite_master WHERE name = ?").get(table) as { sql: string }).sql,
  )
    ? WITHOUT_ROWID
    : ROWID;

/**
 * Builds `fingerprint_chunks_alt`, the index in the other layout (copied in key order), next to
 * the live one; `swapLayouts` exchanges their names.
 */
function buildOtherLayout(db: DatabaseSync): void {
  const withoutRowid = layoutOf(db) !== WITHOUT_ROWID;
  db.exec(`CREATE TABLE fingerprint_chunks_alt (chunk integer NOT NULL, value integer NOT NULL,
      fingerprint_id integer NOT NULL, PRIMARY KEY(chunk, value, fingerprint_id))${withoutRowid ? " WITHOUT ROWID" : ""};
    INSERT INTO fingerprint_chunks_alt SELECT chunk, value, fingerprint_id FROM fingerprint_chunks
      ORDER BY chunk, value, fingerprint_id;
    PRAGMA wal_checkpoint(TRUNCATE);`);
}

function swapLayouts(db: DatabaseSync): void {
  db.exec(`ALTER TABLE fingerprint_chunks RENAME TO fingerprint_chunks_tmp;
    ALTER TABLE fingerprint_chunks_alt RENAME TO fingerprint_chunks;
    ALTER TABLE fingerprint_chunks_tmp RENAME TO fingerprint_chunks_alt;
    PRAGMA wal_checkpoint(TRUNCATE);`);
}

interface Storage {
  layout: string;
  fingerprints: number;
  bytes: number;
}

/** Bytes per fingerprint of each layout of the chunk index and of the fingerprints table. */
function storage(db: DatabaseSync): { layouts: Storage[]; fingerprintBytes: number; usedFileBytes: number } {
  const { bytes, fileBytes } = tableBytes(db);
  const free = db
    .prepare("SELECT freelist_count * page_size AS b FROM pragma_freelist_count(), pragma_page_size()")
    .get() as { b: number };
  const count = (table: string) =>
    (db.prepare(`SELECT count(*) AS n FROM ${table}`).get() as { n: number }).n;
  const fingerprints = count("fingerprints");
  const layouts = ["fingerprint_chunks", "fingerprint_chunks_alt"]
    .filter((t) => bytes.has(t))
    .map((t) => ({ layout: layoutOf(db, t), fingerprints: count(t) / 16, bytes: bytes.get(t) ?? 0 }));
  return {
    layouts,
    fingerprintBytes: (bytes.get("fingerprints") ?? 0) / fingerprints,
    usedFileBytes: fileBytes - free.b - (bytes.get("fingerprint_chunks_alt") ?? 0),
  };
}

/**
 * D1's own count of rows written (what it bills) for indexing one fingerprint, and for removing
 * it again: the chunk rows of a hash no report has, inserted and deleted through the floor.
 */
async function rowsWrittenPerFingerprint(): Promise<{ insert: number; remove: number }> {
  const id = 2_000_000_000;
  const rows = JSON.stringify(Array.from(randomChunks(random)).map((v, k) => [k, v]));
  const insert = await floorSql({
    sql: "INSERT INTO fingerprint_chunks (chunk, value, fingerprint_id) SELECT value ->> 0, value ->> 1, ? FROM json_each(?)",
    params: [id, rows],
  });
  // By key, as the Worker removes a closed report's rows (`uncountFingerprintsSql`).
  const remove = await floorSql({
    sql: "DELETE FROM fingerprint_chunks WHERE (chunk, value, fingerprint_id) IN (SELECT value ->> 0, value ->> 1, ? FROM json_each(?))",
    params: [id, rows],
  });
  return { insert: insert.rowsWritten, remove: remove.rowsWritten };
}

/**
 * Indexing and removing 1,000 fingerprints (16,000 chunk rows at random keys) in one statement,
 * on each layout's table in turn, the order alternating: milliseconds per statement.
 */
async function writeTimes(
  tables: Record<string, string>,
): Promise<Record<string, { insert: number[]; remove: number[] }>> {
  const out: Record<string, { insert: number[]; remove: number[] }> = {};
  const names = Object.keys(tables);
  for (let k = 0; k < STATEMENT_SAMPLES / 10; k++) {
    const rows = JSON.stringify(
      Array.from({ length: 1000 }, (_, i) =>
        Array.from(randomChunks(random)).map((v, c) => [c, v, 2_000_000_000 + i]),
      ).flat(),
    );
    for (const table of k % 2 === 0 ? names : [...names].reverse()) {
      const times = out[tables[table] as string] ?? { insert: [], remove: [] };
      out[tables[table] as string] = times;
      let t = performance.now();
      await floorSql({
        sql: `INSERT INTO ${table} (chunk, value, fingerprint_id) SELECT value ->> 0, value ->> 1, value ->> 2 FROM json_each(?)`,
        params: [rows],
      });
      times.insert.push(performance.now() - t);
      t = performance.now();
      await floorSql({
        sql: `DELETE FROM ${table} WHERE (chunk, value, fingerprint_id) IN (SELECT value ->> 0, value ->> 1, value ->> 2 FROM json_each(?))`,
        params: [rows],
      });
      times.remove.push(performance.now() - t);
    }
  }
  return out;
}

// ── the run ──────────────────────────────────────────────────────────────────────────────

let secrets: Awaited<ReturnType<typeof benchSecrets>>;
/** The platform that asks (any registered platform may: the answer names no reporter). */
const tokenOfChecker = () => secrets.tokenOf(0);

interface Stage {
  label: string;
  layout: string;
  fingerprints: number;
  shapes: Shape[];
  recall?: RecallRow[];
  asked: AskedRow[];
  loads: Measured[];
  /** One call of the largest request through the route, ms. */
  largestMs?: number;
}

interface LayoutRound {
  layout: string;
  written?: { insert: number; remove: number };
  loads: Measured[];
  reportsPerSecond: number;
  missed?: number;
}

/**
 * The match statement for one random hash, run by the floor on each layout's table in turn
 * (the same hash on both, the order alternating), one at a time: rows read and milliseconds.
 */
async function statementTimes(tables: Record<string, string>): Promise<Record<string, number[]>> {
  const out: Record<string, number[]> = {};
  const rows: Record<string, number[]> = {};
  const names = Object.keys(tables);
  for (let k = 0; k < STATEMENT_SAMPLES; k++) {
    const json = probePairsJson([[Array.from(randomChunks(random))]]);
    const query = dialect.sqlToQuery(matchReadSql(json, readAt()));
    for (const table of k % 2 === 0 ? names : [...names].reverse()) {
      const layout = tables[table] as string;
      const t = performance.now();
      const r = await floorSql({ ...query, sql: query.sql.replaceAll("fingerprint_chunks", table) });
      out[layout] = [...(out[layout] ?? []), performance.now() - t];
      rows[`${layout} rows`] = [...(rows[`${layout} rows`] ?? []), r.rowsRead];
    }
  }
  return { ...out, ...rows };
}

async function main() {
  const startedAt = Date.now();
  const timings: string[] = [];
  const timed = async <T>(what: string, work: () => Promise<T> | T): Promise<T> => {
    const t = performance.now();
    const result = await work();
    timings.push(`${what} ${((performance.now() - t) / 1000).toFixed(0)} s`);
    log(`${what}: ${((performance.now() - t) / 1000).toFixed(1)} s`);
    return result;
  };
  const script = buildBundle(OUT, log);
  const bundleBytes = readFileSync(script).byteLength;
  rmSync(STATE, { recursive: true, force: true });
  mkdirSync(STATE, { recursive: true });
  secrets = await benchSecrets(PLATFORMS, {
    LEDGER_PEPPER: randomBytes(32).toString("base64url"),
    LOOKUP_DAILY_CAP: "100000000",
    MAX_MATCH_DISTANCE: String(MAX),
  });
  const platformIds = secrets.platforms.map((p) => p.id);
  const start = () =>
    startWorkers({ state: STATE, script, floor: floorScript(""), bindings: secrets.bindings, ports: PORTS });
  const uptimeBefore = machine();

  // The population: real photos first (filed through the API), then synthetic.
  const real = await timed("hashing the real photos and their edits", () => realPhotos(SEED));
  const pop = new Population(Math.max(FINGERPRINTS, real.inSet.length + API_SYNTHETIC + 1));
  for (const r of real.inSet) {
    pop.push(chunksOfHex(r.hash), "real", r.quality);
  }
  const realIndexes = real.inSet.map((_, i) => i);
  pop.grow(Math.min(SMALL, pop.size + API_SYNTHETIC), random);
  const viaApi = pop.size;

  // Phase 1: through the API.
  let mf = await start();
  await migrate(mf);
  await registerPlatforms(APP, secrets);
  const apiReports = await timed("filing reports through the API", async () => {
    const reports = reportsOf(pop, 0, viaApi).map(([a, b], n) =>
      reportOf(
        Array.from({ length: b - a }, (_, k) => ({
          hash: pop.hex(a + k),
          quality: pop.quality[a + k] as number,
        })),
        `API-${n}`,
      ),
    );
    for (let i = 0; i < reports.length; i += 100) {
      const res = await postJson(APP, "/v1/reports/bulk", await secrets.tokenOf((i / 100) % PLATFORMS), {
        reports: reports.slice(i, i + 100),
      });
      const results = (res.json as { results?: { status: number }[] }).results ?? [];
      if (res.status !== 200 || results.some((r) => r.status !== 201)) {
        throw new Error(`bulk: ${res.status} ${JSON.stringify(res.json).slice(0, 500)}`);
      }
    }
    return reports.length;
  });
  const indexed = await floorSql({ sql: "SELECT count(*) AS n FROM fingerprint_chunks", params: [] });
  if (indexed.first?.n !== viaApi * 16) {
    throw new Error(`the API indexed ${indexed.first?.n} chunk rows for ${viaApi} fingerprints`);
  }
  await mf.dispose();

  const stages: Stage[] = [];
  const measure = async (
    label: string,
    layout: string,
    effort: Effort,
    originals: boolean,
  ): Promise<Stage> => {
    mf = await start();
    const token = await tokenOfChecker();
    const stage: Stage = {
      label,
      layout,
      fingerprints: pop.size,
      shapes: await timed(`${label}: rows read`, () => shapes(pop, real.heldOut, effort)),
      asked: [],
      loads: [],
    };
    stage.recall = await timed(`${label}: recall`, () => recall(pop, token, realIndexes, effort.copies));
    stage.asked = await timed(`${label}: false matches`, () =>
      falseMatches(pop, token, real.heldOut, effort.uniform),
    );
    if (originals) {
      // Real copies: each original asked with its 8 dihedral hashes finds its edits within 31.
      stage.asked.push(
        await asked(
          pop,
          token,
          "real originals in the set, with their 8 dihedral hashes",
          real.originals.map((o) => o.dihedral.map(chunksOfHex)),
        ),
      );
    }
    const largest = Array.from({ length: 16 }, () => Array.from({ length: 8 }, () => randomChunks(random)));
    const t = performance.now();
    await matchCall(token, largest.map(photoOf));
    stage.largestMs = performance.now() - t;
    stage.loads = await timed(`${label}: load`, () => loads(label));
    await mf.dispose();
    stages.push(stage);
    return stage;
  };

  // Phase 2: 10³, then 10⁶, straight into the file.
  pop.grow(SMALL, random);
  await timed(`seeding to ${fmt(SMALL)}`, () => seed(pop, viaApi, SMALL, platformIds));
  let db = openForSeeding(STATE);
  const migrated = layoutOf(db);
  db.close();
  await measure(`${fmt(SMALL)} fingerprints`, migrated, FULL, true);
  if (FINGERPRINTS > SMALL) {
    await timed(`generating ${fmt(FINGERPRINTS - SMALL)} fingerprints`, () => pop.grow(FINGERPRINTS, random));
    await timed(`seeding to ${fmt(FINGERPRINTS)}`, () => seed(pop, SMALL, FINGERPRINTS, platformIds));
    await measure(`${fmt(FINGERPRINTS)} fingerprints`, migrated, LARGE, false);
  }

  // Phase 3: the chunk index in both layouts, side by side; the statement timed on each in
  // turn, then each one live in the Worker in turn (A, B, A, B: a neighbour's load lands on both).
  db = openForSeeding(STATE);
  let disk: ReturnType<typeof storage> | undefined;
  const rounds: LayoutRound[] = [];
  let timings1: Record<string, number[]> = {};
  let writes: Awaited<ReturnType<typeof writeTimes>> = {};
  if (ALTERNATIVE) {
    await timed("building the other layout of the chunk index", () => buildOtherLayout(db));
    disk = await timed("dbstat", () => storage(db));
    const tables = {
      fingerprint_chunks: layoutOf(db),
      fingerprint_chunks_alt: layoutOf(db, "fingerprint_chunks_alt"),
    };
    for (let turn = 0; turn < 2 * LAYOUT_ROUNDS; turn++) {
      if (turn > 0) {
        swapLayouts(db);
      }
      const layout = layoutOf(db);
      db.close();
      mf = await start();
      if (turn === 0) {
        timings1 = await timed("timing the statement on both layouts", () => statementTimes(tables));
        writes = await timed("timing index writes on both layouts", () => writeTimes(tables));
      }
      const label = `${fmt(pop.size)} fingerprints, ${layout}, round ${Math.floor(turn / 2) + 1}`;
      const first = turn < 2;
      const written = first ? await rowsWrittenPerFingerprint() : undefined;
      const check = first ? await recall(pop, await tokenOfChecker(), realIndexes, 16, [MAX]) : undefined;
      const floor = await loadFloor(label, SECONDS / 2);
      const one = await loadMatch(
        `${label}: 1 photo`,
        pool(() => matchBody(1, false)),
        CONNECTIONS,
        SECONDS / 2,
      );
      const bulk = await bulkFiling(label, `r${turn}`, SECONDS / 2);
      rounds.push({
        layout,
        written,
        loads: [floor, one, bulk.measured],
        reportsPerSecond: bulk.reportsPerSecond,
        missed: check ? (check[0]?.queries ?? 0) - (check[0]?.found ?? 0) : undefined,
      });
      await mf.dispose();
      db = openForSeeding(STATE);
    }
    // Leave the file as migrated.
    if (layoutOf(db) !== migrated) {
      swapLayouts(db);
    }
  } else {
    disk = await timed("dbstat", () => storage(db));
  }
  db.close();

  // Report.
  const lines: string[] = [];
  lines.push(`Run ${new Date().toISOString()} on ${uptimeBefore} (before); ${machine()} (after)`);
  lines.push(
    `${fmt(pop.size)} fingerprints: ${fmt(viaApi)} in ${apiReports} reports filed through the API (${real.inSet.length} of them real photos and their edits), the rest seeded; ${SECONDS} s per route; bundle ${(bundleBytes / 1024).toFixed(0)} KiB; MAX_MATCH_DISTANCE ${MAX}; chunk index as migrated: ${migrated}.`,
  );
  const origins = ORIGINS.map(
    (o, i) => `${o} ${fmt(Array.from(pop.origin.subarray(0, pop.size)).filter((x) => x === i).length)}`,
  );
  lines.push(`Population: ${origins.join(", ")}.`);
  lines.push("");
  lines.push(
    "| fingerprints | chunk index | route | connections | req/s | p50 ms | p99 ms | × SELECT 1 | non-2xx |",
  );
  lines.push("| ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |");
  const loadRow = (fingerprints: number, layout: string, loads: Measured[]) => {
    const floor = loads[0]?.rps || 1;
    for (const m of loads) {
      lines.push(
        `| ${fmt(fingerprints)} | ${layout} | ${m.name.replace(/^.*: /, "")} | ${connectionsOf(m.name)} | ${m.rps.toFixed(m.rps < 10 ? 1 : 0)} | ${m.p50} | ${m.p99} | ${(m.rps / floor).toFixed(3)} | ${m.non2xx + m.errors} |`,
      );
    }
  };
  for (const s of stages) {
    loadRow(s.fingerprints, s.layout, s.loads);
  }
  for (const [i, r] of rounds.entries()) {
    loadRow(pop.size, `${r.layout} (layout round ${Math.floor(i / 2) + 1})`, r.loads);
  }
  lines.push("");
  lines.push(
    `Largest request (16 photos × 8 dihedral hashes, random) through the route, one call: ${stages.map((s) => `${fmt(s.fingerprints)}: ${fmt(s.largestMs ?? 0)} ms`).join("; ")}.`,
  );
  lines.push("");
  lines.push(
    "| fingerprints | request | statements | rows read mean | rows read max | candidates mean | candidates max | within 31 (mean) | read and discarded (mean) | rows read per candidate beyond 18 per probed pair |",
  );
  lines.push("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
  const shapeRow = (fingerprints: number, sh: Shape) => {
    const rows = stat(sh.reads.map((r) => r.rowsRead));
    const cands = stat(sh.reads.map((r) => r.candidates));
    const fetched = sh.reads.filter((r) => r.matches >= 0);
    const matches = stat(fetched.map((r) => r.matches));
    const discarded = stat(fetched.map((r) => r.candidates - r.matches));
    const beyond = sh.reads.reduce((n, r) => n + r.rowsRead - 18 * r.pairs, 0);
    const perCandidate =
      beyond /
      Math.max(
        1,
        sh.reads.reduce((n, r) => n + r.candidates, 0),
      );
    lines.push(
      `| ${fmt(fingerprints)} | ${sh.name} | ${sh.reads.length} | ${fmt(rows.mean)} | ${fmt(rows.max)} | ${fmt(cands.mean, 1)} | ${fmt(cands.max)} | ${fetched.length ? fmt(matches.mean, 2) : "–"} | ${fetched.length ? fmt(discarded.mean, 1) : "–"} | ${perCandidate.toFixed(2)} |`,
    );
  };
  for (const s of stages) {
    for (const sh of s.shapes) {
      shapeRow(s.fingerprints, sh);
    }
  }
  lines.push("");
  lines.push(
    `| distance | ${stages.map((s) => `found at ${fmt(s.fingerprints)} | anything answered | = brute force`).join(" | ")} |`,
  );
  lines.push(`| ---: | ${stages.map(() => "---: | ---: | ---:").join(" | ")} |`);
  for (const d of DISTANCES) {
    const cells = stages.map((s) => {
      const r = s.recall?.find((x) => x.distance === d) as RecallRow;
      return `${d <= MAX ? `${r.found}/${r.queries}` : `(${r.found} at ${d})`} | ${r.answered}/${r.queries} | ${r.exact}/${r.queries}`;
    });
    lines.push(`| ${d} | ${cells.join(" | ")} |`);
  }
  lines.push("");
  lines.push(
    "| fingerprints | photos asked about | queries | with any match within 31 | matches | answers = brute force |",
  );
  lines.push("| ---: | --- | ---: | ---: | ---: | ---: |");
  for (const s of stages) {
    for (const f of s.asked) {
      lines.push(
        `| ${fmt(s.fingerprints)} | ${f.name} | ${f.queries} | ${f.withMatch} | ${f.matches} | ${f.exact}/${f.queries} |`,
      );
    }
  }
  const near = real.inSet.filter((r) => r.kind !== "original");
  lines.push("");
  lines.push(
    `Real copies in the set (edits, shipped copies and turns of the ${real.originals.length} originals): ${near.length}, of which ${near.filter((r) => r.toSource <= MAX).length} within ${MAX} of their original's nearest dihedral hash (PDQ's own reach; \`npm run figures\` draws the distances).`,
  );
  if (disk) {
    lines.push("");
    lines.push(
      "| chunk index | fingerprints | B per fingerprint | rows written to index one fingerprint (D1) | to remove it | match statement, 1 random hash: rows read (mean) | ms (median) | ms (mean) | index 1,000 fingerprints, ms (median) | remove them, ms (median) | 1 photo req/s (rounds) | × SELECT 1 (mean) | bulk filing reports/s (rounds) | copies at 31 missed |",
    );
    lines.push(
      "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | --- | ---: |",
    );
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;
    for (const l of disk.layouts) {
      const mine = rounds.filter((x) => x.layout === l.layout);
      const first = mine.find((x) => x.written);
      const ms = timings1[l.layout] ?? [];
      const ratio = stat(mine.map((x) => (x.loads[1]?.rps ?? 0) / (x.loads[0]?.rps || 1))).mean;
      lines.push(
        `| ${l.layout} | ${fmt(l.fingerprints)} | ${fmt(l.bytes / l.fingerprints)} | ${first?.written?.insert ?? "–"} | ${first?.written?.remove ?? "–"} | ${fmt(stat(timings1[`${l.layout} rows`] ?? []).mean)} | ${median(ms).toFixed(1)} | ${stat(ms).mean.toFixed(1)} | ${median(writes[l.layout]?.insert ?? []).toFixed(0)} | ${median(writes[l.layout]?.remove ?? []).toFixed(0)} | ${mine.map((x) => x.loads[1]?.rps.toFixed(1)).join(" / ")} | ${ratio.toFixed(4)} | ${mine.map((x) => fmt(x.reportsPerSecond)).join(" / ")} | ${first?.missed ?? "–"} |`,
      );
    }
    lines.push("");
    lines.push(
      `Fingerprints table: ${fmt(disk.fingerprintBytes)} B per fingerprint (its unique index included). Database: ${fmt(disk.usedFileBytes / 2 ** 20)} MiB of used pages with the index as migrated.`,
    );
  }
  lines.push("");
  lines.push(`Total ${((Date.now() - startedAt) / 1000).toFixed(0)} s: ${timings.join(", ")}.`);
  writeReport("evidence.md", lines.join("\n"));
}

function connectionsOf(name: string): number {
  if (name.endsWith("16 photos")) {
    return SIXTEEN_CONNECTIONS;
  }
  if (name.endsWith("dihedral hashes")) {
    return DIHEDRAL_CONNECTIONS;
  }
  return name.includes("bulk filing") ? 2 : CONNECTIONS;
}

main().catch((err: Error) => {
  console.error(`bench:evidence: ${err.stack ?? err.message}`);
  process.exit(1);
});
