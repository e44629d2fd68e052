/**
 * The ledger as `npm start` runs it, for tests on the Node side: started by the npm script itself,
 * on its own port and state directory (PIXIU_PORT, PIXIU_STATE_DIR) so it never meets a
 * developer's ledger or data, in its own process group so it can be killed whole and hard.
 *
 * @example
 *   const ledger = await startLedger({ port, stateDir });
 *   const killed = await ledger.killHard(); // SIGKILL to npm, tsx, wrangler and every workerd
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { readdir, readFile } from "node:fs/promises";
import { createServer } from "node:net";
import { basename, join } from "node:path";
import { promisify } from "node:util";
import { DEMO_PLATFORMS, DEV_VARS, KEYS_DIR, ROOT } from "../../scripts/lib/local";

export const HOST = "127.0.0.1";

/** How much of the server's output is kept to explain a failure. */
const OUTPUT_TAIL = 64 * 1024;

export interface LocalLedger {
  base: string;
  /** Id of the spawned npm process, leader of the group holding every process of this ledger. */
  pid: number;
  /** The live processes of the group once it was ready: npm, tsx, wrangler, workerd, esbuild. */
  members: GroupMember[];
  /** The tail of everything the ledger printed (stdout and stderr). */
  output(): string;
  /**
   * SIGKILL to the whole group, so nothing flushes on the way out. The signal is sent at the
   * call, synchronously; the promise resolves once no process of the group is alive.
   */
  killHard(): Promise<Killed>;
}

export interface GroupMember {
  pid: number;
  command: string;
}

export interface Killed {
  /** When the signal was sent (ms since the epoch). */
  at: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Every process group this module started and has not seen die: what `killAll` ends. */
const started = new Set<number>();

/**
 * SIGKILL to every ledger this module started that may still run, whatever state a test left
 * it in (a timeout in the middle of a start, say); for afterAll and process exit.
 */
export function killAll(): void {
  for (const pgid of started) {
    try {
      process.kill(-pgid, "SIGKILL");
    } catch {
      // already gone
    }
  }
  started.clear();
}

/** A port free on 127.0.0.1 right now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, HOST, () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/**
 * The live (not zombie) processes of a process group: from /proc on Linux (no `ps` needed, which
 * slim CI images lack), else from `ps`.
 */
export async function groupMembers(pgid: number): Promise<GroupMember[]> {
  const rows = existsSync("/proc/self/stat") ? await procRows(pgid) : await psRows();
  return rows.filter((r) => r.pgid === pgid && r.state !== "Z").map(({ pid, command }) => ({ pid, command }));
}

type ProcessRow = GroupMember & { pgid: number; state: string };

/**
 * The processes of one group from /proc: <pid>/stat is `pid (comm) state ppid pgrp …`, where comm
 * may hold spaces and parentheses.
 */
async function procRows(pgid: number): Promise<ProcessRow[]> {
  const rows: ProcessRow[] = [];
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry)) {
      continue;
    }
    let stat: string;
    try {
      stat = await readFile(`/proc/${entry}/stat`, "utf8");
    } catch {
      continue; // gone meanwhile
    }
    const close = stat.lastIndexOf(")");
    const [state = "", , pgrp = ""] = stat.slice(close + 2).split(" ");
    if (Number(pgrp) !== pgid) {
      continue;
    }
    // A readable name: node shows as "MainThread" in stat, so the start of its command line.
    const argv = (await readFile(`/proc/${entry}/cmdline`, "utf8").catch(() => "")).split("\0");
    const command = argv
      .filter((a) => a !== "" && !a.startsWith("--"))
      .slice(0, 2)
      .map((a) => basename(a))
      .join(" ");
    rows.push({
      pid: Number(entry),
      command: command || stat.slice(stat.indexOf("(") + 1, close),
      pgid: Number(pgrp),
      state,
    });
  }
  return rows;
}

async function psRows(): Promise<ProcessRow[]> {
  const { stdout } = await promisify(execFile)("ps", ["-eo", "pid=,pgid=,stat=,comm="], { encoding: "utf8" });
  const rows: ProcessRow[] = [];
  for (const line of stdout.split("\n")) {
    const m = /^\s*(\d+)\s+(\d+)\s+(\S+)\s+(.*)$/.exec(line);
    if (m) {
      rows.push({
        pid: Number(m[1]),
        pgid: Number(m[2]),
        state: (m[3] ?? "").slice(0, 1),
        command: (m[4] ?? "").trim(),
      });
    }
  }
  return rows;
}

/**
 * SIGKILL to a whole process group, sent before this function first yields (nothing may stall
 * between the caller's decision and the signal); resolves once none of the group is alive.
 */
