import type { Context, MiddlewareHandler } from "hono";
import type { AppEnv } from "../app";
import { TokenError, unverifiedIssuer } from "../auth/jwt";
import { authenticate, type Scope } from "../auth/principal";
import type { Config } from "../env";
import { orm } from "../lib/db";
import { sourceKey } from "../lib/ip";
import { ProblemError } from "../lib/problem";
import { requestScope } from "../lib/scope";
import { drainCoalesced } from "../log/outbox";
import { auditInsert, clipForAudit } from "../services/audit";

const BEARER = /^Bearer ([A-Za-z0-9_.-]{1,8192})$/;

/** Longest `claimedIssuer` and source address a rejected-token entry keeps: both are the caller's text. */
export const MAX_AUDITED_CLAIM = 64;

/** The caller's source address as sent (`CF-Connecting-IP`), for the audit entry. */
export function sourceAddress(c: Context<AppEnv>): string {
  return c.req.header("cf-connecting-ip") ?? "local";
}

/**
 * Verifies the bearer token and puts the principal in the context. A rejected token is
 * audited within the anonymous budgets (`anonymousAuditAllowed`), so a flood of bad tokens floods
 * neither the log nor the database.
 */
export function bearerAuth(): MiddlewareHandler<AppEnv> {
  return async function bearerAuth(c, next) {
    const config = c.var.config;
    const match = BEARER.exec(c.req.header("authorization") ?? "");
    let claimedIssuer: string | null = null;
    try {
      if (!match?.[1]) {
        throw new TokenError("missing bearer token");
      }
      const token = match[1];
      claimedIssuer = unverifiedIssuer(token);
      const principal = await authenticate(
        token,
        {
          // The primary, never a replica: a suspension or key revocation must not be undone by
          // caching a lagging copy of the platform for another TTL.
          db: orm(config.DB),
          adminJwks: config.ADMIN_JWKS,
          audience: config.JWT_AUDIENCE,
          now: c.var.now,
          cacheTtlMs: config.PLATFORM_CACHE_TTL_SECONDS * 1000,
        },
        claimedIssuer,
      );
      c.set("principal", principal);
    } catch (err) {
      if (!(err instanceof TokenError)) {
        throw err;
      }
      await auditRejectedToken(c, err.message, claimedIssuer);
      throw new ProblemError("unauthenticated", err.message, {
        headers: { "www-authenticate": `Bearer realm="pixiu", error="invalid_token"` },
      });
    }
    const principal = c.var.principal;
    if (principal.kind === "platform" && principal.status === "suspended") {
      throw new ProblemError("forbidden", `platform ${principal.platformId} is suspended`);
    }
    await next();
  };
}

/**
 * Whether an audit entry of a request without a principal may be written, whatever refused the
 * request: only when both budgets allow it. RL_AUTH_FAILURES counts per source (`sourceKey`: an
 * IPv4 address, or an IPv6 /64, since one host can send from any address of its /64), and
 * RL_AUTH_FAILURES_GLOBAL counts every anonymous entry, so not even traffic from many networks
 * writes more than that to the log. The global budget is spent only by entries the per-source
 * one let through, so one flooding source cannot use it up alone.
 */
export async function anonymousAuditAllowed(
  budgets: Pick<Config, "RL_AUTH_FAILURES" | "RL_AUTH_FAILURES_GLOBAL">,
  source: string,
): Promise<boolean> {
  const perSource = await budgets.RL_AUTH_FAILURES.limit({ key: `auth-fail:${sourceKey(source)}` });
  return perSource.success && (await budgets.RL_AUTH_FAILURES_GLOBAL.limit({ key: "anonymous" })).success;
}

async function auditRejectedToken(c: Context<AppEnv>, reason: string, claimedIssuer: string | null) {
  c.set("audited", true);
  const source = sourceAddress(c).slice(0, MAX_AUDITED_CLAIM);
  if (!(await anonymousAuditAllowed(c.var.config, sourceAddress(c)))) {
    return;
  }
  const write = auditInsert(
    orm(c.var.db),
    { requestId: c.var.requestId, now: c.var.now },
    {
      actor: "anonymous",
      action: "auth.reject",
      target: `${c.req.method} ${c.req.path}`,
      outcome: "unauthenticated",
      // All three carry the caller's text (a forged header's `alg` shows in the reason).
      details: {
        reason: clipForAudit(reason),
        claimedIssuer: claimedIssuer?.slice(0, MAX_AUDITED_CLAIM) ?? null,
        source,
      },
    },
  )
    .run()
    .then(() => drainCoalesced(c.var.config, c.var.db));
  c.executionCtx.waitUntil(write.catch((err) => console.error("audit write failed", String(err))));
}

/**
 * Route guard: names the route's audit action, requires a scope, and builds the request scope
 * the route's services get.
 *
 * @example createRoute({ ..., middleware: [guard("report.create", "reports:write")] })
 */
export function guard(action: string, ...anyOf: [Scope, ...Scope[]]): MiddlewareHandler<AppEnv> {
  return async function guardRoute(c, next) {
    c.set("action", action);
    if (!anyOf.some((scope) => c.var.principal.scopes.has(scope))) {
      throw new ProblemError("forbidden", `this request needs scope ${anyOf.join(" or ")}`);
    }
    c.set("scope", requestScope(c));
    await next();
  };
}

/** The calling platform's id; platform routes are for platforms only. */
export function callerPlatform(c: Context<AppEnv>): string {
  const principal = c.var.principal;
  if (principal.kind !== "platform") {
    throw new ProblemError("forbidden", "this route is for member platforms");
  }
  return principal.platformId;
}
