/**
 * Red team, issue 11 (evidence fingerprints). Each test states an attack and the safe behaviour;
 * every test here FAILS on the code it was written against (branch issue11-redteam), proving the
 * finding. Nothing here fixes anything.
 */
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { readProvenance } from "../client/provenance";
import {
  auditRows,
  callJson,
  createReport,
  flipBits as flip,
  logRows,
  logShardOf,
  logShards,
  newBuyer,
  newPlatform,
  openDispute,
  randomBits,
  randomPdqHash as randomHash,
  reportBody,
  type TestPlatform,
} from "./harness";

interface Match {
  distance: number;
  platforms: number;
  categories: string[];
  firstSeenAt: string;
  lastSeenAt: string;
}
interface MatchAnswer {
  maxDistance: number;
  photos: { index: number; matches: Match[] }[];
}

const pdq = (value: string, quality = 90) => ({ kind: "image_pdq", value, quality });

async function report(p: TestPlatform, evidence: unknown[]) {
  const res = await callJson<{ id: string }>("/v1/reports", {
    token: await p.token(),
    body: reportBody(await newBuyer(), { evidence }),
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

describe("red team: /v1/evidence/match", () => {
  /**
   * ATTACK: a reporter's case is disputed by the buyer and the reporter never answers; the
   * dispute passes its deadline. The score query stops counting that case's photo
   * (scoring.md §3b: "of a case under dispute past its deadline … no"), but
   * /v1/evidence/match reads only `f.counted = 1` and never the report's dispute deadline, so
   * the overdue, unanswered case's photo is still presented to every platform at refund time
   * as "confirmed forged".
   * SAFE: the match answer applies the same rule as the score — no entry for a fingerprint
   * whose only case is under a dispute past its deadline.
   */
  it("does not show the photo of a case whose dispute is past its deadline", async () => {
    const [reporter, opener, asker] = await Promise.all([newPlatform(), newPlatform(), newPlatform()]);
    const stored = randomHash();
    const victim = await newBuyer();
    const disputed = await createReport(reporter, victim, { evidence: [pdq(stored)] });
    const opened = await openDispute<{ id: string }>(opener, disputed.id, victim, "That is my own parcel.");
    expect(opened.status, JSON.stringify(opened.body)).toBe(201);
    const past = Date.now() - 1000;
    await env.DB.batch([
      env.DB.prepare("UPDATE disputes SET deadline_at = ? WHERE id = ?").bind(past, opened.body.id),
      env.DB.prepare("UPDATE reports SET dispute_deadline_at = ? WHERE id = ?").bind(past, disputed.id),
    ]);
    // The score query agrees the photo no longer counts...
    const scored = await callJson<{ photos: MatchAnswer["photos"] }>("/v1/scores/query", {
      token: await asker.token(),
      body: { purpose: "refund_review", subjects: await newBuyer(), evidence: [{ pdq: stored }] },
    });
    expect(scored.status).toBe(200);
    expect(scored.body.photos).toEqual([{ index: 0, matches: [] }]);
    // ...but the match endpoint still presents it.
    const res = await match(asker, [{ pdq: stored }]);
    expect(res.body.photos[0]?.matches).toEqual([]);
  });

  /**
   * ATTACK: the stored hash is never to be disclosed ("never … the stored hash"). A platform
   * holding any near copy of a confirmed photo (distance d < 31) asks about its copy with each
   * single bit flipped: the answer's exact `distance` is d−1 when the flipped bit was one where
   * the copy differed from the stored hash, d+1 otherwise. 256 probes, 16 photos per request:
   * the stored hash is recovered exactly in 1 + 16 requests (well under a second). The look-up
   * daily cap does not apply to /v1/evidence/match (`cap: false`; it counts subject keys, and a
   * match has none), and RL_SCORES allows 1,200 requests a minute, so ~70 stored hashes can be
   * recovered per minute per platform.
   * SAFE: the answer does not let a caller recover the stored hash (e.g. distance reported in
   * coarse buckets, or not at all, and/or probing of many near variants refused/limited).
   *
   * DECIDED (issue 11): `distance` stays exact — the contract promises it, and a platform weighs
   * a distance of 3 and of 29 differently. What the probing yields is the exact PDQ hash of a
   * photo the attacker already holds a near copy of: a hash cannot be turned back into a photo, and
   * it says nothing of the case, the reporter or the buyer (docs/evidence.md, "What is shared").
   * What the ledger does instead: every probed hash is logged (a trace of the probing, erasable
   * at retention) and counts against LOOKUP_DAILY_CAP like a subject key, so bulk probing is
   * bounded and visible. The test states that, and that the reconstruction is what we accept.
   */
  it("probing a stored hash bit by bit is logged and counted against the daily look-up cap (the exact hash is an accepted disclosure)", async () => {
    const [reporter, attacker] = await Promise.all([newPlatform(), newPlatform()]);
    const stored = randomHash();
    await report(reporter, [pdq(stored)]);
    const copy = flip(stored, randomBits(12)); // the attacker's edited copy of the photo
    let requests = 0;
    const probed: string[] = [];
    const ask = async (hashes: string[]) => {
      requests++;
      probed.push(...hashes);
      const res = await match(
        attacker,
        hashes.map((h) => ({ pdq: h })),
      );
      return res.body.photos.map((p) => Math.min(...p.matches.map((m) => m.distance)));
    };
    const [d0] = await ask([copy]);
    expect(d0).toBe(12);
    const differing: number[] = [];
    for (let start = 0; start < 256; start += 16) {
      const bits = Array.from({ length: 16 }, (_, i) => start + i);
      const distances = await ask(bits.map((b) => flip(copy, [b])));
      distances.forEach((d, i) => {
        if (d === (d0 as number) - 1) {
          differing.push(bits[i] as number);
        }
      });
    }
    expect(requests).toBe(17);
    expect(flip(copy, differing)).toBe(stored); // the accepted disclosure
    // Every probe counted against the cap (distinct hashes) and in the log, as erasable keys.
    const today = new Date().toISOString().slice(0, 10);
    const counted = (await logShardOf(`platform:${attacker.id}`).lookupCounts(today)) as unknown as {
      platform_id: string;
      n: number;
    }[];
    expect(counted.find((r) => r.platform_id === attacker.id)?.n).toBe(new Set(probed).size);
  });

  /**
   * ATTACK: `dihedral` is documented as "exactly the eight hashes client/pdq.ts prints (the first
   * is the photo's own)", but the server accepts any eight hashes, even a first one that is not
   * `pdq`. A platform (or a scraper with its key) can thus probe nine arbitrary hashes per
   * photo — 144 per request — while the log records only the 16 `pdq` values and a count.
   * SAFE: 422 when `dihedral[0]` is not the photo's own `pdq`.
   */
  it("refuses dihedral hashes whose first is not the photo's own hash", async () => {
    const p = await newPlatform();
    const dihedral = Array.from({ length: 8 }, () => randomHash());
    const res = await callJson("/v1/evidence/match", {
      token: await p.token(),
      body: { purpose: "refund_review", photos: [{ pdq: randomHash(), dihedral }] },
    });
    expect(res.status).toBe(422);
  });

  /**
   * ATTACK: hide what was actually looked up. The log entry of a match carries only each
   * photo's `pdq` ("the photos' hashes") and the number of photos with dihedral hashes — not the
   * dihedral hashes, which are probed just the same. A platform sends a decoy `pdq` and puts the
   * hash it really wants checked among the dihedral ones: it gets the match, and an auditor or
   * the buyer reading the log sees only the decoy.
   * SAFE: every hash that was probed appears in the log entry (or the look-up is refused).
   */
  it("logs every hash it probes, dihedral ones included", async () => {
    const [reporter, asker] = await Promise.all([newPlatform(), newPlatform()]);
    const stored = randomHash();
    await report(reporter, [pdq(stored)]);
    const decoy = randomHash();
    const real = flip(stored, randomBits(5));
    const dihedral = [decoy, ...Array.from({ length: 6 }, () => randomHash()), real];
    const res = await match(asker, [{ pdq: decoy, dihedral }]);
    expect(res.body.photos[0]?.matches).toEqual([expect.objectContaining({ distance: 5 })]);
    const rows = await auditRows(res.headers.get("x-request-id"));
    expect(rows).toHaveLength(1);
    // The hash that produced the match must be in the log.
    expect(rows[0]?.details ?? "").toContain(real);
  });
});

describe("red team: fingerprints on reports", () => {
  /**
   * ATTACK: quality is self-declared. PDQ sets a bit where a DCT coefficient exceeds the (lower)
   * median of 256, so a real hash has at most 128 bits set, and a hash of quality ≥ 50 has very
   * close to 128; the all-zero hash is exactly what the kit prints for a too-small or blank image
   * (quality 0). A careless or hostile platform reports `000…0` (or `fff…f`, impossible for any
   * image) with `"quality": 100`: the ledger indexes it, and every refund claim whose photo is
   * tiny or blank (kit: all-zero hash) — or, for the match query, which takes no quality at
   * all — then matches it at distance 0 and moves the score.
   * SAFE: 422 for a hash no PDQ of a quality ≥ 50 image can have (e.g. popcount far from 128).
   */
  it("refuses degenerate hashes that no quality-50 photo can have, whatever quality is claimed", async () => {
    const p = await newPlatform();
    const asker = await newPlatform();
    const zero = "0".repeat(64);
    const res = await callJson("/v1/reports", {
      token: await p.token(),
      body: reportBody(await newBuyer(), { evidence: [pdq(zero, 100)] }),
    });
    const ones = await callJson("/v1/reports", {
      token: await p.token(),
      body: reportBody(await newBuyer(), { evidence: [pdq("f".repeat(64), 100)] }),
    });
    // Consequence when accepted: a blank claim photo of an innocent buyer matches at distance 0.
    const probe = await match(asker, [{ pdq: zero }]);
    expect.soft(res.status, "all-zero hash claimed quality 100").toBe(422);
    expect.soft(ones.status, "all-ones hash (256 bits set) claimed quality 100").toBe(422);
    expect.soft(probe.body.photos[0]?.matches ?? [], "a blank claim photo matches it").toEqual([]);
  });
});

describe("red team: the look-up log", () => {
  /**
   * ATTACK (privacy): at refund time every claim's photos — overwhelmingly innocent buyers' —
   * go into the look-up log as their PDQ hashes. At retention the log erases a look-up's subject
   * keys (they are kept apart from the chained entry for that), but the photo hashes live in
   * the entry's `details`, inside the hash chain and in the immutable archive: they are kept for
   * ever. A PDQ hash is a linkable identifier of the buyer's photo (anyone holding the photo
   * can find the look-up).
   * SAFE: once the retention period has passed, a look-up's photo hashes are gone with its
   * subject keys.
   */
  it("forgets the claim's photo hashes when the retention purge erases the look-up's keys", async () => {
    const asker = await newPlatform();
    const photo = randomHash();
    const res = await callJson("/v1/scores/query", {
      token: await asker.token(),
      body: { purpose: "refund_review", subjects: await newBuyer(), evidence: [{ pdq: photo }] },
    });
    expect(res.status).toBe(200);
    const requestId = res.headers.get("x-request-id") as string;
    const before = await logRows(requestId);
    expect(JSON.stringify(before)).toContain(photo);
    // The retention period has passed for this entry: the scheduled purge's call on each shard.
    for (const stub of logShards()) {
      await stub.purge({
        keysBefore: Date.now() + 1,
        inquiriesBefore: Date.now() + 1,
        targets: [],
        dayBefore: "1970-01-01",
        appendsBefore: 0,
        outboxAppendsBefore: 0,
      });
    }
    const after = await logRows(requestId);
    expect(after).toHaveLength(1);
    expect(after[0]?.details ?? "").not.toContain("subjectKeys"); // keys erased...
    expect(after[0]?.details ?? "").not.toContain(photo); // ...the photo hash must be too
  });
});

describe("red team: provenance", () => {
  /**
   * ATTACK: a hostile refund photo against the platform-side reader (`readProvenance`, run by
   * the fingerprint CLI and in a platform's Worker). JPEG extended XMP segments name a GUID and
   * a total length; for each distinct GUID the reader allocates `total` bytes (up to 4 MiB) and
   * decodes it all into a string before any size check, with no limit on how many GUIDs. Each
   * segment costs 79 bytes in the file: 64 of them (~5 KB) make the reader allocate and decode
   * 256 MiB — twice a Worker's 128 MB memory limit; ~1,000 (80 KB) ask for 4 GiB.
   * SAFE: work proportional to the file (bounded by MAX_XMP_PACKETS × MAX_XMP_CHARS): the text
   * decoded stays within a few MiB whatever the file claims.
   */
  it("does not allocate and decode megabytes per 79-byte extended-XMP segment", () => {
    const te = new TextEncoder();
    const head = te.encode("http://ns.adobe.com/xmp/extension/\0");
    const segments: number[] = [];
    const n = 64;
    for (let g = 0; g < n; g++) {
      const guid = te.encode(g.toString(16).toUpperCase().padStart(32, "0"));
      const body = new Uint8Array(head.length + 40 + 1);
      body.set(head, 0);
      body.set(guid, head.length);
      new DataView(body.buffer).setUint32(head.length + 32, 4 * 1024 * 1024); // total: 4 MiB
      new DataView(body.buffer).setUint32(head.length + 36, 0); // offset
      body[head.length + 40] = 0x20;
      const len = body.length + 2;
      segments.push(0xff, 0xe1, len >> 8, len & 0xff, ...body);
    }
    const file = new Uint8Array([0xff, 0xd8, ...segments, 0xff, 0xd9]);
    let decoded = 0;
    const original = TextDecoder.prototype.decode;
    TextDecoder.prototype.decode = function (this: TextDecoder, ...args: Parameters<TextDecoder["decode"]>) {
      decoded += (args[0] as ArrayBufferView | undefined)?.byteLength ?? 0;
      return original.apply(this, args);
    };
    const started = Date.now();
    try {
      readProvenance(file);
    } finally {
      TextDecoder.prototype.decode = original;
    }
    const elapsed = Date.now() - started;
    console.log(
      `extended XMP: file ${file.length} bytes → ${decoded} bytes decoded (${Math.round(decoded / file.length)}×) in ${elapsed} ms`,
    );
    expect(decoded).toBeLessThanOrEqual(8 * 1024 * 1024);
  });

  /**
   * ATTACK: personal data in provenance. `digitalSourceTypes` is documented as URIs and checked
   * only as visible ASCII: a reporter can store a buyer's e-mail address or mainland mobile
   * number there (or anything that is not a URI at all), shown to everyone the report is shown
   * to. The ledger refuses the same values in notes, in `claimGenerator` and in the EXIF fields.
   * SAFE: 422 at `evidence.N.c2pa.digitalSourceTypes.M` for a value that is not a URI or that
   * contains personal data.
   */
  it("refuses personal data smuggled in as a digital source type", async () => {
    const p = await newPlatform();
    const provenance = (types: string[]) => ({
      kind: "image_provenance",
      c2pa: { present: true, digitalSourceTypes: types, aiGenerated: false, claimGenerator: null },
      aiLabel: null,
      exif: null,
    });
    for (const types of [["mailto:zhang.san@example.com"], ["13812345678"]]) {
      const res = await callJson("/v1/reports", {
        token: await p.token(),
        body: reportBody(await newBuyer(), { evidence: [provenance(types)] }),
      });
      expect(res.status, `${types[0]} → ${res.status}`).toBe(422);
    }
  });
});
