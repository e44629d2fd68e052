import type { MiddlewareHandler } from "hono";
import type { AppEnv } from "../app";
import type { RateLimiter } from "../env";
import { ProblemError } from "../lib/problem";

/** Bulk back-fills and score batches may send up to 1 MiB; everything else far less. */
export const MAX_BULK_BODY_BYTES = 1_048_576;
export const MAX_BODY_BYTES = 65_536;
/**
 * Deepest JSON nesting any request schema needs is 7 (a bulk report's `image_provenance` source
 * types); 8 leaves room and stops parser abuse.
 */
export const MAX_JSON_DEPTH = 8;

const JSON_TYPE = /^application\/json\s*(;\s*charset=utf-8\s*)?$/i;

function bodyLimitFor(path: string): number {
  return path.endsWith("/bulk") || path.endsWith("/batch") ? MAX_BULK_BODY_BYTES : MAX_BODY_BYTES;
}

/**
 * Answers 415, 413 and 400 before any handler runs: the body must be JSON, within the size
 * limit (checked on the declared length and again while reading), and parse.
 */
export function jsonBody(): MiddlewareHandler<AppEnv> {
  return async function jsonBody(c, next) {
    if (!["POST", "PUT", "PATCH"].includes(c.req.method)) {
      return next();
    }
    const type = c.req.header("content-type") ?? "";
    if (!JSON_TYPE.test(type)) {
      throw new ProblemError("unsupported_media_type", "The body must be application/json (UTF-8).");
    }
    const limit = bodyLimitFor(c.req.path);
    const tooLarge = () =>
      new ProblemError("payload_too_large", `The body exceeds ${limit} bytes for this route.`);
    const declared = Number(c.req.header("content-length") ?? "0");
    if (declared > limit) {
      throw tooLarge();
    }
    const text = await readLimited(c.req.raw.body, limit, tooLarge);
    if (nestingDepth(text) > MAX_JSON_DEPTH) {
      throw new ProblemError("bad_request", `JSON nesting deeper than ${MAX_JSON_DEPTH} levels.`);
    }
    try {
      JSON.parse(text);
    } catch {
      throw new ProblemError("malformed_json", "The body is not valid JSON.");
    }
    // Hono caches bodies as promises; the route validator then reads this text instead of the stream.
    (c.req.bodyCache as Record<string, unknown>).text = Promise.resolve(text);
    await next();
  };
}

async function readLimited(body: ReadableStream<Uint8Array> | null, limit: number, tooLarge: () => Error) {
  if (!body) {
    return "";
  }
  const chunks: Uint8Array[] = [];
  let size = 0;
  const reader = body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) {
      break;
    }
    size += value.byteLength;
    if (size > limit) {
      await reader.cancel();
      throw tooLarge();
    }
    chunks.push(value);
  }
  const bytes = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.byteLength;
  }
  try {
    return new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(bytes);
  } catch {
    throw new ProblemError("malformed_json", "The body is not valid UTF-8.");
  }
}

/** Deepest bracket nesting outside strings, found in one pass before anything is parsed. */
export function nestingDepth(text: string): number {
  let depth = 0;
  let max = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text.charCodeAt(i);
    if (inString) {
      if (ch === 92 /* \\ */) {
        i++;
      } else if (ch === 34 /* " */) {
        inString = false;
      }
    } else if (ch === 34) {
      inString = true;
    } else if (ch === 91 || ch === 123 /* [ { */) {
      depth++;
      max = Math.max(max, depth);
    } else if (ch === 93 || ch === 125 /* ] } */) {
      depth--;
    }
  }
  return max;
}

/** Retry-After for a 429: the limiter's period. */
export const RATE_LIMIT_PERIOD_SECONDS = 60;

/**
 * Requests per principal per `RATE_LIMIT_PERIOD_SECONDS`, by route class. The binding enforces
 * wrangler.toml's `[[ratelimits]]` and cannot say its own limit, so the numbers are repeated here
 * for the `RateLimit-Policy` field; test/openapi.test.ts fails when the two disagree.
 */
export const RATE_LIMITS = { scores: 1200, writes: 600, admin: 300, subject_access: 60 } as const;
export type RateLimitClass = keyof typeof RATE_LIMITS;

/**
 * The class's quota policy as draft-ietf-httpapi-ratelimit-headers-11 §3 writes it:
 * `"writes";q=600;w=60`.
 */
export function ratePolicy(cls: RateLimitClass): string {
  return `"${cls}";q=${RATE_LIMITS[cls]};w=${RATE_LIMIT_PERIOD_SECONDS}`;
}

/**
 * The only service limit the ledger knows (the binding answers allowed or not, never a count):
 * none left, for at most `seconds` (draft-ietf-httpapi-ratelimit-headers-11 §4).
 */
export function exhausted(policy: string, seconds: number): string {
  return `"${policy}";r=0;t=${seconds}`;
}

/** Adds policies to an answer's `RateLimit-Policy` list (one field may carry several, §3). */
export function addRatePolicy(headers: Headers, policy: string): void {
  const present = headers.get("ratelimit-policy");
  if (!present?.split(",").some((p) => p.trim().startsWith(policy.split(";")[0] as string))) {
    headers.append("ratelimit-policy", policy);
  }
}

/** The route class of a `/v1` path: each has its own budget per principal. */
export function rateClassOf(path: string): RateLimitClass {
  return path.startsWith("/v1/admin")
    ? "admin"
    : path.startsWith("/v1/scores") || path === "/v1/evidence/match"
      ? "scores"
      : path === "/v1/subject-access"
        ? "subject_access"
        : "writes";
}

const LIMITER: Record<RateLimitClass, "RL_ADMIN" | "RL_SCORES" | "RL_SUBJECT_ACCESS" | "RL_WRITES"> = {
  admin: "RL_ADMIN",
  scores: "RL_SCORES",
  subject_access: "RL_SUBJECT_ACCESS",
  writes: "RL_WRITES",
};

/**
 * Per-principal rate limits by route class (scores and evidence matches, subject access, writes,
 * admin), with the Workers Rate Limiting binding. Every answer past this point carries the class's
 * `RateLimit-Policy`; a 429 also carries `RateLimit` (nothing left for the period) and
 * Retry-After. docs/api.md, "Rate limits", says what is and is not known.
 */
export function rateLimit(): MiddlewareHandler<AppEnv> {
  return async function rateLimit(c, next) {
    const cls = rateClassOf(c.req.path);
    const limiter: RateLimiter = c.var.config[LIMITER[cls]];
    const { success } = await limiter.limit({ key: `${cls}:${c.var.principal.actor}` });
    if (!success) {
      throw new ProblemError("rate_limited", `Rate limit for ${cls} requests exceeded.`, {
        headers: {
          "retry-after": String(RATE_LIMIT_PERIOD_SECONDS),
          "ratelimit-policy": ratePolicy(cls),
          ratelimit: exhausted(cls, RATE_LIMIT_PERIOD_SECONDS),
        },
      });
    }
    await next();
    addRatePolicy(c.res.headers, ratePolicy(cls));
  };
}
