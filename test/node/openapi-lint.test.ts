/**
 * The OpenAPI document as the Worker generates it, linted with Redocly's `recommended-strict`
 * ruleset (every warning of `recommended` as an error; built into @redocly/openapi-core, nothing
 * fetched) plus the ledger's own rules (issue 12): every operation has an operationId; every
 * string is bounded (maxLength, format, pattern, enum or const); every integer has a format and
 * both bounds; every array has maxItems; every authenticated operation declares 401, 403, 429
 * and 500, every open one 500; rate-limited answers declare the RateLimit header fields.
 *
 * The document is built in Node from the app itself (`cloudflare:workers` is stubbed: nothing
 * runs), the same call `GET /openapi.json` makes, so no ledger has to start.
 */
import {
  createConfig,
  lintFromString,
  type NormalizedProblem,
  type Oas3Rule,
  type Plugin,
} from "@redocly/openapi-core";
import { describe, expect, it } from "vitest";
import { app } from "../../worker/index";
import { documentConfig } from "../../worker/routes/meta";

type Json = Record<string, unknown>;

const document = app.getOpenAPI31Document(documentConfig("https://ledger.pixiu.example")) as unknown as Json;

const isObject = (v: unknown): v is Json => typeof v === "object" && v !== null && !Array.isArray(v);
const typesOf = (schema: Json): string[] =>
  Array.isArray(schema.type)
    ? (schema.type as string[])
    : typeof schema.type === "string"
      ? [schema.type]
      : [];

/** Every string schema says how long or what shape it is. */
const boundedStrings: Oas3Rule = () => ({
  Schema(node, ctx) {
    const schema = node as unknown as Json;
    if (!typesOf(schema).includes("string")) {
      return;
    }
    if (!["maxLength", "format", "pattern", "enum", "const"].some((k) => k in schema)) {
      ctx.report({
        message: "string without maxLength, format, pattern, enum or const",
        location: ctx.location,
      });
    }
  },
});

/** Every integer schema has a format (int32, int64) and both bounds. */
const boundedIntegers: Oas3Rule = () => ({
  Schema(node, ctx) {
    const schema = node as unknown as Json;
    if (!typesOf(schema).includes("integer") || "const" in schema || "enum" in schema) {
      return;
    }
    const missing = ["format", "minimum", "maximum"].filter((k) => !(k in schema));
    if (missing.length > 0 || !["int32", "int64"].includes(schema.format as string)) {
      ctx.report({
        message: `integer without ${missing.join(", ") || "int32/int64 format"}`,
        location: ctx.location,
      });
    }
  },
});

/** Every array schema has maxItems. */
const boundedArrays: Oas3Rule = () => ({
  Schema(node, ctx) {
    const schema = node as unknown as Json;
    if (typesOf(schema).includes("array") && !("maxItems" in schema)) {
      ctx.report({ message: "array without maxItems", location: ctx.location });
    }
  },
});

/** Every operation has an operationId in camelCase. */
const operationIds: Oas3Rule = () => ({
  Operation(node, ctx) {
    const operation = node as unknown as Json;
    if (typeof operation.operationId !== "string" || !/^[a-z][a-zA-Z0-9]*$/.test(operation.operationId)) {
      ctx.report({ message: "operation without a camelCase operationId", location: ctx.location });
    }
  },
});

/**
 * The problems an operation can always answer are declared: 500 everywhere; 401, 403 and 429
 * (with RateLimit-Policy, RateLimit and Retry-After) behind the bearer token; every success behind
 * it declares RateLimit-Policy.
 */
