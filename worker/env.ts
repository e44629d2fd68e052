import { z } from "zod";
import type { LogShard } from "./log/shard";

/** A Workers Rate Limiting binding (`[[ratelimits]]` in wrangler.toml). */
export interface RateLimiter {
  limit(options: { key: string }): Promise<{ success: boolean }>;
}

const intVar = (fallback: number, min: number, max: number) =>
  z.coerce.number().int().min(min).max(max).default(fallback);

const bindingOf = <T>(probe: (v: object) => boolean, what: string) =>
  z.custom<T>((v) => typeof v === "object" && v !== null && probe(v), { message: `not a ${what} binding` });

/** A variable holding JSON, parsed and then validated by `schema`. */
function jsonVar<T extends z.ZodType>(schema: T) {
  return z
    .string()
    .transform((s, ctx) => {
      try {
        return JSON.parse(s) as unknown;
      } catch {
        ctx.addIssue({ code: "custom", message: "not JSON" });
        return z.NEVER;
      }
    })
    .pipe(schema);
}

/** An Ed25519 key half: 32 bytes, base64url. */
const ed25519Part = (what: string) =>
  z.string().regex(/^[A-Za-z0-9_-]{43}$/, `an Ed25519 ${what} key: 43 base64url characters`);

const d1 = bindingOf<D1Database>((v) => "prepare" in v && "batch" in v, "D1");
const limiter = bindingOf<RateLimiter>((v) => "limit" in v, "rate limiting");
const durableObjects = <T>() =>
  bindingOf<T>((v) => "idFromName" in v && "get" in v, "Durable Object namespace");
const queue = <T>() => bindingOf<Queue<T>>((v) => "send" in v && "sendBatch" in v, "queue producer");

/** A message on the `pixiu-webhooks` queue (and its dead-letter queue): one delivery. */
export interface WebhookMessage {
  eventId: string;
}

/**
 * The Worker's bindings, validated at the edge: a missing secret or a malformed variable fails
 * closed with a 500 rather than running with a silently weaker configuration.
 */
