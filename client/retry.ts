/**
 * When to try a request again, and how long to wait first: 429 and 503 always (the ledger refused
 * the request, so nothing happened), honouring `Retry-After`; a network failure only when the
 * caller says the request is safe to repeat (reads, and writes idempotent by key).
 */

export interface RetryOptions {
  /** Requests per call at most, the first included (default 4). */
  attempts: number;
  /** First backoff step without Retry-After (default 250 ms); doubles per attempt. */
  baseDelayMs: number;
  /** Largest backoff step without Retry-After (default 8 s). */
  maxDelayMs: number;
  /**
   * Longest `Retry-After` the client waits (default 60 s): a longer one (the daily look-up cap
   * answers with the seconds to midnight UTC) fails the call at once with `retryAfter` set.
   */
  maxRetryAfterMs: number;
  /** How the client waits; a test may record instead. */
  sleep: (ms: number) => Promise<void>;
  /** Uniform in [0, 1); a test may fix it. */
  random: () => number;
}

export const DEFAULT_RETRY: RetryOptions = {
  attempts: 4,
  baseDelayMs: 250,
  maxDelayMs: 8_000,
  maxRetryAfterMs: 60_000,
  // setTimeout fires at once beyond 2^31 − 1 ms (about 24.8 days): wait in steps instead.
  sleep: longSleep,
  random: Math.random,
};

/**
 * The defaults with the caller's options over them; an option given as `undefined` keeps its
 * default (spread as it was, `{ attempts: undefined }` switched retries off), and numbers that
 * are not numbers are refused rather than read as "never" or "at once".
 */
export function retryOptions(partial: Partial<RetryOptions> = {}): RetryOptions {
  const given = Object.fromEntries(Object.entries(partial).filter(([, value]) => value !== undefined));
  const options = { ...DEFAULT_RETRY, ...given } as RetryOptions;
  if (!Number.isInteger(options.attempts) || options.attempts < 1) {
    throw new RangeError("retry.attempts must be a whole number of at least 1");
  }
  for (const name of ["baseDelayMs", "maxDelayMs", "maxRetryAfterMs"] as const) {
    if (!(options[name] >= 0)) {
      throw new RangeError(`retry.${name} must be a number of milliseconds, 0 or more`);
    }
  }
  return options;
}

const MAX_TIMEOUT_MS = 2_147_483_647;

/** Sleeps `ms`, however long: one timer per 2^31 − 1 ms, since a longer one would fire at once. */
async function longSleep(ms: number): Promise<void> {
  let left = ms;
  do {
    const step = Math.min(Math.max(0, left), MAX_TIMEOUT_MS);
    await new Promise((resolve) => setTimeout(resolve, step));
    left -= step;
  } while (left > 0);
}

/** `Retry-After` as seconds: delta-seconds or an HTTP date; null when absent or unreadable. */
export function parseRetryAfter(value: string | null, now = Date.now()): number | null {
  if (value === null || value.trim() === "") {
    return null;
  }
  if (/^\d+$/.test(value.trim())) {
    return Number(value.trim());
  }
  const at = Date.parse(value);
  return Number.isNaN(at) ? null : Math.max(0, Math.ceil((at - now) / 1000));
}

/**
 * The wait before attempt `attempt + 1` (attempt counts from 1): with Retry-After, that many
 * seconds plus up to 10 % (so clients refused together do not return together); without, "full
 * jitter" exponential backoff, uniform in [0, min(max, base · 2^(attempt-1))].
 */
export function backoffMs(options: RetryOptions, attempt: number, retryAfterSeconds: number | null): number {
  if (retryAfterSeconds !== null) {
    const ms = retryAfterSeconds * 1000;
    return ms + Math.floor(options.random() * Math.max(100, ms * 0.1));
  }
  const cap = Math.min(options.maxDelayMs, options.baseDelayMs * 2 ** (attempt - 1));
  return Math.floor(options.random() * cap);
}

export function isRetryableStatus(status: number): boolean {
  return status === 429 || status === 503;
}
