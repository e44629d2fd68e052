import { index, integer, primaryKey, sqliteTable, text } from "drizzle-orm/sqlite-core";
import { epochMs, timestamps } from "./columns";

export const eventTypes = [
  "dispute.opened",
  "dispute.responded",
  "dispute.escalated",
  "dispute.decided",
  "dispute.overdue",
  "report.voided",
  "report.expired",
] as const;
export type EventType = (typeof eventTypes)[number];

/**
 * A platform's event feed (`GET /v1/events`). Each event is written in the same D1 batch as the
 * change that caused it, one row per recipient platform. `seq` is commit order (AUTOINCREMENT
 * on the one primary), so a cursor over it never skips an event that committed late; `id` is the
 * stable `evt_…` id webhook receivers deduplicate on. Data names records by id only.
 */
export const events = sqliteTable(
  "events",
  {
    seq: integer("seq").primaryKey({ autoIncrement: true }),
    id: text("id").notNull().unique(),
    platformId: text("platform_id").notNull(),
    type: text("type", { enum: eventTypes }).notNull(),
    at: epochMs("at").notNull(),
    data: text("data", { mode: "json" }).$type<Record<string, unknown>>().notNull(),
  },
  (t) => [index("events_platform_seq").on(t.platformId, t.seq), index("events_at").on(t.at)],
);

/**
 * A platform's webhook endpoint. The signing secret is never stored: it is derived from the
 * ledger pepper and `secretNonce` (a fresh random value per registration), so a database leak
 * alone cannot forge deliveries.
 */
export const webhooks = sqliteTable("webhooks", {
  platformId: text("platform_id").primaryKey(),
  url: text("url").notNull(),
  /** JSON array of the event types delivered. */
  events: text("events", { mode: "json" }).$type<string[]>().notNull(),
  secretNonce: text("secret_nonce").notNull(),
  ...timestamps,
});

export const deliveryStatuses = ["pending", "delivered", "failed", "dead"] as const;
export type DeliveryStatus = (typeof deliveryStatuses)[number];

/**
 * One webhook delivery of one event: written `pending` in the event's own batch when the
 * recipient has a webhook for its type, moved by the queue consumer, re-sent by the scheduled
 * job while no receiver acknowledged it. `GET /v1/webhook` shows the latest ones.
 */
export const webhookDeliveries = sqliteTable(
  "webhook_deliveries",
  {
    eventId: text("event_id").notNull(),
    platformId: text("platform_id").notNull(),
    status: text("status", { enum: deliveryStatuses }).notNull(),
    attempts: integer("attempts").notNull().default(0),
    /** When the scheduled job next re-sends it if still unacknowledged. */
    nextAttemptAt: epochMs("next_attempt_at").notNull(),
    lastAttemptAt: epochMs("last_attempt_at"),
    /** HTTP status of the last attempt, or null when it did not get one (network, timeout). */
    lastStatus: integer("last_status"),
    lastError: text("last_error"),
    deliveredAt: epochMs("delivered_at"),
    createdAt: epochMs("created_at").notNull(),
  },
  (t) => [
    primaryKey({ columns: [t.eventId] }),
    index("webhook_deliveries_due").on(t.status, t.nextAttemptAt),
    index("webhook_deliveries_platform").on(t.platformId, t.createdAt),
  ],
);
