import type { MiddlewareHandler } from "hono";
import type { AppEnv } from "../app";
import { orm } from "../lib/db";
import { auditInsert, clipForAudit, outcomeForStatus } from "../services/audit";
import { anonymousAuditAllowed } from "./auth";

/**
 * Makes sure every API request leaves an audit entry. Handlers that change state write their
 * entry in their own batch (and mark the request audited); for the rest — reads, and requests
 * refused before a handler ran (403, 413, 422, 429…) — this writes one after the response,
 * off the latency path, with the status the caller actually received. A request without a
 * principal is audited within the rejected-token budget per source address
 * (`anonymousAuditAllowed`), so unauthenticated traffic cannot flood the log; the stored path is
 * cut to 256 characters.
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
      if (principal || (await anonymousAuditAllowed(c))) {
        await write.run();
      }
    };
    c.executionCtx.waitUntil(
      audit().catch((err) => console.error("audit write failed", requestId, String(err))),
    );
  };
}
