/**
 * The back-fill's lock file (client/cli/lock.ts): held by a live process it refuses, left by a
 * dead one on this host it is taken over, from another host it is refused (its process cannot be
 * checked), and a release removes only its own lock.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { acquireLock, LockedError } from "../../client/cli/lock";

let dir: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "pixiu-lock-"));
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** The pid of a process that has exited (and been reaped), so no process has it for now. */
function deadPid(): number {
  const child = spawnSync(process.execPath, ["-e", "process.stdout.write(String(process.pid))"], {
    encoding: "utf8",
  });
  return Number(child.stdout);
}

const holder = (pid: number, host = hostname()) =>
  `${JSON.stringify({ pid, host, startedAt: "2026-11-29T00:00:00.000Z" })}\n`;

describe("the back-fill lock", () => {
  it("is refused while held, and free again once released", () => {
    const path = join(dir, "held.lock");
    const lock = acquireLock(path, "back-fill of held.csv");
    expect(JSON.parse(readFileSync(path, "utf8"))).toMatchObject({ pid: process.pid, host: hostname() });
    expect(() => acquireLock(path, "back-fill of held.csv")).toThrow(LockedError);
    expect(() => acquireLock(path, "back-fill of held.csv")).toThrow(
      new RegExp(`another back-fill of held\\.csv is running \\(pid ${process.pid} on`),
    );
    lock.release();
    expect(existsSync(path)).toBe(false);
    acquireLock(path, "back-fill of held.csv").release();
  });

  it("left by a process that is gone, on this host, is taken over", () => {
    const path = join(dir, "stale.lock");
    writeFileSync(path, holder(deadPid()));
    const lock = acquireLock(path, "back-fill");
    expect(JSON.parse(readFileSync(path, "utf8")).pid).toBe(process.pid);
    lock.release();
    expect(existsSync(path)).toBe(false);
  });

  it("held from another host, or unreadable, is refused and left in place", () => {
    const other = join(dir, "other-host.lock");
    writeFileSync(other, holder(deadPid(), `not-${hostname()}`));
    expect(() => acquireLock(other, "back-fill")).toThrow(/on not-.*remove .*other-host\.lock/);
    expect(existsSync(other)).toBe(true);
    const torn = join(dir, "torn.lock");
    writeFileSync(torn, "");
    expect(() => acquireLock(torn, "back-fill")).toThrow(LockedError);
    expect(existsSync(torn)).toBe(true);
  });

  it("a release removes only its own lock", () => {
    const path = join(dir, "replaced.lock");
    const lock = acquireLock(path, "back-fill");
    writeFileSync(path, holder(process.pid + 1));
    lock.release();
    expect(existsSync(path)).toBe(true);
  });
});