export const envSchema = z.object({
  DB: d1,
  RL_SCORES: limiter,
  RL_WRITES: limiter,
  RL_ADMIN: limiter,
  RL_SUBJECT_ACCESS: limiter,
  /** Anonymous audit entries per source (IPv4 address or IPv6 /64), and 429 entries per principal. */
  RL_AUTH_FAILURES: limiter,
  /** Anonymous audit entries from all sources together. */
  RL_AUTH_FAILURES_GLOBAL: limiter,
  /** The log store: SQLite-backed Durable Objects, one per shard (docs/architecture.md, "Log store"). */
  LOG: durableObjects<DurableObjectNamespace<LogShard>>(),
  /**
   * Where old log segments go (R2, object lock in production: docs/audit.md, "Archive"), as
   * audit exports that verify on their own.
   */
  LOG_ARCHIVE: bindingOf<R2Bucket>((v) => "put" in v && "get" in v && "list" in v, "R2 bucket"),
  /** Log entries older than this many days move to the archive (in signed segments). */
  LOG_ARCHIVE_AFTER_DAYS: intVar(30, 1, 3650),
  /** How many log shards the look-up log and the audit log are spread over (by actor). */
  LOG_SHARDS: intVar(1, 1, 64),
  /**
   * Distinct subject keys one platform may look up per UTC day (score queries); past it, 429. A
   * refund desk looks up the buyers in front of it; a platform walking the ledger does not.
   */
  LOOKUP_DAILY_CAP: intVar(100_000, 1, 100_000_000),
  /** Producer of `pixiu-webhooks`: one message per webhook delivery (docs/due-process.md). */
  WEBHOOKS: queue<WebhookMessage>(),
  /** 32+ random bytes, base64url: the server-side HMAC key applied to every subject hash. */
  LEDGER_PEPPER: z.string().regex(/^[A-Za-z0-9_-]{43,}$/, "must be at least 32 bytes, base64url"),
  /** JSON Web Key Set of the admins' public keys. */
  ADMIN_JWKS: z.string().min(2),
  /** The ledger's Ed25519 private JWK (with kid) that signs audit checkpoints. */
  AUDIT_SIGNING_JWK: jsonVar(
    z.looseObject({
      kty: z.literal("OKP"),
      crv: z.literal("Ed25519"),
      x: ed25519Part("public"),
      d: ed25519Part("private"),
      kid: z.string().min(1).max(128),
    }),
  ),
  /**
   * Public JWKs of earlier audit signing keys, as a JSON Web Key Set: after a rotation their
   * checkpoints still verify, and they stay published at the well-known path.
   */
  AUDIT_RETIRED_KEYS: jsonVar(
    z
      .object({
        keys: z
          .array(
            z.object({
              kty: z.literal("OKP"),
              crv: z.literal("Ed25519"),
              x: ed25519Part("public"),
              kid: z.string().min(1).max(128),
            }),
          )
          .max(31),
      })
      .refine((set) => new Set(set.keys.map((k) => k.kid)).size === set.keys.length, "kids must be unique"),
  ).optional(),
  JWT_AUDIENCE: z.string().min(1).default("pixiu"),
  /**
   * The ledger's public base URL (`https://…`, no trailing slash): the first of the OpenAPI
   * document's `servers`. Unset, the document lists only the local server.
   */
  PUBLIC_BASE_URL: z
    .string()
    .regex(
      /^https:\/\/[^/?#\s]+(\/[^?#\s]*[^/?#\s])?$/,
      "an https URL without query, fragment or trailing slash",
    )
    .max(256)
    .optional(),
  RETENTION_DAYS: intVar(1826, 1, 36500),
  /**
   * Look-up inquiries (who looked up a subject key, when, why) are kept this many days in the log
   * store; unset, as long as the records (RETENTION_DAYS). docs/due-process.md, docs/audit.md.
   */
  INQUIRY_RETENTION_DAYS: z.coerce.number().int().min(1).max(36500).optional(),
  /**
   * The feedback window (docs/scoring.md §3c): a report filed within this many days after its
   * reporter's own look-up of one of its subjects answered `review` or worse is flagged
   * `after_lookup` and adds no consensus weight until an admin clears it.
   */
  AFTER_LOOKUP_WINDOW_DAYS: intVar(7, 1, 90),
  DISPUTE_DEADLINE_DAYS: intVar(20, 1, 365),
  PLATFORM_CACHE_TTL_SECONDS: intVar(30, 0, 3600),
  /** Events (and their webhook deliveries) are kept this many days; at least the 30 promised. */
  EVENT_RETENTION_DAYS: intVar(90, 30, 3650),
  /**
   * "true" lets a webhook point at http://127.0.0.1 or localhost: for `npm start` and the tests
   * only. Off everywhere else, so a platform cannot aim the ledger at its own network.
   */
  WEBHOOK_ALLOW_LOOPBACK: z
    .enum(["true", "false"])
    .default("false")
    .transform((v) => v === "true"),
  /**
   * Most counted (active or disputed) reports one platform may hold about one subject key, and
   * most records per (subject key, platform) a score query reads: bounds the work per buyer.
   */
  MAX_ACTIVE_REPORTS_PER_SUBJECT: intVar(50, 1, 500),
  /**
   * Largest PDQ distance (bits of 256) at which `POST /v1/evidence/match` reports a fingerprint.
   * 31 is PDQ's authors' threshold for "the same image, edited"; the chunk index is exact up to
   * 31 (`MAX_EXACT_DISTANCE` in worker/services/fingerprints.ts), so more is refused rather than
   * answered with silent misses.
   */
  MAX_MATCH_DISTANCE: intVar(31, 0, 31),
  /** Lowest scores of the medium, high and critical bands, e.g. "20,50,75" (docs/scoring.md). */
  SCORE_BANDS: z
    .string()
    .regex(/^\d{1,3},\d{1,3},\d{1,3}$/, "three scores: medium,high,critical")
    .transform((s) => s.split(",").map(Number) as [number, number, number])
    .refine(([m, h, c]) => m >= 1 && m < h && h < c && c <= 100, "must rise strictly within 1–100")
    .optional(),
  /** JSON object of CNY per major unit, merged over the default rate table, e.g. {"USD": 7.1}. */
  SCORE_FX_RATES: jsonVar(
    z.record(z.string().regex(/^[A-Z]{3}$/), z.number().positive().finite()),
  ).optional(),
});

/** The raw bindings as the runtime hands them over. */
export type Bindings = z.input<typeof envSchema>;
/** The validated configuration every handler reads. */
export type Config = z.output<typeof envSchema>;

let cached: { raw: unknown; config: Config } | undefined;

/** Parses the bindings once per isolate (they do not change while it lives). */
export function loadConfig(raw: unknown): Config {
  if (cached && cached.raw === raw) {
    return cached.config;
  }
  const config = envSchema.parse(raw);
  cached = { raw, config };
  return config;
}
