import { sql } from "drizzle-orm";
import type { EventType } from "../../schema";
import type { Config, WebhookMessage } from "../env";
import { all } from "../lib/batch";
import { base64UrlToBytes, importHmacKey } from "../lib/crypto";
import type { Db } from "../lib/db";
import { inCidr, parseCidr, parseIp } from "../lib/ip";
import { toRfc3339 } from "../lib/time";
import { RESEND_AFTER_MS, sendDeliveries } from "./events";

/**
 * Webhook delivery (docs/due-process.md, "Events and webhooks"): signing per the Standard
 * Webhooks scheme, the URL rules that keep the ledger from being aimed at a private network, the
 * queue consumer, its dead-letter consumer, and the scheduled re-send.
 */

export const WEBHOOK_QUEUE = "pixiu-webhooks";
export const WEBHOOK_DLQ = "pixiu-webhooks-dlq";

/** A receiver has this long to answer; then the attempt counts as failed. */
export const DELIVERY_TIMEOUT_MS = 10_000;
/** First retry delay; doubled per attempt up to `MAX_RETRY_DELAY_S`. */
export const BASE_RETRY_DELAY_S = 30;
export const MAX_RETRY_DELAY_S = 3600;
/** Deliveries the scheduled job re-sends per run; the rest wait for the next minute. */
export const RESEND_PER_RUN = 200;
export const MAX_WEBHOOK_URL = 2048;

/** An event as the feed lists it and a webhook delivers it. */
export interface EventItem {
  id: string;
  type: EventType;
  at: string;
  data: Record<string, unknown>;
}

export interface EventRow {
  id: string;
  type: EventType;
  at: number;
  data: string;
}

export function toEventItem(row: EventRow): EventItem {
  return { id: row.id, type: row.type, at: toRfc3339(row.at), data: JSON.parse(row.data) };
}

// --- Signing ---------------------------------------------------------------------------------

const encoder = new TextEncoder();

function toBase64(bytes: Uint8Array): string {
  let bin = "";
  for (const b of bytes) {
    bin += String.fromCharCode(b);
  }
  return btoa(bin);
}

function fromBase64(value: string): Uint8Array {
  return Uint8Array.from(atob(value), (ch) => ch.charCodeAt(0));
}

/**
 * The webhook's signing secret, derived rather than stored: HMAC-SHA256(ledger pepper,
 * `webhook:<platformId>:<nonce>`). A fresh nonce per registration rotates it; a database leak
 * alone (nonces without the pepper) cannot sign a delivery.
 */
export async function webhookSecret(pepper: string, platformId: string, nonce: string): Promise<string> {
  const key = await importHmacKey(base64UrlToBytes(pepper));
  const bytes = await crypto.subtle.sign("HMAC", key, encoder.encode(`webhook:${platformId}:${nonce}`));
  return `whsec_${toBase64(new Uint8Array(bytes))}`;
}

/**
 * The Standard Webhooks signature header value: `v1,` + base64(HMAC-SHA256(secret bytes,
 * `${id}.${timestamp}.${body}`)), the secret bytes being the base64 after `whsec_`.
 */
export async function signDelivery(secret: string, id: string, timestamp: number, body: string) {
  const key = await importHmacKey(fromBase64(secret.slice("whsec_".length)));
  const mac = await crypto.subtle.sign("HMAC", key, encoder.encode(`${id}.${timestamp}.${body}`));
  return `v1,${toBase64(new Uint8Array(mac))}`;
}

// --- URL rules -------------------------------------------------------------------------------

/** A block of addresses a webhook may not name, with what it is and where it is defined. */
export interface RefusedRange {
  cidr: string;
  name: string;
  /** Loopback: allowed with WEBHOOK_ALLOW_LOOPBACK (local development and tests), refused otherwise. */
  loopback?: true;
}

/**
 * Every IP block a webhook may not name: the IANA IPv4 and IPv6 special-purpose registries
 * (including the blocks they mark globally reachable, such as AS112 and AMT: anycast services,
 * never a platform's receiver), multicast, and IPv6 outside global unicast. Formats that embed
 * an IPv4 address (v4-mapped, v4-compatible, NAT64, 6to4, Teredo) are refused whole rather than
 * unwrapped: none is how a platform publishes a receiver, and each is a way around the IPv4 rows.
 * The first row that matches names the reason.
 */
