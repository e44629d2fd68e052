/**
 * Image fingerprints (issue 11, points 3–5): `image_pdq` evidence on reports, indexed in
 * `fingerprint_chunks`, and `POST /v1/evidence/match` at refund time. The index must be exact
 * (no miss against brute force within distance 31), forget closed reports, read a bounded number
 * of rows whatever else the ledger holds, and the match must be logged like a score query while
 * writing nothing to the ledger. `image_provenance` evidence (what `client/provenance.ts` reads
 * from a photo) is stored and shown with the report, strictly validated, and indexes nothing.
 */
import { env } from "cloudflare:workers";
import type { SQL } from "drizzle-orm";
import { SQLiteAsyncDialect } from "drizzle-orm/sqlite-core";
import fc from "fast-check";
import { beforeAll, describe, expect, it } from "vitest";
import { decodeImage } from "../client/images";
import { hammingDistance, pdqHash } from "../client/pdq";
import { readProvenance } from "../client/provenance";
import { envSchema, loadConfig } from "../worker/env";
import { chunkDistance, chunksOf, MAX_EXACT_DISTANCE, matchReadSql } from "../worker/services/fingerprints";
import { scoreReadSql, scoreWithPhotosReadSql } from "../worker/services/scores";
import {
  adminToken,
  auditRows,
  callJson,
  countRows,
  createReport,
  daysAgo,
  errorPaths,
  flipBits as flip,
  logCount,
  newBuyer,
  newPlatform,
  openDispute,
  queryPlan,
  randomBits,
  randomPdqHash as randomHash,
  reportBody,
  scoreRowsBound,
  type TestPlatform,
} from "./harness";
import {
  aigcElementXmp,
  jpegExif,
  jpegJumbf,
  jpegXmp,
  manifest,
  manifestStore,
  spliceJpeg,
  TRAINED,
} from "./provenance-fixtures";

interface MatchAnswer {
  maxDistance: number;
  photos: {
    index: number;
    matches: {
      distance: number;
      platforms: number;
      categories: string[];
      firstSeenAt: string;
      lastSeenAt: string;
    }[];
  }[];
}

const DAY = 86_400_000;

/** A photo with eight dihedral hashes, its own first, and `hash` at position `at`. */
function ownDihedral(at: number, hash: string): { pdq: string; dihedral: string[] } {
  const dihedral = Array.from({ length: 8 }, randomHash);
  dihedral[at] = hash;
  return { pdq: dihedral[0] as string, dihedral };
}

/** The best distance between any of a photo's eight hashes and a stored one. */
function nearest(dihedral: readonly string[], stored: string): number {
  return Math.min(...dihedral.map((h) => hammingDistance(h, stored)));
}

const pdq = (value: string, quality = 90) => ({ kind: "image_pdq", value, quality });

async function report(p: TestPlatform, evidence: unknown[], overrides: Record<string, unknown> = {}) {
  const res = await callJson<{ id: string; caseId: string }>("/v1/reports", {
    token: await p.token(),
    body: reportBody(await newBuyer(), { evidence, ...overrides }),
  });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return res.body;
}

async function match(p: TestPlatform, photos: unknown[], purpose = "refund_review") {
  const res = await callJson<MatchAnswer>("/v1/evidence/match", {
    token: await p.token(),
    body: { purpose, photos },
  });
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res;
}

/** Every counted fingerprint within `max` of `query`, by brute force over the whole table. */
async function bruteForce(query: string, max = 31): Promise<number[]> {
  const { results } = await env.DB.prepare("SELECT DISTINCT hash FROM fingerprints WHERE counted = 1").all<{
    hash: string;
  }>();
  const q = chunksOf(query);
  return results
    .map((r) => chunkDistance(q, chunksOf(r.hash)))
    .filter((d) => d <= max)
    .sort((a, b) => a - b);
}

let reporter: TestPlatform;
let checker: TestPlatform;

beforeAll(async () => {
  [reporter, checker] = await Promise.all([newPlatform(), newPlatform()]);
});

