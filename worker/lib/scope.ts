import type { Context } from "hono";
import type { AppEnv } from "../app";
import type { Principal } from "../auth/principal";
import type { Config } from "../env";

/**
 * What a service needs of the request it serves, built once by the route guard (after
 * authentication, when the action is known) and handed to services in place of the Hono
 * context: the D1 session, the configuration (and so the log store), the request's fixed clock
 * and id, the principal and the audit action. Services never touch `c`.
 */
export interface RequestScope {
  readonly db: D1DatabaseSession;
  readonly config: Config;
  readonly now: number;
  readonly requestId: string;
  readonly principal: Principal;
  /** The route's audit action name (`report.create`, …). */
  readonly action: string;
  /** Work that may finish after the answer (`ctx.waitUntil`). */
  waitUntil(work: Promise<unknown>): void;
  /** The request's audit entry was written in its own batch or log append. */
  markAudited(): void;
  /** The request's subject, for the entry the audit trail writes after the answer. */
  setTarget(target: string | null): void;
}

/** The request scope of an authenticated request, from the values the middleware set. */
export function requestScope(c: Context<AppEnv>): RequestScope {
  return {
    db: c.var.db,
    config: c.var.config,
    now: c.var.now,
    requestId: c.var.requestId,
    principal: c.var.principal,
    action: c.var.action,
    waitUntil: (work) => c.executionCtx.waitUntil(work),
    markAudited: () => c.set("audited", true),
    setTarget: (target) => c.set("auditTarget", target),
  };
}