export const REFUSED_RANGES: readonly RefusedRange[] = [
  { cidr: "127.0.0.0/8", name: "IPv4 loopback (RFC 1122)", loopback: true },
  { cidr: "::1/128", name: "IPv6 loopback (RFC 4291)", loopback: true },
  // IPv4 (IANA IPv4 Special-Purpose Address Registry, multicast, reserved).
  { cidr: "0.0.0.0/8", name: '"this network" (RFC 791)' },
  { cidr: "10.0.0.0/8", name: "private use (RFC 1918)" },
  { cidr: "100.64.0.0/10", name: "shared address space, carrier-grade NAT (RFC 6598)" },
  { cidr: "169.254.0.0/16", name: "link-local, cloud metadata (RFC 3927)" },
  { cidr: "172.16.0.0/12", name: "private use (RFC 1918)" },
  { cidr: "192.0.0.0/24", name: "IETF protocol assignments (RFC 6890)" },
  { cidr: "192.0.2.0/24", name: "documentation, TEST-NET-1 (RFC 5737)" },
  { cidr: "192.31.196.0/24", name: "AS112-v4 (RFC 7535)" },
  { cidr: "192.52.193.0/24", name: "AMT (RFC 7450)" },
  { cidr: "192.88.99.0/24", name: "6to4 relay anycast, deprecated (RFC 7526)" },
  { cidr: "192.168.0.0/16", name: "private use (RFC 1918)" },
  { cidr: "192.175.48.0/24", name: "direct delegation AS112 (RFC 7534)" },
  { cidr: "198.18.0.0/15", name: "benchmarking (RFC 2544)" },
  { cidr: "198.51.100.0/24", name: "documentation, TEST-NET-2 (RFC 5737)" },
  { cidr: "203.0.113.0/24", name: "documentation, TEST-NET-3 (RFC 5737)" },
  { cidr: "224.0.0.0/4", name: "multicast (RFC 5771)" },
  { cidr: "240.0.0.0/4", name: "reserved and limited broadcast (RFC 1112, RFC 919)" },
  // IPv6 (IANA IPv6 Special-Purpose Address Registry, IPv6 address space).
  { cidr: "::/128", name: "unspecified (RFC 4291)" },
  { cidr: "::ffff:0:0/96", name: "IPv4-mapped (RFC 4291)" },
  { cidr: "::/96", name: "IPv4-compatible, deprecated (RFC 4291)" },
  { cidr: "64:ff9b::/96", name: "IPv4/IPv6 translation, NAT64 (RFC 6052)" },
  { cidr: "64:ff9b:1::/48", name: "local-use IPv4/IPv6 translation (RFC 8215)" },
  { cidr: "100::/64", name: "discard-only (RFC 6666)" },
  { cidr: "100:0:0:1::/64", name: "dummy IPv6 prefix (RFC 9780)" },
  { cidr: "2001::/23", name: "IETF protocol assignments, Teredo included (RFC 2928, RFC 4380)" },
  { cidr: "2001:db8::/32", name: "documentation (RFC 3849)" },
  { cidr: "2002::/16", name: "6to4, embeds an IPv4 address (RFC 3056)" },
  { cidr: "2620:4f:8000::/48", name: "direct delegation AS112 (RFC 7534)" },
  { cidr: "3fff::/20", name: "documentation (RFC 9637)" },
  { cidr: "5f00::/16", name: "segment routing SIDs (RFC 9602)" },
  { cidr: "fc00::/7", name: "unique local (RFC 4193)" },
  { cidr: "fe80::/10", name: "link-local (RFC 4291)" },
  { cidr: "fec0::/10", name: "site-local, deprecated (RFC 3879)" },
  { cidr: "ff00::/8", name: "multicast (RFC 4291)" },
  // Only 2000::/3 is allocated for global unicast (IANA IPv6 Address Space); the rest is reserved.
  { cidr: "::/3", name: "outside IPv6 global unicast (2000::/3)" },
  { cidr: "4000::/2", name: "outside IPv6 global unicast (2000::/3)" },
  { cidr: "8000::/1", name: "outside IPv6 global unicast (2000::/3)" },
];

const REFUSED_BLOCKS = REFUSED_RANGES.map((range) => ({ range, block: parseCidr(range.cidr) }));

type HostKind = { kind: "public" } | { kind: "loopback" } | { kind: "private"; why: string };

