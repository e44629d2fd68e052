/**
 * The API reference and the security headers (issue 12, point 5): `/docs` is a page of the ledger
 * whose scripts and styles are the ledger's own static assets, under a policy that allows nothing
 * third-party; every other answer may load nothing at all.
 */
import { describe, expect, it } from "vitest";
import { cspHeader, DOCS_CSP, docsAssetBase, SWAGGER_UI_VERSION } from "../worker/docs/page";
import { call } from "./harness";

describe("GET /docs", () => {
  it("loads Swagger UI from the ledger itself, pinned, under a policy that allows nothing third-party", async () => {
    const res = await call("/docs");
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^text\/html/);
    const html = await res.text();
    const sources = [...html.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]);
    expect(sources).toEqual([
      `/${docsAssetBase(SWAGGER_UI_VERSION)}/swagger-ui.css`,
      `/${docsAssetBase(SWAGGER_UI_VERSION)}/swagger-ui-bundle.js`,
      "/docs/init.js",
    ]);
    expect(html).not.toMatch(/https?:\/\//);
    // No inline script: every <script> has a src.
    expect(html.match(/<script(?![^>]*\bsrc=)[^>]*>/g)).toBeNull();
    const csp = res.headers.get("content-security-policy") ?? "";
    expect(csp).toBe(cspHeader(DOCS_CSP));
    expect(csp).toContain("script-src 'self'");
    expect(csp).not.toMatch(/https?:|\*|unsafe-eval/);
    expect(res.headers.get("x-frame-options")).toBe("DENY");
    expect(res.headers.get("x-content-type-options")).toBe("nosniff");
  });

  it("the pinned version is the one package.json pins", async () => {
    const pkg = (await import("../package.json")).default as { devDependencies: Record<string, string> };
    expect(pkg.devDependencies["swagger-ui-dist"]).toBe(SWAGGER_UI_VERSION);
  });
});

describe("security headers on every answer", () => {
  it.each([
    ["GET", "/healthz", 200],
    ["GET", "/openapi.json", 200],
    ["GET", "/v1/reports", 401],
    ["GET", "/nowhere", 404],
  ] as const)(
    "%s %s (%i): a policy that loads nothing, nosniff, no framing, HSTS",
    async (method, path, status) => {
      const res = await call(path, { method });
      expect(res.status).toBe(status);
      expect(res.headers.get("content-security-policy")).toBe(
        "default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
      );
      expect(res.headers.get("x-content-type-options")).toBe("nosniff");
      expect(res.headers.get("x-frame-options")).toBe("DENY");
      expect(res.headers.get("strict-transport-security")).toMatch(/^max-age=\d+/);
      expect(res.headers.get("referrer-policy")).toBe("no-referrer");
      expect(res.headers.get("x-powered-by")).toBeNull();
    },
  );
});
