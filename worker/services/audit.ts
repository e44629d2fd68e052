import { sql } from "drizzle-orm";
import type { DrizzleD1Database } from "drizzle-orm/d1";
import { auditOutbox } from "../../schema";
import { orm } from "../lib/db";
import type { RequestScope } from "../lib/scope";

/**
 * An audit entry's columns as SQL returns them, the same in the ledger chain (`audit_log`), the
 * outbox (`audit_outbox`) and a log shard's `entries`: each of those adds its own columns.
 */
export type AuditEntryRow = {
  at: number;
  actor: string;
  action: string;
  target: string | null;
  request_id: string;
  outcome: string;
  details: string | null;
};

export interface AuditEntry {
  actor: string;
  action: string;
  target?: string | null;
  outcome: AuditOutcome;
  /** Purpose, peppered subject keys, reasons: never a raw identifier or a platform's hash. */
  details?: Record<string, unknown> | null;
}

export type AuditOutcome =
  | "ok"
  | "created"
  | "replayed"
  | "conflict"
  | "invalid"
  | "unauthenticated"
  | "forbidden"
  | "not_found"
  | "rate_limited"
  | "error";

/** What the audit log says of a request that answered with `status`. */
export function outcomeForStatus(status: number): AuditOutcome {
  if (status < 400) {
    return "ok";
  }
  switch (status) {
    case 401:
      return "unauthenticated";
    case 403:
      return "forbidden";
    case 404:
      return "not_found";
    case 409:
      return "conflict";
    case 429:
      return "rate_limited";
    default:
      return status >= 500 ? "error" : "invalid";
  }
}

/** The longest target or request path the log stores; longer ones are cut and marked. */
export const MAX_AUDIT_TEXT = 256;

/**
 * Cuts caller-chosen text (a request path, a target) to MAX_AUDIT_TEXT characters, the last
 * one `…`, so a 60 KiB URL costs the log 256 characters.
 *
 * @example clipForAudit("/v1/reports/xxxx…(3000 chars)") → "/v1/reports/xxx…" (256 characters)
 */
export function clipForAudit(text: string): string;
export function clipForAudit(text: string | null): string | null;
export function clipForAudit(text: string | null): string | null {
  if (text === null || text.length <= MAX_AUDIT_TEXT) {
    return text;
  }
  return `${text.slice(0, MAX_AUDIT_TEXT - 1)}…`;
}

export interface AuditContext {
  requestId: string;
  now: number;
}

/**
 * The head of a set-based audit write (`${AUDIT_INSERT} SELECT …` with these seven columns): the
 * statements that write one entry per row of a set use it, so every audit write names the
 * outbox in one place.
 */
export const AUDIT_INSERT = sql.raw(
  "INSERT INTO audit_outbox (at, actor, action, target, request_id, outcome, details)",
);

/**
 * The audit writer: builds the statement that records one entry, for the caller to put in the
 * same `db.batch([...])` as the change it records, so the two commit or fail together. The entry
 * goes into the outbox (`audit_outbox`), which `drainOutbox` moves to the actor's log shard
 * exactly once (docs/architecture.md, "Audit"). Every audit write in the Worker goes through here
 * (or `AUDIT_INSERT` for set-based writes), which keeps the log's storage behind one seam.
 */
export function auditInsert(db: DrizzleD1Database, ctx: AuditContext, entry: AuditEntry) {
  return db.insert(auditOutbox).values({
    at: ctx.now,
    actor: entry.actor,
    action: entry.action,
    target: clipForAudit(entry.target ?? null),
    requestId: ctx.requestId,
    outcome: entry.outcome,
    details: entry.details ?? null,
  });
}

/**
 * The audit entry of the request being served, by its principal, under the route's action name:
 * the one place a handler's entry is built, to go in the same batch as the change it records.
 *
 * @example await commit(scope, [update, requestAudit(scope, { target: id, outcome: "ok", details })]);
 */
export function requestAudit(
  scope: Pick<RequestScope, "db" | "requestId" | "now" | "action" | "principal">,
  entry: Omit<AuditEntry, "actor" | "action">,
) {
  const { db, requestId, now, action, principal } = scope;
  return auditInsert(orm(db), { requestId, now }, { actor: principal.actor, action, ...entry });
}

/**
 * Many entries in one statement (the entries travel as one JSON parameter), for bulk items and
 * score batches: one statement whatever the count, within D1's bound-parameter limit.
 */
export function auditInsertMany(ctx: AuditContext, entries: readonly AuditEntry[]) {
  const json = JSON.stringify(
    entries.map((e) => ({ ...e, target: clipForAudit(e.target ?? null), details: e.details ?? {} })),
  );
  return sql`${AUDIT_INSERT}
    SELECT ${ctx.now}, e.value ->> 'actor', e.value ->> 'action', e.value ->> 'target', ${ctx.requestId},
      e.value ->> 'outcome', e.value -> 'details'
    FROM json_each(${json}) e ORDER BY e.key`;
}
