/**
 * Reports through the HTTP API (CONTRACT §4): create, idempotent replay and conflict (with the
 * canonical content hash of worker/services/reports.ts), races, reading, listing, retraction,
 * bulk, and every validation rule of the report body.
 */
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import {
  adminToken,
  auditCount,
  auditRows,
  call,
  callJson,
  countRows,
  daysAgo,
  errorPaths,
  newBuyer,
  newestFirst,
  newPlatform,
  reportBody,
  type TestPlatform,
  uniqueId,
} from "./harness";

type Subject = { type: string; hash: string };

interface Report {
  id: string;
  caseId: string;
  platformId: string;
  status: string;
  subjects: { type: string; key: string }[];
  category: string;
  incidentAt: string;
  confirmedAt: string;
  confirmation: string;
  amount: { value: number; currency: string };
  evidence: { kind: string; value: string }[];
  note: string | null;
  subjectNotifiedAt: string | null;
  statusReason: string | null;
  statement: string | null;
  createdAt: string;
  updatedAt: string;
}

interface Page {
  items: Report[];
  nextCursor: string | null;
}

interface BulkResult {
  index: number;
  status: number;
  id?: string;
  problem?: { type: string; title: string; status: number; detail: string; errors?: { path: string }[] };
}

const REPORT_ID = /^rpt_[0-9A-HJKMNP-TV-Z]{26}$/;
const DAY = 86_400_000;
const RETENTION_DAYS = 1826;

async function post(p: TestPlatform, body: unknown) {
  return callJson<Report>("/v1/reports", { token: await p.token(), body });
}

async function create(p: TestPlatform, body: unknown) {
  const res = await post(p, body);
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return res.body;
}

async function score(p: TestPlatform, subjects: Subject[]) {
  const res = await callJson<{ band: string; score: number; records: { ref: string }[] }>(
    "/v1/scores/query",
    {
      token: await p.token(),
      body: { subjects, purpose: "refund_review" },
    },
  );
  expect(res.status).toBe(200);
  return res.body;
}

async function retract(p: TestPlatform, id: string, reason: unknown = "Filed against the wrong account.") {
  return callJson<Report>(`/v1/reports/${id}/retract`, { token: await p.token(), body: { reason } });
}

async function listAll(p: TestPlatform, query: string) {
  const seen: Report[] = [];
  const pages: number[] = [];
  let cursor: string | null = null;
  for (let i = 0; i < 20; i++) {
    const q: string = cursor === null ? query : `${query}&cursor=${encodeURIComponent(cursor)}`;
    const res: { status: number; body: Page } = await callJson<Page>(`/v1/reports?${q}`, {
      token: await p.token(),
    });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    seen.push(...res.body.items);
    pages.push(res.body.items.length);
    cursor = res.body.nextCursor;
    if (cursor === null) {
      break;
    }
  }
  return { items: seen, pages };
}

