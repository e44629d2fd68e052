/**
 * The admin API through HTTP (CONTRACT §7): platforms (create, list, read, suspend and
 * reactivate, scopes, key rotation), reports (list with filters, read, void), stats with the
 * enumeration signal, the maintenance run, and the audit entry every admin action leaves.
 */
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { signToken } from "../client/token";
import {
  ALL_PLATFORM_SCOPES,
  adminToken,
  auditRows,
  auditRowsEventually,
  call,
  callJson,
  countRows,
  createReport,
  daysAgo,
  errorPaths,
  newBuyer,
  newestFirst,
  newKeyPair,
  newPlatform,
  reportBody,
  type TestPlatform,
  uniqueId,
} from "./harness";

const ADMIN_ACTOR = "admin:test-admin";
const DAY = 86_400_000;

type Subject = { type: string; hash: string };

interface Platform {
  id: string;
  name: string;
  status: string;
  scopes: string[];
  jwks: { keys: Record<string, unknown>[] };
  createdAt: string;
  updatedAt: string;
}

interface Report {
  id: string;
  caseId: string;
  platformId: string;
  status: string;
  statusReason: string | null;
  createdAt: string;
  updatedAt: string;
}

interface Page<T> {
  items: T[];
  nextCursor: string | null;
}

interface UsageRow {
  platformId: string;
  queries: number;
  subjects: number;
  reports: number;
  lookupsPerReport: number | null;
  subjectAccess: number;
  disputesOpened: number;
  distinctSubjectsToday: number;
}

interface Stats {
  platforms: Record<string, number>;
  reports: Record<string, number>;
  disputes: Record<string, number>;
  queriesPerDay: { day: string; queries: number; subjects: number }[];
  usage: UsageRow[];
  audit: { entries: number; unsealed: number; lastCheckpoint: { seq: number; at: string } | null };
}

async function admin<T = Record<string, unknown>>(
  path: string,
  options: { method?: string; body?: unknown } = {},
) {
  return callJson<T>(path, { token: await adminToken(), ...options });
}

async function scoreOf(p: TestPlatform, subjects: Subject[]) {
  const res = await callJson<{ score: number; band: string; records: { ref: string }[] }>(
    "/v1/scores/query",
    {
      token: await p.token(),
      body: { subjects, purpose: "refund_review" },
    },
  );
  expect(res.status).toBe(200);
  return res.body;
}

async function platformBody(overrides: Record<string, unknown> = {}) {
  const keys = await newKeyPair();
  return {
    keys,
    body: {
      id: uniqueId("adm"),
      name: "Shop Under Test",
      scopes: ["reports:write", "scores:read"],
      jwks: { keys: [keys.publicJwk] },
      ...overrides,
    },
  };
}

