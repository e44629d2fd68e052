/**
 * The SDK's default sleep waits as long as it is told: a single setTimeout longer than 2^31 − 1 ms
 * fires at once, which turned a Retry-After of weeks (allowed by `maxRetryAfterMs: Infinity`)
 * into an immediate retry.
 */
import { afterEach, describe, expect, it, vi } from "vitest";
import { DEFAULT_RETRY } from "../../client/retry";

afterEach(() => {
  vi.useRealTimers();
});

describe("the default retry sleep", () => {
  it("waits the whole of a delay beyond setTimeout's 24.8-day limit", async () => {
    vi.useFakeTimers();
    let done = false;
    const sleeping = DEFAULT_RETRY.sleep(3_000_000_000).then(() => {
      done = true;
    });
    await vi.advanceTimersByTimeAsync(2_147_483_647);
    expect(done).toBe(false);
    await vi.advanceTimersByTimeAsync(3_000_000_000 - 2_147_483_647 - 1);
    expect(done).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    await sleeping;
    expect(done).toBe(true);
  });

  it("waits no time for zero", async () => {
    vi.useFakeTimers();
    const sleeping = DEFAULT_RETRY.sleep(0);
    await vi.advanceTimersByTimeAsync(0);
    await expect(sleeping).resolves.toBeUndefined();
  });
});
