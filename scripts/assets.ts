/**
 * `npm run assets` (also run by `npm ci`/`npm install` as `prepare`): writes the Worker's static
 * assets to `public/` (git-ignored), which wrangler serves from Cloudflare's edge (`[assets]` in
 * wrangler.toml) before the Worker is ever invoked.
 *
 * Today that is the API reference at `/docs`: Swagger UI's browser bundle and stylesheet, copied
 * from the `swagger-ui-dist` package pinned in package.json, under a path that names the version
 * (so they can be cached for a year), our initialiser (worker/docs/init.js: no inline script, so
 * the page's Content-Security-Policy allows scripts from the ledger itself only), and `_headers`,
 * the security headers the assets are served with. Nothing is fetched from anywhere: a reference
 * that works offline, behind a proxy, and cannot change under the admins' browsers.
 */
import { copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { DOCS_ASSET_FILES, docsAssetBase, staticAssetHeaders } from "../worker/docs/page";
import { ROOT } from "./lib/local";

const require = createRequire(import.meta.url);
const dist = dirname(require.resolve("swagger-ui-dist/package.json"));
const { version } = JSON.parse(readFileSync(join(dist, "package.json"), "utf8")) as { version: string };

const out = join(ROOT, "public");
rmSync(out, { recursive: true, force: true });
const base = join(out, docsAssetBase(version));
mkdirSync(base, { recursive: true });
for (const file of DOCS_ASSET_FILES) {
  copyFileSync(join(dist, file), join(base, file));
}
copyFileSync(join(dist, "LICENSE"), join(base, "LICENSE"));
copyFileSync(join(ROOT, "worker", "docs", "init.js"), join(out, "docs", "init.js"));
writeFileSync(join(out, "_headers"), staticAssetHeaders(version));
console.log(`assets: Swagger UI ${version} and the /docs initialiser in public/`);
