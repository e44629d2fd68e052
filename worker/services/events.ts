import { type SQL, sql } from "drizzle-orm";
import type { EventType } from "../../schema";
import type { Statement } from "../lib/batch";
import { newId } from "../lib/ids";
import type { RequestScope } from "../lib/scope";
import { MINUTE_MS } from "../lib/time";

/**
 * The event seam (docs/due-process.md, "Events and webhooks"). An event is written in the same D1
 * batch as the change that caused it, one row per recipient platform, together with a `pending`
 * webhook delivery for each recipient whose webhook subscribes to its type. Once the batch
 * commits, `enqueueDeliveries` puts the new deliveries on the queue; the scheduled job re-sends
 * whatever no receiver acknowledged, so no event depends on a queue message alone.
 *
 * Event data names records by id only: never a subject identifier, a subject key, or (for the
 * platform that opened a dispute) the platform that reported the record.
 */

/** One event for one recipient. */
export interface EventSpec {
  platformId: string;
  type: EventType;
  data: Record<string, unknown>;
}

export interface EventContext {
  now: number;
}

/**
 * How long a new or re-sent delivery may stay unacknowledged before the scheduled job sends it
 * again: long enough for the queue (and its first retries) to deliver it, short enough that a
 * message lost with a restarted local queue goes out within minutes.
 */
export const RESEND_AFTER_MS = 5 * MINUTE_MS;

/** Crockford's base32, as ULIDs spell it. */
const CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
/** Events one statement may create: the counter is four base32 digits. */
export const MAX_EVENTS_PER_STATEMENT = 32 ** 4;

/** Marks the rows of a batch result that are new deliveries, for `deliveriesOf`. */
const DELIVERY_MARK = "pixiu_new_delivery";

/**
 * A statement family's id prefix: `evt_` + ULID time (10) + 12 random base32 characters. Each
 * event then gets the prefix plus its index as 4 base32 characters, so ids are valid ULIDs,
 * ordered within a statement, unique (60 random bits per statement), and computed inside SQL,
 * which lets one statement create an event per row of any SELECT.
 */
function idPrefix(): string {
  const random = crypto.getRandomValues(new Uint8Array(12));
  let out = newId("evt").slice(0, "evt_".length + 10);
  for (const byte of random) {
    out += CROCKFORD[byte & 31];
  }
  return out;
}

/** SQL for the 4-character base32 spelling of the integer expression `n` (0 ≤ n < 32⁴). */
function base32of(n: SQL): SQL {
  const digit = (shift: number) =>
    sql`substr('${sql.raw(CROCKFORD)}', ((${n} >> ${sql.raw(String(shift))}) & 31) + 1, 1)`;
  return sql`(${digit(15)} || ${digit(10)} || ${digit(5)} || ${digit(0)})`;
}

/**
 * Statements that create one event per row of `source` and the matching pending deliveries.
 * `source` is a SELECT yielding the columns `platform_id` (the recipient), `type`, `data` (JSON
 * text) and `n`: a distinct integer per row, 0 ≤ n < 32⁴, which orders the events in the feed and
 * ends their ids (a `json_each` key serves; a source of at most one row may say `0 AS n`). It is
 * evaluated inside the batch, so it sees the state the batch's earlier statements left: put it
 * before a statement that changes what it selects. Parameters: a handful plus the source's own,
 * whatever the row count.
 *
 * @example
 * await commit(scope, [
 *   ...eventsFromSelect({ now }, sql`SELECT d.opened_by AS platform_id, 'dispute.decided' AS type,
 *        json_object('disputeId', d.id, 'reportId', d.report_id) AS data, j.key AS n
 *      FROM json_each(${JSON.stringify(ids)}) j JOIN disputes d ON d.id = j.value`),
 *   closeTheDisputes, audit,
 * ]);
 */
