import { z } from "@hono/zod-openapi";
import { deliveryStatuses, eventTypes } from "../../schema";
import { MAX_WEBHOOK_URL } from "../services/webhooks";

export const EventTypeSchema = z.enum(eventTypes).openapi("EventType");

/** An event as the feed lists it and a webhook delivers it (the same JSON). */
export const EventSchema = z
  .object({
    id: z.string().openapi({ example: "evt_01JD3X5Z8YQ4W2E6R7T9V0B1N2" }),
    type: EventTypeSchema,
    at: z.string().openapi({ example: "2026-11-24T08:00:00Z" }),
    data: z.record(z.string(), z.unknown()).openapi({
      description: "Ids of the records concerned (disputeId, reportId, …), never an identifier",
      example: { disputeId: "dsp_01JD3X5Z8YQ4W2E6R7T9V0B1N2", reportId: "rpt_01JD3X5Z8YQ4W2E6R7T9V0B1N3" },
    }),
  })
  .openapi("Event");

export const EventPageSchema = z
  .object({
    items: z.array(EventSchema),
    nextCursor: z.string().nullable().openapi({
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
  url: z.string(),
  events: z.array(EventTypeSchema),
  createdAt: z.string(),
  updatedAt: z.string(),
});

export const WebhookCreatedSchema = WebhookBase.extend({
  secret: z.string().openapi({
    description: "The signing secret (Standard Webhooks, `whsec_…`): shown only in this answer",
    example: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
  }),
}).openapi("WebhookCreated");

export const DeliverySchema = z
  .object({
    eventId: z.string(),
    type: EventTypeSchema.nullable(),
    status: z.enum(deliveryStatuses),
    attempts: z.number().int(),
    lastAttemptAt: z.string().nullable(),
    lastStatus: z.number().int().nullable(),
    lastError: z.string().nullable(),
    deliveredAt: z.string().nullable(),
  })
  .openapi("WebhookDelivery");

export const WebhookSchema = WebhookBase.extend({
  deliveries: z.array(DeliverySchema).openapi({ description: "The latest 20 deliveries, newest first" }),
  counts: z.object({
    pending: z.number().int(),
    delivered: z.number().int(),
    failed: z.number().int(),
    dead: z.number().int(),
  }),
}).openapi("Webhook");
