import type { MiddlewareHandler } from "hono";
import type { AppEnv } from "../app";
import { loadConfig } from "../env";
import { BOOKMARK_HEADER, isBookmark, openSession } from "../lib/db";
import { newId } from "../lib/ids";
import { ProblemError, problemResponse } from "../lib/problem";

/**
 * First middleware: gives the request its id (echoed as `X-Request-Id` on every response,
 * errors included), its fixed clock, the validated configuration, and its D1 session (whose
 * bookmark goes back in the `Pixiu-Bookmark` header).
 */
export function requestContext(): MiddlewareHandler<AppEnv> {
  return async function requestContext(c, next) {
    const requestId = newId("req");
    c.set("requestId", requestId);
    c.set("now", Date.now());
    c.set("audited", false);
    c.set("auditTarget", null);
    try {
      c.set("config", loadConfig(c.env));
    } catch (err) {
      console.error(
        JSON.stringify({ level: "error", requestId, error: "invalid bindings", detail: String(err) }),
      );
      return problemResponse(new ProblemError("internal", "The ledger is misconfigured."), requestId);
    }
    const db = openSession(c.var.config.DB, c.req.method, c.req.path, c.req.header(BOOKMARK_HEADER));
    c.set("db", db);
    await next();
    c.res.headers.set("x-request-id", requestId);
    const bookmark = db.getBookmark();
    if (bookmark) {
      c.res.headers.set(BOOKMARK_HEADER, bookmark);
    }
  };
}

/**
 * Refuses a malformed `Pixiu-Bookmark` header with a 422. It runs after authentication (and the
 * rate limit), so the refusal is audited like any other, and a request without a valid token
 * is a 401 whose audit entry counts against the rejected-token budget.
 */
export function rejectBadBookmark(): MiddlewareHandler<AppEnv> {
  return async function rejectBadBookmark(c, next) {
    const bookmark = c.req.header(BOOKMARK_HEADER);
    if (bookmark !== undefined && !isBookmark(bookmark)) {
      throw new ProblemError("validation", `${BOOKMARK_HEADER} is not a D1 bookmark`, {
        errors: [{ path: `header/${BOOKMARK_HEADER}`, message: "not a D1 bookmark" }],
      });
    }
    await next();
  };
}
