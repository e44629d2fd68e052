import type { MiddlewareHandler } from "hono";
import type { AppEnv } from "../app";
import type { RateLimiter } from "../env";
import { orm } from "../lib/db";
import { drainCoalesced } from "../log/outbox";
import { auditInsert, clipForAudit, outcomeForStatus } from "../services/audit";
import { anonymousAuditAllowed, sourceAddress } from "./auth";

/**
 * Whether a 429 of `actor` may be audited: at most RL_AUTH_FAILURES entries per principal and
 * period (key `rate-limited:<actor>`). Refusals cost the member nothing, so without a budget every
 * request past the limit would still write a row; the first ones show the flood, the rest add
 * nothing.
 */
export async function rateLimitedAuditAllowed(budget: RateLimiter, actor: string): Promise<boolean> {
  return (await budget.limit({ key: `rate-limited:${actor}` })).success;
}

/**
 * Makes sure every API request leaves an audit entry. Handlers that change state write their
 * entry in their own batch (and mark the request audited); for the rest — reads, and requests
 * refused before a handler ran (403, 413, 422, 429…) — this writes one after the response,
 * off the latency path, with the status the caller actually received. A request without a
 * principal is audited within the anonymous budgets (`anonymousAuditAllowed`), and a 429 within
 * a budget per principal (`rateLimitedAuditAllowed`), so neither unauthenticated traffic nor a
 * member past its rate limit can flood the log; the stored path is cut to 256 characters.
 */
export function auditTrail(): MiddlewareHandler<AppEnv> {
  return async function auditTrail(c, next) {
    await next();
    if (c.var.audited) {
      return;
    }
    const { requestId, now } = c.var;
    const principal = c.get("principal") as AppEnv["Variables"]["principal"] | undefined;
    const status = c.res.status;
    const write = auditInsert(
      orm(c.var.db),
      { requestId, now },
      {
        actor: principal?.actor ?? "anonymous",
        action: c.get("action") ?? "request",
        target: c.var.auditTarget,
        outcome: outcomeForStatus(status),
        details: { method: c.req.method, path: clipForAudit(c.req.path), status },
      },
    );
    const audit = async () => {
      const allowed = principal
        ? status !== 429 || (await rateLimitedAuditAllowed(c.var.config.RL_AUTH_FAILURES, principal.actor))
        : await anonymousAuditAllowed(c.var.config, sourceAddress(c));
      if (allowed) {
        await write.run();
        await drainCoalesced(c.var.config, c.var.db);
      }
    };
    c.executionCtx.waitUntil(
      audit().catch((err) => console.error("audit write failed", requestId, String(err))),
    );
  };
}
