/**
 * The API reference at `/docs`, served wholly by the ledger: the page from the Worker, Swagger UI's
 * files as static assets (scripts/assets.ts copies them from the pinned `swagger-ui-dist` package
 * into `public/`). Its Content-Security-Policy lets the page load scripts, styles and data from
 * the ledger's own origin only: no CDN, no fonts service, no validator.
 */
import swaggerUi from "swagger-ui-dist/package.json";

/** The pinned Swagger UI version whose files `public/` holds. */
export const SWAGGER_UI_VERSION: string = swaggerUi.version;

/** The files of `swagger-ui-dist` the page loads. */
export const DOCS_ASSET_FILES = ["swagger-ui-bundle.js", "swagger-ui.css"] as const;

/** Where a version's files are served: the version is in the path, so they can be cached for good. */
export function docsAssetBase(version: string): string {
  return `docs/swagger-ui-${version}`;
}

/** A Content-Security-Policy as Hono's `secureHeaders` takes it: directive name → sources. */
export type CspDirectives = Record<
  | "defaultSrc"
  | "scriptSrc"
  | "styleSrc"
  | "imgSrc"
  | "connectSrc"
  | "fontSrc"
  | "baseUri"
  | "formAction"
  | "frameAncestors",
  string[]
>;

/**
 * The page's policy. `style-src 'unsafe-inline'`: Swagger UI (React) sets style attributes; no
 * inline script is allowed, and nothing third-party of any kind.
 */
export const DOCS_CSP: CspDirectives = {
  defaultSrc: ["'none'"],
  scriptSrc: ["'self'"],
  styleSrc: ["'self'", "'unsafe-inline'"],
  imgSrc: ["'self'", "data:"],
  connectSrc: ["'self'"],
  fontSrc: ["'self'"],
  baseUri: ["'none'"],
  formAction: ["'none'"],
  frameAncestors: ["'none'"],
};

/** Every other answer of the ledger is data, never a document: it may load nothing. */
export const API_CSP: Partial<CspDirectives> = {
  defaultSrc: ["'none'"],
  baseUri: ["'none'"],
  formAction: ["'none'"],
  frameAncestors: ["'none'"],
};

/** The header value of a policy. */
export function cspHeader(directives: Partial<CspDirectives>): string {
  return Object.entries(directives)
    .map(([name, sources]) => `${name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)} ${sources.join(" ")}`)
    .join("; ");
}

export function docsHtml(version: string = SWAGGER_UI_VERSION): string {
  const base = `/${docsAssetBase(version)}`;
  return `<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>Pixiu API reference</title>
  <link rel="stylesheet" href="${base}/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="${base}/swagger-ui-bundle.js"></script>
  <script src="/docs/init.js"></script>
</body>
</html>
`;
}

/**
 * `public/_headers`: what Cloudflare sends with the static assets (the Worker never sees those
 * requests): the same security headers as the Worker's answers, and a year's cache for the
 * versioned files.
 */
export function staticAssetHeaders(version: string): string {
  return `/docs/*
  Content-Security-Policy: ${cspHeader(DOCS_CSP)}
  X-Content-Type-Options: nosniff
  X-Frame-Options: DENY
  Referrer-Policy: no-referrer
  Cross-Origin-Resource-Policy: same-origin
  Strict-Transport-Security: max-age=15552000; includeSubDomains

/${docsAssetBase(version)}/*
  Cache-Control: public, max-age=31536000, immutable
`;
}