describe("image_pdq evidence on reports", () => {
  it("quality ≤ 49 is refused with 422 naming the item, and nothing is written", async () => {
    const hash = randomHash();
    const body = reportBody(await newBuyer(), { evidence: [pdq(randomHash()), pdq(hash, 49)] });
    const res = await callJson<{ detail: string; errors: { path: string; message: string }[] }>(
      "/v1/reports",
      {
        token: await reporter.token(),
        body,
      },
    );
    expect(res.status).toBe(422);
    expect(errorPaths(res.body)).toEqual(["evidence.1.quality"]);
    expect(res.body.errors[0]?.message).toMatch(/quality below 50/);
    expect(await countRows("reports", "case_id = ?", body.caseId)).toBe(0);
    expect(await countRows("fingerprints", "hash = ?", hash)).toBe(0);
  });

  it("a hash with fewer than 96 or more than 128 bits set is refused: no photo of quality ≥ 50 has one", async () => {
    const bits = (n: number) => flip("0".repeat(64), randomBits(n));
    const body = reportBody(await newBuyer(), {
      evidence: [pdq(bits(96)), pdq(bits(95), 100), pdq(bits(128)), pdq(bits(129)), pdq("0".repeat(64), 100)],
    });
    const res = await callJson<{ errors: { path: string; message: string }[] }>("/v1/reports", {
      token: await reporter.token(),
      body,
    });
    expect(res.status).toBe(422);
    expect(errorPaths(res.body)).toEqual(["evidence.1.value", "evidence.3.value", "evidence.4.value"]);
    expect(res.body.errors[0]?.message).toMatch(/96–128 bits set/);
    expect(await countRows("reports", "case_id = ?", body.caseId)).toBe(0);
  });

  it("a hash that is not 64 lower-case hex digits is refused", async () => {
    const res = await callJson("/v1/reports", {
      token: await reporter.token(),
      body: reportBody(await newBuyer(), { evidence: [pdq(randomHash().toUpperCase())] }),
    });
    expect(res.status).toBe(422);
    expect(errorPaths(res.body)).toEqual(["evidence.0.value"]);
  });

  it("an idempotent replay indexes nothing again", async () => {
    const hash = randomHash();
    const body = reportBody(await newBuyer(), { evidence: [pdq(hash)] });
    const token = await reporter.token();
    expect((await callJson("/v1/reports", { token, body })).status).toBe(201);
    expect((await callJson("/v1/reports", { token: await reporter.token(), body })).status).toBe(200);
    expect(await countRows("fingerprints", "hash = ?", hash)).toBe(1);
  });

  it("chunkDistance counts the differing bits exactly (against a bit-by-bit count)", () => {
    const chunk = fc.integer({ min: 0, max: 0xffff });
    fc.assert(
      fc.property(
        fc.array(chunk, { minLength: 16, maxLength: 16 }),
        fc.array(chunk, { minLength: 16, maxLength: 16 }),
        (a, b) => {
          let bits = 0;
          for (let k = 0; k < 16; k++) {
            for (let i = 0; i < 16; i++) {
              bits += (((a[k] as number) ^ (b[k] as number)) >> i) & 1;
            }
          }
          expect(chunkDistance(a, b)).toBe(bits);
        },
      ),
      { numRuns: 2000 },
    );
    expect(chunkDistance(Array(16).fill(0), Array(16).fill(0xffff))).toBe(256);
  });

  it("MAX_MATCH_DISTANCE is 0–31, the range the index answers without misses", () => {
    const limit = envSchema.shape.MAX_MATCH_DISTANCE;
    expect(limit.parse(undefined)).toBe(MAX_EXACT_DISTANCE);
    expect(limit.parse("0")).toBe(0);
    expect(limit.safeParse(String(MAX_EXACT_DISTANCE + 1)).success).toBe(false);
  });

  it("a report's fingerprints are indexed once each in its own write (16 chunks each)", async () => {
    const [a, b] = [randomHash(), randomHash()];
    const { id } = await report(reporter, [pdq(a), pdq(b, 60), pdq(a), { kind: "ai_label", value: "C2PA" }]);
    expect(await countRows("fingerprints", "report_id = ? AND counted = 1", id)).toBe(2);
    expect(
      await countRows(
        "fingerprint_chunks",
        "fingerprint_id IN (SELECT id FROM fingerprints WHERE report_id = ?)",
        id,
      ),
    ).toBe(32);
    const chunks = await env.DB.prepare(
      `SELECT c.chunk, c.value FROM fingerprint_chunks c JOIN fingerprints f ON f.id = c.fingerprint_id
       WHERE f.report_id = ? AND f.hash = ? ORDER BY c.chunk`,
    )
      .bind(id, a)
      .all<{ chunk: number; value: number }>();
    expect(chunks.results.map((r) => r.value)).toEqual(chunksOf(a));
  });
});

/** What `npm run fingerprint` prints as `provenance` for an AI picture with every indicator. */
function aiProvenance() {
  const base64 = env.TEST_IMAGES["pdq/wee.jpg"] ?? "";
  const jpeg = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
  const store = manifestStore(
    manifest({
      actions: [[{ action: "c2pa.created", digitalSourceType: TRAINED }]],
      claim: { claim_generator_info: { name: "Example Image Generator", version: "2.1" } },
    }),
  );
  const photo = spliceJpeg(
    jpeg,
    jpegExif({
      make: "Canon",
      model: "EOS R5",
      software: "Generator Export 1.2",
      dateTimeOriginal: "2026:10:02 10:00:00",
    }),
    jpegXmp(
      aigcElementXmp({
        Label: "1",
        ContentProducer: "001191110108MA01KP2T5U00000",
        ProduceID: "c4c8c106_8ffd74cc",
      }),
    ),
    jpegJumbf(store),
  );
  return readProvenance(photo);
}

const provenance = (overrides: Record<string, unknown> = {}) => ({
  kind: "image_provenance",
  ...aiProvenance(),
  ...overrides,
});