describe("POST /v1/admin/platforms", () => {
  it("201 with the platform; its tokens work at once; audited with the admin actor", async () => {
    const { keys, body } = await platformBody();
    const before = Date.now();
    const res = await call("/v1/admin/platforms", { token: await adminToken(), body });
    expect(res.status).toBe(201);
    const p = (await res.json()) as Platform;
    expect(p).toMatchObject({
      id: body.id,
      name: "Shop Under Test",
      status: "active",
      scopes: ["reports:write", "scores:read"],
      jwks: { keys: [keys.publicJwk] },
    });
    expect(p.createdAt).toBe(p.updatedAt);
    expect(Date.parse(p.createdAt)).toBeGreaterThanOrEqual(before - 1000);
    expect(JSON.stringify(p)).not.toContain('"d"');

    const rows = await auditRows(res.headers.get("x-request-id"));
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({
      actor: ADMIN_ACTOR,
      action: "platform.create",
      target: body.id,
      outcome: "created",
    });
    expect(JSON.parse(rows[0]?.details ?? "{}")).toMatchObject({ kids: [keys.kid] });

    const token = await signToken(keys.privateJwk, { iss: body.id });
    const q = await callJson("/v1/scores/query", {
      token,
      body: { subjects: await newBuyer(), purpose: "refund_review" },
    });
    expect(q.status).toBe(200);
  });

  it("an ES256 key set is accepted as well", async () => {
    const keys = await newKeyPair("ES256");
    const id = uniqueId("es");
    const res = await admin("/v1/admin/platforms", {
      body: { id, name: "EC shop", scopes: ALL_PLATFORM_SCOPES, jwks: { keys: [keys.publicJwk] } },
    });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    const q = await callJson("/v1/reports", {
      token: await signToken(keys.privateJwk, { iss: id }),
      body: reportBody(await newBuyer()),
    });
    expect(q.status).toBe(201);
  });

  it("a duplicate id is 409 and leaves the first registration alone", async () => {
    const { body } = await platformBody();
    expect((await admin("/v1/admin/platforms", { body })).status).toBe(201);
    const again = await admin("/v1/admin/platforms", { body: { ...body, name: "Impostor" } });
    expect(again.status).toBe(409);
    expect(again.headers.get("content-type")).toMatch(/^application\/problem\+json/);
    const read = await admin<Platform>(`/v1/admin/platforms/${body.id}`);
    expect(read.body.name).toBe("Shop Under Test");
    expect(await countRows("platforms", "id = ?", body.id)).toBe(1);
  });

  it("every rule of the body is 422 and registers nothing", async () => {
    const { keys, body } = await platformBody();
    const { d: _d, ...noD } = keys.privateJwk;
    const cases: [string, Record<string, unknown>, string][] = [
      ["upper-case id", { id: "Shop-A" }, "id"],
      ["one-char id", { id: "a" }, "id"],
      ["id with underscore", { id: "shop_a" }, "id"],
      ["id starting with dash", { id: "-shop" }, "id"],
      ["reserved id", { id: "pixiu-admin" }, "id"],
      ["id too long", { id: "a".repeat(64) }, "id"],
      ["empty name", { name: "  " }, "name"],
      ["long name", { name: "n".repeat(201) }, "name"],
      ["no scopes", { scopes: [] }, "scopes"],
      ["admin scope", { scopes: ["admin"] }, "scopes.0"],
      ["unknown scope", { scopes: ["reports:read"] }, "scopes.0"],
      ["duplicate scope", { scopes: ["scores:read", "scores:read"] }, "scopes"],
      ["no keys", { jwks: { keys: [] } }, "jwks.keys"],
      ["private key", { jwks: { keys: [keys.privateJwk] } }, "jwks.keys.0"],
      ["private half alone", { jwks: { keys: [{ ...noD, d: "x".repeat(43) }] } }, "jwks.keys.0"],
      ["RSA key", { jwks: { keys: [{ kty: "RSA", n: "abc", e: "AQAB", kid: "r1" }] } }, "jwks.keys.0.kty"],
      ["no kid", { jwks: { keys: [{ ...keys.publicJwk, kid: undefined }] } }, "jwks.keys.0.kid"],
      ["duplicate kid", { jwks: { keys: [keys.publicJwk, keys.publicJwk] } }, "jwks.keys.1.kid"],
      ["HS alg on a key", { jwks: { keys: [{ ...keys.publicJwk, alg: "HS256" }] } }, "jwks.keys.0.alg"],
      ["unknown field", { status: "suspended" }, ""],
    ];
    for (const [label, change, path] of cases) {
      const id = uniqueId("bad");
      const res = await admin("/v1/admin/platforms", { body: { ...body, id, ...change } });
      expect(res.status, `${label}: ${JSON.stringify(res.body)}`).toBe(422);
      const paths = errorPaths(res.body);
      if (path === "") {
        expect(paths.length, label).toBeGreaterThan(0);
      } else {
        expect(paths, label).toContain(path);
      }
      expect(await countRows("platforms", "id = ?", (change.id as string | undefined) ?? id), label).toBe(0);
    }
    for (const missing of ["id", "name", "scopes", "jwks"]) {
      const partial = Object.fromEntries(Object.entries(body).filter(([k]) => k !== missing));
      const res = await admin("/v1/admin/platforms", { body: partial });
      expect(res.status, missing).toBe(422);
      expect(errorPaths(res.body), missing).toContain(missing);
    }
    expect(await countRows("platforms", "id = ?", body.id)).toBe(0);
  });

  it("admin routes need the admin scope: a platform token is 403, no token 401", async () => {
    const p = await newPlatform();
    const { body } = await platformBody();
    const routes: [string, string, unknown][] = [
      ["POST", "/v1/admin/platforms", body],
      ["GET", "/v1/admin/platforms", undefined],
      ["GET", `/v1/admin/platforms/${p.id}`, undefined],
      ["PATCH", `/v1/admin/platforms/${p.id}`, { status: "suspended" }],
      ["PUT", `/v1/admin/platforms/${p.id}/keys`, { keys: [p.publicJwk] }],
      ["GET", "/v1/admin/reports", undefined],
      ["GET", "/v1/admin/reports/rpt_01JD3X5Z8YQ4W2E6R7T9V0B1N2", undefined],
      ["POST", "/v1/admin/reports/rpt_01JD3X5Z8YQ4W2E6R7T9V0B1N2/void", { reason: "x" }],
      ["GET", "/v1/admin/stats", undefined],
      ["POST", "/v1/admin/maintenance/run", {}],
    ];
    for (const [method, path, b] of routes) {
      const res = await callJson(path, { method, token: await p.token(), body: b });
      expect(res.status, `${method} ${path}`).toBe(403);
      const anon = await call(path, { method, body: b });
      expect(anon.status, `${method} ${path}`).toBe(401);
    }
    // An admin token narrowed to no admin scope is not an admin token.
    const narrowed = await callJson("/v1/admin/stats", { token: await adminToken({ scope: "scores:read" }) });
    expect(narrowed.status).toBe(403);
    expect(await countRows("platforms", "id = ?", body.id)).toBe(0);
    expect((await admin<Platform>(`/v1/admin/platforms/${p.id}`)).body.status).toBe("active");
  });
});

