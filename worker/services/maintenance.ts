import { sql } from "drizzle-orm";
import { checkpoint, readableLog, type SpanConfig } from "../audit/ledger";
import { headFor, LEDGER_LEAF } from "../audit/tree";
import type { Config, WebhookMessage } from "../env";
import { all, batch } from "../lib/batch";
import type { Db } from "../lib/db";
import { orm } from "../lib/db";
import { DAY_MS } from "../lib/time";
import { archiveLog } from "../log/archive";
import { everyShard, shardStub } from "../log/client";
import { accountOutbox, drainAll, OUTBOX_APPEND_RETENTION_MS } from "../log/outbox";
import { AUDIT_INSERT, auditInsert } from "./audit";
import { type CollusionRun, recomputeCollusion } from "./collusion";
import { markOverdueDisputes } from "./disputes";
import { deliveriesOf, reportEvents, sendDeliveries } from "./events";
import { purgeFingerprintsSql } from "./fingerprints";
import { recomputeTrust } from "./trust";
import { resendDue } from "./webhooks";

/** Reports deleted per batch: small enough for D1's statement limits, large enough to be quick. */
export const PURGE_CHUNK = 200;
/** Chunks per run; a backlog larger than this is finished by the next runs. */
export const MAX_PURGE_CHUNKS = 50;

export interface MaintenanceRun {
  actor: string;
  requestId: string;
  now: number;
  retentionDays: number;
  /** Look-up inquiries in the log store older than this are deleted. */
  inquiryRetentionDays: number;
  /** The log store, whose shards purge with the run. */
  log: SpanConfig;
  /** Events and their webhook deliveries older than this are deleted (≥ 30). */
  eventRetentionDays: number;
  /** Where the webhook deliveries the run creates or re-sends go. */
  webhooks: Queue<WebhookMessage>;
}

/** Events deleted per statement pair, and at most this many statement pairs per run. */
export const EVENT_PURGE_CHUNK = 5000;
export const MAX_EVENT_PURGE_CHUNKS = 10;

export interface MaintenanceResult {
  reportsPurged: number;
  inquiriesPurged: number;
  tokenUsesPurged: number;
  disputesMarkedOverdue: number;
  eventsPurged: number;
  /** Unacknowledged webhook deliveries put on the queue again. */
  webhooksResent: number;
  /** Platforms whose reporter trust was recomputed (docs/scoring.md §2a). */
  trustRecomputed: number;
  /** The collusion job (docs/scoring.md §3d), or null when it ran within the last hour. */
  collusion: CollusionRun | null;
  /** False when the retention backlog was larger than one run handles. */
  complete: boolean;
  /** The log store's retention, over every shard. */
  log: { keysErased: number; inquiriesPurged: number };
}

/**
 * Retention in every log shard: subject keys of entries older than the retention period and of
 * entries about `targets` (purged reports) are erased (the chain keeps their commitment and still
 * verifies), inquiries past their retention, cap rows of past days and append ids older than a
 * day (a retry comes within seconds; outbox append ids a month, see worker/log/outbox.ts) are
 * deleted.
 */
async function purgeLog(d1: Db, run: MaintenanceRun, targets: string[]) {
  // Outbox ids the accounting has passed need no holding any more.
  const outboxThrough = (await shardStub(run.log, 0).outboxWatermark()) as number | null;
  const results = await everyShard(await readableLog(d1, run.log), (stub) =>
    stub.purge({
      keysBefore: run.now - run.retentionDays * DAY_MS,
      inquiriesBefore: run.now - run.inquiryRetentionDays * DAY_MS,
      targets,
      dayBefore: new Date(run.now).toISOString().slice(0, 10),
      appendsBefore: run.now - DAY_MS,
      outboxAppendsBefore: run.now - OUTBOX_APPEND_RETENTION_MS,
      outboxThrough,
    }),
  );
  return {
    keysErased: results.reduce((n, r) => n + r.keysErased, 0),
    inquiriesPurged: results.reduce((n, r) => n + r.inquiriesPurged, 0),
  };
}

