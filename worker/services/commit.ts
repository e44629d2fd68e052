import { tokenUses } from "../../schema";
import {
  batch,
  flattenNamed,
  isPreconditionFailure,
  isUniqueViolation,
  type NamedResults,
  type NamedStatements,
  type Statement,
} from "../lib/batch";
import { orm } from "../lib/db";
import { ProblemError } from "../lib/problem";
import type { RequestScope } from "../lib/scope";
import { drainCoalesced } from "../log/outbox";

/**
 * Runs a state-changing request's statements as one D1 batch (one round trip, one
 * transaction), with the token's `jti` claimed as the batch's first statement: a replayed
 * token hits the primary key, the whole batch rolls back, and the request answers 401. The
 * caller's statements must include the request's audit entry; the request is then marked
 * audited, and its entries (in the audit outbox, committed with the change) are drained to the
 * log store after the response. A failed `abortUnlessChanged()` precondition answers 409.
 * Returns the results of the caller's statements, in order.
 *
 * @example const [update, , read] = await commit(scope, [update, auditInsert(...), select]);
 */
export async function commit(scope: RequestScope, statements: readonly Statement[]): Promise<D1Result[]> {
  let results: D1Result[];
  try {
    results = await batch(scope.db, [tokenClaim(scope), ...statements]);
  } catch (err) {
    if (isPreconditionFailure(err)) {
      throw new ProblemError(
        "conflict",
        "the resource changed while this request was processed; read it again",
      );
    }
    throw replayProblem(err) ?? err;
  }
  scope.markAudited();
  drainSoon(scope);
  return results.slice(1);
}

/**
 * `commit` with statements and results by name.
 *
 * @example const { readBack } = await commitNamed(scope, { update, guard: abortUnlessChanged(), audit, readBack });
 */
export async function commitNamed<T extends NamedStatements>(
  scope: RequestScope,
  named: T,
): Promise<NamedResults<T>> {
  const { statements, name } = flattenNamed(named);
  return name(await commit(scope, statements));
}

/**
 * Claims the token's `jti` on its own, for a state-changing request whose writes cannot be one
 * batch (the maintenance job runs many, each with its own audit entries): a replayed token
 * answers 401 before anything runs. A job that then fails has spent the token; sign a new one.
 */
export async function claimToken(scope: RequestScope): Promise<void> {
  try {
    await batch(scope.db, [tokenClaim(scope)]);
  } catch (err) {
    throw replayProblem(err) ?? err;
  }
}

function tokenClaim(scope: RequestScope) {
  const { token } = scope.principal;
  return orm(scope.db)
    .insert(tokenUses)
    .values({ key: `${token.iss} ${token.jti}`, expiresAt: token.exp * 1000 });
}

/** The 401 for a batch that failed on the token claim's primary key, or null. */
function replayProblem(err: unknown): ProblemError | null {
  if (!isUniqueViolation(err, "token_uses.key")) {
    return null;
  }
  return new ProblemError("unauthenticated", "token already used (jti replay); sign a new token", {
    headers: { "www-authenticate": `Bearer realm="pixiu", error="invalid_token"` },
  });
}

/**
 * Drains the audit outbox after the response (`waitUntil`, off the latency path; coalesced per
 * isolate, `drainCoalesced`). A drain that
 * fails leaves the rows for the next one; the scheduled job drains every minute.
 */
export function drainSoon(scope: RequestScope): void {
  const drain = drainCoalesced(scope.config, scope.db);
  if (drain) {
    scope.waitUntil(drain.catch((err) => console.error("outbox drain failed", scope.requestId, String(err))));
  }
}