describe("POST /v1/reports", () => {
  it("201 with the report as the contract shapes it; subjects as peppered keys; audited", async () => {
    const p = await newPlatform();
    const buyer = await newBuyer();
    const body = reportBody(buyer, {
      incidentAt: "2026-01-02T10:00:00Z",
      confirmedAt: "2026-01-05T16:30:00Z",
      note: "Packing video shows the item intact.",
      evidence: [
        { kind: "image_sha256", value: "b".repeat(64) },
        { kind: "ai_label", value: "C2PA: generated" },
      ],
    });
    const before = Date.now();
    const res = await call("/v1/reports", { token: await p.token(), body });
    expect(res.status).toBe(201);
    expect(res.headers.get("content-type")).toMatch(/^application\/json/);
    const report = (await res.json()) as Report;
    expect(Object.keys(report).sort()).toEqual(
      [
        "afterLookup",
        "amount",
        "caseId",
        "category",
        "confirmation",
        "confirmationRef",
        "confirmationVerifiedAt",
        "confirmedAt",
        "createdAt",
        "disputeId",
        "evidence",
        "id",
        "incidentAt",
        "note",
        "platformId",
        "statement",
        "status",
        "statusReason",
        "subjectNotifiedAt",
        "subjects",
        "updatedAt",
      ].sort(),
    );
    expect(report.id).toMatch(REPORT_ID);
    expect(report).toMatchObject({
      caseId: body.caseId,
      platformId: p.id,
      status: "active",
      disputeId: null,
      afterLookup: null,
      category: "ai_generated_image",
      incidentAt: "2026-01-02T10:00:00Z",
      confirmedAt: "2026-01-05T16:30:00Z",
      confirmation: "platform_forensics",
      amount: { value: 129900, currency: "CNY" },
      evidence: body.evidence,
      note: "Packing video shows the item intact.",
      subjectNotifiedAt: null,
      statusReason: null,
      statement: null,
    });
    expect(report.createdAt).toBe(report.updatedAt);
    expect(Date.parse(report.createdAt)).toBeGreaterThanOrEqual(before - 1000);
    expect(Date.parse(report.createdAt)).toBeLessThanOrEqual(Date.now() + 1000);
    // The ledger keeps peppered keys, never the platform's hashes.
    expect(report.subjects.map((s) => s.type).sort()).toEqual(["device", "phone"]);
    for (const s of report.subjects) {
      expect(s.key).toMatch(/^[0-9a-f]{64}$/);
      expect(buyer.map((b) => b.hash)).not.toContain(s.key);
    }
    expect(await countRows("reports", "id = ? AND platform_id = ?", report.id, p.id)).toBe(1);
    expect(await countRows("report_subjects", "report_id = ?", report.id)).toBe(2);
    // Each link carries copies of the report's platform and incident time, and counts.
    expect(
      await countRows(
        "report_subjects",
        "report_id = ? AND platform_id = ? AND incident_at = ? AND counted = 1",
        report.id,
        p.id,
        Date.parse(report.incidentAt),
      ),
    ).toBe(2);
    for (const b of buyer) {
      expect(await countRows("report_subjects", "subject_key = ?", b.hash)).toBe(0);
    }
    const rows = await auditRows(res.headers.get("x-request-id"));
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({
      actor: `platform:${p.id}`,
      action: "report.create",
      target: report.id,
      outcome: "created",
    });
  });

  it("the same caseId and content again is 200 with the same report, written once", async () => {
    const p = await newPlatform();
    const body = reportBody(await newBuyer());
    const first = await create(p, body);
    const again = await call("/v1/reports", { token: await p.token(), body });
    expect(again.status).toBe(200);
    expect(await again.json()).toEqual(first);
    expect(await countRows("reports", "platform_id = ? AND case_id = ?", p.id, body.caseId)).toBe(1);
    expect(await countRows("report_subjects", "report_id = ?", first.id)).toBe(2);
    const rows = await auditRows(again.headers.get("x-request-id"));
    expect(rows.map((r) => [r.action, r.outcome, r.target])).toEqual([
      ["report.create", "replayed", first.id],
    ]);
  });

  it("the same caseId with different content is 409 and changes nothing, field by field", async () => {
    const p = await newPlatform();
    const buyer = await newBuyer();
    const other = await newBuyer();
    const body = reportBody(buyer, { note: "first", subjectNotifiedAt: daysAgo(6) });
    const first = await create(p, body);
    const changes: Record<string, unknown> = {
      category: "edited_image",
      confirmation: "manual_review",
      incidentAt: daysAgo(11),
      confirmedAt: daysAgo(6),
      amount: { value: 129901, currency: "CNY" },
      "amount.currency": { value: 129900, currency: "USD" },
      evidence: [{ kind: "image_sha256", value: "c".repeat(64) }],
      note: "second",
      subjectNotifiedAt: daysAgo(5),
      subjects: [buyer[0]],
      "subjects+": [...buyer, other[0]],
      "subjects~": [buyer[0], other[1]],
    };
    for (const [label, value] of Object.entries(changes)) {
      const field = label.replace(/[.+~].*$/, "");
      const res = await call("/v1/reports", { token: await p.token(), body: { ...body, [field]: value } });
      expect(res.status, label).toBe(409);
      expect(res.headers.get("content-type")).toMatch(/^application\/problem\+json/);
      const problem = (await res.json()) as { status: number; detail: string; type: string };
      expect(problem.status).toBe(409);
      expect(problem.detail).toContain(first.id);
      const rows = await auditRows(res.headers.get("x-request-id"));
      expect(
        rows.map((r) => r.outcome),
        label,
      ).toEqual(["conflict"]);
    }
    const stored = await callJson<Report>(`/v1/reports/${first.id}`, { token: await p.token() });
    expect(stored.body).toEqual(first);
    expect(await countRows("reports", "platform_id = ? AND case_id = ?", p.id, body.caseId)).toBe(1);
    expect(await countRows("report_subjects", "report_id = ?", first.id)).toBe(2);
  });

  it("canonical content: key order, subject order, time spelling and omitted defaults are no conflict", async () => {
    const p = await newPlatform();
    const buyer = await newBuyer();
    const body = {
      caseId: uniqueId("CANON"),
      subjects: buyer,
      category: "staged_damage",
      incidentAt: "2026-03-01T10:00:00Z",
      confirmedAt: "2026-03-04T16:30:00Z",
      confirmation: "merchant_evidence",
      amount: { value: 5000, currency: "CNY" },
    };
    const first = await create(p, body);
    expect(first.evidence).toEqual([]);
    expect(first.note).toBeNull();
    const equivalents: Record<string, unknown> = {
      "keys reversed": Object.fromEntries(
        Object.entries({ ...body, amount: { currency: "CNY", value: 5000 } }).reverse(),
      ),
      "subjects reversed": { ...body, subjects: [...buyer].reverse() },
      "offset spelling": {
        ...body,
        incidentAt: "2026-03-01T18:00:00+08:00",
        confirmedAt: "2026-03-04T11:30:00-05:00",
      },
      "fractional seconds": { ...body, incidentAt: "2026-03-01T10:00:00.000Z" },
      "explicit empty evidence": { ...body, evidence: [] },
      "explicit null note": { ...body, note: null, subjectNotifiedAt: null },
    };
    for (const [label, variant] of Object.entries(equivalents)) {
      const res = await post(p, variant);
      expect(res.status, `${label}: ${JSON.stringify(res.body)}`).toBe(200);
      expect(res.body.id, label).toBe(first.id);
      expect(res.body.incidentAt).toBe("2026-03-01T10:00:00Z");
    }
    expect(await countRows("reports", "platform_id = ? AND case_id = ?", p.id, body.caseId)).toBe(1);
  });

  it("caseId is unique per reporting platform: another platform may use the same one", async () => {
    const a = await newPlatform();
    const b = await newPlatform();
    const body = reportBody(await newBuyer());
    const ra = await create(a, body);
    const rb = await create(b, { ...body, amount: { value: 1, currency: "CNY" } });
    expect(rb.id).not.toBe(ra.id);
    expect(rb.platformId).toBe(b.id);
  });

  it("ten parallel submissions of one case: one report row, one 201, nine 200 with the same id", async () => {
    const p = await newPlatform();
    const body = reportBody(await newBuyer());
    const tokens = await Promise.all(Array.from({ length: 10 }, () => p.token()));
    const results = await Promise.all(
      tokens.map((token) => callJson<Report>("/v1/reports", { token, body })),
    );
    expect(results.map((r) => r.status).sort()).toEqual([200, 200, 200, 200, 200, 200, 200, 200, 200, 201]);
    const ids = new Set(results.map((r) => r.body.id));
    expect(ids.size).toBe(1);
    const [id] = [...ids];
    expect(id).toMatch(REPORT_ID);
    expect(await countRows("reports", "platform_id = ? AND case_id = ?", p.id, body.caseId)).toBe(1);
    expect(await countRows("report_subjects", "report_id = ?", id)).toBe(2);
    expect(await auditCount("action = 'report.create' AND target = ? AND outcome = 'created'", id)).toBe(1);
    expect(await auditCount("action = 'report.create' AND target = ? AND outcome = 'replayed'", id)).toBe(9);
  });

  it("subjectNotifiedAt is stored and returned", async () => {
    const p = await newPlatform();
    const res = await create(
      p,
      reportBody(await newBuyer(), { subjectNotifiedAt: "2026-01-06T09:15:00+08:00" }),
    );
    expect(res.subjectNotifiedAt).toBe("2026-01-06T01:15:00Z");
    const row = await env.DB.prepare("SELECT subject_notified_at AS at FROM reports WHERE id = ?")
      .bind(res.id)
      .first<{ at: number }>();
    expect(row?.at).toBe(Date.parse("2026-01-06T01:15:00Z"));
    const read = await callJson<Report>(`/v1/reports/${res.id}`, { token: await p.token() });
    expect(read.body.subjectNotifiedAt).toBe("2026-01-06T01:15:00Z");
  });

  it("the limits themselves are accepted (128-char caseId, 8 subjects, 16 evidence, amount 1 and 10^12)", async () => {
    const p = await newPlatform();
    const eight = await Promise.all(Array.from({ length: 4 }, () => newBuyer())).then((bs) => bs.flat());
    const edges = [
      reportBody(eight),
      reportBody(await newBuyer(), { caseId: `A${"x".repeat(126)}Z`.slice(0, 128) }),
      reportBody(await newBuyer(), { caseId: "a.b_c:d-E9" }),
      reportBody(await newBuyer(), { amount: { value: 1, currency: "CNY" } }),
      reportBody(await newBuyer(), { amount: { value: 1_000_000_000_000, currency: "USD" } }),
      reportBody(await newBuyer(), {
        evidence: Array.from({ length: 16 }, (_, i) => ({ kind: "other", value: `${i}`.padEnd(256, "v") })),
      }),
      reportBody(await newBuyer(), { note: "n".repeat(500) }),
      reportBody(await newBuyer(), { incidentAt: daysAgo(3), confirmedAt: daysAgo(3) }),
      reportBody(await newBuyer(), {
        incidentAt: daysAgo(RETENTION_DAYS - 1),
        confirmedAt: new Date(Date.now() + 30_000).toISOString(),
      }),
      ...["national_id", "email", "payment_account"].map((type) =>
        reportBody([{ type, hash: "0123456789abcdef".repeat(4) }]),
      ),
    ];
    for (const body of edges) {
      const res = await post(p, body);
      expect(res.status, `${JSON.stringify(res.body)}`).toBe(201);
    }
    const eightRes = await listAll(p, "limit=200");
    expect(eightRes.items.find((r) => r.caseId === edges[0]?.caseId)?.subjects).toHaveLength(8);
  });

  it("every rule of the body: 422 with the field's path, nothing written", async () => {
    const p = await newPlatform();
    const buyer = await newBuyer();
    const [phone, device] = buyer as [Subject, Subject];
    const nine = await Promise.all(Array.from({ length: 5 }, () => newBuyer())).then((bs) =>
      bs.flat().slice(0, 9),
    );
    const base = reportBody(buyer);
    const without = (field: string) => Object.fromEntries(Object.entries(base).filter(([k]) => k !== field));
    const future = new Date(Date.now() + 3_600_000).toISOString();
    const cases: [string, unknown, string][] = [
      ...["caseId", "subjects", "category", "incidentAt", "confirmedAt", "confirmation", "amount"].map(
        (f): [string, unknown, string] => [`missing ${f}`, without(f), f],
      ),
      ["caseId empty", { ...base, caseId: "" }, "caseId"],
      ["caseId 129", { ...base, caseId: "x".repeat(129) }, "caseId"],
      ["caseId space", { ...base, caseId: "JD 2026" }, "caseId"],
      ["caseId slash", { ...base, caseId: "JD/2026" }, "caseId"],
      ["caseId non-ascii", { ...base, caseId: "订单-1" }, "caseId"],
      ["caseId number", { ...base, caseId: 12345 }, "caseId"],
      ["no subjects", { ...base, subjects: [] }, "subjects"],
      ["nine subjects", { ...base, subjects: nine }, "subjects"],
      ["duplicate subject", { ...base, subjects: [phone, device, phone] }, "subjects.2"],
      ["subject type", { ...base, subjects: [{ type: "ip", hash: phone.hash }] }, "subjects.0.type"],
      [
        "hash upper",
        { ...base, subjects: [{ ...phone, hash: phone.hash.toUpperCase() }] },
        "subjects.0.hash",
      ],
      ["hash short", { ...base, subjects: [{ ...phone, hash: phone.hash.slice(2) }] }, "subjects.0.hash"],
      ["hash long", { ...base, subjects: [{ ...phone, hash: `${phone.hash}00` }] }, "subjects.0.hash"],
      [
        "hash not hex",
        { ...base, subjects: [{ ...phone, hash: `z${phone.hash.slice(1)}` }] },
        "subjects.0.hash",
      ],
      ["raw phone", { ...base, subjects: [{ type: "phone", hash: "+8613800138000" }] }, "subjects.0.hash"],
      ["subject extra", { ...base, subjects: [{ ...phone, value: "x" }] }, "subjects.0"],
      ["category", { ...base, category: "deepfake" }, "category"],
      ["confirmation", { ...base, confirmation: "hearsay" }, "confirmation"],
      ["incidentAt date only", { ...base, incidentAt: "2026-01-02" }, "incidentAt"],
      ["incidentAt no offset", { ...base, incidentAt: "2026-01-02T10:00:00" }, "incidentAt"],
      ["confirmedAt words", { ...base, confirmedAt: "yesterday" }, "confirmedAt"],
      [
        "incident after confirmation",
        { ...base, incidentAt: daysAgo(5), confirmedAt: daysAgo(6) },
        "incidentAt",
      ],
      ["confirmedAt in the future", { ...base, confirmedAt: future }, "confirmedAt"],
      ["both in the future", { ...base, incidentAt: future, confirmedAt: future }, "confirmedAt"],
      [
        "incidentAt beyond retention",
        { ...base, incidentAt: daysAgo(RETENTION_DAYS + 1), confirmedAt: daysAgo(RETENTION_DAYS - 10) },
        "incidentAt",
      ],
      [
        "both beyond retention",
        { ...base, incidentAt: daysAgo(RETENTION_DAYS + 3), confirmedAt: daysAgo(RETENTION_DAYS + 2) },
        "confirmedAt",
      ],
      ["subjectNotifiedAt in the future", { ...base, subjectNotifiedAt: future }, "subjectNotifiedAt"],
      ["subjectNotifiedAt format", { ...base, subjectNotifiedAt: "soon" }, "subjectNotifiedAt"],
      ["amount zero", { ...base, amount: { value: 0, currency: "CNY" } }, "amount.value"],
      ["amount negative", { ...base, amount: { value: -100, currency: "CNY" } }, "amount.value"],
      ["amount fraction", { ...base, amount: { value: 12.5, currency: "CNY" } }, "amount.value"],
      [
        "amount too large",
        { ...base, amount: { value: 1_000_000_000_001, currency: "CNY" } },
        "amount.value",
      ],
      ["amount string", { ...base, amount: { value: "129900", currency: "CNY" } }, "amount.value"],
      ["currency lower", { ...base, amount: { value: 100, currency: "cny" } }, "amount.currency"],
      ["currency short", { ...base, amount: { value: 100, currency: "CN" } }, "amount.currency"],
      ["currency long", { ...base, amount: { value: 100, currency: "CNYY" } }, "amount.currency"],
      ["currency missing", { ...base, amount: { value: 100 } }, "amount.currency"],
      ["amount as number", { ...base, amount: 129900 }, "amount"],
      [
        "17 evidence",
        { ...base, evidence: Array.from({ length: 17 }, () => ({ kind: "other", value: "x" })) },
        "evidence",
      ],
      ["evidence kind", { ...base, evidence: [{ kind: "photo", value: "x" }] }, "evidence.0.kind"],
      ["evidence empty value", { ...base, evidence: [{ kind: "other", value: "" }] }, "evidence.0.value"],
      [
        "evidence long value",
        { ...base, evidence: [{ kind: "other", value: "v".repeat(257) }] },
        "evidence.0.value",
      ],
      ["note 501", { ...base, note: "n".repeat(501) }, "note"],
      ["note with a phone", { ...base, note: "Buyer called from 13812345678." }, "note"],
      ["note with an e-mail", { ...base, note: "Buyer wrote from a.b@example.com." }, "note"],
      ["unknown field", { ...base, buyerName: "Zhang San" }, ""],
    ];
    for (const [label, body, path] of cases) {
      const res = await post(p, body);
      expect(res.status, `${label}: ${JSON.stringify(res.body)}`).toBe(422);
      expect(res.headers.get("content-type"), label).toMatch(/^application\/problem\+json/);
      const paths = errorPaths(res.body);
      if (path === "") {
        expect(paths.length, label).toBeGreaterThan(0);
      } else {
        expect(paths, label).toContain(path);
      }
    }
    expect(await countRows("reports", "platform_id = ?", p.id)).toBe(0);
  });

  it("malformed JSON is 400, a wrong content type 415, and nothing is written", async () => {
    const p = await newPlatform();
    const bad = await call("/v1/reports", {
      token: await p.token(),
      raw: '{"caseId": "x",',
      headers: { "content-type": "application/json" },
    });
    expect(bad.status).toBe(400);
    const text = await call("/v1/reports", {
      token: await p.token(),
      raw: JSON.stringify(reportBody(await newBuyer())),
      headers: { "content-type": "text/plain" },
    });
    expect(text.status).toBe(415);
    expect(await countRows("reports", "platform_id = ?", p.id)).toBe(0);
  });

  it("needs reports:write: 403 on every report route without it", async () => {
    const owner = await newPlatform();
    const reader = await newPlatform({ scopes: ["scores:read"] });
    const r = await create(owner, reportBody(await newBuyer()));
    const routes: [string, unknown][] = [
      ["/v1/reports", reportBody(await newBuyer())],
      ["/v1/reports/bulk", { reports: [reportBody(await newBuyer())] }],
      ["/v1/reports", undefined],
      [`/v1/reports/${r.id}`, undefined],
      [`/v1/reports/${r.id}/retract`, { reason: "No." }],
    ];
    for (const [path, body] of routes) {
      const res = await callJson(path, { token: await reader.token(), body });
      expect(res.status, path).toBe(403);
    }
    expect(await countRows("reports", "platform_id = ?", reader.id)).toBe(0);
    expect((await callJson<Report>(`/v1/reports/${r.id}`, { token: await owner.token() })).body.status).toBe(
      "active",
    );
  });
});