/**
 * The scheduled job, also run by hand (`npm run purge`, or `POST /v1/admin/maintenance/run`).
 * Idempotent, in bounded chunks, each chunk one batch with its own audit entry:
 * - reports whose incident is older than the retention period are deleted with their subject
 *   links and disputes; the audit keeps that a purge happened and how many;
 * - inquiry-log rows older than the retention period are deleted;
 * - replay-protection rows of expired tokens are deleted;
 * - disputes open past their deadline are marked `overdue` for the admins' list;
 * - events (and their webhook deliveries) older than the event retention period are deleted.
 * - webhook deliveries no receiver acknowledged in time are put on the queue again;
 * - collusion groups are recomputed, at most once an hour (§3d of docs/scoring.md), after the
 *   purge, and audited when they change;
 * - reporter trust is recomputed for platforms not scored within the last hour and for those
 *   whose group just changed (§2a of docs/scoring.md), after the purge and the groups, so purged
 *   records no longer count and a group's members no longer corroborate each other.
 * Purged reports and overdue disputes tell their reporters (`report.expired`, `dispute.overdue`)
 * in the same batch; the webhook deliveries this creates go on the queue at the end of the run.
 */
export async function runMaintenance(d1: Db, run: MaintenanceRun): Promise<MaintenanceResult> {
  const db = orm(d1);
  const cutoff = run.now - run.retentionDays * DAY_MS;
  const ctx = { requestId: run.requestId, now: run.now };
  const deliveries: string[] = [];
  let reportsPurged = 0;
  let complete = false;
  const log = { keysErased: 0, inquiriesPurged: 0 };
  for (let chunk = 0; chunk < MAX_PURGE_CHUNKS; chunk++) {
    const rows = await all<{ id: string }>(
      d1,
      sql`SELECT id FROM reports WHERE incident_at < ${cutoff} ORDER BY incident_at LIMIT ${PURGE_CHUNK}`,
    );
    if (rows.length === 0) {
      complete = true;
      break;
    }
    // The log forgets whom these records were about before they go: were the deletion to fail,
    // the records stay and the next run erases again (idempotent); the other way round, a failed
    // erasure would lose the ids it needs.
    const erased = await purgeLog(
      d1,
      run,
      rows.map((r) => r.id),
    );
    log.keysErased += erased.keysErased;
    log.inquiriesPurged += erased.inquiriesPurged;
    const ids = JSON.stringify(rows.map((r) => r.id));
    const inIds = sql`(SELECT value FROM json_each(${ids}))`;
    const results = await batch(d1, [
      // Each reporter learns its record expired: `{reportId, caseId}`, its own references.
      ...reportEvents(
        { now: run.now },
        "report.expired",
        rows.map((r) => r.id),
      ),
      sql`${AUDIT_INSERT}
          SELECT ${run.now}, ${run.actor}, 'retention.purge', NULL, ${run.requestId}, 'ok',
            json_object('cutoff', ${cutoff}, 'reports', (SELECT count(*) FROM reports WHERE id IN ${inIds}),
              'subjectLinks', (SELECT count(*) FROM report_subjects WHERE report_id IN ${inIds}),
              'disputes', (SELECT count(*) FROM disputes WHERE report_id IN ${inIds}))`,
      sql`DELETE FROM report_subjects WHERE report_id IN ${inIds}`,
      ...purgeFingerprintsSql(inIds),
      sql`DELETE FROM disputes WHERE report_id IN ${inIds}`,
      sql`DELETE FROM reports WHERE id IN ${inIds}`,
    ]);
    deliveries.push(...deliveriesOf(results));
    reportsPurged += rows.length;
  }
  const [inquiries, tokens] = await batch(d1, [
    sql`DELETE FROM inquiries WHERE at < ${cutoff}`,
    sql`DELETE FROM token_uses WHERE expires_at < ${run.now}`,
  ]);
  const inquiriesPurged = inquiries?.meta.changes ?? 0;
  const erased = await purgeLog(d1, run, []);
  log.keysErased += erased.keysErased;
  log.inquiriesPurged += erased.inquiriesPurged;
  const tokenUsesPurged = tokens?.meta.changes ?? 0;
  const overdue = await markOverdueDisputes(d1, run.now);
  deliveries.push(...overdue.deliveries);
  const eventsPurged = await purgeEvents(d1, run.now - run.eventRetentionDays * DAY_MS);
  await sendDeliveries(run.webhooks, deliveries);
  const webhooksResent = await resendDue(run.webhooks, d1, run.now);
  const collusion = await recomputeCollusion(d1, { now: run.now, requestId: run.requestId });
  const trustRecomputed = await recomputeTrust(d1, run.now);
  const result = {
    reportsPurged,
    inquiriesPurged,
    tokenUsesPurged,
    disputesMarkedOverdue: overdue.marked,
    eventsPurged,
    webhooksResent,
    trustRecomputed,
    collusion,
    complete,
    log,
  };
  await auditInsert(db, ctx, {
    actor: run.actor,
    action: "maintenance.run",
    outcome: "ok",
    details: { ...result },
  }).run();
  return result;
}

