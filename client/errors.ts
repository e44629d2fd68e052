/**
 * The one error the SDK throws for a call that did not succeed: the ledger's answer (an RFC 9457
 * problem, docs/api.md "Errors") or, with `status` 0, no answer at all.
 *
 * @example
 *   try { await pixiu.report(body); }
 *   catch (err) { if (err instanceof PixiuError && err.status === 409) { … err.problem.detail … } }
 */
import type { components } from "./generated/openapi.ts";

export type Problem = components["schemas"]["Problem"];
export type FieldError = NonNullable<Problem["errors"]>[number];

/** Problem type URIs the ledger answers with, by their last segment (`rate-limited`, …). */
export const PROBLEM_BASE = "https://pixiu.dev/problems/";

export class PixiuError extends Error {
  override readonly name = "PixiuError";
  /** The HTTP status, or 0 when no answer arrived (connection refused or dropped, timeout). */
  readonly status: number;
  /** The problem+json body; a synthetic one when the answer had none or there was no answer. */
  readonly problem: Problem;
  /** `X-Request-Id` of the answer, when there was one. */
  readonly requestId: string | null;
  /** Seconds from `Retry-After`, when the answer carried it. */
  readonly retryAfter: number | null;
  /** Requests sent for this call, retries included. */
  readonly attempts: number;

  constructor(options: {
    status: number;
    problem: Problem;
    requestId?: string | null;
    retryAfter?: number | null;
    attempts: number;
    cause?: unknown;
  }) {
    super(`${options.status || "no answer"}: ${options.problem.title}: ${options.problem.detail}`, {
      cause: options.cause,
    });
    this.status = options.status;
    this.problem = options.problem;
    this.requestId = options.requestId ?? null;
    this.retryAfter = options.retryAfter ?? null;
    this.attempts = options.attempts;
  }

  /** The problem type's last segment: `validation`, `conflict`, `rate-limited`, … (`network` when no answer). */
  get type(): string {
    return this.problem.type.startsWith(PROBLEM_BASE)
      ? this.problem.type.slice(PROBLEM_BASE.length)
      : this.problem.type;
  }

  get errors(): FieldError[] {
    return this.problem.errors ?? [];
  }
}

/** A problem for an answer that carried none (a proxy's HTML error page, say). */
export function syntheticProblem(status: number, detail: string): Problem {
  return {
    type: "about:blank",
    title: status === 0 ? "No answer" : `HTTP ${status}`,
    status,
    detail,
    instance: "",
  };
}
