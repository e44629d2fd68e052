import { createRoute, type RouteConfig } from "@hono/zod-openapi";
import { policyHeaders } from "./headers";
import { problemResponses } from "./problem";

type Responses = RouteConfig["responses"];

/** Every answer but a 401 (refused before the limiter) may carry the class's policy. */
function withPolicy<T extends Responses>(responses: T): T {
  return Object.fromEntries(
    Object.entries(responses).map(([status, response]) =>
      status === "401" || "$ref" in response || response.headers
        ? [status, response]
        : [status, { ...response, headers: policyHeaders }],
    ),
  ) as T;
}

/**
 * A route behind the bearer token and the rate limiter: adds the security requirement, the
 * problems every such route may answer (401, 403, 429, 500, …) and the rate-limit headers, so
 * route files state only what is their own.
 *
 * @example const route = authenticatedRoute({ method: "get", path: "/v1/reports", operationId: "listReports", … });
 */
export function authenticatedRoute<P extends string, R extends Omit<RouteConfig, "path"> & { path: P }>(
  config: R,
) {
  return createRoute({
    ...config,
    security: [{ bearer: [] }],
    responses: withPolicy({ ...problemResponses, ...config.responses }),
  } as R);
}