describe("GET /v1/admin/platforms", () => {
  it("lists every platform by id, cursor-paginated; reads one; 404 for an unknown id", async () => {
    const mine = [await newPlatform(), await newPlatform()];
    const seen: Platform[] = [];
    let cursor: string | null = null;
    for (let i = 0; i < 100; i++) {
      const q: string = cursor === null ? "?limit=3" : `?limit=3&cursor=${encodeURIComponent(cursor)}`;
      const res: { status: number; body: Page<Platform> } = await admin<Page<Platform>>(
        `/v1/admin/platforms${q}`,
      );
      expect(res.status).toBe(200);
      expect(res.body.items.length).toBeLessThanOrEqual(3);
      seen.push(...res.body.items);
      cursor = res.body.nextCursor;
      if (cursor === null) {
        break;
      }
    }
    expect(cursor).toBeNull();
    const ids = seen.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    expect([...ids].sort()).toEqual(ids);
    for (const p of mine) {
      expect(ids).toContain(p.id);
    }
    expect(ids.length).toBe(await countRows("platforms"));

    const one = await admin<Platform>(`/v1/admin/platforms/${mine[0]?.id}`);
    expect(one.status).toBe(200);
    // The list's view, plus the reporter trust and the collusion group only this admin read
    // shows (docs/scoring.md §2a, §3d).
    const { trust, group, ...listed } = one.body as Platform & { trust: unknown; group: unknown };
    expect(listed).toEqual(seen.find((p) => p.id === mine[0]?.id));
    expect(trust).toMatchObject({ trust: 1, probation: false });
    expect(group).toBeNull();
    expect(one.body.scopes).toEqual(ALL_PLATFORM_SCOPES);

    expect((await admin(`/v1/admin/platforms/${uniqueId("none")}`)).status).toBe(404);
    const bad = await admin("/v1/admin/platforms?cursor=%21%21");
    expect(bad.status).toBe(422);
    expect(errorPaths(bad.body)).toContain("cursor");
    expect((await admin("/v1/admin/platforms?limit=201")).status).toBe(422);
  });
});

describe("PATCH /v1/admin/platforms/{id}", () => {
  it("renames and changes scopes; a removed scope is 403 for the platform at once", async () => {
    const p = await newPlatform();
    const renamed = await call(`/v1/admin/platforms/${p.id}`, {
      method: "PATCH",
      token: await adminToken(),
      body: { name: "Renamed Shop" },
    });
    expect(renamed.status).toBe(200);
    const body = (await renamed.json()) as Platform;
    expect(body).toMatchObject({
      id: p.id,
      name: "Renamed Shop",
      status: "active",
      scopes: ALL_PLATFORM_SCOPES,
    });
    expect(Date.parse(body.updatedAt)).toBeGreaterThanOrEqual(Date.parse(body.createdAt));
    const rows = await auditRows(renamed.headers.get("x-request-id"));
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({
      actor: ADMIN_ACTOR,
      action: "platform.update",
      target: p.id,
      outcome: "ok",
    });
    // The audit outbox's id is chained beside the details (worker/log/outbox.ts).
    expect(JSON.parse(rows[0]?.details ?? "{}")).toEqual({
      changes: { name: "Renamed Shop" },
      outboxId: expect.any(Number),
    });

    const buyer = await newBuyer();
    expect((await callJson("/v1/reports", { token: await p.token(), body: reportBody(buyer) })).status).toBe(
      201,
    );
    const scoped = await admin<Platform>(`/v1/admin/platforms/${p.id}`, {
      method: "PATCH",
      body: { scopes: ["scores:read"] },
    });
    expect(scoped.status).toBe(200);
    expect(scoped.body.scopes).toEqual(["scores:read"]);
    expect((await callJson("/v1/reports", { token: await p.token(), body: reportBody(buyer) })).status).toBe(
      403,
    );
    expect((await scoreOf(p, buyer)).band).not.toBe("none");
  });

  it("a suspended platform is 403 on every call; reactivated, it works again", async () => {
    const p = await newPlatform();
    const buyer = await newBuyer();
    const r = await createReport(p, buyer);
    const suspended = await admin<Platform>(`/v1/admin/platforms/${p.id}`, {
      method: "PATCH",
      body: { status: "suspended" },
    });
    expect(suspended.status).toBe(200);
    expect(suspended.body.status).toBe("suspended");
    const calls: [string, unknown][] = [
      ["/v1/scores/query", { subjects: buyer, purpose: "refund_review" }],
      ["/v1/reports", reportBody(buyer)],
      ["/v1/reports", undefined],
      [`/v1/reports/${r.id}`, undefined],
      [`/v1/reports/${r.id}/retract`, { reason: "Suspended platforms cannot retract." }],
      ["/v1/subject-access", { requestRef: "T-1", subjects: buyer }],
    ];
    for (const [path, body] of calls) {
      const res = await callJson(path, { token: await p.token(), body });
      expect(res.status, path).toBe(403);
      expect(res.headers.get("content-type")).toMatch(/^application\/problem\+json/);
    }
    expect(await countRows("reports", "platform_id = ?", p.id)).toBe(1);
    // Its reports still count: suspension stops the platform, not its past confirmed cases.
    const other = await newPlatform();
    expect((await scoreOf(other, buyer)).records.map((x) => x.ref)).toEqual([r.id]);

    const back = await admin<Platform>(`/v1/admin/platforms/${p.id}`, {
      method: "PATCH",
      body: { status: "active" },
    });
    expect(back.status).toBe(200);
    expect(back.body.status).toBe("active");
    const again = await callJson(`/v1/reports/${r.id}`, { token: await p.token() });
    expect(again.status).toBe(200);
  });

  it("an empty or invalid patch is 422, an unknown platform 404; neither changes anything", async () => {
    const p = await newPlatform();
    for (const body of [
      {},
      { status: "deleted" },
      { name: "" },
      { scopes: [] },
      { scopes: ["admin"] },
      { id: "new-id" },
      { jwks: { keys: [] } },
    ]) {
      const res = await admin(`/v1/admin/platforms/${p.id}`, { method: "PATCH", body });
      expect(res.status, JSON.stringify(body)).toBe(422);
    }
    const missing = await admin(`/v1/admin/platforms/${uniqueId("none")}`, {
      method: "PATCH",
      body: { status: "suspended" },
    });
    expect(missing.status).toBe(404);
    const read = await admin<Platform>(`/v1/admin/platforms/${p.id}`);
    expect(read.body).toMatchObject({
      id: p.id,
      name: `Platform ${p.id}`,
      status: "active",
      scopes: ALL_PLATFORM_SCOPES,
    });
  });
});