describe("GET /v1/reports/{id}", () => {
  it("the owner reads it; another platform, an unknown and a malformed id are 404", async () => {
    const owner = await newPlatform();
    const stranger = await newPlatform();
    const r = await create(owner, reportBody(await newBuyer()));
    const own = await callJson<Report>(`/v1/reports/${r.id}`, { token: await owner.token() });
    expect(own.status).toBe(200);
    expect(own.body).toEqual(r);
    for (const id of [r.id, "rpt_01JD3X5Z8YQ4W2E6R7T9V0B1N2", "nope"]) {
      const res = await callJson(`/v1/reports/${id}`, { token: await stranger.token() });
      expect(res.status, id).toBe(404);
      expect(res.headers.get("content-type")).toMatch(/^application\/problem\+json/);
      expect(JSON.stringify(res.body)).not.toContain(owner.id);
    }
  });
});

describe("GET /v1/reports", () => {
  it("pages the caller's own reports newest first, without duplicates or gaps", async () => {
    const p = await newPlatform();
    const other = await newPlatform();
    const created: Report[] = [];
    for (let i = 0; i < 5; i++) {
      created.push(await create(p, reportBody(await newBuyer())));
    }
    await create(other, reportBody(await newBuyer()));
    const { items, pages } = await listAll(p, "limit=2");
    expect(pages).toEqual([2, 2, 1]);
    // By creation time, then id (two creates may share a millisecond; ids are random).
    const newest = newestFirst(created);
    expect(items.map((r) => r.id)).toEqual(newest.map((r) => r.id));
    expect(new Set(items.map((r) => r.id)).size).toBe(5);
    expect(items.every((r) => r.platformId === p.id)).toBe(true);
    expect(items[0]).toEqual(newest[0]);

    // Exactly one page of 5: no cursor.
    const whole = await callJson<Page>("/v1/reports?limit=5", { token: await p.token() });
    expect(whole.body.items).toHaveLength(5);
    expect(whole.body.nextCursor).toBeNull();
    const dflt = await callJson<Page>("/v1/reports", { token: await p.token() });
    expect(dflt.body.items.map((r) => r.id)).toEqual(newest.map((r) => r.id));
  });

  it("filters by status", async () => {
    const p = await newPlatform();
    const a = await create(p, reportBody(await newBuyer()));
    const b = await create(p, reportBody(await newBuyer()));
    const c = await create(p, reportBody(await newBuyer()));
    expect((await retract(p, b.id)).status).toBe(200);
    const retracted = await callJson<Page>("/v1/reports?status=retracted", { token: await p.token() });
    expect(retracted.body.items.map((r) => r.id)).toEqual([b.id]);
    const { items } = await listAll(p, "status=active&limit=1");
    expect(items.map((r) => r.id)).toEqual(newestFirst([a, c]).map((r) => r.id));
    const voided = await callJson<Page>("/v1/reports?status=voided", { token: await p.token() });
    expect(voided.body).toEqual({ items: [], nextCursor: null });
    const bad = await callJson("/v1/reports?status=deleted", { token: await p.token() });
    expect(bad.status).toBe(422);
    expect(errorPaths(bad.body)).toContain("status");
  });

  it("an invalid cursor and a limit outside 1–200 are 422", async () => {
    const p = await newPlatform();
    await create(p, reportBody(await newBuyer()));
    const notOurs = btoa("dsp_01JD3X5Z8YQ4W2E6R7T9V0B1N2").replace(/=+$/, "");
    for (const cursor of ["garbage!!", "cnB0X25vcGU", notOurs, "x".repeat(201)]) {
      const res = await callJson(`/v1/reports?cursor=${encodeURIComponent(cursor)}`, {
        token: await p.token(),
      });
      expect(res.status, cursor).toBe(422);
      expect(errorPaths(res.body), cursor).toContain("cursor");
    }
    for (const limit of ["0", "201", "-1", "1.5", "ten"]) {
      const res = await callJson(`/v1/reports?limit=${limit}`, { token: await p.token() });
      expect(res.status, limit).toBe(422);
      expect(errorPaths(res.body), limit).toContain("limit");
    }
    const max = await callJson<Page>("/v1/reports?limit=200", { token: await p.token() });
    expect(max.status).toBe(200);
    expect(max.body.items).toHaveLength(1);
  });

  it("a cursor from another platform's list shows nothing of that platform", async () => {
    const a = await newPlatform();
    const b = await newPlatform();
    await create(a, reportBody(await newBuyer()));
    await create(a, reportBody(await newBuyer()));
    const pageA = await callJson<Page>("/v1/reports?limit=1", { token: await a.token() });
    const cursor = pageA.body.nextCursor as string;
    expect(cursor).toEqual(expect.any(String));
    const res = await callJson<Page>(`/v1/reports?cursor=${cursor}`, { token: await b.token() });
    expect(res.status).toBe(200);
    expect(res.body.items.every((r) => r.platformId === b.id)).toBe(true);
  });
});

