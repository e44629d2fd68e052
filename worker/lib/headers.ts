/**
 * The rate-limit header fields of draft-ietf-httpapi-ratelimit-headers-11 and Retry-After, as
 * OpenAPI header components (registered by `registerDocs`, referenced from responses).
 */
export const HEADER_COMPONENTS = {
  "RateLimit-Policy": {
    description:
      'The route class\'s quota policy (draft-ietf-httpapi-ratelimit-headers-11 §3): requests (`q`) per principal per window (`w`, seconds). On every answer past the rate limiter; a 429 of the daily look-up cap adds `"lookups"`, counted in distinct subject keys.',
    schema: { type: "string", maxLength: 256, example: '"writes";q=600;w=60' },
  },
  RateLimit: {
    description:
      "On a 429 only: the exhausted policy, with no quota left (`r=0`) for at most `t` seconds (draft-ietf-httpapi-ratelimit-headers-11 §4). The limiter does not report remaining counts, so other answers do not carry it.",
    schema: { type: "string", maxLength: 256, example: '"writes";r=0;t=60' },
  },
  "Retry-After": {
    description: "Seconds to wait before retrying (RFC 9110 §10.2.3).",
    schema: { type: "integer", format: "int32", minimum: 1, maximum: 86_400, example: 60 },
  },
} as const;

const ref = (name: keyof typeof HEADER_COMPONENTS) => ({ $ref: `#/components/headers/${name}` });

/** Headers of an answer that passed the rate limiter. */
export const policyHeaders = { "RateLimit-Policy": ref("RateLimit-Policy") };
/** Headers of a 429. */
export const rateLimitedHeaders = {
  "RateLimit-Policy": ref("RateLimit-Policy"),
  RateLimit: ref("RateLimit"),
  "Retry-After": ref("Retry-After"),
};
/** Headers of a 503 (the log store could not take the look-up). */
export const retryHeaders = { "Retry-After": ref("Retry-After") };