export async function killGroup(pgid: number, timeoutMs = 15_000): Promise<Killed> {
  const at = Date.now();
  try {
    process.kill(-pgid, "SIGKILL");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ESRCH") {
      throw err;
    }
  }
  const deadline = at + timeoutMs;
  while ((await groupMembers(pgid)).length > 0) {
    if (Date.now() > deadline) {
      throw new Error(`process group ${pgid} still alive ${timeoutMs} ms after SIGKILL`);
    }
    await sleep(50);
  }
  started.delete(pgid);
  return { at };
}

/**
 * The environment `npm start` sees from a developer's shell: this one, less what vitest adds,
 * plus the port and state directory.
 */
function ledgerEnv(port: number, stateDir: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (!k.startsWith("VITEST") && k !== "NODE_ENV" && k !== "TEST") {
      env[k] = v;
    }
  }
  return { ...env, PIXIU_PORT: String(port), PIXIU_STATE_DIR: stateDir, WRANGLER_SEND_METRICS: "false" };
}

/**
 * `npm run -s start` as the leader of its own process group (the shell execs it), with a watchdog
 * in the group: a subshell reading the pipe this process holds open as its stdin. Should this
 * process die without cleaning up (Ctrl-C, a crash, a SIGKILL), the pipe closes, the read
 * returns and the watchdog kills the group, so no ledger outlives the test that started it.
 */
const WATCHED_NPM_START = "exec 3<&0; (read -r _ <&3; kill -KILL 0) & exec npm run -s start </dev/null 3<&-";

/**
 * Runs `npm run -s start` and resolves once the ledger is ready: /healthz answers 200 and the
 * start script printed its guide (so the demo cases are reported). Throws, with the script's
 * output, if it exits or is not ready in time; the group is killed then.
 */
export async function startLedger(options: {
  port: number;
  stateDir: string;
  timeoutMs?: number;
}): Promise<LocalLedger> {
  const { port, stateDir, timeoutMs = 120_000 } = options;
  const base = `http://${HOST}:${port}`;
  const child: ChildProcess = spawn("sh", ["-c", WATCHED_NPM_START], {
    cwd: ROOT,
    env: ledgerEnv(port, stateDir),
    detached: true,
    stdio: ["pipe", "pipe", "pipe"],
  });
  const pid = child.pid;
  if (pid === undefined) {
    throw new Error("npm start could not be spawned");
  }
  started.add(pid);
  // The pipes are always drained (wrangler logs every request), keeping only the tail.
  let tail = "";
  const keep = (chunk: Buffer) => {
    tail = (tail + chunk.toString("utf8")).slice(-OUTPUT_TAIL);
  };
  child.stdout?.on("data", keep);
  child.stderr?.on("data", keep);
  let exited = false;
  child.once("exit", () => {
    exited = true;
  });

  const deadline = Date.now() + timeoutMs;
  const ready = `Pixiu ledger on ${base}`;
  while (!tail.includes(ready) || !(await healthy(base))) {
    if (exited || Date.now() > deadline) {
      await killGroup(pid).catch(() => undefined);
      const why = exited ? "exited" : `was not ready within ${timeoutMs / 1000} s`;
      throw new Error(`npm start ${why}; its output:\n${tail}`);
    }
    await sleep(250);
  }
  return { base, pid, members: await groupMembers(pid), output: () => tail, killHard: () => killGroup(pid) };
}

async function healthy(base: string): Promise<boolean> {
  try {
    const res = await fetch(`${base}/healthz`, { signal: AbortSignal.timeout(2_000) });
    await res.arrayBuffer();
    return res.ok;
  } catch {
    return false;
  }
}

/**
 * `npm start` writes .dev.vars and .local/ (keys, seed.sql) when missing; both are git-ignored,
 * but a test must leave a developer's checkout as it found it. Returns the function that puts
 * every one of those files back as it was (or removes it, and the folders it made).
 */
export function preserveLocalFiles(): () => void {
  const localDir = join(ROOT, ".local");
  const files = [
    DEV_VARS,
    join(localDir, "seed.sql"),
    ...["admin", "audit", ...DEMO_PLATFORMS.map((p) => p.id)].map((name) =>
      join(KEYS_DIR, `${name}.private.jwk.json`),
    ),
  ];
  const saved = files.map((path) => ({ path, content: existsSync(path) ? readFileSync(path) : null }));
  const dirs = [KEYS_DIR, localDir].filter((dir) => !existsSync(dir));
  return () => {
    for (const { path, content } of saved) {
      if (content === null) {
        rmSync(path, { force: true });
      } else {
        writeFileSync(path, content, { mode: 0o600 });
      }
    }
    for (const dir of dirs) {
      rmSync(dir, { recursive: true, force: true });
    }
  };
}