describe("POST /v1/reports/{id}/retract", () => {
  it("retracts the owner's report: status, reason, no longer counted, audited; twice is 409", async () => {
    const p = await newPlatform();
    const asker = await newPlatform();
    const buyer = await newBuyer();
    const r = await create(p, reportBody(buyer));
    expect((await score(asker, buyer)).band).not.toBe("none");

    const res = await call(`/v1/reports/${r.id}/retract`, {
      token: await p.token(),
      body: { reason: "Filed against the wrong account." },
    });
    expect(res.status).toBe(200);
    const body = (await res.json()) as Report;
    expect(body).toMatchObject({
      id: r.id,
      status: "retracted",
      statusReason: "Filed against the wrong account.",
      caseId: r.caseId,
      createdAt: r.createdAt,
    });
    expect(Date.parse(body.updatedAt)).toBeGreaterThanOrEqual(Date.parse(r.createdAt));
    const rows = await auditRows(res.headers.get("x-request-id"));
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({
      actor: `platform:${p.id}`,
      action: "report.retract",
      target: r.id,
      outcome: "ok",
    });
    expect(JSON.parse(rows[0]?.details ?? "{}")).toMatchObject({ from: "active", to: "retracted" });
    // Its links stop counting in the same batch (out of the score read, a slot freed under the cap).
    expect(await countRows("report_subjects", "report_id = ? AND counted = 0", r.id)).toBe(2);

    const after = await score(asker, buyer);
    expect(after.score).toBe(0);
    expect(after.band).toBe("none");
    expect(after.records).toEqual([]);
    expect((await callJson<Report>(`/v1/reports/${r.id}`, { token: await p.token() })).body.status).toBe(
      "retracted",
    );

    const twice = await retract(p, r.id, "Again.");
    expect(twice.status).toBe(409);
    expect(twice.headers.get("content-type")).toMatch(/^application\/problem\+json/);
    expect(
      (await callJson<Report>(`/v1/reports/${r.id}`, { token: await p.token() })).body.statusReason,
    ).toBe("Filed against the wrong account.");
  });

  it("another platform's report is 404 and stays active; the reason is validated", async () => {
    const owner = await newPlatform();
    const stranger = await newPlatform();
    const r = await create(owner, reportBody(await newBuyer()));
    expect((await retract(stranger, r.id)).status).toBe(404);
    expect((await retract(stranger, "rpt_01JD3X5Z8YQ4W2E6R7T9V0B1N2")).status).toBe(404);
    for (const reason of ["", "   ", "r".repeat(501), "Call 13812345678 for details", null]) {
      const res = await retract(owner, r.id, reason);
      expect(res.status, String(reason)).toBe(422);
      expect(errorPaths(res.body)).toContain("reason");
    }
    const missing = await callJson(`/v1/reports/${r.id}/retract`, { token: await owner.token(), body: {} });
    expect(missing.status).toBe(422);
    const read = await callJson<Report>(`/v1/reports/${r.id}`, { token: await owner.token() });
    expect(read.body.status).toBe("active");
    expect(read.body.statusReason).toBeNull();
  });

  it("a voided report cannot be retracted (409)", async () => {
    const p = await newPlatform();
    const r = await create(p, reportBody(await newBuyer()));
    const v = await callJson(`/v1/admin/reports/${r.id}/void`, {
      token: await adminToken(),
      body: { reason: "Evidence did not hold." },
    });
    expect(v.status).toBe(200);
    expect((await retract(p, r.id)).status).toBe(409);
  });
});

