/**
 * Regenerates the client's copy of the API contract from the Worker itself, with no ledger
 * running: `npm run -s client:generate` (or `-- --check` to fail on drift, as the test does).
 *
 * 1. The Worker (worker/index.ts) is bundled for Node with esbuild, npm packages left external and
 *    `cloudflare:workers` replaced by a stub (only the log shard's Durable Object base class
 *    comes from there, and building the document never runs it), then imported, and the handler
 *    `registerDocs` put on `GET /openapi.json` is called: exactly the document the route answers
 *    (the middleware before it only needs bindings, which building the document does not read).
 * 2. client/openapi.json is that document (shipped in the package); client/generated/openapi.ts is
 *    openapi-typescript's output for it; client/generated/report-schema.ts is the document's
 *    `ReportBody` schema with what it refers to, self-contained, which `pixiu backfill` validates
 *    rows with (client/cli/rows.ts), so the CLI checks a row by the API's own published rules.
 *
 * Both files are generated, never edited; test/node/client-generated.test.ts runs `--check`.
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join, relative } from "node:path";
import { pathToFileURL } from "node:url";
import { build } from "esbuild";
import openapiTS, { astToString } from "openapi-typescript";
import { ROOT } from "./lib/local";

/** The client package; PIXIU_CLIENT_DIR points the check elsewhere (the drift test's tampered copy). */
const CLIENT_DIR = process.env.PIXIU_CLIENT_DIR ?? join(ROOT, "client");
export const DOCUMENT_PATH = join(CLIENT_DIR, "openapi.json");
export const TYPES_PATH = join(CLIENT_DIR, "generated", "openapi.ts");
export const REPORT_SCHEMA_PATH = join(CLIENT_DIR, "generated", "report-schema.ts");
const BUNDLE_DIR = join(ROOT, "node_modules", ".cache", "pixiu-openapi");

const HEADER = [
  "/**",
  " * Generated from client/openapi.json by openapi-typescript (`npm run -s client:generate`).",
  " * Do not edit: test/node/client-generated.test.ts fails when this file and the Worker's",
  " * document disagree.",
  " */",
  "",
].join("\n");

/** The OpenAPI document the Worker serves at /openapi.json, built in this process. */
export async function workerDocument(): Promise<unknown> {
  mkdirSync(BUNDLE_DIR, { recursive: true });
  const outfile = join(BUNDLE_DIR, `worker-${process.pid}.mjs`);
  await build({
    // The app and the document's info/servers, as `GET /openapi.json` builds them (without a
    // deployment's PUBLIC_BASE_URL: the client's copy names the local ledger only).
    stdin: {
      contents: `export { app } from "./worker/index.ts"; export { documentConfig } from "./worker/routes/meta.ts";`,
      resolveDir: ROOT,
      loader: "ts",
    },
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node20",
    packages: "external",
    outfile,
    logLevel: "error",
    plugins: [
      {
        name: "cloudflare-workers-stub",
        setup(b) {
          b.onResolve({ filter: /^cloudflare:workers$/ }, () => ({ path: "stub", namespace: "cf-stub" }));
          b.onLoad({ filter: /.*/, namespace: "cf-stub" }, () => ({
            contents:
              "export class DurableObject { constructor(ctx, env) { this.ctx = ctx; this.env = env; } }",
            loader: "js",
          }));
        },
      },
    ],
  });
  let mod: { app: { getOpenAPI31Document(config: unknown): unknown }; documentConfig(url?: string): unknown };
  try {
    mod = (await import(pathToFileURL(outfile).href)) as typeof mod;
  } finally {
    rmSync(outfile, { force: true });
  }
  return mod.app.getOpenAPI31Document(mod.documentConfig(undefined));
}

export function documentText(doc: unknown): string {
  return `${JSON.stringify(doc, null, 2)}\n`;
}

/** openapi-typescript's types for a document, with the generated-file header. */
export async function typesText(doc: unknown): Promise<string> {
  // defaultNonNullable off: a request field the API defaults (a report's `evidence`, subject
  // access's `limit`) is optional to send; openapi-typescript's default typed it as required.
  // biome-ignore lint/suspicious/noExplicitAny: openapi-typescript takes its own OpenAPI3 type
  const ast = await openapiTS(doc as any, {
    alphabetize: false,
    exportType: false,
    defaultNonNullable: false,
  });
  return HEADER + astToString(ast);
}

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/**
 * One component schema of the document with every schema it refers to under `$defs`, refs
 * rewritten to point there: a JSON Schema (2020-12) a validator compiles on its own.
 */
export function componentSchema(doc: unknown, name: string): Json {
  const schemas = (doc as { components: { schemas: Record<string, Json> } }).components.schemas;
  const defs: Record<string, Json> = {};
  const rewrite = (node: Json): Json => {
    if (Array.isArray(node)) {
      return node.map(rewrite);
    }
    if (node === null || typeof node !== "object") {
      return node;
    }
    const out: Record<string, Json> = {};
    for (const [key, value] of Object.entries(node)) {
      if (key === "$ref" && typeof value === "string" && value.startsWith("#/components/schemas/")) {
        const target = value.slice("#/components/schemas/".length);
        if (!(target in defs)) {
          defs[target] = {};
          defs[target] = rewrite(schemas[target] ?? {});
        }
        out[key] = `#/$defs/${target}`;
      } else if (key !== "example") {
        out[key] = rewrite(value);
      }
    }
    return out;
  };
  const root = rewrite(schemas[name] ?? {}) as Record<string, Json>;
  return { $schema: "https://json-schema.org/draft/2020-12/schema", ...root, $defs: defs };
}

export function reportSchemaText(doc: unknown): string {
  return [
    "/**",
    " * Generated from client/openapi.json (`npm run -s client:generate`): the API's `ReportBody`",
    " * schema, self-contained. Do not edit.",
    " */",
    `export const reportBodySchema = ${JSON.stringify(componentSchema(doc, "ReportBody"), null, 2)};`,
    "",
  ].join("\n");
}

async function main() {
  const check = process.argv.includes("--check");
  const doc = await workerDocument();
  const files = [
    { path: DOCUMENT_PATH, text: documentText(doc) },
    { path: TYPES_PATH, text: await typesText(doc) },
    { path: REPORT_SCHEMA_PATH, text: reportSchemaText(doc) },
  ];
  const stale: string[] = [];
  for (const { path, text } of files) {
    let current = "";
    try {
      current = readFileSync(path, "utf8");
    } catch {
      // missing: stale
    }
    if (current !== text) {
      stale.push(relative(ROOT, path));
      if (!check) {
        mkdirSync(join(path, ".."), { recursive: true });
        writeFileSync(path, text);
      }
    }
  }
  if (check && stale.length > 0) {
    console.error(
      `client-openapi: ${stale.join(" and ")} differ from the Worker's document; run \`npm run -s client:generate\` and commit the result`,
    );
    process.exit(1);
  }
  console.error(
    stale.length === 0
      ? "client-openapi: up to date"
      : `client-openapi: ${check ? "stale" : "wrote"} ${stale.join(", ")}`,
  );
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  main().catch((err: Error) => {
    console.error(`client-openapi: ${err.stack ?? err.message}`);
    process.exit(1);
  });
}