/** Deletes events older than `cutoff` with their deliveries, oldest first, in bounded chunks. */
async function purgeEvents(d1: Db, cutoff: number): Promise<number> {
  let purged = 0;
  for (let chunk = 0; chunk < MAX_EVENT_PURGE_CHUNKS; chunk++) {
    const old = sql`(SELECT id FROM events WHERE at < ${cutoff} ORDER BY seq LIMIT ${EVENT_PURGE_CHUNK})`;
    const [, events] = await batch(d1, [
      sql`DELETE FROM webhook_deliveries WHERE event_id IN ${old}`,
      sql`DELETE FROM events WHERE id IN ${old}`,
    ]);
    const n = events?.meta.changes ?? 0;
    purged += n;
    if (n < EVENT_PURGE_CHUNK) {
      break;
    }
  }
  return purged;
}

/**
 * The scheduled job (Cron Trigger every minute, or the admin trigger): maintenance, then the
 * webhook deliveries it created and those still unacknowledged past their time go on the queue,
 * then drain the audit outbox to the log shards, seal what is left of the ledger chain (its
 * closed legacy prefix: nothing new reaches it) and sign one tree checkpoint of its head and
 * every log shard's head.
 */
export async function scheduledJob(
  config: Config,
  run: Omit<
    MaintenanceRun,
    "retentionDays" | "inquiryRetentionDays" | "eventRetentionDays" | "webhooks" | "log"
  >,
  db: Db = config.DB,
) {
  const result = await runMaintenance(db, {
    ...run,
    retentionDays: config.RETENTION_DAYS,
    inquiryRetentionDays: config.INQUIRY_RETENTION_DAYS ?? config.RETENTION_DAYS,
    log: config,
    eventRetentionDays: config.EVENT_RETENTION_DAYS,
    webhooks: config.WEBHOOKS,
  });
  // Every entry written so far (this run's own included) goes to the shards before their heads
  // are signed; rows a failed drain left behind are retried here, every minute.
  const outbox = await drainAll(config, db);
  // Every outbox id since the last run reached a shard (or waits): the watermark moves up.
  const accounted = await accountOutbox(await readableLog(db, config), db, { advance: true, now: run.now });
  if (accounted.missing.length > 0) {
    console.error(JSON.stringify({ level: "error", alert: "audit_outbox_gap", missing: accounted.missing }));
  }
  const signed = await checkpoint(db, config, config.AUDIT_SIGNING_JWK, run.now);
  const ledger = signed ? headFor(signed, LEDGER_LEAF) : undefined;
  // After signing, so the newest heads can end a segment.
  const archived = await archiveLog(db, config, run.now);
  return {
    ...result,
    outbox: { ...outbox, through: accounted.through, missing: accounted.missing },
    archived,
    // `seq`/`hash`: the ledger chain's head it signed; `root` and `heads`: the whole tree.
    checkpoint:
      signed && ledger
        ? { seq: ledger.seq, hash: ledger.hash, at: signed.at, root: signed.root, heads: signed.heads }
        : null,
  };
}