describe("image_provenance evidence on reports", () => {
  it("the fingerprint tool's provenance is stored as it was sent and shown with the report, indexing nothing", async () => {
    const read = aiProvenance();
    expect(read.c2pa.aiGenerated).toBe(true);
    expect(read.aiLabel?.label).toBe("1");
    expect(read.exif?.make).toBe("Canon");
    const item = { kind: "image_provenance", ...read };
    const hash = randomHash();
    const { id } = await report(reporter, [pdq(hash), item]);
    const shown = await callJson<{ evidence: unknown[] }>(`/v1/reports/${id}`, {
      token: await reporter.token(),
    });
    expect(shown.status).toBe(200);
    expect(shown.body.evidence).toEqual([pdq(hash), item]);
    expect(await countRows("fingerprints", "report_id = ?", id)).toBe(1);
    const listed = await callJson<{ items: { id: string; evidence: unknown[] }[] }>("/v1/reports?limit=5", {
      token: await reporter.token(),
    });
    expect(listed.body.items.find((r) => r.id === id)?.evidence).toEqual([pdq(hash), item]);
  });

  it("a photo with none of it is evidence too: C2PA absent, no label, no EXIF", async () => {
    const none = {
      kind: "image_provenance",
      c2pa: { present: false, digitalSourceTypes: [], aiGenerated: false, claimGenerator: null },
      aiLabel: null,
      exif: null,
    };
    const { id } = await report(reporter, [none]);
    const shown = await callJson<{ evidence: unknown[] }>(`/v1/reports/${id}`, {
      token: await reporter.token(),
    });
    expect(shown.body.evidence).toEqual([none]);
  });

  it("bad provenance is a 422 naming the field, and nothing is written", async () => {
    const good = aiProvenance();
    const cases: [unknown, string][] = [
      [provenance({ c2pa: { ...good.c2pa, aiGenerated: false } }), "evidence.1.c2pa.aiGenerated"],
      [
        provenance({
          c2pa: { present: false, digitalSourceTypes: [TRAINED], aiGenerated: true, claimGenerator: null },
        }),
        "evidence.1.c2pa.present",
      ],
      [
        provenance({ c2pa: { ...good.c2pa, digitalSourceTypes: [TRAINED, TRAINED] } }),
        "evidence.1.c2pa.digitalSourceTypes",
      ],
      [
        provenance({ c2pa: { ...good.c2pa, digitalSourceTypes: ["not a uri"] } }),
        "evidence.1.c2pa.digitalSourceTypes.0",
      ],
      [provenance({ c2pa: { ...good.c2pa, verified: true } }), "evidence.1.c2pa"],
      [provenance({ exif: { ...good.exif, make: "x".repeat(65) } }), "evidence.1.exif.make"],
      [provenance({ exif: { ...good.exif, software: "call 13912345678" } }), "evidence.1.exif.software"],
      [provenance({ exif: { ...good.exif, model: " padded" } }), "evidence.1.exif.model"],
      [
        provenance({ exif: { ...good.exif, dateTimeOriginal: "2026:10:02 10:00:00" } }),
        "evidence.1.exif.dateTimeOriginal",
      ],
      [
        provenance({ exif: { ...good.exif, dateTimeOriginal: "2026-02-30T10:00:00" } }),
        "evidence.1.exif.dateTimeOriginal",
      ],
      [provenance({ aiLabel: { ...good.aiLabel, produceId: "has space" } }), "evidence.1.aiLabel.produceId"],
      [
        provenance({ aiLabel: { ...good.aiLabel, reservedCode1: "a".repeat(257) } }),
        "evidence.1.aiLabel.reservedCode1",
      ],
      [provenance({ aiLabel: { label: "1" } }), "evidence.1.aiLabel.contentProducer"],
      [provenance({ exif: undefined }), "evidence.1.exif"],
    ];
    for (const [item, path] of cases) {
      const hash = randomHash();
      const body = reportBody(await newBuyer(), { evidence: [pdq(hash), item] });
      const res = await callJson("/v1/reports", { token: await reporter.token(), body });
      expect(res.status, JSON.stringify(item)).toBe(422);
      expect(errorPaths(res.body), path).toContain(path);
      expect(await countRows("reports", "case_id = ?", body.caseId)).toBe(0);
      expect(await countRows("fingerprints", "hash = ?", hash)).toBe(0);
    }
  });

  it("counts in the 16 evidence items a report may carry", async () => {
    const sixteen = Array.from({ length: 15 }, () => pdq(randomHash()));
    expect(
      (
        await callJson("/v1/reports", {
          token: await reporter.token(),
          body: reportBody(await newBuyer(), { evidence: [...sixteen, provenance()] }),
        })
      ).status,
    ).toBe(201);
    const res = await callJson("/v1/reports", {
      token: await reporter.token(),
      body: reportBody(await newBuyer(), { evidence: [...sixteen, pdq(randomHash()), provenance()] }),
    });
    expect(res.status).toBe(422);
    expect(errorPaths(res.body)).toEqual(["evidence"]);
  });

  it("is taken in bulk, item by item: a bad one is refused at its index, the other written", async () => {
    const bad = provenance({
      exif: { make: "x".repeat(65), model: null, software: null, dateTimeOriginal: null },
    });
    const reports = [
      reportBody(await newBuyer(), { evidence: [provenance()] }),
      reportBody(await newBuyer(), { evidence: [bad] }),
    ];
    const res = await callJson<{ results: { index: number; status: number; problem?: unknown }[] }>(
      "/v1/reports/bulk",
      { token: await reporter.token(), body: { reports } },
    );
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body.results.map((r) => r.status)).toEqual([201, 422]);
    expect(errorPaths(res.body.results[1]?.problem)).toEqual(["evidence.0.exif.make"]);
    expect(await countRows("reports", "case_id = ?", reports[0]?.caseId)).toBe(1);
    expect(await countRows("reports", "case_id = ?", reports[1]?.caseId)).toBe(0);
  });

  it("is described in the OpenAPI document as one of the evidence kinds", async () => {
    const doc = await callJson<{
      components: { schemas: Record<string, { properties?: Record<string, unknown> }> };
    }>("/openapi.json");
    const schema = doc.body.components.schemas.ProvenanceEvidence;
    expect(Object.keys(schema?.properties ?? {})).toEqual(["kind", "c2pa", "aiLabel", "exif"]);
    expect(JSON.stringify(doc.body.components.schemas.Evidence)).toContain(
      "#/components/schemas/ProvenanceEvidence",
    );
  });
});

