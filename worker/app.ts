import { OpenAPIHono } from "@hono/zod-openapi";
import { HTTPException } from "hono/http-exception";
import type { Principal } from "./auth/principal";
import type { Bindings, Config } from "./env";
import { fieldErrors, ProblemError, problemResponse } from "./lib/problem";
import type { RequestScope } from "./lib/scope";

export interface Variables {
  requestId: string;
  config: Config;
  /** The request's D1 session: every query of the request goes through it. */
  db: D1DatabaseSession;
  /** Request time, fixed once so every row a request writes carries the same instant. */
  now: number;
  principal: Principal;
  /** The audit action name of the matched route (`report.create`, …). */
  action: string;
  /** The subject of the request for the audit entry, when known before the handler runs. */
  auditTarget: string | null;
  /** Set when the handler wrote its own audit entry in its batch. */
  audited: boolean;
  /** What services get instead of the context, built by the route guard (`worker/lib/scope.ts`). */
  scope: RequestScope;
}

export interface AppEnv {
  Bindings: Bindings;
  Variables: Variables;
}

export type App = OpenAPIHono<AppEnv>;

/**
 * The app factory: validation hook and error handler wired once, so every router answers
 * problems the same way.
 */
export function newApp(): App {
  const app = new OpenAPIHono<AppEnv>({
    defaultHook: (result) => {
      if (!result.success) {
        throw new ProblemError("validation", "The request does not match the schema; see errors.", {
          errors: fieldErrors(result.error.issues),
        });
      }
    },
  });
  app.onError((err, c) => {
    const requestId = c.get("requestId") ?? "unknown";
    if (err instanceof ProblemError) {
      return problemResponse(err, requestId);
    }
    if (err instanceof HTTPException) {
      const kind =
        err.status === 400 ? "malformed_json" : err.status === 413 ? "payload_too_large" : "bad_request";
      return problemResponse(new ProblemError(kind, err.message || "Bad request"), requestId);
    }
    console.error(
      JSON.stringify({ level: "error", requestId, error: String(err), stack: (err as Error).stack }),
    );
    return problemResponse(new ProblemError("internal", "An internal error occurred."), requestId);
  });
  app.notFound((c) =>
    problemResponse(
      new ProblemError("not_found", `No route for ${c.req.method} ${c.req.path}`),
      c.get("requestId"),
    ),
  );
  return app;
}
