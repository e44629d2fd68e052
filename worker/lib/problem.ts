import { z } from "@hono/zod-openapi";
import { rateLimitedHeaders, retryHeaders } from "./headers";

/** The closed set of problems the API answers with; each has exactly one status. */
export type ProblemKind =
  | "malformed_json"
  | "bad_request"
  | "unauthenticated"
  | "forbidden"
  | "not_found"
  | "method_not_allowed"
  | "conflict"
  | "payload_too_large"
  | "unsupported_media_type"
  | "validation"
  | "rate_limited"
  | "unavailable"
  | "internal";

export function statusOf(
  kind: ProblemKind,
): 400 | 401 | 403 | 404 | 405 | 409 | 413 | 415 | 422 | 429 | 500 | 503 {
  switch (kind) {
    case "malformed_json":
    case "bad_request":
      return 400;
    case "unauthenticated":
      return 401;
    case "forbidden":
      return 403;
    case "not_found":
      return 404;
    case "method_not_allowed":
      return 405;
    case "conflict":
      return 409;
    case "payload_too_large":
      return 413;
    case "unsupported_media_type":
      return 415;
    case "validation":
      return 422;
    case "rate_limited":
      return 429;
    case "internal":
      return 500;
    case "unavailable":
      return 503;
  }
}

const TITLES: Record<ProblemKind, string> = {
  malformed_json: "Malformed JSON",
  bad_request: "Bad request",
  unauthenticated: "Authentication required",
  forbidden: "Forbidden",
  not_found: "Not found",
  method_not_allowed: "Method not allowed",
  conflict: "Conflict",
  payload_too_large: "Payload too large",
  unsupported_media_type: "Unsupported media type",
  validation: "Validation failed",
  rate_limited: "Too many requests",
  unavailable: "Service unavailable",
  internal: "Internal error",
};

/** Problem type URIs: documented in docs/api.md, one per kind. */
export const PROBLEM_BASE = "https://pixiu.dev/problems/";

export interface FieldError {
  path: string;
  message: string;
}

export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  instance: string;
  errors?: FieldError[];
}

/**
 * The one error type handlers throw. `onError` turns it into an RFC 9457 response.
 *
 * @example throw new ProblemError("not_found", `no report ${id}`);
 */
export class ProblemError extends Error {
  readonly kind: ProblemKind;
  readonly errors: FieldError[] | undefined;
  readonly headers: Record<string, string> | undefined;

  constructor(
    kind: ProblemKind,
    detail: string,
    options: { errors?: FieldError[]; headers?: Record<string, string> } = {},
  ) {
    super(detail);
    this.name = "ProblemError";
    this.kind = kind;
    this.errors = options.errors;
    this.headers = options.headers;
  }

  get status() {
    return statusOf(this.kind);
  }
}

/** Bounds of a problem's text, so no refusal grows with what was sent (an unknown path, many fields). */
export const MAX_DETAIL = 2000;
export const MAX_FIELD_ERRORS = 100;
export const MAX_FIELD_TEXT = 1000;

/** `text`, cut to `max` characters with `…` when longer. */
function cut(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

export function toProblem(err: ProblemError, requestId: string): Problem {
  return {
    type: PROBLEM_BASE + err.kind.replace(/_/g, "-"),
    title: TITLES[err.kind],
    status: err.status,
    detail: cut(err.message, MAX_DETAIL),
    instance: requestId,
    ...(err.errors ? { errors: err.errors } : {}),
  };
}

export function problemResponse(err: ProblemError, requestId: string): Response {
  const headers = new Headers({
    "content-type": "application/problem+json; charset=utf-8",
    "x-request-id": requestId,
    ...err.headers,
  });
  if (err.kind === "unauthenticated" && !headers.has("www-authenticate")) {
    headers.set("www-authenticate", 'Bearer realm="pixiu"');
  }
  return new Response(JSON.stringify(toProblem(err, requestId)), { status: err.status, headers });
}

/** Zod issue paths as the contract writes them: `subjects.0.hash`. */
export function fieldErrors(
  issues: readonly { path: readonly PropertyKey[]; message: string }[],
): FieldError[] {
  return issues.slice(0, MAX_FIELD_ERRORS).map((issue) => ({
    path: cut(issue.path.map(String).join("."), MAX_FIELD_TEXT),
    message: cut(issue.message, MAX_FIELD_TEXT),
  }));
}

export const ProblemSchema = z
  .object({
    type: z.string().regex(/^https:\/\/pixiu\.dev\/problems\/[a-z-]+$/),
    title: z.string().max(100),
    status: z.number().int().min(400).max(599).openapi({ format: "int32" }),
    detail: z.string().max(MAX_DETAIL),
    instance: z.string().max(64),
    errors: z
      .array(z.object({ path: z.string().max(MAX_FIELD_TEXT), message: z.string().max(MAX_FIELD_TEXT) }))
      .max(MAX_FIELD_ERRORS)
      .optional(),
  })
  .openapi("Problem");

const problem = (description: string) => ({
  description,
  content: { "application/problem+json": { schema: ProblemSchema } },
});

/** The look-up routes' extra answer: the look-up could not be logged, so it was not answered. */
export const logUnavailableResponse = {
  503: {
    ...problem("The look-up could not be logged durably, so it was not answered; retry after Retry-After"),
    headers: retryHeaders,
  },
} as const;

/**
 * The report writes' extra answer: the inquiry log could not be read for the after-look-up check
 * (docs/scoring.md §3c), so nothing was written.
 */
export const logReadUnavailableResponse = {
  503: {
    ...problem(
      "The inquiry log could not be read to check whether the report follows the platform's own look-up of the buyer, so nothing was written; retry after Retry-After",
    ),
    headers: retryHeaders,
  },
} as const;

/** Spread into every route's `responses` so the OpenAPI document lists the problems. */
export const problemResponses = {
  400: problem("Malformed JSON"),
  401: problem("Missing, invalid, expired or replayed token"),
  403: problem("Suspended platform or missing scope"),
  413: problem("Body too large"),
  415: problem("Content type is not application/json"),
  422: problem("Validation failed; `errors` lists each field"),
  429: {
    ...problem(
      "Rate limited (the route class's limit per principal, or the daily look-up cap); see Retry-After",
    ),
    headers: rateLimitedHeaders,
  },
  500: problem("Internal error"),
} as const;

/** The open routes' only problem. */
export const internalErrorResponse = { 500: problem("Internal error") } as const;

export const notFoundResponse = {
  404: problem("Not found (also for another platform's resources)"),
} as const;
export const conflictResponse = { 409: problem("Conflict") } as const;
