/**
 * Report ids are random (issue 9): the refs a score answer shows must not tell another platform
 * which records came from one upload, or when. So report lists order by (created_at, id), with
 * a (time, id) cursor: the generator, the cursor, the refs as a platform sees them, paging
 * through one bulk's shared created_at, and the query plans of every list variant.
 */
import { describe, expect, it } from "vitest";
import { decodeTimeIdCursor, encodeCursor, encodeTimeIdCursor } from "../worker/lib/cursor";
import { CROCKFORD_BASE32, newId, randomIdBody } from "../worker/lib/ids";
import { ProblemError } from "../worker/lib/problem";
import { listReportsSql, REPORT_ID } from "../worker/services/report-queries";
import {
  adminToken,
  callJson,
  createReport,
  daysAgo,
  newBuyer,
  newestFirst,
  newPlatform,
  queryPlan,
  type ReportView,
  reportBody,
  type TestPlatform,
} from "./harness";

interface Page {
  items: ReportView[];
  nextCursor: string | null;
}

interface BulkResult {
  index: number;
  status: number;
  id?: string;
}

/** The ULID time prefix: 10 characters, 48 bits of milliseconds. */
const timePrefix = (id: string) => id.slice(id.indexOf("_") + 1, id.indexOf("_") + 11);

async function bulk(p: TestPlatform, reports: unknown[]): Promise<string[]> {
  const res = await callJson<{ results: BulkResult[] }>("/v1/reports/bulk", {
    token: await p.token(),
    body: { reports },
  });
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  expect(res.body.results.map((r) => r.status)).toEqual(reports.map(() => 201));
  return res.body.results.map((r) => r.id as string);
}

/** Every page of a list, following `nextCursor`, and the size of each page. */
async function pages(path: string, token: string, stop: (seen: ReportView[]) => boolean = () => false) {
  const seen: ReportView[] = [];
  const sizes: number[] = [];
  let cursor: string | null = null;
  for (let i = 0; i < 1000; i++) {
    const sep = path.includes("?") ? "&" : "?";
    const q: string = cursor === null ? "" : `${sep}cursor=${encodeURIComponent(cursor)}`;
    const res: { status: number; body: Page } = await callJson<Page>(`${path}${q}`, { token });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    seen.push(...res.body.items);
    sizes.push(res.body.items.length);
    cursor = res.body.nextCursor;
    if (cursor === null || stop(seen)) {
      break;
    }
  }
  return { seen, sizes };
}

describe("report ids (worker/lib/ids.ts)", () => {
  it("are rpt_ and 26 Crockford base32 characters, every symbol in every position", () => {
    const ids = Array.from({ length: 100_000 }, () => newId("rpt"));
    const counts = new Map<string, number>();
    for (const id of ids) {
      expect(id).toMatch(REPORT_ID);
      for (const ch of id.slice(4)) {
        counts.set(ch, (counts.get(ch) ?? 0) + 1);
      }
    }
    // Uniform over the 32 symbols (2.6 M characters: 81,250 each, a standard deviation of ~280).
    expect([...counts.keys()].sort().join("")).toBe(CROCKFORD_BASE32);
    for (const [ch, n] of counts) {
      expect(Math.abs(n - 81_250), ch).toBeLessThan(4_000);
    }
    // Not a ULID in disguise: the first character spans all 32 symbols, not a timestamp's 0–7.
    expect(new Set(ids.map((id) => id[4])).size).toBe(32);
    expect(randomIdBody()).toMatch(/^[0-9A-HJKMNP-TV-Z]{26}$/);
  });

  it("100,000 ids are distinct", () => {
    const ids = new Set(Array.from({ length: 100_000 }, () => newId("rpt")));
    expect(ids.size).toBe(100_000);
  });

  it("ids made in the same millisecond share no time prefix; request ids stay ULIDs", () => {
    const byMs = new Map<number, string[]>();
    const start = Date.now();
    for (let i = 0; i < 2_000; i++) {
      const at = Date.now();
      byMs.set(at, [...(byMs.get(at) ?? []), newId("rpt")]);
    }
    const requests = Array.from({ length: 1_000 }, () => newId("req"));
    const span = Date.now() - start + 1;
    const crowded = [...byMs.values()].filter((ids) => ids.length > 1);
    expect(crowded.length).toBeGreaterThan(0);
    for (const ids of crowded) {
      expect(new Set(ids.map(timePrefix)).size).toBe(ids.length);
    }
    // A ULID's first 10 characters are its millisecond, and a monotonic factory sorts in order.
    expect(new Set(requests.map(timePrefix)).size).toBeLessThanOrEqual(span);
    expect([...requests].sort()).toEqual(requests);
  });
});

describe("time cursors (worker/lib/cursor.ts)", () => {
  it("carry (time, id) opaquely and refuse anything this API did not issue", () => {
    const position = { at: 1_764_576_000_123, id: newId("rpt") };
    const cursor = encodeTimeIdCursor(position);
    expect(cursor).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(decodeTimeIdCursor(cursor, REPORT_ID)).toEqual(position);
    expect(decodeTimeIdCursor(undefined, REPORT_ID)).toBeNull();
    expect(decodeTimeIdCursor("", REPORT_ID)).toBeNull();
    for (const bad of [
      encodeCursor(position.id), // an id cursor of the old lists
      encodeCursor(`${position.at}.dsp_01JD3X5Z8YQ4W2E6R7T9V0B1N2`),
      encodeCursor(`-1.${position.id}`),
      encodeCursor(`01.${position.id}`),
      encodeCursor(`1.5.${position.id}`),
      encodeCursor(`99999999999999999.${position.id}`),
      encodeCursor(`.${position.id}`),
      "garbage!!",
    ]) {
      expect(() => decodeTimeIdCursor(bad, REPORT_ID), bad).toThrow(ProblemError);
    }
  });
});