describe("PUT /v1/admin/platforms/{id}/keys", () => {
  it("rotation: old and new keys side by side, then the old one removed is 401", async () => {
    const p = await newPlatform();
    const next = await newKeyPair("ES256");
    const withNew = (o = {}) => signToken(next.privateJwk, { iss: p.id, ...o });
    expect(
      (await callJson("/v1/reports", { token: await withNew(), body: reportBody(await newBuyer()) })).status,
    ).toBe(401);

    const both = await call(`/v1/admin/platforms/${p.id}/keys`, {
      method: "PUT",
      token: await adminToken(),
      body: { keys: [p.publicJwk, next.publicJwk] },
    });
    expect(both.status).toBe(200);
    expect(((await both.json()) as Platform).jwks.keys.map((k) => k.kid)).toEqual([
      p.publicJwk.kid,
      next.kid,
    ]);
    const rows = await auditRows(both.headers.get("x-request-id"));
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({
      actor: ADMIN_ACTOR,
      action: "platform.keys",
      target: p.id,
      outcome: "ok",
    });
    expect(JSON.parse(rows[0]?.details ?? "{}")).toEqual({
      kids: [p.publicJwk.kid, next.kid],
      outboxId: expect.any(Number),
    });
    for (const token of [await p.token(), await withNew()]) {
      expect((await callJson("/v1/reports", { token, body: reportBody(await newBuyer()) })).status).toBe(201);
    }

    const only = await admin<Platform>(`/v1/admin/platforms/${p.id}/keys`, {
      method: "PUT",
      body: { keys: [next.publicJwk] },
    });
    expect(only.status).toBe(200);
    const old = await call("/v1/reports", { token: await p.token(), body: reportBody(await newBuyer()) });
    expect(old.status).toBe(401);
    expect(old.headers.get("www-authenticate")).toMatch(/^Bearer/);
    expect(
      (await callJson("/v1/reports", { token: await withNew(), body: reportBody(await newBuyer()) })).status,
    ).toBe(201);
    expect(await countRows("reports", "platform_id = ?", p.id)).toBe(3);
  });

  it("an invalid key set is 422 and keeps the old keys; an unknown platform is 404", async () => {
    const p = await newPlatform();
    const next = await newKeyPair();
    for (const body of [
      { keys: [] },
      { keys: [next.privateJwk] },
      { keys: [next.publicJwk, next.publicJwk] },
      { keys: Array.from({ length: 11 }, (_, i) => ({ ...next.publicJwk, kid: `k${i}` })) },
      [next.publicJwk],
    ]) {
      const res = await admin(`/v1/admin/platforms/${p.id}/keys`, { method: "PUT", body });
      expect(res.status, JSON.stringify(body).slice(0, 80)).toBe(422);
    }
    expect(
      (
        await admin(`/v1/admin/platforms/${uniqueId("none")}/keys`, {
          method: "PUT",
          body: { keys: [next.publicJwk] },
        })
      ).status,
    ).toBe(404);
    expect((await admin<Platform>(`/v1/admin/platforms/${p.id}`)).body.jwks.keys).toEqual([p.publicJwk]);
    expect((await callJson("/v1/reports", { token: await p.token() })).status).toBe(200);
  });
});

