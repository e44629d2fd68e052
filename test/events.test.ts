/**
 * The event feed and signed webhooks (docs/due-process.md, "Events and webhooks"): who learns of
 * what, pagination, a real delivery through the queue to a receiver on 127.0.0.1 whose
 * signature the test verifies from the Standard Webhooks spec, retries and the dead-letter
 * queue, the scheduled re-send, URL rules, and the secret shown once.
 */
import { createExecutionContext, createMessageBatch, getQueueResult } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, inject, it } from "vitest";
import worker from "../worker/index";
import { batch } from "../worker/lib/batch";
import { deliveriesOf, eventInserts, RESEND_AFTER_MS } from "../worker/services/events";
import { webhookUrlProblem } from "../worker/services/webhooks";
import {
  adminToken,
  call,
  callJson,
  createReport,
  newBuyer,
  newPlatform,
  type TestPlatform,
  uniqueId,
} from "./harness";

const RECEIVER = inject("receiverUrl");
const REASON = "The parcel was empty when it arrived; I have the courier's weight record.";
const DAY = 86_400_000;

interface EventItem {
  id: string;
  type: string;
  at: string;
  data: Record<string, unknown>;
}
interface EventPage {
  items: EventItem[];
  nextCursor: string | null;
  hasMore: boolean;
}
interface Delivery {
  eventId: string;
  type: string | null;
  status: string;
  attempts: number;
  lastAttemptAt: string | null;
  lastStatus: number | null;
  lastError: string | null;
  deliveredAt: string | null;
}
interface WebhookView {
  url: string;
  events: string[];
  secret?: string;
  createdAt: string;
  updatedAt: string;
  deliveries: Delivery[];
  counts: Record<string, number>;
}
interface Received {
  method: string;
  path: string;
  headers: Record<string, string>;
  body: string;
}

async function feed(p: TestPlatform, query = "") {
  const res = await callJson<EventPage>(`/v1/events${query}`, { token: await p.token() });
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res.body;
}

/** Every event of the platform's feed, following the cursor. */
async function allEvents(p: TestPlatform): Promise<EventItem[]> {
  const items: EventItem[] = [];
  let cursor = "";
  for (;;) {
    const page = await feed(p, `?limit=200${cursor ? `&cursor=${cursor}` : ""}`);
    items.push(...page.items);
    if (!page.hasMore) {
      return items;
    }
    cursor = page.nextCursor ?? "";
  }
}

/** A record of `reporter` about a fresh buyer, disputed through `opener`. */
async function disputed(reporter: TestPlatform, opener: TestPlatform) {
  const buyer = await newBuyer();
  const report = await createReport(reporter, buyer);
  const res = await callJson<{ id: string; deadlineAt: string }>("/v1/disputes", {
    token: await opener.token(),
    body: { reportRef: report.id, subjects: buyer, reason: REASON },
  });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return { buyer, report, disputeId: res.body.id, deadlineAt: res.body.deadlineAt };
}

async function putWebhook(p: TestPlatform, url: string, events: string[]) {
  return callJson<WebhookView>("/v1/webhook", {
    method: "PUT",
    token: await p.token(),
    body: { url, events },
  });
}

async function received(prefix: string): Promise<Received[]> {
  const res = await fetch(`${RECEIVER}/_log?prefix=${encodeURIComponent(prefix)}`);
  return (await res.json()) as Received[];
}

