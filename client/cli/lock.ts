/**
 * An exclusive lock file, so two back-fills of one file (two terminals, a cron overlap) never
 * write the same state and rejects files at once. The lock is a file created with O_EXCL (`wx`)
 * holding who took it: pid, host and start time. A lock left by a process that is gone (a crash,
 * SIGKILL) on this host is taken over; one held by a live process, or by another host (whose
 * processes cannot be checked from here), is refused with a message naming it.
 */
import {
  closeSync,
  fsyncSync,
  linkSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  writeSync,
} from "node:fs";
import { hostname } from "node:os";

interface Holder {
  pid: number;
  host: string;
  startedAt: string;
}

export interface Lock {
  path: string;
  /** Removes the lock file if it is still this one's; called again, does nothing. */
  release(): void;
}

export class LockedError extends Error {}

function readHolder(path: string): Holder | "gone" | null {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") {
      return "gone";
    }
    throw err;
  }
  try {
    const h = JSON.parse(text) as Holder;
    return typeof h.pid === "number" && typeof h.host === "string" && typeof h.startedAt === "string"
      ? h
      : null;
  } catch {
    return null; // being written by its taker this instant, or cut short by a crash
  }
}

const same = (a: Holder | "gone" | null, b: Holder) =>
  a !== null && a !== "gone" && a.pid === b.pid && a.host === b.host && a.startedAt === b.startedAt;

/** Whether process `pid` is alive on this machine (EPERM: it is, under another user). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * Takes the lock at `path` for `what` (named in the refusal), or throws LockedError. The lock is
 * also released when the process exits (process.exit, a second Ctrl-C); a kill leaves it, and the
 * next run on this host takes it over once it sees its process gone.
 */
export function acquireLock(path: string, what: string): Lock {
  const me: Holder = { pid: process.pid, host: hostname(), startedAt: new Date().toISOString() };
  let holder: Holder | null = null;
  for (let attempt = 0; attempt < 5; attempt++) {
    try {
      const fd = openSync(path, "wx", 0o600);
      try {
        writeSync(fd, `${JSON.stringify(me)}\n`);
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      return held(path, me);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") {
        throw err;
      }
    }
    const found = readHolder(path);
    if (found === "gone") {
      continue; // released between our attempt and our look: try again
    }
    holder = found;
    if (found === null || found.host !== me.host || alive(found.pid)) {
      break;
    }
    // Stale: its process is gone. Moved aside (atomic: of two runs taking it over, one moves it),
    // then checked to be the stale lock read above and not a live one that replaced it meanwhile.
    const aside = `${path}.${process.pid}.stale`;
    try {
      renameSync(path, aside);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") {
        continue;
      }
      throw err;
    }
    const moved = readHolder(aside);
    if (!same(moved, found)) {
      // Another run's fresh lock: put it back (unless a third already took the place) and yield.
      try {
        linkSync(aside, path);
      } catch {
        // the place is taken: that run holds the lock
      }
      rmSync(aside, { force: true });
      holder = moved === "gone" ? null : moved;
      break;
    }
    rmSync(aside, { force: true });
  }
  const who = holder
    ? `pid ${holder.pid} on ${holder.host}, started ${holder.startedAt}`
    : "a process that is taking it now, or that crashed while taking it";
  throw new LockedError(
    `another ${what} is running (${who}; lock file ${path}). Wait for it to finish or stop it; if it is not running (it was on another machine, or the lock was left behind), remove ${path} and run again`,
  );
}

function held(path: string, me: Holder): Lock {
  let released = false;
  const release = () => {
    if (released) {
      return;
    }
    released = true;
    process.removeListener("exit", release);
    try {
      if (same(readHolder(path), me)) {
        rmSync(path, { force: true });
      }
    } catch {
      // nothing to release
    }
  };
  process.on("exit", release);
  return { path, release };
}
