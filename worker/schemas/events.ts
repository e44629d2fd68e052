import { z } from "@hono/zod-openapi";
import { deliveryStatuses, eventTypes } from "../../schema";
import { MAX_WEBHOOK_URL } from "../services/webhooks";
import { count, DateTime, idOf, int, MAX_PAGE, NextCursor, text } from "./common";

/** `last_error` is what the delivery wrote: a short reason, cut to this many characters. */
export const MAX_DELIVERY_ERROR = 1000;

export const EventTypeSchema = z.enum(eventTypes).openapi("EventType");

/** An event as the feed lists it and a webhook delivers it (the same JSON). */
export const EventSchema = z
  .object({
    id: idOf("evt"),
    type: EventTypeSchema,
    at: DateTime,
    data: z.record(z.string(), z.unknown()).openapi({
      description: "Ids of the records concerned (disputeId, reportId, …), never an identifier",
      example: { disputeId: "dsp_01JD3X5Z8YQ4W2E6R7T9V0B1N2", reportId: "rpt_01JD3X5Z8YQ4W2E6R7T9V0B1N3" },
    }),
  })
  .openapi("Event");

export const EventPageSchema = z
  .object({
    items: z.array(EventSchema).max(MAX_PAGE),
    nextCursor: NextCursor.openapi({
      description:
        "Where the next page starts: keep it and poll with it for newer events (null only while the feed is empty)",
    }),
    hasMore: z.boolean().openapi({ description: "Whether more events follow right now" }),
  })
  .openapi("EventPage");

export const WebhookPutSchema = z
  .object({
    url: z.string().max(MAX_WEBHOOK_URL).openapi({ example: "https://hooks.shop.example/pixiu" }),
    events: z
      .array(EventTypeSchema)
      .min(1)
      .max(eventTypes.length)
      .refine((types) => new Set(types).size === types.length, "duplicate event type"),
  })
  .strict()
  .openapi("WebhookPut");

const WebhookBase = z.object({
  url: z.string().max(MAX_WEBHOOK_URL),
  events: z.array(EventTypeSchema).max(eventTypes.length),
  createdAt: DateTime,
  updatedAt: DateTime,
});

export const WebhookCreatedSchema = WebhookBase.extend({
  secret: z
    .string()
    .regex(/^whsec_[A-Za-z0-9+/]{32,88}={0,2}$/)
    .openapi({
      description: "The signing secret (Standard Webhooks, `whsec_…`): shown only in this answer",
      example: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    }),
}).openapi("WebhookCreated");

export const DeliverySchema = z
  .object({
    eventId: idOf("evt"),
    type: z.enum(eventTypes).nullable().openapi({ description: "Null when the event was purged" }),
    status: z.enum(deliveryStatuses),
    attempts: count(),
    lastAttemptAt: DateTime.nullable(),
    lastStatus: int(100, 599).nullable(),
    lastError: text(MAX_DELIVERY_ERROR).nullable(),
    deliveredAt: DateTime.nullable(),
  })
  .openapi("WebhookDelivery");

export const WebhookSchema = WebhookBase.extend({
  deliveries: z
    .array(DeliverySchema)
    .max(20)
    .openapi({ description: "The latest 20 deliveries, newest first" }),
  counts: z.object({
    pending: count(),
    delivered: count(),
    failed: count(),
    dead: count(),
  }),
}).openapi("Webhook");