async function eventually<T>(read: () => Promise<T>, done: (v: T) => boolean, ms = 10_000): Promise<T> {
  const until = Date.now() + ms;
  for (;;) {
    const value = await read();
    if (done(value) || Date.now() > until) {
      return value;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function deliveryRow(eventId: string) {
  return env.DB.prepare("SELECT * FROM webhook_deliveries WHERE event_id = ?")
    .bind(eventId)
    .first<{ status: string; attempts: number; last_status: number | null; next_attempt_at: number }>();
}

async function runMaintenance() {
  const res = await callJson<{
    webhooksResent: number;
    disputesMarkedOverdue: number;
    reportsPurged: number;
  }>("/v1/admin/maintenance/run", { token: await adminToken(), body: {} });
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res.body;
}

// --- A verifier written from the Standard Webhooks specification, independent of the worker ---

function b64ToBytes(value: string): Uint8Array {
  return Uint8Array.from(atob(value), (c) => c.charCodeAt(0));
}

/**
 * Standard Webhooks: signed content `${webhook-id}.${webhook-timestamp}.${body}`, HMAC-SHA256
 * keyed with the base64-decoded part of the secret after `whsec_`; `webhook-signature` is a
 * space-delimited list of `v1,<base64>` signatures; the timestamp must be recent.
 */
async function verifyStandardWebhook(secret: string, headers: Record<string, string>, body: string) {
  const id = headers["webhook-id"];
  const timestamp = headers["webhook-timestamp"];
  const signatures = headers["webhook-signature"];
  if (!id || !timestamp || !signatures) {
    return false;
  }
  if (Math.abs(Date.now() / 1000 - Number(timestamp)) > 300) {
    return false;
  }
  const key = await crypto.subtle.importKey(
    "raw",
    b64ToBytes(secret.replace(/^whsec_/, "")),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["verify"],
  );
  const content = new TextEncoder().encode(`${id}.${timestamp}.${body}`);
  for (const entry of signatures.split(" ")) {
    const [version, sig] = entry.split(",");
    if (version === "v1" && sig && (await crypto.subtle.verify("HMAC", key, b64ToBytes(sig), content))) {
      return true;
    }
  }
  return false;
}

describe("GET /v1/events", () => {
  it("the reporter finds the dispute in its feed, oldest first, paginated, naming records by id only", async () => {
    const [reporter, opener] = await Promise.all([newPlatform(), newPlatform()]);
    const first = await disputed(reporter, opener);
    const second = await disputed(reporter, opener);
    const third = await disputed(reporter, opener);

    const page1 = await feed(reporter, "?limit=2");
    expect(page1.items.map((e) => e.type)).toEqual(["dispute.opened", "dispute.opened"]);
    expect(page1.items.map((e) => e.data.disputeId)).toEqual([first.disputeId, second.disputeId]);
    expect(page1.hasMore).toBe(true);
    const page2 = await feed(reporter, `?limit=2&cursor=${page1.nextCursor}`);
    expect(page2.items.map((e) => e.data.disputeId)).toEqual([third.disputeId]);
    expect(page2.hasMore).toBe(false);
    // The cursor keeps the position: polling with it later returns only what came after.
    const empty = await feed(reporter, `?cursor=${page2.nextCursor}`);
    expect(empty).toEqual({ items: [], nextCursor: page2.nextCursor, hasMore: false });

    const item = page1.items[0] as EventItem;
    expect(item.id).toMatch(/^evt_[0-9A-HJKMNP-TV-Z]{26}$/);
    expect(item.at).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3})?Z$/);
    expect(item.data).toEqual({
      disputeId: first.disputeId,
      reportId: first.report.id,
      deadlineAt: first.deadlineAt,
    });
    const text = JSON.stringify([page1, page2]);
    for (const s of [...first.buyer, ...second.buyer, ...third.buyer]) {
      expect(text).not.toContain(s.hash);
    }
    for (const key of first.report.subjects.map((s) => s.key)) {
      expect(text).not.toContain(key);
    }
    expect(text).not.toContain(opener.id);
    // The opener learns nothing of a dispute it opened until there is a decision.
    expect((await feed(opener)).items).toEqual([]);
  });

  it("the opener gets only the decisions, never the reporting platform; the reporter gets every step", async () => {
    const [reporter, opener] = await Promise.all([newPlatform(), newPlatform()]);
    const upheld = await disputed(reporter, opener);
    const res = await callJson(`/v1/disputes/${upheld.disputeId}/respond`, {
      token: await reporter.token(),
      body: { decision: "uphold", note: "Our forensic report stands." },
    });
    expect(res.status).toBe(200);
    const voided = await disputed(reporter, opener);
    const v = await call(`/v1/admin/reports/${voided.report.id}/void`, {
      token: await adminToken(),
      body: { reason: "Reported in error." },
    });
    expect(v.status).toBe(200);
    const resolved = await disputed(reporter, opener);
    const r = await call(`/v1/admin/disputes/${resolved.disputeId}/resolve`, {
      token: await adminToken(),
      body: { outcome: "report_upheld", note: "Upheld on review of the forensic report." },
    });
    expect(r.status).toBe(200);

    const mine = await allEvents(opener);
    expect(mine.map((e) => [e.type, e.data])).toEqual([
      [
        "dispute.responded",
        {
          disputeId: upheld.disputeId,
          reportId: upheld.report.id,
          decision: "uphold",
          status: "upheld",
          reportStatus: "active",
        },
      ],
      [
        "dispute.decided",
        {
          disputeId: voided.disputeId,
          reportId: voided.report.id,
          status: "report_voided",
          reportStatus: "voided",
        },
      ],
      [
        "dispute.decided",
        {
          disputeId: resolved.disputeId,
          reportId: resolved.report.id,
          status: "report_upheld",
          reportStatus: "active",
        },
      ],
    ]);
    expect(JSON.stringify(mine)).not.toContain(reporter.id);

    const theirs = await allEvents(reporter);
    expect(theirs.map((e) => e.type)).toEqual([
      "dispute.opened",
      "dispute.responded",
      "dispute.opened",
      "report.voided",
      "dispute.opened",
      "dispute.decided",
    ]);
    expect(theirs[3]?.data).toEqual({ reportId: voided.report.id, caseId: voided.report.caseId });
  });

  it("the scheduled job tells the reporter of overdue disputes and expired records", async () => {
    const [reporter, opener] = await Promise.all([newPlatform(), newPlatform()]);
    const late = await disputed(reporter, opener);
    const deadline = Math.floor(Date.now() / 1000) * 1000 - 1000;
    await env.DB.prepare("UPDATE disputes SET deadline_at = ? WHERE id = ?")
      .bind(deadline, late.disputeId)
      .run();
    const old = await createReport(reporter, await newBuyer());
    await env.DB.prepare("UPDATE reports SET incident_at = ?, confirmed_at = ? WHERE id = ?")
      .bind(Date.now() - 1830 * DAY, Date.now() - 1829 * DAY, old.id)
      .run();
    const run = await runMaintenance();
    expect(run.disputesMarkedOverdue).toBeGreaterThanOrEqual(1);
    expect(run.reportsPurged).toBeGreaterThanOrEqual(1);
    const events = await allEvents(reporter);
    expect(events.find((e) => e.type === "dispute.overdue")?.data).toEqual({
      disputeId: late.disputeId,
      reportId: late.report.id,
      deadlineAt: new Date(deadline).toISOString().replace(".000Z", "Z"),
    });
    expect(events.find((e) => e.type === "report.expired")?.data).toEqual({
      reportId: old.id,
      caseId: old.caseId,
    });
    // Marked once: a second run tells nobody again.
    await runMaintenance();
    expect((await allEvents(reporter)).filter((e) => e.type === "dispute.overdue")).toHaveLength(1);
    expect((await allEvents(opener)).map((e) => e.type)).toEqual([]);
  });

  it("is for platforms: an admin is 403, a bad cursor 422", async () => {
    const p = await newPlatform();
    expect((await call("/v1/events", { token: await adminToken() })).status).toBe(403);
    expect((await call("/v1/events?cursor=bm9wZQ", { token: await p.token() })).status).toBe(422);
  });
});

