/**
 * D1 Sessions API (docs/architecture.md, "Reads and replicas"): every answer carries the
 * session's bookmark in `Pixiu-Bookmark`; a client that sends it back reads at least what that
 * answer saw (read-your-writes under read replication); a malformed bookmark is refused.
 */
import { describe, expect, it } from "vitest";
import { auditRowsEventually, call, callJson, countRows, newBuyer, newPlatform, reportBody } from "./harness";

/** D1 bookmarks as workerd issues them (and as the ledger accepts them). */
const BOOKMARK = /^[0-9a-f]{8}-[0-9a-f]{8}-[0-9a-f]{8}-[0-9a-f]{32}$/;

describe("D1 sessions and bookmarks", () => {
  it("a write answers with a bookmark; a read sent with it sees the write", async () => {
    const platform = await newPlatform();
    const created = await call("/v1/reports", {
      token: await platform.token(),
      body: reportBody(await newBuyer()),
    });
    expect(created.status).toBe(201);
    const bookmark = created.headers.get("pixiu-bookmark");
    expect(bookmark).toMatch(BOOKMARK);
    const { id } = (await created.json()) as { id: string };

    const read = await call(`/v1/reports/${id}`, {
      token: await platform.token(),
      headers: { "pixiu-bookmark": bookmark as string },
    });
    expect(read.status).toBe(200);
    expect(((await read.json()) as { id: string }).id).toBe(id);
    // The read's own bookmark is at or after the write's: bookmarks order lexically.
    const after = read.headers.get("pixiu-bookmark") as string;
    expect(after >= (bookmark as string)).toBe(true);
  });

  it("reads without a bookmark answer with one too", async () => {
    const platform = await newPlatform();
    const res = await call("/v1/reports", { token: await platform.token() });
    expect(res.status).toBe(200);
    expect(res.headers.get("pixiu-bookmark")).toMatch(BOOKMARK);
  });

  it("a malformed bookmark is a 422 problem naming the header, audited, and changes nothing", async () => {
    const platform = await newPlatform();
    const before = await countRows("reports", "platform_id = ?", platform.id);
    for (const [method, path, body] of [
      ["POST", "/v1/reports", reportBody(await newBuyer())],
      ["GET", "/v1/reports", undefined],
    ] as const) {
      const res = await callJson<{ status: number; errors: { path: string }[] }>(path, {
        method,
        token: await platform.token(),
        body,
        headers: { "pixiu-bookmark": "not a bookmark; DROP TABLE reports" },
      });
      expect(res.status).toBe(422);
      expect(res.headers.get("content-type")).toMatch(/^application\/problem\+json/);
      expect(res.body.errors[0]?.path).toBe("header/pixiu-bookmark");
      const requestId = res.headers.get("x-request-id") as string;
      expect(requestId).toMatch(/^req_/);
      // Audited after the response (waitUntil).
      const rows = await auditRowsEventually(requestId);
      const audited = rows.filter((r) => r.outcome === "invalid").length;
      expect(audited, `${method} ${path}`).toBe(1);
    }
    expect(await countRows("reports", "platform_id = ?", platform.id)).toBe(before);
  });

  it("a well-formed bookmark the database never issued is not a 5xx (locally: one copy serves it)", async () => {
    const platform = await newPlatform();
    for (const bookmark of [
      `00000000-00000000-00000000-${"0".repeat(32)}`,
      `ffffffff-ffffffff-ffffffff-${"f".repeat(32)}`,
    ]) {
      const res = await call("/v1/reports", {
        token: await platform.token(),
        headers: { "pixiu-bookmark": bookmark },
      });
      expect(res.status, `${bookmark}: ${await res.text()}`).toBe(200);
    }
  });
});