describe("POST /v1/evidence/match", () => {
  it("another platform finds an edited copy (≤ 31 bits flipped) with its distance, and nothing about the case", async () => {
    const hash = randomHash();
    const { id, caseId } = await report(reporter, [pdq(hash)], { category: "edited_image" });
    for (const n of [0, 1, 17, 31]) {
      const res = await match(checker, [{ pdq: flip(hash, randomBits(n)) }]);
      expect(res.body.maxDistance).toBe(31);
      expect(res.body.photos).toHaveLength(1);
      const [photo] = res.body.photos;
      expect(photo?.index).toBe(0);
      expect(photo?.matches).toHaveLength(1);
      expect(photo?.matches[0]).toMatchObject({ distance: n, platforms: 1, categories: ["edited_image"] });
      expect(photo?.matches[0]?.firstSeenAt).toBe(photo?.matches[0]?.lastSeenAt);
      const text = JSON.stringify(res.body);
      for (const secret of [id, caseId, reporter.id, hash]) {
        expect(text).not.toContain(secret);
      }
    }
  });

  it("end to end with real photos: one platform reports the original's fingerprint, another finds its blurred, resized and turned copies, and not a different photo", async () => {
    // Fingerprinted here, in the Worker runtime, with the platform-side code (client/), from the
    // fixture photos of Meta's ThreatExchange (test/fixtures/pdq).
    const fingerprint = (path: string) => {
      const bytes = Uint8Array.from(atob(env.TEST_IMAGES[path] ?? ""), (c) => c.charCodeAt(0));
      expect(bytes.length, path).toBeGreaterThan(0);
      return pdqHash(decodeImage(bytes).pixels);
    };
    const original = fingerprint("pdq/bridge-original.jpg");
    const a = await newPlatform();
    await report(a, [pdq(original.hash, original.quality)], { category: "edited_image" });
    const b = await newPlatform();
    for (const copy of [
      "pdq/variants/blur-a-little.jpg",
      "pdq/variants/square-256x256.jpg",
      "pdq/bridge-rotate-90.jpg",
    ]) {
      const photo = fingerprint(copy);
      const res = await match(b, [{ pdq: photo.hash, dihedral: photo.dihedral }]);
      const found = res.body.photos[0]?.matches.find(
        (m) => m.distance === nearest(photo.dihedral, original.hash),
      );
      expect(found, `${copy}: ${JSON.stringify(res.body)}`).toMatchObject({
        platforms: 1,
        categories: ["edited_image"],
      });
      expect(found?.distance).toBeLessThanOrEqual(31);
    }
    const other = fingerprint("pdq/q0003.jpg");
    const none = await match(b, [{ pdq: other.hash, dihedral: other.dihedral }]);
    expect(nearest(other.dihedral, original.hash)).toBeGreaterThan(31);
    expect(none.body.photos[0]?.matches).toEqual([]);
  });

  it("32 flipped bits are not a match", async () => {
    const hash = randomHash();
    await report(reporter, [pdq(hash)]);
    const res = await match(checker, [{ pdq: flip(hash, randomBits(32)) }]);
    expect(res.body.photos[0]?.matches).toEqual([]);
  });

  it("counts distinct platforms per hash and answers each photo by its index", async () => {
    const hash = randomHash();
    const third = await newPlatform();
    await report(reporter, [pdq(hash)], { category: "reused_image" });
    await report(third, [pdq(hash)], { category: "ai_generated_image" });
    const res = await match(checker, [{ pdq: randomHash() }, { pdq: flip(hash, randomBits(3)) }]);
    expect(res.body.photos.map((p) => p.index)).toEqual([0, 1]);
    expect(res.body.photos[0]?.matches).toEqual([]);
    expect(res.body.photos[1]?.matches).toEqual([
      expect.objectContaining({
        distance: 3,
        platforms: 2,
        categories: ["ai_generated_image", "reused_image"],
      }),
    ]);
  });

  it("matches through a dihedral hash only (a turned copy), at the best distance over the eight", async () => {
    const stored = randomHash();
    await report(reporter, [pdq(stored)]);
    const own = randomHash();
    const dihedral = [own, randomHash(), randomHash(), flip(stored, randomBits(9)), randomHash()];
    dihedral.push(flip(stored, randomBits(20)), randomHash(), randomHash());
    const res = await match(checker, [{ pdq: own, dihedral }]);
    expect(res.body.photos[0]?.matches.map((m) => m.distance)).toEqual([9]);
    const without = await match(checker, [{ pdq: own }]);
    expect(without.body.photos[0]?.matches).toEqual([]);
  });

  it("a retracted report's fingerprints stop matching and leave the index", async () => {
    const hash = randomHash();
    const { id } = await report(reporter, [pdq(hash)]);
    expect((await match(checker, [{ pdq: hash }])).body.photos[0]?.matches).toHaveLength(1);
    const retracted = await callJson(`/v1/reports/${id}/retract`, {
      token: await reporter.token(),
      body: { reason: "Filed against the wrong account." },
    });
    expect(retracted.status).toBe(200);
    expect((await match(checker, [{ pdq: hash }])).body.photos[0]?.matches).toEqual([]);
    expect(await countRows("fingerprints", "report_id = ? AND counted = 0", id)).toBe(1);
    expect(
      await countRows(
        "fingerprint_chunks",
        "fingerprint_id IN (SELECT id FROM fingerprints WHERE report_id = ?)",
        id,
      ),
    ).toBe(0);
  });

  it("a report voided in bulk by an admin stops matching", async () => {
    const hash = randomHash();
    const { id } = await report(reporter, [pdq(hash)]);
    const res = await callJson("/v1/admin/reports/void", {
      token: await adminToken(),
      body: { ids: [id], reason: "Voided after the platform's audit found a batch error." },
    });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect((await match(checker, [{ pdq: hash }])).body.photos[0]?.matches).toEqual([]);
    expect(await countRows("fingerprints", "report_id = ? AND counted = 1", id)).toBe(0);
  });

  it("a report purged at the end of its retention takes its fingerprints and their index rows with it", async () => {
    const hash = randomHash();
    const { id } = await report(reporter, [pdq(hash)]);
    const fingerprint = "fingerprint_id IN (SELECT id FROM fingerprints WHERE report_id = ?)";
    const chunks = await env.DB.prepare(
      `SELECT chunk, value, fingerprint_id FROM fingerprint_chunks WHERE ${fingerprint}`,
    )
      .bind(id)
      .all();
    expect(chunks.results).toHaveLength(16);
    await env.DB.prepare("UPDATE reports SET incident_at = ?, confirmed_at = ? WHERE id = ?")
      .bind(Date.now() - 1830 * DAY, Date.now() - 1829 * DAY, id)
      .run();
    const res = await callJson("/v1/admin/maintenance/run", { token: await adminToken(), body: {} });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(await countRows("reports", "id = ?", id)).toBe(0);
    expect(await countRows("fingerprints", "report_id = ?", id)).toBe(0);
    const [first] = chunks.results as { fingerprint_id: number }[];
    expect(await countRows("fingerprint_chunks", "fingerprint_id = ?", first?.fingerprint_id)).toBe(0);
    expect((await match(checker, [{ pdq: hash }])).body.photos[0]?.matches).toEqual([]);
  });

  it("is logged in the log store as evidence.match and writes nothing to the ledger", async () => {
    const photo = randomHash();
    const tables = ["reports", "fingerprints", "fingerprint_chunks", "audit_log", "report_subjects"];
    const before = await Promise.all(tables.map((t) => countRows(t)));
    const res = await match(checker, [{ pdq: photo }], "dispute_handling");
    const requestId = res.headers.get("x-request-id");
    expect(await Promise.all(tables.map((t) => countRows(t)))).toEqual(before);
    expect(await countRows("audit_log", "request_id = ?", requestId)).toBe(0);
    const rows = await auditRows(requestId);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({
      action: "evidence.match",
      actor: `platform:${checker.id}`,
      outcome: "ok",
    });
    // The photo's hash is an erasable key of the entry (`photo:<hash>`), not in its chained details.
    expect(JSON.parse(rows[0]?.details ?? "{}")).toMatchObject({
      purpose: "dispute_handling",
      photos: 1,
      subjectKeys: [`photo:${photo}`],
    });
  });

  it("needs a purpose, 1–16 photos and eight dihedral hashes when any", async () => {
    const token = await checker.token();
    const cases: [unknown, string][] = [
      [{ photos: [{ pdq: randomHash() }] }, "purpose"],
      [{ purpose: "refund_review", photos: [] }, "photos"],
      [
        { purpose: "refund_review", photos: Array.from({ length: 17 }, () => ({ pdq: randomHash() })) },
        "photos",
      ],
      [
        { purpose: "refund_review", photos: [{ pdq: randomHash(), dihedral: [randomHash()] }] },
        "photos.0.dihedral",
      ],
      [
        {
          purpose: "refund_review",
          photos: [{ pdq: randomHash(), dihedral: Array.from({ length: 8 }, randomHash) }],
        },
        "photos.0.dihedral.0",
      ],
      [{ purpose: "refund_review", photos: [{ pdq: "f".repeat(64) }] }, "photos.0.pdq"],
      [
        { purpose: "refund_review", photos: [ownDihedral(5, flip("f".repeat(64), randomBits(96)))] },
        "photos.0.dihedral.5",
      ],
    ];
    for (const [body, path] of cases) {
      const res = await callJson("/v1/evidence/match", { token, body });
      expect(res.status, JSON.stringify(res.body)).toBe(422);
      expect(errorPaths(res.body)).toContain(path);
    }
  });
});