const declaredProblems: Oas3Rule = () => ({
  Operation(node, ctx) {
    const operation = node as unknown as Json;
    const responses = (operation.responses ?? {}) as Record<string, Json>;
    const authenticated = Array.isArray(operation.security) && operation.security.length > 0;
    const required = authenticated ? ["401", "403", "429", "500"] : ["500"];
    for (const status of required) {
      const response = responses[status];
      const content = isObject(response?.content) ? response.content : {};
      if (!response || !("application/problem+json" in content)) {
        ctx.report({ message: `no ${status} application/problem+json answer`, location: ctx.location });
      }
    }
    if (!authenticated) {
      return;
    }
    const headersOf = (status: string) => Object.keys((responses[status]?.headers ?? {}) as Json);
    for (const header of ["RateLimit-Policy", "RateLimit", "Retry-After"]) {
      if (!headersOf("429").includes(header)) {
        ctx.report({ message: `429 without the ${header} header`, location: ctx.location });
      }
    }
    for (const status of Object.keys(responses).filter((s) => s.startsWith("2"))) {
      if (!headersOf(status).includes("RateLimit-Policy")) {
        ctx.report({ message: `${status} without the RateLimit-Policy header`, location: ctx.location });
      }
    }
  },
});

const pixiu: Plugin = {
  id: "pixiu",
  rules: {
    // Rules of a plugin handed to createConfig are named as given, so the prefix is written here.
    oas3: {
      "pixiu/bounded-strings": boundedStrings,
      "pixiu/bounded-integers": boundedIntegers,
      "pixiu/bounded-arrays": boundedArrays,
      "pixiu/operation-ids": operationIds,
      "pixiu/declared-problems": declaredProblems,
    },
  },
};

const SOURCE = `${process.cwd()}/openapi.json`;

async function lint(doc: Json): Promise<NormalizedProblem[]> {
  const config = await createConfig(
    {
      extends: ["recommended-strict"],
      rules: {
        "pixiu/bounded-strings": "error",
        "pixiu/bounded-integers": "error",
        "pixiu/bounded-arrays": "error",
        "pixiu/operation-ids": "error",
        "pixiu/declared-problems": "error",
      },
    },
    {
      plugins: [pixiu],
      // The two open GETs take no parameters, body or token: no client error exists to declare.
      ignore: {
        [SOURCE]: {
          "operation-4xx-response": new Set([
            "#/paths/~1healthz/get/responses",
            "#/paths/~1.well-known~1pixiu-audit-keys.json/get/responses",
          ]),
        },
      },
    },
  );
  return lintFromString({ source: JSON.stringify(doc), absoluteRef: SOURCE, config });
}

/** One line per problem: the rule, where, and what. */
const summary = (problems: NormalizedProblem[]) =>
  problems
    .filter((p) => !p.ignored)
    .map((p) => `${p.severity} ${p.ruleId} ${p.location[0]?.pointer ?? ""}: ${p.message}`);

describe("the OpenAPI document", () => {
  it("passes Redocly's recommended-strict ruleset and the ledger's own rules", async () => {
    expect(summary(await lint(document))).toEqual([]);
  });

  it("the own rules catch what they are for (a copy with one gap each)", async () => {
    const broken = structuredClone(document) as {
      paths: Record<string, Record<string, Json>>;
      components: { schemas: Record<string, Json> };
    };
    const op = broken.paths["/v1/reports"]?.post as Json;
    delete op.operationId;
    delete (op.responses as Json)["429"];
    broken.components.schemas.Unbounded = {
      type: "object",
      properties: { s: { type: "string" }, n: { type: "integer" }, a: { type: "array", items: {} } },
    };
    (op.responses as Record<string, Json>)["201"] = {
      description: "x",
      content: { "application/json": { schema: { $ref: "#/components/schemas/Unbounded" } } },
    };
    const rules = new Set((await lint(broken)).map((p) => p.ruleId));
    for (const rule of [
      "operation-ids",
      "declared-problems",
      "bounded-strings",
      "bounded-integers",
      "bounded-arrays",
    ]) {
      expect(rules, rule).toContain(`pixiu/${rule}`);
    }
  });

  it("lists the deployment's server first, then the local one", () => {
    expect(document.servers).toEqual([
      { url: "https://ledger.pixiu.example", description: "This deployment (PUBLIC_BASE_URL)" },
      { url: "http://127.0.0.1:8787", description: "A local ledger (`npm start`)" },
    ]);
    const local = app.getOpenAPI31Document(documentConfig(undefined)) as unknown as Json;
    expect(local.servers).toEqual([
      { url: "http://127.0.0.1:8787", description: "A local ledger (`npm start`)" },
    ]);
  });
});