export function eventsFromSelect(ctx: EventContext, source: SQL): Statement[] {
  const prefix = idPrefix();
  const n = sql.raw("src.n");
  return [
    // The source stays a plain subquery (no window function) so SQLite flattens it into the insert.
    sql`INSERT INTO events (id, platform_id, type, at, data)
        SELECT ${prefix} || ${base32of(n)}, src.platform_id, src.type, ${ctx.now}, json(src.data)
        FROM (${source}) src
        WHERE src.n >= 0 AND src.n < ${MAX_EVENTS_PER_STATEMENT}
        ORDER BY src.n`,
    // A pending delivery for each new event whose recipient's webhook subscribes to its type.
    sql`INSERT INTO webhook_deliveries (event_id, platform_id, status, attempts, next_attempt_at, created_at)
        SELECT e.id, e.platform_id, 'pending', 0, ${ctx.now + RESEND_AFTER_MS}, ${ctx.now}
        FROM events e JOIN webhooks w ON w.platform_id = e.platform_id
        WHERE e.id BETWEEN ${`${prefix}0000`} AND ${`${prefix}ZZZZ`}
          AND EXISTS (SELECT 1 FROM json_each(w.events) t WHERE t.value = e.type)
        ORDER BY e.id
        RETURNING event_id AS ${sql.raw(DELIVERY_MARK)}`,
  ];
}

/**
 * Statements that create the given events (one per recipient) and their pending deliveries, for
 * the causing change's own batch. The events travel as one JSON parameter.
 *
 * @example
 * await commit(scope, [
 *   update, abortUnlessChanged(),
 *   ...eventInserts({ now }, [{ platformId: reporter, type: "dispute.escalated", data: { disputeId, reportId } }]),
 *   auditInsert(...),
 * ]);
 */
export function eventInserts(ctx: EventContext, specs: readonly EventSpec[]): Statement[] {
  if (specs.length === 0) {
    return [];
  }
  const json = JSON.stringify(specs);
  return eventsFromSelect(
    ctx,
    sql`SELECT e.value ->> 'platformId' AS platform_id, e.value ->> 'type' AS type, e.value -> 'data' AS data,
          e.key AS n
        FROM json_each(${json}) e`,
  );
}

/**
 * Set-based events about reports, one per report to the platform that reported it, with
 * `{reportId, caseId}` as data: for a purge or a bulk void of up to 1,000 reports in one
 * statement (the ids travel as one JSON parameter). Put it before the statement that deletes or
 * changes the reports.
 *
 * @example ...reportEvents({ now }, "report.voided", ids)
 */
export function reportEvents(
  ctx: EventContext,
  type: "report.voided" | "report.expired",
  reportIds: readonly string[],
): Statement[] {
  if (reportIds.length === 0) {
    return [];
  }
  return eventsFromSelect(
    ctx,
    sql`SELECT r.platform_id AS platform_id, ${type} AS type,
          json_object('reportId', r.id, 'caseId', r.case_id) AS data, j.key AS n
        FROM json_each(${JSON.stringify(reportIds)}) j JOIN reports r ON r.id = j.value`,
  );
}

/** The event ids of the deliveries a batch created, read from its results. */
export function deliveriesOf(results: readonly (D1Result | undefined)[]): string[] {
  const ids: string[] = [];
  for (const result of results) {
    for (const row of (result?.results ?? []) as Record<string, unknown>[]) {
      const id = row[DELIVERY_MARK];
      if (typeof id === "string") {
        ids.push(id);
      }
    }
  }
  return ids;
}

/** Messages per `sendBatch` (the Queues limit is 100 messages and 256 KB). */
const SEND_BATCH = 100;

/** Puts deliveries on the queue. A lost message is re-sent by the scheduled job. */
export async function sendDeliveries(queue: Queue<{ eventId: string }>, eventIds: readonly string[]) {
  for (let i = 0; i < eventIds.length; i += SEND_BATCH) {
    await queue.sendBatch(eventIds.slice(i, i + SEND_BATCH).map((eventId) => ({ body: { eventId } })));
  }
}

/**
 * After the batch committed: queue the deliveries it created, off the response's latency path.
 * A failure to enqueue is only logged; the scheduled job re-sends the delivery.
 *
 * @example
 * const results = await commit(scope, [...statements]);
 * enqueueDeliveries(scope, results);
 */
export function enqueueDeliveries(
  scope: Pick<RequestScope, "config" | "requestId" | "waitUntil">,
  results: readonly (D1Result | undefined)[],
): void {
  const ids = deliveriesOf(results);
  if (ids.length === 0) {
    return;
  }
  const { config, requestId } = scope;
  scope.waitUntil(
    sendDeliveries(config.WEBHOOKS, ids).catch((err) =>
      console.error(
        JSON.stringify({
          level: "warn",
          requestId,
          msg: "enqueue failed; the scheduled job re-sends",
          error: String(err),
        }),
      ),
    ),
  );
}