describe("the chunk index", () => {
  const planted: string[] = [];

  beforeAll(async () => {
    // A few hundred random fingerprints, 16 per report, in one bulk write.
    const reports = await Promise.all(
      Array.from({ length: 20 }, async () => {
        const hashes = Array.from({ length: 16 }, randomHash);
        planted.push(...hashes);
        return reportBody(await newBuyer(), { evidence: hashes.map((h) => pdq(h)) });
      }),
    );
    const res = await callJson<{ results: { status: number }[] }>("/v1/reports/bulk", {
      token: await reporter.token(),
      body: { reports },
    });
    expect(res.status).toBe(200);
    expect(res.body.results.every((r) => r.status === 201)).toBe(true);
  });

  it("finds every planted near-duplicate (0–31 bits flipped), exactly as brute force does", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 0, max: 319 }),
        fc.uniqueArray(fc.integer({ min: 0, max: 255 }), { maxLength: 31 }),
        async (which, bits) => {
          const query = flip(planted[which] as string, bits);
          const res = await match(checker, [{ pdq: query }]);
          const distances = (res.body.photos[0]?.matches ?? []).map((m) => m.distance).sort((a, b) => a - b);
          expect(distances).toContain(bits.length);
          expect(distances).toEqual(await bruteForce(query));
        },
      ),
      { numRuns: 40 },
    );
  });

  it("probes the chunk index by seek on its key (WITHOUT ROWID: no separate index) and fingerprints by primary key", async () => {
    const plan = await queryPlan(matchReadSql(JSON.stringify(chunksOf(randomHash()).map((v, k) => [k, v]))));
    // A rowid table would show "COVERING INDEX sqlite_autoindex_fingerprint_chunks_1": the same
    // seeks on a second B-tree, 2.5 × the bytes (migration 0010).
    expect(plan.join("\n")).toMatch(/SEARCH c USING PRIMARY KEY \(chunk=\? AND value=\?\)/);
    expect(plan.join("\n")).toMatch(/SEARCH f USING INTEGER PRIMARY KEY \(rowid=\?\)/);
    expect(plan.join("\n")).not.toMatch(/SCAN (c|f)\b/);
  });

  it("reads a bounded number of rows with 2,000 unrelated fingerprints, alone and beside a buyer's records", async () => {
    const query = randomHash();
    const pairsOf = (hashes: string[]) =>
      `[${[...new Set(hashes.flatMap((h) => chunksOf(h).map((v, k) => `[${k},${v}]`)))].join(",")}]`;
    const run = async (statement: SQL) => {
      const q = new SQLiteAsyncDialect().sqlToQuery(statement);
      const result = await env.DB.prepare(q.sql)
        .bind(...q.params)
        .all<{ kind?: string }>();
      return { rowsRead: result.meta.rows_read, rows: result.results };
    };
    const read = async (hashes: string[]) => {
      const { rowsRead, rows } = await run(matchReadSql(pairsOf(hashes)));
      return { rowsRead, candidates: rows.length };
    };
    // A buyer with three records of one platform, scored with the photos in the same statement.
    const buyer = await newBuyer();
    let keys: string[] = [];
    for (const days of [5, 20, 40]) {
      const r = await createReport(reporter, buyer, {
        incidentAt: daysAgo(days),
        confirmedAt: daysAgo(days - 1),
      });
      keys = r.subjects.map((x) => x.key);
    }
    const perPlatform = loadConfig(env).MAX_ACTIVE_REPORTS_PER_SUBJECT + 1;
    const combined = async (hashes: string[]) => {
      const records = await run(scoreReadSql(JSON.stringify(keys), perPlatform));
      const photos = await read(hashes);
      const both = await run(scoreWithPhotosReadSql(JSON.stringify(keys), perPlatform, pairsOf(hashes)));
      expect(both.rows.filter((r) => r.kind === "record")).toHaveLength(records.rows.length);
      expect(both.rows.filter((r) => r.kind === "photo")).toHaveLength(photos.candidates);
      return {
        records: records.rowsRead,
        photos: photos.rowsRead,
        candidates: photos.candidates,
        both: both.rowsRead,
      };
    };

    const small = await read([query]);
    const smallBoth = await combined([query]);
    const bodies = await Promise.all(
      Array.from({ length: 125 }, async () =>
        reportBody(await newBuyer(), { evidence: Array.from({ length: 16 }, () => pdq(randomHash())) }),
      ),
    );
    const res = await callJson("/v1/reports/bulk", {
      token: await reporter.token(),
      body: { reports: bodies },
    });
    expect(res.status).toBe(200);
    const total = await countRows("fingerprints", "counted = 1");
    expect(total).toBeGreaterThan(2000);
    const large = await read([query]);
    // The largest request: 16 photos, each with its eight dihedral hashes (the first its own).
    const full = await read(Array.from({ length: 16 * 8 }, randomHash));
    const largeBoth = await combined([query]);
    const fullBoth = await combined(Array.from({ length: 16 * 8 }, randomHash));
    console.log(JSON.stringify({ total, small, large, full, smallBoth, largeBoth, fullBoth }));
    // D1 counts the probe expansion (16 pairs, 17 masks each: 288 rows per hash) and about four
    // rows per candidate (its index entry, the candidate list, its fingerprint, its report for the
    // dispute deadline and the retention); empty seeks are free.
    expect(small.rowsRead).toBeGreaterThanOrEqual(16 + 16 * 17 + 3 * small.candidates);
    expect(small.rowsRead).toBeLessThanOrEqual(16 + 16 * 17 + 4 * small.candidates);
    expect(large.rowsRead).toBeLessThanOrEqual(16 + 16 * 17 + 5 * large.candidates);
    expect(large.rowsRead).toBeLessThan(total);
    expect(full.rowsRead).toBeLessThanOrEqual(128 * (16 + 16 * 17) + 5 * full.candidates);
    // Beside the records, in one statement: the two reads' rows plus two rows per candidate (its
    // report, by primary key, for the dispute deadline, and its platform's trust), whatever the
    // table holds.
    for (const x of [smallBoth, largeBoth, fullBoth]) {
      expect(x.records).toBeLessThanOrEqual(scoreRowsBound({ matches: 6, keys: 2, pairs: 2 }));
      expect(x.both).toBeLessThanOrEqual(x.records + x.photos + 2 * x.candidates);
      expect(x.both).toBeGreaterThanOrEqual(x.records + x.photos);
    }
    expect(largeBoth.both).toBeLessThan(total);
  });
});

