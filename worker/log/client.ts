import type { Config } from "../env";
import type { AppendInput, AppendResult, LogShard, OwnLookups, OwnLookupsQuery } from "./shard";

/**
 * The Worker's side of the log store: which shard an actor writes to, and the calls every
 * caller makes through here (one seam, so the store behind it can change).
 *
 * An actor always writes to the same shard (FNV-1a of the actor, modulo LOG_SHARDS): a
 * platform's look-ups, usage and daily cap live in one place, and each shard has one writer.
 */
export function shardOf(actor: string, shards: number): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < actor.length; i++) {
    h ^= actor.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0) % shards;
}

export type LogConfig = Pick<Config, "LOG" | "LOG_SHARDS" | "LOG_ARCHIVE">;

export function shardStub(config: LogConfig, shard: number): DurableObjectStub<LogShard> {
  return config.LOG.get(config.LOG.idFromName(`log-shard-${shard}`));
}

/**
 * Thrown when the log store could not commit an append (the caller answers 503, never unlogged),
 * or could not answer a read a write depends on (the caller answers 503, writing nothing).
 */
export class LogUnavailable extends Error {
  constructor(cause: unknown, what = "commit") {
    super(`the log store did not ${what}: ${String((cause as Error)?.message ?? cause)}`);
    this.name = "LogUnavailable";
  }
}

/**
 * Appends one request's log to the actor's shard and resolves once it is durably committed.
 * Retried once on a failure that may be transient: the append id makes a retry of an append that
 * did commit a replay, never a second copy.
 */
export async function appendLog(config: LogConfig, actor: string, input: AppendInput): Promise<AppendResult> {
  const shard = shardOf(actor, config.LOG_SHARDS);
  let lastError: unknown;
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      return await shardStub(config, shard).append(shard, input);
    } catch (err) {
      lastError = err;
    }
  }
  throw new LogUnavailable(lastError);
}

/**
 * A platform's own look-ups of any of `keys` in `[since, until]`, from its shard (the one its
 * look-ups are appended to: `shardOf(actor, LOG_SHARDS)`), in one call; retried once. Throws
 * `LogUnavailable` when the shard cannot answer.
 */
export async function readOwnLookups(config: LogConfig, q: OwnLookupsQuery): Promise<OwnLookups> {
  const shard = shardOf(q.actor, config.LOG_SHARDS);
  let lastError: unknown;
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      return (await shardStub(config, shard).lookupsOf(q)) as OwnLookups;
    } catch (err) {
      lastError = err;
    }
  }
  throw new LogUnavailable(lastError, "answer");
}

/**
 * The platform's latest look-up of each (key, from, to) in its actor's log shard
 * (`LogShard.latestLookupsIn`), null for none, in order; like `readOwnLookups`, one retry.
 */
export async function readLatestLookupsIn(
  config: LogConfig,
  q: { platformId: string; actor: string; ranges: readonly [string, number, number][] },
): Promise<(number | null)[]> {
  const shard = shardOf(q.actor, config.LOG_SHARDS);
  let lastError: unknown;
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      return await shardStub(config, shard).latestLookupsIn({ platformId: q.platformId, ranges: q.ranges });
    } catch (err) {
      lastError = err;
    }
  }
  throw new LogUnavailable(lastError, "answer");
}

/** Calls every shard, in parallel, in shard order. */
export function everyShard<T>(
  config: LogConfig,
  call: (stub: DurableObjectStub<LogShard>, shard: number) => Promise<T>,
): Promise<T[]> {
  return Promise.all(Array.from({ length: config.LOG_SHARDS }, (_, i) => call(shardStub(config, i), i)));
}
