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
 * Per-principal rate limits by route class (scores and evidence matches, subject access, writes, admin), with the Workers Rate
 * Limiting binding; a 429 carries Retry-After.
 */
export function rateLimit(): MiddlewareHandler<AppEnv> {
  return async function rateLimit(c, next) {
    const config = c.var.config;
    const path = c.req.path;
    const [limiter, cls]: [RateLimiter, string] = path.startsWith("/v1/admin")
      ? [config.RL_ADMIN, "admin"]
      : path.startsWith("/v1/scores") || path === "/v1/evidence/match"
        ? [config.RL_SCORES, "scores"]
        : path === "/v1/subject-access"
          ? [config.RL_SUBJECT_ACCESS, "subject_access"]
          : [config.RL_WRITES, "writes"];
    const { success } = await limiter.limit({ key: `${cls}:${c.var.principal.actor}` });
    if (!success) {
      throw new ProblemError("rate_limited", `Rate limit for ${cls} requests exceeded.`, {
        headers: { "retry-after": String(RATE_LIMIT_PERIOD_SECONDS) },
      });
    }
    await next();
  };
}