describe("score refs", () => {
  it("of one bulk upload of 20 records on one buyer share no time prefix and do not sort in upload order", async () => {
    const reporter = await newPlatform();
    const asker = await newPlatform();
    const buyer = await newBuyer();
    const [phone] = buyer;
    // Every record names the buyer's phone; well under the 50 records per platform and key a
    // score read may show.
    const uploaded = await bulk(
      reporter,
      Array.from({ length: 20 }, (_, i) =>
        reportBody([phone as { type: string; hash: string }], {
          incidentAt: daysAgo(10 + i),
          confirmedAt: daysAgo(9 + i),
        }),
      ),
    );
    const res = await callJson<{ records: { ref: string }[] }>("/v1/scores/query", {
      token: await asker.token(),
      body: { subjects: buyer, purpose: "refund_review" },
    });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    const refs = res.body.records.map((r) => r.ref);
    expect([...refs].sort()).toEqual([...uploaded].sort());
    // A ULID's first 10 characters are its millisecond: one upload would share them all.
    expect(new Set(refs.map(timePrefix)).size).toBe(20);
    // Sorting the refs does not recover the upload order (nor its reverse).
    const sorted = [...refs].sort();
    expect(sorted).not.toEqual(uploaded);
    expect(sorted).not.toEqual([...uploaded].reverse());
  });
});

describe("report lists order by creation time", () => {
  it("a bulk of 120 pages by 50, each report exactly once, newest first, in every list", async () => {
    const p = await newPlatform();
    const admin = await adminToken();
    const token = await p.token();
    const older = await createReport(p, await newBuyer());
    const ids = await bulk(
      p,
      await Promise.all(Array.from({ length: 120 }, async () => reportBody(await newBuyer()))),
    );
    const newer = await createReport(p, await newBuyer());

    const own = await pages("/v1/reports?limit=50", token);
    expect(own.sizes).toEqual([50, 50, 22]);
    const bulkViews = own.seen.filter((r) => ids.includes(r.id));
    // One batch, one created_at: only the id orders them.
    expect(new Set(bulkViews.map((r) => r.createdAt)).size).toBe(1);
    expect(new Set(own.seen.map((r) => r.id)).size).toBe(122);
    expect(own.seen).toEqual(newestFirst(own.seen));
    expect(own.seen[0]?.id).toBe(newer.id);
    expect(own.seen[121]?.id).toBe(older.id);
    const expected = own.seen.map((r) => r.id);
    expect([...ids].sort()).toEqual(expected.slice(1, 121).sort());

    const byStatus = await pages("/v1/reports?status=active&limit=50", token);
    expect(byStatus.sizes).toEqual([50, 50, 22]);
    expect(byStatus.seen.map((r) => r.id)).toEqual(expected);

    const adminByPlatform = await pages(`/v1/admin/reports?platformId=${p.id}&limit=50`, admin);
    expect(adminByPlatform.sizes).toEqual([50, 50, 22]);
    expect(adminByPlatform.seen.map((r) => r.id)).toEqual(expected);
    const adminByBoth = await pages(`/v1/admin/reports?platformId=${p.id}&status=active&limit=50`, admin);
    expect(adminByBoth.seen.map((r) => r.id)).toEqual(expected);

    // Across platforms (the file's other tests write too): ours appear once each, in order.
    for (const path of ["/v1/admin/reports?status=active&limit=50", "/v1/admin/reports?limit=50"]) {
      const all = await pages(path, admin, (seen) => seen.some((r) => r.id === older.id));
      const everyId = all.seen.map((r) => r.id);
      expect(new Set(everyId).size, path).toBe(everyId.length);
      expect(all.seen, path).toEqual(newestFirst(all.seen));
      expect(
        everyId.filter((id) => expected.includes(id)),
        path,
      ).toEqual(expected);
    }
  });

  it("each list variant walks one (…, created_at, id) index: no temp B-tree, no full scan", async () => {
    const after = { at: Date.now(), id: newId("rpt") };
    const variants = [
      ["own, or admin by platform", { platformId: "p-plan", index: "reports_platform_created" }],
      [
        "own by status, or admin by platform and status",
        { platformId: "p-plan", status: "active", index: "reports_platform_status_created" },
      ],
      ["admin by status", { status: "disputed", index: "reports_status_created" }],
      ["admin, all", { index: "reports_created" }],
    ] as const;
    for (const [label, { index, ...filter }] of variants) {
      for (const cursor of [null, after]) {
        const name = `${label}${cursor ? ", after a cursor" : ""}`;
        const plan = await queryPlan(listReportsSql({ ...filter, after: cursor, limit: 50 }));
        const text = plan.join(" | ");
        expect(text, name).not.toMatch(/TEMP B-TREE/);
        const [outer, ...rest] = plan;
        // The first page of "all" walks the whole index backwards, stopped by LIMIT; every
        // other variant seeks to its key (and to the cursor, through the row value).
        const seek =
          cursor === null && !("platformId" in filter) && !("status" in filter)
            ? new RegExp(`^SCAN r USING (COVERING )?INDEX ${index}$`)
            : new RegExp(
                `^SEARCH r USING (COVERING )?INDEX ${index} \\(.*${cursor ? "\\(created_at,id\\)<\\(\\?,\\?\\)" : "=\\?"}\\)$`,
              );
        expect(outer, `${name}: ${text}`).toMatch(seek);
        for (const step of rest) {
          expect(step, `${name}: ${text}`).not.toMatch(/^SCAN /);
        }
      }
    }
  });
});