describe("admin reports", () => {
  it("lists all reports newest first, filtered by platformId and status, cursor-paginated", async () => {
    const a = await newPlatform();
    const b = await newPlatform();
    const a1 = await createReport(a, await newBuyer());
    const a2 = await createReport(a, await newBuyer());
    const a3 = await createReport(a, await newBuyer());
    const b1 = await createReport(b, await newBuyer());
    expect(
      (await admin(`/v1/admin/reports/${a2.id}/void`, { body: { reason: "Wrong buyer." } })).status,
    ).toBe(200);

    const byA = await admin<Page<Report>>(`/v1/admin/reports?platformId=${a.id}`);
    expect(byA.status).toBe(200);
    // Newest first: by creation time, then id (ids are random; two creates may share a ms).
    const newestOfA = newestFirst([a1, a2, a3]).map((r) => r.id);
    expect(byA.body.items.map((r) => r.id)).toEqual(newestOfA);
    expect(byA.body.items.every((r) => r.platformId === a.id)).toBe(true);
    expect(byA.body.nextCursor).toBeNull();

    const voided = await admin<Page<Report>>(`/v1/admin/reports?platformId=${a.id}&status=voided`);
    expect(voided.body.items.map((r) => [r.id, r.status])).toEqual([[a2.id, "voided"]]);
    const active = await admin<Page<Report>>(`/v1/admin/reports?platformId=${a.id}&status=active`);
    expect(active.body.items.map((r) => r.id)).toEqual(newestOfA.filter((id) => id !== a2.id));

    // Status alone spans platforms; both of b's and a's active reports are in it, newest first.
    const allActive: string[] = [];
    let cursor: string | null = null;
    for (let i = 0; i < 200; i++) {
      const q: string = cursor === null ? "" : `&cursor=${cursor}`;
      const res: { status: number; body: Page<Report> } = await admin<Page<Report>>(
        `/v1/admin/reports?status=active&limit=200${q}`,
      );
      expect(res.status).toBe(200);
      expect(res.body.items.every((r) => r.status === "active")).toBe(true);
      allActive.push(...res.body.items.map((r) => r.id));
      cursor = res.body.nextCursor;
      if (cursor === null || (allActive.includes(a1.id) && allActive.includes(b1.id))) {
        break;
      }
    }
    expect(allActive).toContain(b1.id);
    expect(allActive).toContain(a1.id);
    expect(allActive.filter((id) => id === a1.id || id === b1.id)).toEqual(
      newestFirst([a1, b1]).map((r) => r.id),
    );
    expect(allActive).not.toContain(a2.id);

    // Page by one.
    const pages: string[] = [];
    cursor = null;
    for (let i = 0; i < 5; i++) {
      const q: string = cursor === null ? "" : `&cursor=${cursor}`;
      const res: { status: number; body: Page<Report> } = await admin<Page<Report>>(
        `/v1/admin/reports?platformId=${a.id}&limit=1${q}`,
      );
      expect(res.body.items).toHaveLength(1);
      pages.push(...res.body.items.map((r) => r.id));
      cursor = res.body.nextCursor;
      if (cursor === null) {
        break;
      }
    }
    expect(pages).toEqual(newestOfA);

    expect((await admin(`/v1/admin/reports?platformId=${uniqueId("none")}`)).body).toEqual({
      items: [],
      nextCursor: null,
    });
    for (const q of ["status=gone", "cursor=%21%21", "limit=0", "limit=201"]) {
      const res = await admin(`/v1/admin/reports?${q}`);
      expect(res.status, q).toBe(422);
    }
  });

  it("reads any report with its platformId; 404 for an unknown one", async () => {
    const p = await newPlatform();
    const r = await createReport(p, await newBuyer());
    const res = await admin<Report>(`/v1/admin/reports/${r.id}`);
    expect(res.status).toBe(200);
    expect(res.body).toEqual(r);
    expect(res.body.platformId).toBe(p.id);
    expect((await admin("/v1/admin/reports/rpt_01JD3X5Z8YQ4W2E6R7T9V0B1N2")).status).toBe(404);
  });

  it("void: status voided with its reason, no longer counted, audited; twice is 409; unknown 404", async () => {
    const reporter = await newPlatform();
    const asker = await newPlatform();
    const buyer = await newBuyer();
    const r = await createReport(reporter, buyer);
    const keep = await createReport(reporter, [buyer[0] as Subject], {
      incidentAt: daysAgo(40),
      confirmedAt: daysAgo(39),
    });
    const before = await scoreOf(asker, buyer);
    expect(before.records.map((x) => x.ref).sort()).toEqual([r.id, keep.id].sort());

    const res = await call(`/v1/admin/reports/${r.id}/void`, {
      token: await adminToken(),
      body: { reason: "The evidence was the merchant's own photo." },
    });
    expect(res.status).toBe(200);
    const voided = (await res.json()) as Report;
    expect(voided).toMatchObject({
      id: r.id,
      status: "voided",
      statusReason: "The evidence was the merchant's own photo.",
      platformId: reporter.id,
    });
    const rows = await auditRows(res.headers.get("x-request-id"));
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ actor: ADMIN_ACTOR, action: "report.void", target: r.id, outcome: "ok" });
    expect(JSON.parse(rows[0]?.details ?? "{}")).toMatchObject({ from: "active", to: "voided" });
    expect(await countRows("report_subjects", "report_id = ? AND counted = 0", r.id)).toBe(2);
    expect(await countRows("report_subjects", "report_id = ? AND counted = 1", keep.id)).toBe(1);

    const after = await scoreOf(asker, buyer);
    expect(after.records.map((x) => x.ref)).toEqual([keep.id]);
    expect(after.score).toBeLessThan(before.score);
    expect(after.score).toBeGreaterThan(0);

    const twice = await admin(`/v1/admin/reports/${r.id}/void`, { body: { reason: "Again." } });
    expect(twice.status).toBe(409);
    expect((await admin<Report>(`/v1/admin/reports/${r.id}`)).body.statusReason).toBe(
      "The evidence was the merchant's own photo.",
    );
    // The reporter sees its own report voided, and cannot retract it any more.
    const own = await callJson<Report>(`/v1/reports/${r.id}`, { token: await reporter.token() });
    expect(own.body.status).toBe("voided");

    expect(
      (await admin("/v1/admin/reports/rpt_01JD3X5Z8YQ4W2E6R7T9V0B1N2/void", { body: { reason: "x" } }))
        .status,
    ).toBe(404);
    for (const body of [{}, { reason: "" }, { reason: "Call 13812345678." }]) {
      expect((await admin(`/v1/admin/reports/${keep.id}/void`, { body })).status, JSON.stringify(body)).toBe(
        422,
      );
    }
    expect((await admin<Report>(`/v1/admin/reports/${keep.id}`)).body.status).toBe("active");
  });

  it("a retracted report cannot be voided (409)", async () => {
    const p = await newPlatform();
    const r = await createReport(p, await newBuyer());
    const retract = await callJson(`/v1/reports/${r.id}/retract`, {
      token: await p.token(),
      body: { reason: "Duplicate case." },
    });
    expect(retract.status).toBe(200);
    expect((await admin(`/v1/admin/reports/${r.id}/void`, { body: { reason: "Too late." } })).status).toBe(
      409,
    );
    expect((await admin<Report>(`/v1/admin/reports/${r.id}`)).body.status).toBe("retracted");
  });
});