/** Classifies a URL's hostname (as WHATWG URL normalises it: IPv4 dotted, IPv6 bracketed). */
function hostKind(hostname: string): HostKind {
  const host = hostname.toLowerCase().replace(/\.$/, "");
  if (host === "localhost" || host.endsWith(".localhost")) {
    return { kind: "loopback" };
  }
  const ip = parseIp(host);
  if (ip) {
    const hit = REFUSED_BLOCKS.find(({ block }) => inCidr(ip, block))?.range;
    if (!hit) {
      return { kind: "public" };
    }
    return hit.loopback ? { kind: "loopback" } : { kind: "private", why: `${hit.cidr}, ${hit.name}` };
  }
  // A single-label name or a special-use domain resolves, if at all, inside someone's network.
  if (!host.includes(".") || /\.(local|internal|lan|home\.arpa)$/.test(host)) {
    return { kind: "private", why: "a single-label or special-use name" };
  }
  return { kind: "public" };
}

/**
 * Why a webhook URL is refused, or null when it is acceptable: https only; no userinfo, no
 * fragment; at most 2,048 characters; the host not localhost nor an IP literal in a private,
 * loopback, link-local or reserved range. With `allowLoopback` (local development and tests
 * only), http and https to 127.0.0.0/8, [::1] and localhost are allowed too.
 */
export function webhookUrlProblem(raw: string, allowLoopback: boolean): string | null {
  if (raw.length > MAX_WEBHOOK_URL) {
    return `must be at most ${MAX_WEBHOOK_URL} characters`;
  }
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return "must be an absolute URL";
  }
  if (url.username !== "" || url.password !== "") {
    return "must not carry a user name or password";
  }
  if (raw.includes("#")) {
    return "must not carry a fragment";
  }
  const host = hostKind(url.hostname);
  if (host.kind === "loopback" && allowLoopback) {
    return url.protocol === "https:" || url.protocol === "http:" ? null : "must be an https URL";
  }
  if (url.protocol !== "https:") {
    return "must be an https URL";
  }
  if (host.kind === "loopback") {
    return "must name a public host, not a loopback address";
  }
  if (host.kind === "private") {
    return `must name a public host, not a private, link-local or reserved address (${host.why})`;
  }
  return null;
}

// --- Queue consumer --------------------------------------------------------------------------

interface DeliveryRow {
  event_id: string;
  platform_id: string;
  status: string;
  type: EventType;
  at: number;
  data: string;
  url: string | null;
  events: string | null;
  secret_nonce: string | null;
}

/** Retry delay after the `attempt`-th failed attempt of a message (1-based): 30 s, 60 s, … 1 h. */
export function retryDelaySeconds(attempt: number): number {
  return Math.min(BASE_RETRY_DELAY_S * 2 ** Math.max(0, attempt - 1), MAX_RETRY_DELAY_S);
}

type Outcome = { ok: true; status: number } | { ok: false; status: number | null; error: string };

async function post(url: string, headers: Record<string, string>, body: string): Promise<Outcome> {
  try {
    const res = await fetch(url, {
      method: "POST",
      headers,
      body,
      redirect: "manual",
      signal: AbortSignal.timeout(DELIVERY_TIMEOUT_MS),
    });
    await res.body?.cancel();
    if (res.status >= 200 && res.status < 300) {
      return { ok: true, status: res.status };
    }
    return { ok: false, status: res.status, error: `HTTP ${res.status}` };
  } catch (err) {
    const name = (err as Error)?.name;
    const error = name === "TimeoutError" ? `no answer within ${DELIVERY_TIMEOUT_MS / 1000} s` : String(err);
    return { ok: false, status: null, error: error.slice(0, 200) };
  }
}

/**
 * Delivers one message's event: loads the delivery, its event and the recipient's webhook, POSTs
 * the event signed, and records the outcome. A delivery already delivered or dead is acknowledged
 * without sending. A failure is retried with exponential backoff; after the queue's max_retries
 * the message goes to the dead-letter queue.
 */