describe("webhooks", () => {
  it("a real delivery through the queue reaches the receiver, signed per Standard Webhooks", async () => {
    const [reporter, opener] = await Promise.all([newPlatform(), newPlatform()]);
    const path = `/ok/${uniqueId("hook")}`;
    const put = await putWebhook(reporter, RECEIVER + path, ["dispute.opened"]);
    expect(put.status, JSON.stringify(put.body)).toBe(200);
    const secret = put.body.secret ?? "";
    const { disputeId } = await disputed(reporter, opener);

    const got = await eventually(
      () => received(path),
      (r) => r.length > 0,
    );
    expect(got).toHaveLength(1);
    const req = got[0] as Received;
    expect(req.method).toBe("POST");
    expect(req.headers["content-type"]).toBe("application/json");
    expect(await verifyStandardWebhook(secret, req.headers, req.body)).toBe(true);
    expect(await verifyStandardWebhook(secret, req.headers, req.body.replace("dispute", "Dispute"))).toBe(
      false,
    );
    // The payload is the feed's item, byte for byte in content.
    const [item] = (await feed(reporter)).items;
    expect(JSON.parse(req.body)).toEqual(item);
    expect(req.headers["webhook-id"]).toBe(item?.id);
    expect(item?.data.disputeId).toBe(disputeId);

    const view = await eventually(
      async () => (await callJson<WebhookView>("/v1/webhook", { token: await reporter.token() })).body,
      (v) => v.deliveries[0]?.status === "delivered",
    );
    expect(view.deliveries[0]).toMatchObject({
      eventId: item?.id,
      type: "dispute.opened",
      status: "delivered",
      attempts: 1,
      lastStatus: 204,
      lastError: null,
    });
    expect(view.counts).toEqual({ pending: 0, delivered: 1, failed: 0, dead: 0 });
  });

  it("a failing receiver is retried with backoff, then dead-lettered and shown in GET /v1/webhook", async () => {
    const p = await newPlatform();
    const path = `/fail/${uniqueId("hook")}`;
    expect((await putWebhook(p, RECEIVER + path, ["report.voided"])).status).toBe(200);
    // The event and its pending delivery as a causing change writes them; its queue message is
    // handed to the consumer here so that the test controls the attempts.
    const results = await batch(
      env.DB,
      eventInserts({ now: Date.now() }, [
        { platformId: p.id, type: "report.voided", data: { reportId: "rpt_X" } },
      ]),
    );
    const [eventId = ""] = deliveriesOf(results);
    expect(eventId).toMatch(/^evt_/);

    for (const [attempt, delay] of [
      [1, 30],
      [2, 60],
      [3, 120],
    ] as const) {
      const ctx = createExecutionContext();
      const msgs = createMessageBatch("pixiu-webhooks", [
        { id: `m-${attempt}`, timestamp: new Date(), attempts: attempt, body: { eventId } },
      ]);
      await worker.queue(msgs, env, ctx);
      const result = await getQueueResult(msgs, ctx);
      expect(result.retryMessages.map((m) => m.msgId)).toEqual([`m-${attempt}`]);
      expect(result.explicitAcks).toEqual([]);
      // Exponential backoff: the retry waits `delay`, and the scheduled job leaves it to the queue
      // until well after that.
      const row = await env.DB.prepare(
        "SELECT last_attempt_at, next_attempt_at FROM webhook_deliveries WHERE event_id = ?",
      )
        .bind(eventId)
        .first<{ last_attempt_at: number; next_attempt_at: number }>();
      expect((row?.next_attempt_at ?? 0) - (row?.last_attempt_at ?? 0)).toBe(delay * 1000 + RESEND_AFTER_MS);
    }
    expect(await received(path)).toHaveLength(3);
    const failed = await deliveryRow(eventId);
    expect(failed).toMatchObject({ status: "failed", attempts: 3, last_status: 500 });

    // Out of retries, the message lands on the dead-letter queue, whose consumer marks it dead.
    const ctx = createExecutionContext();
    const dead = createMessageBatch("pixiu-webhooks-dlq", [
      { id: "m-dlq", timestamp: new Date(), attempts: 1, body: { eventId } },
    ]);
    await worker.queue(dead, env, ctx);
    expect((await getQueueResult(dead, ctx)).ackAll).toBe(true);
    const view = await callJson<WebhookView>("/v1/webhook", { token: await p.token() });
    expect(view.status).toBe(200);
    expect(view.body.deliveries).toEqual([
      {
        eventId,
        type: "report.voided",
        status: "dead",
        attempts: 3,
        lastAttemptAt: expect.any(String),
        lastStatus: 500,
        lastError: "HTTP 500",
        deliveredAt: null,
      },
    ]);
    expect(view.body.counts).toEqual({ pending: 0, delivered: 0, failed: 0, dead: 1 });
    // Nothing is disabled: the webhook is still registered as it was.
    expect(view.body.url).toBe(RECEIVER + path);
    // A dead delivery is not sent again, by the queue or the scheduled job.
    const again = createMessageBatch("pixiu-webhooks", [
      { id: "m-9", timestamp: new Date(), attempts: 1, body: { eventId } },
    ]);
    const ctx2 = createExecutionContext();
    await worker.queue(again, env, ctx2);
    expect((await getQueueResult(again, ctx2)).explicitAcks).toEqual(["m-9"]);
    expect(await received(path)).toHaveLength(3);
  });

  it("the scheduled job re-sends a delivery whose queue message was lost, once, through the real queue", async () => {
    const p = await newPlatform();
    const path = `/ok/${uniqueId("hook")}`;
    const put = await putWebhook(p, RECEIVER + path, ["dispute.overdue"]);
    // Written with its change but never enqueued: what a restarted local queue leaves behind.
    const results = await batch(
      env.DB,
      eventInserts({ now: Date.now() }, [
        { platformId: p.id, type: "dispute.overdue", data: { disputeId: "dsp_X", reportId: "rpt_X" } },
      ]),
    );
    const [eventId = ""] = deliveriesOf(results);
    expect((await deliveryRow(eventId))?.status).toBe("pending");
    // Not yet due: the queue gets its chance first.
    await runMaintenance();
    await new Promise((r) => setTimeout(r, 1500));
    expect(await received(path)).toHaveLength(0);

    await env.DB.prepare("UPDATE webhook_deliveries SET next_attempt_at = ? WHERE event_id = ?")
      .bind(Date.now() - 1, eventId)
      .run();
    const run = await runMaintenance();
    expect(run.webhooksResent).toBeGreaterThanOrEqual(1);
    expect((await deliveryRow(eventId))?.next_attempt_at).toBeGreaterThan(Date.now());
    const got = await eventually(
      () => received(path),
      (r) => r.length > 0,
    );
    expect(got).toHaveLength(1);
    expect(
      await verifyStandardWebhook(put.body.secret ?? "", got[0]?.headers ?? {}, got[0]?.body ?? ""),
    ).toBe(true);
    const row = await eventually(
      () => deliveryRow(eventId),
      (r) => r?.status === "delivered",
    );
    expect(row?.status).toBe("delivered");
    // Acknowledged: the next runs send nothing more.
    await runMaintenance();
    await new Promise((r) => setTimeout(r, 1500));
    expect(await received(path)).toHaveLength(1);
  });

  it("PUT answers the secret once; GET never shows it; a second PUT rotates it; DELETE removes it", async () => {
    const p = await newPlatform({ scopes: ["scores:read"] });
    expect((await call("/v1/webhook", { token: await p.token() })).status).toBe(404);
    const url = `${RECEIVER}/ok/${uniqueId("hook")}`;
    const first = await putWebhook(p, url, ["dispute.opened", "dispute.decided"]);
    expect(first.status).toBe(200);
    expect(first.body).toEqual({
      url,
      events: ["dispute.opened", "dispute.decided"],
      secret: expect.stringMatching(/^whsec_[A-Za-z0-9+/]{43}=$/),
      createdAt: expect.any(String),
      updatedAt: expect.any(String),
    });
    const get = await call("/v1/webhook", { token: await p.token() });
    const text = await get.text();
    expect(get.status).toBe(200);
    expect(text).not.toContain("secret");
    expect(text).not.toContain((first.body.secret ?? "").slice(6));
    const second = await putWebhook(p, url, ["dispute.decided"]);
    expect(second.body.secret).not.toBe(first.body.secret);
    expect(second.body.createdAt).toBe(first.body.createdAt);
    expect((await call("/v1/webhook", { method: "DELETE", token: await p.token() })).status).toBe(204);
    expect((await call("/v1/webhook", { token: await p.token() })).status).toBe(404);
    expect(
      (
        await call("/v1/webhook", {
          method: "PUT",
          token: await adminToken(),
          body: { url, events: ["dispute.decided"] },
        })
      ).status,
    ).toBe(403);
  });

  it("URL rules: https only, no private or link-local hosts; loopback only with WEBHOOK_ALLOW_LOOPBACK", async () => {
    const p = await newPlatform();
    const refused = [
      "http://hooks.example.com/pixiu",
      "https://10.0.0.7/pixiu",
      "https://169.254.169.254/latest/meta-data/",
      "https://192.168.1.1/",
      "https://[fd00::1]/",
      "https://[::ffff:127.0.0.1]/",
      "https://user:pw@hooks.example.com/",
      "https://hooks.example.com/#frag",
      "https://intranet/",
      `https://hooks.example.com/${"a".repeat(2048)}`,
      "ftp://hooks.example.com/",
    ];
    for (const url of refused) {
      const res = await putWebhook(p, url, ["dispute.opened"]);
      expect(res.status, url).toBe(422);
    }
    expect((await call("/v1/webhook", { token: await p.token() })).status).toBe(404);
    expect((await putWebhook(p, "https://hooks.example.com/pixiu?k=1", ["dispute.opened"])).status).toBe(200);
    // Tests run with WEBHOOK_ALLOW_LOOPBACK = "true" (vitest.config.ts): the receiver is allowed.
    expect((await putWebhook(p, `${RECEIVER}/ok/x`, ["dispute.opened"])).status).toBe(200);
    // Without it (the default), loopback in any spelling is refused.
    for (const url of [
      "http://127.0.0.1:8787/x",
      "https://127.0.0.1/x",
      "https://localhost/x",
      "https://[::1]/x",
      "https://0x7f.1/x",
      "https://2130706433/x",
    ]) {
      expect(webhookUrlProblem(url, false), url).not.toBeNull();
    }
    expect(webhookUrlProblem("http://127.0.0.1:8787/x", true)).toBeNull();
    expect(webhookUrlProblem("http://10.0.0.1/x", true)).not.toBeNull();
    expect(webhookUrlProblem("https://hooks.example.com/x", false)).toBeNull();
  });
});