describe("GET /v1/admin/stats", () => {
  it("counts by status, queries per day, and per-platform usage that exposes enumeration", async () => {
    const enumerator = await newPlatform();
    const honest = await newPlatform();
    const silent = await newPlatform();
    const before = await admin<Stats>("/v1/admin/stats");
    expect(before.status).toBe(200);

    // The enumerator looks up 30 distinct buyers (2 keys each) and reports once.
    await createReport(enumerator, await newBuyer());
    const buyers = await Promise.all(Array.from({ length: 30 }, () => newBuyer()));
    const batch = await callJson("/v1/scores/batch", {
      token: await enumerator.token(),
      body: {
        purpose: "account_review",
        queries: buyers.map((subjects, i) => ({ ref: `b-${i}`, subjects })),
      },
    });
    expect(batch.status).toBe(200);
    // The honest platform reports four cases and looks one buyer up.
    const reported = await newBuyer();
    for (let i = 0; i < 4; i++) {
      await createReport(honest, reported, { incidentAt: daysAgo(20 + i), confirmedAt: daysAgo(19 + i) });
    }
    await scoreOf(honest, reported);
    // The silent one only looks up.
    await scoreOf(silent, await newBuyer());
    await scoreOf(silent, [(await newBuyer())[0] as Subject]);

    const res = await call("/v1/admin/stats", { token: await adminToken() });
    expect(res.status).toBe(200);
    const stats = (await res.json()) as Stats;
    const usage = new Map(stats.usage.map((u) => [u.platformId, u]));
    expect(usage.get(enumerator.id)).toEqual({
      platformId: enumerator.id,
      queries: 30,
      subjects: 60,
      reports: 1,
      lookupsPerReport: 60,
      subjectAccess: 0,
      disputesOpened: 0,
      distinctSubjectsToday: 60,
    });
    expect(usage.get(honest.id)).toEqual({
      platformId: honest.id,
      queries: 1,
      subjects: 2,
      reports: 4,
      lookupsPerReport: 0.5,
      subjectAccess: 0,
      disputesOpened: 0,
      distinctSubjectsToday: 2,
    });
    expect(usage.get(silent.id)).toEqual({
      platformId: silent.id,
      queries: 2,
      subjects: 3,
      reports: 0,
      lookupsPerReport: null,
      subjectAccess: 0,
      disputesOpened: 0,
      distinctSubjectsToday: 3,
    });
    // Ordered most suspicious first: look-ups without any report, then by look-ups per report.
    const order = stats.usage.map((u) => u.platformId);
    expect(order.indexOf(silent.id)).toBeLessThan(order.indexOf(enumerator.id));
    expect(order.indexOf(enumerator.id)).toBeLessThan(order.indexOf(honest.id));

    // Totals moved by at least what this test did (other tests share the database).
    expect(stats.reports.active ?? 0).toBeGreaterThanOrEqual((before.body.reports.active ?? 0) + 5);
    expect(stats.platforms.active ?? 0).toBeGreaterThanOrEqual(3);
    const today = new Date().toISOString().slice(0, 10);
    const day = stats.queriesPerDay.find((d) => d.day === today);
    const dayBefore = before.body.queriesPerDay.find((d) => d.day === today);
    expect(day?.queries ?? 0).toBeGreaterThanOrEqual((dayBefore?.queries ?? 0) + 33);
    expect(day?.subjects ?? 0).toBeGreaterThanOrEqual((dayBefore?.subjects ?? 0) + 65);
    expect(stats.audit.entries).toBeGreaterThan(before.body.audit.entries);

    const rows = await auditRowsEventually(res.headers.get("x-request-id"));
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ actor: ADMIN_ACTOR, action: "admin.stats", outcome: "ok" });
  });

  it("counts reports by status, including voided and retracted", async () => {
    const p = await newPlatform();
    const before = (await admin<Stats>("/v1/admin/stats")).body;
    const v = await createReport(p, await newBuyer());
    const r = await createReport(p, await newBuyer());
    expect(
      (await admin(`/v1/admin/reports/${v.id}/void`, { body: { reason: "Bad evidence." } })).status,
    ).toBe(200);
    expect(
      (
        await callJson(`/v1/reports/${r.id}/retract`, {
          token: await p.token(),
          body: { reason: "Mistake." },
        })
      ).status,
    ).toBe(200);
    const after = (await admin<Stats>("/v1/admin/stats")).body;
    expect(after.reports.voided ?? 0).toBeGreaterThanOrEqual((before.reports.voided ?? 0) + 1);
    expect(after.reports.retracted ?? 0).toBeGreaterThanOrEqual((before.reports.retracted ?? 0) + 1);
    expect(after.usage.find((u) => u.platformId === p.id)).toMatchObject({ reports: 2, queries: 0 });
  });
});