describe("POST /v1/reports/bulk", () => {
  it("per-item results: one bad item fails only itself; a replay answers 200 per item", async () => {
    const p = await newPlatform();
    const items = [
      reportBody(await newBuyer()),
      reportBody(await newBuyer(), { category: "deepfake" }),
      reportBody(await newBuyer(), { incidentAt: daysAgo(1), confirmedAt: daysAgo(2) }),
      reportBody(await newBuyer(), { amount: { value: 7, currency: "EUR" } }),
    ];
    const res = await call("/v1/reports/bulk", { token: await p.token(), body: { reports: items } });
    expect(res.status).toBe(200);
    const { results } = (await res.json()) as { results: BulkResult[] };
    expect(results.map((r) => [r.index, r.status])).toEqual([
      [0, 201],
      [1, 422],
      [2, 422],
      [3, 201],
    ]);
    expect(results[0]?.id).toMatch(REPORT_ID);
    expect(results[3]?.id).toMatch(REPORT_ID);
    expect(results[1]?.problem?.status).toBe(422);
    expect(results[1]?.problem?.errors?.map((e) => e.path)).toContain("category");
    expect(results[2]?.problem?.errors?.map((e) => e.path)).toContain("incidentAt");
    expect(results[1]).not.toHaveProperty("id");
    expect(await countRows("reports", "platform_id = ?", p.id)).toBe(2);
    const one = await callJson<Report>(`/v1/reports/${results[3]?.id}`, { token: await p.token() });
    expect(one.body).toMatchObject({ caseId: items[3]?.caseId, amount: { value: 7, currency: "EUR" } });
    expect(one.body.subjects).toHaveLength(2);

    // One audit entry per item, the invalid ones included.
    const rows = await auditRows(res.headers.get("x-request-id"));
    expect(rows.map((r) => r.outcome).sort()).toEqual(["created", "created", "invalid", "invalid"]);
    expect(rows.every((r) => r.actor === `platform:${p.id}` && r.action === "report.create")).toBe(true);
    // Each entry names the item's index in the request, valid or not.
    const byItem = rows
      .map((r) => [(JSON.parse(r.details ?? "{}") as { item: number }).item, r.outcome])
      .sort((x, y) => Number(x[0]) - Number(y[0]));
    expect(byItem).toEqual([
      [0, "created"],
      [1, "invalid"],
      [2, "invalid"],
      [3, "created"],
    ]);

    const again = await callJson<{ results: BulkResult[] }>("/v1/reports/bulk", {
      token: await p.token(),
      body: { reports: [items[3], { ...items[0], note: "changed" }] },
    });
    expect(again.body.results.map((r) => [r.index, r.status, r.id ?? null])).toEqual([
      [0, 200, results[3]?.id],
      [1, 409, null],
    ]);
    expect(again.body.results[1]?.problem?.status).toBe(409);
    expect(await countRows("reports", "platform_id = ?", p.id)).toBe(2);
  });

  it("the same caseId twice in one call: the second is a replay or a conflict, as if posted alone", async () => {
    const p = await newPlatform();
    const a = reportBody(await newBuyer());
    const b = reportBody(await newBuyer());
    const res = await callJson<{ results: BulkResult[] }>("/v1/reports/bulk", {
      token: await p.token(),
      body: { reports: [a, a, b, { ...b, category: "other_forgery" }] },
    });
    expect(res.status).toBe(200);
    const r = res.body.results;
    expect(r.map((x) => x.status)).toEqual([201, 200, 201, 409]);
    expect(r[1]?.id).toBe(r[0]?.id);
    expect(await countRows("reports", "platform_id = ?", p.id)).toBe(2);
    expect(await countRows("report_subjects", "report_id IN (?, ?)", r[0]?.id, r[2]?.id)).toBe(4);
  });

  it("500 items are written; 501 or none are 422 and write nothing", async () => {
    const p = await newPlatform();
    const buyer = await newBuyer();
    // A buyer each: one platform may hold only MAX_ACTIVE_REPORTS_PER_SUBJECT about one buyer.
    const items = await Promise.all(
      Array.from({ length: 501 }, async (_, i) =>
        reportBody(await newBuyer(), { caseId: `BULK-${p.id}-${i}` }),
      ),
    );
    const tooMany = await callJson("/v1/reports/bulk", { token: await p.token(), body: { reports: items } });
    expect(tooMany.status).toBe(422);
    expect(errorPaths(tooMany.body)).toContain("reports");
    expect(await countRows("reports", "platform_id = ?", p.id)).toBe(0);
    const none = await callJson("/v1/reports/bulk", { token: await p.token(), body: { reports: [] } });
    expect(none.status).toBe(422);
    const notArray = await callJson("/v1/reports/bulk", { token: await p.token(), body: reportBody(buyer) });
    expect(notArray.status).toBe(422);
    expect(await countRows("reports", "platform_id = ?", p.id)).toBe(0);

    const ok = await callJson<{ results: BulkResult[] }>("/v1/reports/bulk", {
      token: await p.token(),
      body: { reports: items.slice(0, 500) },
    });
    expect(ok.status).toBe(200);
    expect(ok.body.results).toHaveLength(500);
    expect(ok.body.results.map((r) => r.index)).toEqual(items.slice(0, 500).map((_, i) => i));
    expect(ok.body.results.every((r) => r.status === 201)).toBe(true);
    expect(new Set(ok.body.results.map((r) => r.id)).size).toBe(500);
    expect(await countRows("reports", "platform_id = ?", p.id)).toBe(500);
    expect(
      await countRows("report_subjects", "report_id IN (SELECT id FROM reports WHERE platform_id = ?)", p.id),
    ).toBe(1000);
  });
});

describe("report times", () => {
  it("are stored as instants and answered in UTC", async () => {
    const p = await newPlatform();
    const r = await create(
      p,
      reportBody(await newBuyer(), {
        incidentAt: "2026-02-01T08:00:00+08:00",
        confirmedAt: "2026-02-01T00:00:00.500Z",
      }),
    );
    expect(r.incidentAt).toBe("2026-02-01T00:00:00Z");
    expect(r.confirmedAt).toBe("2026-02-01T00:00:00.500Z");
    const row = await env.DB.prepare("SELECT incident_at, confirmed_at FROM reports WHERE id = ?")
      .bind(r.id)
      .first<{ incident_at: number; confirmed_at: number }>();
    expect(row).toEqual({
      incident_at: Date.parse("2026-02-01T00:00:00Z"),
      confirmed_at: Date.parse("2026-02-01T00:00:00Z") + 500,
    });
    expect(row && row.confirmed_at - row.incident_at).toBeLessThan(DAY);
  });
});
