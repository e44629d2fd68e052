import { eq } from "drizzle-orm";
import type { DrizzleD1Database } from "drizzle-orm/d1";
import type { JSONWebKeySet } from "jose";
import { platforms } from "../../schema";
import {
  ADMIN_ISSUER,
  type KeyResolver,
  keyResolver,
  TokenError,
  type VerifiedToken,
  verifyToken,
} from "./jwt";

/** A platform id; also what a platform token's `iss` must look like. */
export const PLATFORM_ID_PATTERN = /^[a-z0-9][a-z0-9-]{1,62}$/;

export const PLATFORM_SCOPES = ["reports:write", "scores:read", "disputes:write"] as const;
export const ALL_SCOPES = [...PLATFORM_SCOPES, "admin"] as const;
export type Scope = (typeof ALL_SCOPES)[number];

interface PrincipalBase {
  /** The identity written to the audit log: `platform:<id>` or `admin:<kid>`. */
  actor: string;
  /** Effective scopes: the grant, narrowed by the token's `scope` claim when present. */
  scopes: ReadonlySet<string>;
  token: VerifiedToken;
}

export type Principal =
  | (PrincipalBase & { kind: "platform"; platformId: string; status: "active" | "suspended" })
  | (PrincipalBase & { kind: "admin"; kid: string });

interface CachedPlatform {
  status: "active" | "suspended";
  scopes: string[];
  keys: KeyResolver;
}

/**
 * Platforms are read through a per-isolate cache so a score query stays one D1 round trip.
 * Admin changes evict the entry in the isolate that made them; elsewhere they take effect
 * within PLATFORM_CACHE_TTL_SECONDS.
 */
const platformCache = new Map<string, { platform: CachedPlatform | null; loadedAt: number }>();

/**
 * Bound on cached entries. Unknown issuers are cached too (so a flood of one bogus `iss` costs
 * one D1 read), and a flood of distinct bogus issuers must not grow memory without limit: past
 * the bound the oldest entry goes (Map keeps insertion order; a refresh re-inserts).
 */
export const PLATFORM_CACHE_MAX = 1000;

export function evictPlatform(id: string): void {
  platformCache.delete(id);
}

/** Entries held now (tests check the bound). */
export function platformCacheSize(): number {
  return platformCache.size;
}

async function loadPlatform(db: DrizzleD1Database, id: string, now: number, ttlMs: number) {
  const hit = platformCache.get(id);
  if (hit && now - hit.loadedAt < ttlMs) {
    return hit.platform;
  }
  const row = await db
    .select({ status: platforms.status, scopes: platforms.scopes, jwks: platforms.jwks })
    .from(platforms)
    .where(eq(platforms.id, id))
    .get();
  const platform: CachedPlatform | null = row
    ? { status: row.status, scopes: row.scopes, keys: keyResolver(row.jwks as JSONWebKeySet) }
    : null;
  platformCache.delete(id);
  platformCache.set(id, { platform, loadedAt: now });
  if (platformCache.size > PLATFORM_CACHE_MAX) {
    const oldest = platformCache.keys().next().value;
    if (oldest !== undefined) {
      platformCache.delete(oldest);
    }
  }
  return platform;
}

let adminKeys: { source: string; keys: KeyResolver } | undefined;

function loadAdminKeys(source: string): KeyResolver {
  if (adminKeys?.source !== source) {
    let jwks: JSONWebKeySet;
    try {
      jwks = JSON.parse(source) as JSONWebKeySet;
    } catch {
      throw new Error("ADMIN_JWKS is not valid JSON");
    }
    if (!Array.isArray(jwks.keys)) {
      throw new Error("ADMIN_JWKS has no keys array");
    }
    adminKeys = { source, keys: keyResolver(jwks) };
  }
  return adminKeys.keys;
}

function narrow(granted: readonly string[], requested: string[] | null): Set<string> {
  if (requested === null) {
    return new Set(granted);
  }
  return new Set(requested.filter((s) => granted.includes(s)));
}

/**
 * Authenticates a bearer token: picks the key set by `iss`, verifies it, and returns the
 * principal. Throws TokenError for anything that makes the token unacceptable.
 */
export async function authenticate(
  token: string,
  deps: { db: DrizzleD1Database; adminJwks: string; audience: string; now: number; cacheTtlMs: number },
  issuer: string,
): Promise<Principal> {
  if (issuer === ADMIN_ISSUER) {
    const verified = await verifyToken(token, {
      audience: deps.audience,
      issuer,
      keys: loadAdminKeys(deps.adminJwks),
      now: deps.now,
    });
    return {
      kind: "admin",
      kid: verified.kid,
      actor: `admin:${verified.kid}`,
      scopes: narrow(["admin"], verified.scope),
      token: verified,
    };
  }
  // An issuer that cannot be a platform id costs no D1 read and no cache entry.
  const platform = PLATFORM_ID_PATTERN.test(issuer)
    ? await loadPlatform(deps.db, issuer, deps.now, deps.cacheTtlMs)
    : null;
  if (!platform) {
    throw new TokenError("unknown issuer");
  }
  const verified = await verifyToken(token, {
    audience: deps.audience,
    issuer,
    keys: platform.keys,
    now: deps.now,
  });
  return {
    kind: "platform",
    platformId: issuer,
    status: platform.status,
    actor: `platform:${issuer}`,
    scopes: narrow(
      platform.scopes.filter((s) => s !== "admin"),
      verified.scope,
    ),
    token: verified,
  };
}