describe("POST /v1/admin/maintenance/run", () => {
  it("claims its token's jti: the same admin token twice → 401 with WWW-Authenticate, nothing run", async () => {
    const token = await adminToken();
    const first = await callJson("/v1/admin/maintenance/run", { token, body: {} });
    expect(first.status).toBe(200);
    const replay = await call("/v1/admin/maintenance/run", { token, body: {} });
    expect(replay.status).toBe(401);
    expect(replay.headers.get("www-authenticate")).toMatch(/^Bearer /);
    const problem = (await replay.json()) as { detail: string };
    expect(problem.detail).toMatch(/jti/);
    const rows = await auditRowsEventually(replay.headers.get("x-request-id"));
    expect(rows.map((r) => [r.action, r.outcome])).toEqual([["maintenance.trigger", "unauthenticated"]]);
  });

  it("returns its counts: expired token rows, overdue disputes, purged reports; audited once", async () => {
    const reporter = await newPlatform();
    const opener = await newPlatform();
    const buyer = await newBuyer();
    const disputed = await createReport(reporter, buyer);
    const old = await createReport(reporter, await newBuyer());
    const opened = await callJson<{ id: string }>("/v1/disputes", {
      token: await opener.token(),
      body: { reportRef: disputed.id, subjects: buyer, reason: "I returned the item." },
    });
    expect(opened.status).toBe(201);
    const now = Date.now();
    await env.DB.batch([
      env.DB.prepare("UPDATE disputes SET deadline_at = ? WHERE id = ?").bind(now - 60_000, opened.body.id),
      env.DB.prepare("UPDATE reports SET incident_at = ?, confirmed_at = ? WHERE id = ?").bind(
        now - 1830 * DAY,
        now - 1829 * DAY,
        old.id,
      ),
      env.DB.prepare("INSERT INTO token_uses (key, expires_at) VALUES (?, ?)").bind(
        `adm-test ${crypto.randomUUID()}`,
        now - 1000,
      ),
    ]);

    const res = await call("/v1/admin/maintenance/run", { token: await adminToken(), body: {} });
    expect(res.status).toBe(200);
    const result = (await res.json()) as {
      reportsPurged: number;
      inquiriesPurged: number;
      tokenUsesPurged: number;
      disputesMarkedOverdue: number;
      complete: boolean;
      checkpoint: { seq: number; hash: string } | null;
    };
    expect(Object.keys(result).sort()).toEqual(
      [
        "archived",
        "checkpoint",
        "collusion",
        "complete",
        "disputesMarkedOverdue",
        "eventsPurged",
        "inquiriesPurged",
        "log",
        "outbox",
        "reportsPurged",
        "tokenUsesPurged",
        "trustRecomputed",
        "webhooksResent",
      ].sort(),
    );
    expect(result.reportsPurged).toBeGreaterThanOrEqual(1);
    expect(result.tokenUsesPurged).toBeGreaterThanOrEqual(1);
    expect(result.disputesMarkedOverdue).toBeGreaterThanOrEqual(1);
    expect(result.inquiriesPurged).toBeGreaterThanOrEqual(0);
    expect(result.complete).toBe(true);
    expect(await countRows("reports", "id = ?", old.id)).toBe(0);
    expect(await countRows("disputes", "id = ? AND status = 'overdue'", opened.body.id)).toBe(1);
    if (result.checkpoint !== null) {
      expect(result.checkpoint.hash).toMatch(/^[0-9a-f]{64}$/);
    }

    const rows = (await auditRowsEventually(res.headers.get("x-request-id"))).filter(
      (r) => r.action !== "retention.purge",
    );
    expect(rows.map((r) => [r.action, r.actor, r.outcome])).toEqual([["maintenance.run", ADMIN_ACTOR, "ok"]]);
    expect(JSON.parse(rows[0]?.details ?? "{}")).toMatchObject({
      reportsPurged: result.reportsPurged,
      tokenUsesPurged: result.tokenUsesPurged,
      disputesMarkedOverdue: result.disputesMarkedOverdue,
    });

    const again = await admin<typeof result>("/v1/admin/maintenance/run", { body: {} });
    expect(again.body).toMatchObject({ reportsPurged: 0, disputesMarkedOverdue: 0, complete: true });
    expect((await admin("/v1/admin/maintenance/run", { body: { force: true } })).status).toBe(422);
  });
});