async function deliverOne(msg: Message<WebhookMessage>, config: Config, db: Db): Promise<void> {
  const eventId = msg.body?.eventId;
  const [row] =
    typeof eventId === "string"
      ? await all<DeliveryRow>(
          db,
          sql`SELECT d.event_id, d.platform_id, d.status, e.type, e.at, e.data, w.url, w.events, w.secret_nonce
              FROM webhook_deliveries d JOIN events e ON e.id = d.event_id
              LEFT JOIN webhooks w ON w.platform_id = d.platform_id
              WHERE d.event_id = ${eventId}`,
        )
      : [];
  if (!row || row.status === "delivered" || row.status === "dead") {
    msg.ack();
    return;
  }
  const now = Date.now();
  const unsubscribed =
    row.url === null ||
    row.secret_nonce === null ||
    !(JSON.parse(row.events ?? "[]") as string[]).includes(row.type);
  const refused = row.url === null ? null : webhookUrlProblem(row.url, config.WEBHOOK_ALLOW_LOOPBACK);
  if (unsubscribed || refused !== null || row.url === null || row.secret_nonce === null) {
    // Nothing to send it to any more: say so in GET /v1/webhook rather than retrying for hours.
    await db
      .prepare(
        `UPDATE webhook_deliveries SET status = 'dead', last_attempt_at = ?, last_status = NULL, last_error = ?
         WHERE event_id = ? AND status IN ('pending', 'failed')`,
      )
      .bind(
        now,
        refused ? `webhook URL ${refused}` : "the webhook was removed or no longer takes this type",
        row.event_id,
      )
      .run();
    msg.ack();
    return;
  }
  const body = JSON.stringify(toEventItem({ id: row.event_id, type: row.type, at: row.at, data: row.data }));
  const timestamp = Math.floor(now / 1000);
  const secret = await webhookSecret(config.LEDGER_PEPPER, row.platform_id, row.secret_nonce);
  const outcome = await post(
    row.url,
    {
      "content-type": "application/json",
      "user-agent": "Pixiu-Webhooks/1",
      "webhook-id": row.event_id,
      "webhook-timestamp": String(timestamp),
      "webhook-signature": await signDelivery(secret, row.event_id, timestamp, body),
    },
    body,
  );
  const done = Date.now();
  if (outcome.ok) {
    await db
      .prepare(
        `UPDATE webhook_deliveries SET status = 'delivered', attempts = attempts + 1, last_attempt_at = ?,
           last_status = ?, last_error = NULL, delivered_at = ? WHERE event_id = ?`,
      )
      .bind(done, outcome.status, done, row.event_id)
      .run();
    msg.ack();
    return;
  }
  const delay = retryDelaySeconds(msg.attempts);
  // The scheduled job leaves it alone until well after the queue's own retry.
  await db
    .prepare(
      `UPDATE webhook_deliveries SET status = 'failed', attempts = attempts + 1, last_attempt_at = ?,
         last_status = ?, last_error = ?, next_attempt_at = ? WHERE event_id = ? AND status != 'delivered'`,
    )
    .bind(done, outcome.status, outcome.error, done + delay * 1000 + RESEND_AFTER_MS, row.event_id)
    .run();
  msg.retry({ delaySeconds: delay });
}

/** The consumer of `pixiu-webhooks`: each message is one delivery, attempted concurrently. */
export async function deliverBatch(batch: MessageBatch<WebhookMessage>, config: Config): Promise<void> {
  await Promise.all(
    batch.messages.map((msg) =>
      deliverOne(msg, config, config.DB).catch((err) => {
        console.error(
          JSON.stringify({ level: "error", msg: "webhook delivery crashed", error: String(err) }),
        );
        msg.retry({ delaySeconds: retryDelaySeconds(msg.attempts) });
      }),
    ),
  );
}

/**
 * The consumer of `pixiu-webhooks-dlq`: a delivery whose message ran out of retries is marked
 * `dead` (shown in GET /v1/webhook; nothing is disabled), unless it got through meanwhile.
 */
export async function deadLetterBatch(batch: MessageBatch<WebhookMessage>, config: Config): Promise<void> {
  const ids = batch.messages.map((m) => m.body?.eventId).filter((id): id is string => typeof id === "string");
  if (ids.length > 0) {
    await config.DB.prepare(
      `UPDATE webhook_deliveries SET status = 'dead', last_error = coalesce(last_error, 'retries exhausted')
       WHERE event_id IN (SELECT value FROM json_each(?)) AND status IN ('pending', 'failed')`,
    )
      .bind(JSON.stringify(ids))
      .run();
  }
  batch.ackAll();
}

/**
 * The scheduled re-send: deliveries still pending or failed whose `next_attempt_at` has passed
 * (their queue message lost, or its retries long overdue) go on the queue again, at most
 * `RESEND_PER_RUN` per run, each pushed `RESEND_AFTER_MS` forward so it is not re-sent every
 * minute while it is in flight. Returns how many were re-sent.
 */
export async function resendDue(queue: Queue<WebhookMessage>, db: Db, now: number): Promise<number> {
  const rows = await all<{ event_id: string }>(
    db,
    sql`UPDATE webhook_deliveries SET next_attempt_at = ${now + RESEND_AFTER_MS}
        WHERE event_id IN (SELECT event_id FROM webhook_deliveries
          WHERE status IN ('pending', 'failed') AND next_attempt_at <= ${now}
          ORDER BY next_attempt_at LIMIT ${RESEND_PER_RUN})
        RETURNING event_id`,
  );
  await sendDeliveries(
    queue,
    rows.map((r) => r.event_id),
  );
  return rows.length;
}