// ---------------------------------------------------------------------------------------------
// Score queries with the claim's photos (docs/scoring.md §3b)

type Subject = { type: string; hash: string };

interface PhotoScore {
  score: number;
  band: string;
  action: string;
  reasons: { code: string; detail: string }[];
  summary: { reports: number; platforms: number };
  records: { ref: string }[];
  photos?: MatchAnswer["photos"];
  model: string;
  evaluatedAt: string;
}

/** docs/scoring.md §4, written independently of the model: evidence to score. */
const scoreFor = (evidence: number) => Math.max(1, Math.round(100 * (1 - Math.exp(-evidence / 3))));
/** One platform's photo match (docs/scoring.md §3b), whatever the case's age. */
const PHOTO = 0.75;

async function scoreWith(p: TestPlatform, subjects: Subject[], evidence?: unknown[]) {
  const res = await callJson<PhotoScore>("/v1/scores/query", {
    token: await p.token(),
    body: { subjects, purpose: "refund_review", ...(evidence === undefined ? {} : { evidence }) },
  });
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res;
}

const codesOf = (a: PhotoScore) => a.reasons.map((r) => r.code);

describe("score queries with the claim's photos", () => {
  it("photo matches obey reporter trust: a member on probation's confirmation weighs half and barely multiplies (issue 13, point 5)", async () => {
    const [a, fresh, asker] = await Promise.all([
      newPlatform(),
      newPlatform({ probation: true }),
      newPlatform(),
    ]);
    const stored = randomHash();
    await report(a, [pdq(stored)], { category: "edited_image" });
    await report(fresh, [pdq(stored)], { category: "ai_generated_image" });
    const answer = (await scoreWith(asker, await newBuyer(), [{ pdq: flip(stored, randomBits(4)) }])).body;
    // docs/scoring.md §2a, §3b: E = (1 × 0.75 + 0.5 × 0.75) × (1 + 0.5 × (1.5 − 1)) = 1.40625 → 37;
    // with both members established it would be 53 (high): probation keeps it at review.
    expect(answer.score).toBe(scoreFor((PHOTO + 0.5 * PHOTO) * 1.25));
    expect(answer.score).toBe(37);
    expect(answer.band).toBe("medium");
    expect(codesOf(answer)).toEqual(["PHOTO_MATCH_NO_RECORDS", "PHOTO_MATCH", "REPORTER_TRUST"]);
    expect(JSON.stringify(answer)).not.toContain(fresh.id);
  });

  it("a fresh account whose photo matches fingerprints confirmed on two platforms moves to high, with the photo reasons, and nothing about the cases", async () => {
    const [a, b, asker] = await Promise.all([newPlatform(), newPlatform(), newPlatform()]);
    const stored = randomHash();
    const ra = await report(a, [pdq(stored)], { category: "edited_image" });
    const rb = await report(b, [pdq(stored)], { category: "ai_generated_image" });
    const buyer = await newBuyer();
    const claim = flip(stored, randomBits(6));

    const before = await scoreWith(asker, buyer);
    expect(before.body).toMatchObject({ score: 0, band: "none", action: "allow" });
    expect(codesOf(before.body)).toEqual(["NO_RECORDS"]);
    expect(before.body).not.toHaveProperty("photos");

    const res = await scoreWith(asker, buyer, [{ pdq: randomHash() }, { pdq: claim }]);
    const answer = res.body;
    expect(answer.score).toBe(scoreFor(2 * PHOTO * 1.5));
    expect(answer.score).toBe(53);
    expect(answer.band).toBe("high");
    expect(answer.action).toBe("require_return");
    expect(answer.model).toBe("pixiu-score/2");
    expect(answer.reasons).toEqual([
      {
        code: "PHOTO_MATCH_NO_RECORDS",
        detail:
          "no confirmed case counts for these subjects, but the claim's photos match photos confirmed forged: the score is about this claim",
      },
      { code: "PHOTO_MATCH", detail: "photo 2 matches a photo confirmed forged on 2 platforms (distance 6)" },
    ]);
    // The records part is the buyer's own: still nothing.
    expect(answer.summary).toMatchObject({ reports: 0, platforms: 0 });
    expect(answer.records).toEqual([]);
    expect(answer.photos).toEqual([
      { index: 0, matches: [] },
      {
        index: 1,
        matches: [
          {
            distance: 6,
            platforms: 2,
            categories: ["ai_generated_image", "edited_image"],
            firstSeenAt: expect.any(String),
            lastSeenAt: expect.any(String),
          },
        ],
      },
    ]);
    const text = JSON.stringify(answer);
    for (const secret of [ra.id, ra.caseId, rb.id, rb.caseId, a.id, b.id, stored, claim]) {
      expect(text).not.toContain(secret);
    }

    // Logged once, as a score query, with the buyer's subject keys and the photos' hashes.
    const rows = await auditRows(res.headers.get("x-request-id"));
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ action: "score.query", actor: `platform:${asker.id}`, outcome: "ok" });
    const details = JSON.parse(rows[0]?.details ?? "{}") as Record<string, unknown>;
    expect(details).toMatchObject({ purpose: "refund_review", photos: 2, dihedral: 0 });
    // The buyer's two subject keys, then the photos' hashes as erasable keys (`photo:<hash>`).
    expect(details.subjectKeys).toEqual([
      expect.any(String),
      expect.any(String),
      expect.stringMatching(/^photo:[0-9a-f]{64}$/),
      `photo:${claim}`,
    ]);
    expect(await logCount("inquiries", "request_id = ?", res.headers.get("x-request-id"))).toBe(2);
  });

  it("one platform's fingerprints alone move a fresh account to review only", async () => {
    const [a, asker] = await Promise.all([newPlatform(), newPlatform()]);
    const stored = randomHash();
    // Three reports of that platform with the photo: still one platform's word.
    for (let i = 0; i < 3; i++) {
      await report(a, [pdq(stored)]);
    }
    const answer = (await scoreWith(asker, await newBuyer(), [{ pdq: flip(stored, randomBits(2)) }])).body;
    expect(answer.score).toBe(scoreFor(PHOTO));
    expect(answer.score).toBe(22);
    expect(answer).toMatchObject({ band: "medium", action: "review" });
    expect(answer.photos?.[0]?.matches).toEqual([expect.objectContaining({ distance: 2, platforms: 1 })]);
  });

  it("a buyer's own record's photo does not count twice; a second account's on the same platform stays within its cap; another platform's brings consensus", async () => {
    const [a, b, asker] = await Promise.all([newPlatform(), newPlatform(), newPlatform()]);
    const buyer = await newBuyer();
    const stored = randomHash();
    await createReport(a, buyer, { evidence: [pdq(stored)] });
    const claim = [{ pdq: flip(stored, randomBits(4)) }];

    // The photo is the buyer's own confirmed case: the record counts, the photo adds nothing.
    const plain = (await scoreWith(asker, buyer)).body;
    const own = (await scoreWith(asker, buyer, claim)).body;
    expect(plain.score).toBe(28);
    const { photos, evaluatedAt: _a, ...rest } = own;
    const { evaluatedAt: _b, ...plainRest } = plain;
    expect(rest).toEqual(plainRest);
    expect(photos).toEqual([{ index: 0, matches: [] }]);

    // The same platform confirmed the photo on another account: within the platform's cap of 1.5.
    await report(a, [pdq(stored)]);
    const capped = (await scoreWith(asker, buyer, claim)).body;
    expect(capped.score).toBe(scoreFor(1.5));
    expect(capped.score).toBe(39);
    expect(capped.band).toBe("medium");
    expect(codesOf(capped)).toEqual([
      "CONFIRMED_CASES",
      "SINGLE_PLATFORM",
      "PHOTO_MATCH",
      "PLATFORM_CAP",
      "RECENT",
    ]);

    // Another platform confirmed it too: two platforms agree, the multiplier applies.
    await report(b, [pdq(stored)]);
    const agreed = (await scoreWith(asker, buyer, claim)).body;
    expect(agreed.score).toBe(scoreFor((1.5 + PHOTO) * 1.5));
    expect(agreed.score).toBe(68);
    expect(agreed.band).toBe("high");
    expect(agreed.summary).toMatchObject({ reports: 1, platforms: 1 });
    expect(agreed.photos?.[0]?.matches).toEqual([expect.objectContaining({ distance: 4, platforms: 2 })]);
    expect(agreed.reasons.find((r) => r.code === "PHOTO_MATCH")?.detail).toBe(
      "photo 1 matches a photo confirmed forged on 2 platforms (distance 4)",
    );
  });

  it("a retracted or voided report's photo stops moving the score", async () => {
    const [a, b, asker] = await Promise.all([newPlatform(), newPlatform(), newPlatform()]);
    const stored = randomHash();
    const ra = await report(a, [pdq(stored)]);
    const rb = await report(b, [pdq(stored)]);
    const buyer = await newBuyer();
    const claim = [{ pdq: flip(stored, randomBits(9)) }];
    expect((await scoreWith(asker, buyer, claim)).body.score).toBe(53);

    const retracted = await callJson(`/v1/reports/${ra.id}/retract`, {
      token: await a.token(),
      body: { reason: "Filed against the wrong account." },
    });
    expect(retracted.status).toBe(200);
    const one = (await scoreWith(asker, buyer, claim)).body;
    expect(one.score).toBe(22);
    expect(one.photos?.[0]?.matches).toEqual([expect.objectContaining({ platforms: 1 })]);

    const voided = await callJson(`/v1/admin/reports/${rb.id}/void`, {
      token: await adminToken(),
      body: { reason: "Voided after the platform's audit found a batch error." },
    });
    expect(voided.status, JSON.stringify(voided.body)).toBe(200);
    const none = (await scoreWith(asker, buyer, claim)).body;
    expect(none).toMatchObject({ score: 0, band: "none", action: "allow" });
    expect(codesOf(none)).toEqual(["NO_RECORDS"]);
    expect(none.photos).toEqual([{ index: 0, matches: [] }]);
  });

  it("a photo of a case under open dispute weighs half, and nothing once the dispute is past its deadline", async () => {
    const [a, b, opener, asker] = await Promise.all([
      newPlatform(),
      newPlatform(),
      newPlatform(),
      newPlatform(),
    ]);
    const stored = randomHash();
    const victim = await newBuyer();
    const disputed = await createReport(a, victim, { evidence: [pdq(stored)] });
    await report(b, [pdq(stored)]);
    const buyer = await newBuyer();
    const claim = [{ pdq: stored }];
    expect((await scoreWith(asker, buyer, claim)).body.score).toBe(53);

    const opened = await openDispute<{ id: string }>(
      opener,
      disputed.id,
      victim,
      "That photo is of my own parcel.",
    );
    expect(opened.status, JSON.stringify(opened.body)).toBe(201);
    const half = (await scoreWith(asker, buyer, claim)).body;
    expect(half.score).toBe(scoreFor((PHOTO + PHOTO / 2) * 1.5));
    expect(half.score).toBe(43);

    const past = Date.now() - 1000;
    await env.DB.batch([
      env.DB.prepare("UPDATE disputes SET deadline_at = ? WHERE id = ?").bind(past, opened.body.id),
      env.DB.prepare("UPDATE reports SET dispute_deadline_at = ? WHERE id = ?").bind(past, disputed.id),
    ]);
    const overdue = (await scoreWith(asker, buyer, claim)).body;
    expect(overdue.score).toBe(22);
    expect(overdue.photos?.[0]?.matches).toEqual([expect.objectContaining({ distance: 0, platforms: 1 })]);
  });

  it("a batch: each query with its own photos, answered as alone, each entry logged with its own photos", async () => {
    const [a, b, asker] = await Promise.all([newPlatform(), newPlatform(), newPlatform()]);
    const stored = randomHash();
    await report(a, [pdq(stored)]);
    await report(b, [pdq(stored)]);
    const known = await newBuyer();
    await createReport(a, known);
    const [fresh, other] = [await newBuyer(), await newBuyer()];
    const claim = flip(stored, randomBits(3));
    const innocent = randomHash();
    const queries = [
      { ref: "o-1", subjects: fresh, evidence: [{ pdq: claim }] },
      { ref: "o-2", subjects: known },
      { ref: "o-3", subjects: other, evidence: [{ pdq: innocent }] },
    ];
    const res = await callJson<{ results: (PhotoScore & { ref: string })[] }>("/v1/scores/batch", {
      token: await asker.token(),
      body: { purpose: "refund_review", queries },
    });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    const [r1, r2, r3] = res.body.results;
    expect(r1).toMatchObject({ ref: "o-1", score: 53, band: "high" });
    expect(r1?.photos?.[0]?.matches).toEqual([expect.objectContaining({ distance: 3, platforms: 2 })]);
    expect(r2).toMatchObject({ ref: "o-2", band: "medium" });
    expect(r2).not.toHaveProperty("photos");
    expect(r3).toMatchObject({ ref: "o-3", score: 0, band: "none", photos: [{ index: 0, matches: [] }] });
    for (const [i, q] of queries.entries()) {
      const alone = (await scoreWith(asker, q.subjects, q.evidence)).body;
      const { ref: _r, evaluatedAt: _a, ...batched } = res.body.results[i] as PhotoScore & { ref: string };
      const { evaluatedAt: _b, ...single } = alone;
      expect(batched).toEqual(single);
    }
    const rows = await auditRows(res.headers.get("x-request-id"));
    const details = rows.map((r) => JSON.parse(r.details ?? "{}") as Record<string, unknown>);
    expect(rows.map((r) => r.target)).toEqual(["o-1", "o-2", "o-3"]);
    expect(details.map((d) => d.photos)).toEqual([1, undefined, 1]);
    expect(
      details.map((d) =>
        ((d.subjectKeys as string[] | undefined) ?? []).filter((k) => k.startsWith("photo:")),
      ),
    ).toEqual([[`photo:${claim}`], [], [`photo:${innocent}`]]);
  });

  it("photos are validated at the edge (hex, 16 per query, 64 per batch, dihedral, no extra field): 422, nothing logged", async () => {
    const asker = await newPlatform();
    const buyer = await newBuyer();
    const photos = (n: number) => Array.from({ length: n }, () => ({ pdq: randomHash() }));
    const single: [unknown, string][] = [
      [[{ pdq: randomHash().toUpperCase() }], "evidence.0.pdq"],
      [[{ pdq: randomHash().slice(1) }], "evidence.0.pdq"],
      [photos(17), "evidence"],
      [[{ pdq: randomHash(), dihedral: [randomHash()] }], "evidence.0.dihedral"],
      [[{ pdq: randomHash(), dihedral: Array.from({ length: 8 }, randomHash) }], "evidence.0.dihedral.0"],
      [[{ pdq: "f".repeat(64) }], "evidence.0.pdq"],
      [[ownDihedral(3, "f".repeat(64))], "evidence.0.dihedral.3"],
      [[{ pdq: randomHash(), quality: 90 }], "evidence.0"],
      [{ pdq: randomHash() }, "evidence"],
    ];
    const refused: string[] = [];
    for (const [evidence, path] of single) {
      const res = await callJson("/v1/scores/query", {
        token: await asker.token(),
        body: { subjects: buyer, purpose: "refund_review", evidence },
      });
      expect(res.status, path).toBe(422);
      expect(res.headers.get("content-type")).toMatch(/^application\/problem\+json/);
      expect(errorPaths(res.body), path).toContain(path);
      refused.push(res.headers.get("x-request-id") as string);
    }
    const batch: [unknown, string][] = [
      [
        Array.from({ length: 5 }, (_, i) => ({ ref: `o-${i}`, subjects: buyer, evidence: photos(13) })),
        "queries",
      ],
      [[{ ref: "o-1", subjects: buyer, evidence: photos(17) }], "queries.0.evidence"],
      [[{ ref: "o-1", subjects: buyer, evidence: [{ pdq: "g".repeat(64) }] }], "queries.0.evidence.0.pdq"],
    ];
    for (const [queries, path] of batch) {
      const res = await callJson<{ errors: { path: string; message: string }[] }>("/v1/scores/batch", {
        token: await asker.token(),
        body: { purpose: "refund_review", queries },
      });
      expect(res.status, path).toBe(422);
      expect(errorPaths(res.body), path).toContain(path);
      refused.push(res.headers.get("x-request-id") as string);
    }
    for (const requestId of refused) {
      expect(await logCount("inquiries", "request_id = ?", requestId)).toBe(0);
      expect(await logCount("entries", "request_id = ? AND outcome = 'ok'", requestId)).toBe(0);
    }
    expect(await logCount("inquiries", "platform_id = ?", asker.id)).toBe(0);

    // The limits themselves are fine: 16 photos in a query, 64 over a batch.
    expect((await scoreWith(asker, buyer, photos(16))).body.photos).toHaveLength(16);
    const full = await callJson<{ results: PhotoScore[] }>("/v1/scores/batch", {
      token: await asker.token(),
      body: {
        purpose: "refund_review",
        queries: Array.from({ length: 4 }, (_, i) => ({
          ref: `o-${i}`,
          subjects: buyer,
          evidence: photos(16),
        })),
      },
    });
    expect(full.status, JSON.stringify(full.body)).toBe(200);
    expect(full.body.results.map((r) => r.photos?.length)).toEqual([16, 16, 16, 16]);
  });
});