describe("every admin action leaves an audit entry with the admin actor", () => {
  it("reads, writes and refusals alike", async () => {
    const p = await newPlatform();
    const r = await createReport(p, await newBuyer());
    const { body } = await platformBody();
    const steps: [string, string, unknown, string, string, string | null][] = [
      ["POST", "/v1/admin/platforms", body, "platform.create", "created", body.id],
      ["POST", "/v1/admin/platforms", body, "platform.create", "conflict", body.id],
      ["GET", "/v1/admin/platforms?limit=1", undefined, "platform.list", "ok", null],
      ["GET", `/v1/admin/platforms/${body.id}`, undefined, "platform.read", "ok", body.id],
      ["GET", `/v1/admin/platforms/${uniqueId("none")}`, undefined, "platform.read", "not_found", null],
      ["PATCH", `/v1/admin/platforms/${body.id}`, { status: "suspended" }, "platform.update", "ok", body.id],
      ["PATCH", `/v1/admin/platforms/${body.id}`, {}, "platform.update", "invalid", null],
      ["PUT", `/v1/admin/platforms/${body.id}/keys`, body.jwks, "platform.keys", "ok", body.id],
      ["GET", `/v1/admin/reports?platformId=${p.id}`, undefined, "admin.report.list", "ok", null],
      ["GET", `/v1/admin/reports/${r.id}`, undefined, "admin.report.read", "ok", r.id],
      ["POST", `/v1/admin/reports/${r.id}/void`, { reason: "Audited void." }, "report.void", "ok", r.id],
      ["POST", `/v1/admin/reports/${r.id}/void`, { reason: "Twice." }, "report.void", "conflict", r.id],
      ["GET", "/v1/admin/stats", undefined, "admin.stats", "ok", null],
      ["POST", "/v1/admin/maintenance/run", {}, "maintenance.run", "ok", null],
    ];
    for (const [method, path, b, action, outcome, target] of steps) {
      const res = await call(path, { method, token: await adminToken(), body: b });
      const label = `${method} ${path} → ${res.status}`;
      const rows = (await auditRowsEventually(res.headers.get("x-request-id"))).filter(
        (row) => row.action !== "retention.purge",
      );
      expect(rows, label).toHaveLength(1);
      expect(rows[0]?.actor, label).toBe(ADMIN_ACTOR);
      expect(rows[0]?.action, label).toBe(action);
      expect(rows[0]?.outcome, label).toBe(outcome);
      if (target !== null) {
        expect(rows[0]?.target, label).toBe(target);
      }
    }
  });
});
