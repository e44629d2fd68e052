/**
 * Issue 10, guarantee 2, locally: no unlogged look-up. A score answer leaves only after its
 * inquiry rows and audit entry are committed in the log store, so every answer a client received
 * survives a hard kill of the ledger `npm start` runs.
 *
 * Tested the way report durability is: the ledger under load from 16 clients, each look-up about
 * a fresh buyer; SIGKILL to every process of it (npm, tsx, wrangler, workerd) in the middle of
 * the load; a restart on the same state; then every acknowledged look-up (a 200) is asked for
 * through subject access, which must show it (refund_review, the asker's name, the answer's time).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { consortiumKey, hashSubject } from "../../client/identifiers";
import { signToken } from "../../client/token";
import { consortiumKeyValue, DEMO_PLATFORMS, localAudience, readKey } from "../../scripts/lib/local";
import { freePort, type Killed, killAll, preserveLocalFiles, startLedger } from "./local-ledger";

const CLIENTS = 16;
/** The load runs this long in all; the kill comes at its middle. */
const LOAD_MS = 5_000;
const KILL_AFTER_MS = LOAD_MS / 2;
/**
 * The kill comes sooner once this many look-ups are acknowledged: subject access answers 60
 * requests a minute per platform (RL_SUBJECT_ACCESS), so this keeps the check within one minute's
 * budget of the three demo platforms however fast the machine is.
 */
const KILL_AT_ACKNOWLEDGED = 400;
/** Nor later than this, however slow the machine: the load must see the kill. */
const KILL_BY_MS = LOAD_MS - 1_000;
/** A kill needs something to lose: at least this many look-ups acknowledged first, if it can. */
const ACKNOWLEDGED_BEFORE_KILL = 50;
/**
 * And it strikes while at least this many look-ups are in flight: answers leave the log shard in
 * groups (one per group commit), so a kill timed by the clock alone can fall in the moment
 * between a group's answers and the clients' next queries, with nothing in flight.
 */
const IN_FLIGHT_AT_KILL = CLIENTS / 2;
/** How long the look-ups may take to check after the restart (a subject-access 429 waits). */
const VERIFY_MS = 60_000;
/** Subject access takes at most 8 subjects; a buyer here has two (phone and e-mail). */
const BUYERS_PER_ACCESS = 4;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

type Subject = { type: "phone" | "email"; hash: string };

interface Acknowledged {
  platformName: string;
  subjects: Subject[];
  requestId: string | null;
  /** The answer's evaluatedAt: the time the inquiry carries. Null if the body was cut off. */
  at: string | null;
}

interface LoadResult {
  acknowledged: Acknowledged[];
  sent: number;
  /** Requests sent and not yet answered when the signal went out. */
  inFlightAtKill: number;
  /** Requests in flight when the server was killed that got no answer. */
  failedAtKill: number;
  /** Requests refused while the server was down. */
  refusedWhileDown: number;
  /** Answers other than 200, by status. */
  statuses: Record<number, number>;
}

/** Platform tokens, one per demo platform, signed with the keys `npm start` registered. */
async function platformTokens(): Promise<string[]> {
  const aud = localAudience();
  return Promise.all(DEMO_PLATFORMS.map((p) => signToken(readKey(p.id), { iss: p.id, aud, lifetime: 300 })));
}

/**
 * 16 clients, each in a loop until `LOAD_MS`: a score query about a fresh buyer, signed as one of
 * the demo platforms. `kill` runs once, about `KILL_AFTER_MS` in, while look-ups are in flight;
 * every look-up answered 200 is kept.
 */
async function load(base: string, kill: () => Promise<Killed>): Promise<LoadResult> {
  const key = await consortiumKey(consortiumKeyValue());
  const tokens = await platformTokens();
  const result: LoadResult = {
    acknowledged: [],
    sent: 0,
    inFlightAtKill: 0,
    failedAtKill: 0,
    refusedWhileDown: 0,
    statuses: {},
  };
  // Fresh buyers: a phone number from a counter (so none repeats within the run) and a random e-mail.
  const firstPhone = Math.floor(Math.random() * 50_000_000);
  let buyers = 0;
  const start = Date.now();
  let killedAt = Number.POSITIVE_INFINITY;
  const failures: number[] = [];
  let inFlight = 0;

  const client = async (n: number) => {
    const platform = n % DEMO_PLATFORMS.length;
    const name = DEMO_PLATFORMS[platform]?.name ?? "";
    while (Date.now() - start < LOAD_MS) {
      const phone = `139${String(firstPhone + buyers++).padStart(8, "0")}`;
      const subjects = [
        await hashSubject(key, "phone", phone),
        await hashSubject(key, "email", `buyer-${crypto.randomUUID()}@example.com`),
      ] as Subject[];
      const sentAt = Date.now();
      result.sent++;
      let res: Response;
      inFlight++;
      try {
        res = await fetch(`${base}/v1/scores/query`, {
          method: "POST",
          headers: { authorization: `Bearer ${tokens[platform]}`, "content-type": "application/json" },
          body: JSON.stringify({ purpose: "refund_review", subjects }),
          signal: AbortSignal.timeout(15_000),
        });
      } catch {
        // No answer: the kill, or the server down since (told apart by time at the end).
        failures.push(sentAt);
        await sleep(50);
        continue;
      } finally {
        inFlight--;
      }
      const requestId = res.headers.get("x-request-id");
      if (res.status !== 200) {
        result.statuses[res.status] = (result.statuses[res.status] ?? 0) + 1;
        await res.arrayBuffer().catch(() => undefined);
        continue;
      }
      // A 200 is an answer received, even if the kill cut its body off: it must have been logged.
      let at: string | null = null;
      try {
        at = ((await res.json()) as { evaluatedAt?: string }).evaluatedAt ?? null;
      } catch {
        // body cut off by the kill
      }
      result.acknowledged.push({ platformName: name, subjects, requestId, at });
    }
  };

  const killer = async () => {
    for (;;) {
      const elapsed = Date.now() - start;
      const acknowledged = result.acknowledged.length;
      const due =
        acknowledged >= KILL_AT_ACKNOWLEDGED ||
        (elapsed >= KILL_AFTER_MS && acknowledged >= ACKNOWLEDGED_BEFORE_KILL);
      if ((due && inFlight >= IN_FLIGHT_AT_KILL) || elapsed >= KILL_BY_MS) {
        break;
      }
      await sleep(due ? 1 : 10);
    }
    // Nothing may run between the check above and the signal: kill() sends it before it yields.
    result.inFlightAtKill = inFlight;
    killedAt = (await kill()).at;
  };
  await Promise.all([killer(), ...Array.from({ length: CLIENTS }, (_, n) => client(n))]);
  // A request sent before the signal that got no answer was in flight at the kill.
  result.failedAtKill = failures.filter((sentAt) => sentAt < killedAt).length;
  result.refusedWhileDown = failures.length - result.failedAtKill;
  return result;
}

/**
 * Groups of up to `BUYERS_PER_ACCESS` buyers, no two in a group with the same asker and time, so
 * each inquiry a subject-access answer lists is attributed to exactly one buyer.
 */
function groupsOf(acknowledged: readonly Acknowledged[]): Acknowledged[][] {
  const groups: Acknowledged[][] = [];
  for (const a of acknowledged) {
    const open = groups.find(
      (g) =>
        g.length < BUYERS_PER_ACCESS &&
        !g.some(
          (b) => b.platformName === a.platformName && (b.at === a.at || b.at === null || a.at === null),
        ),
    );
    if (open) {
      open.push(a);
    } else {
      groups.push([a]);
    }
  }
  return groups;
}

/** An inquiry as subject access shows it to the buyer. */
interface Inquiry {
  at: string;
  purpose: string;
  platformName: string;
}

interface Verdict {
  found: number;
  missing: Acknowledged[];
  /** Subject-access requests that never got a 200, with why. */
  failed: string[];
}

/**
 * Asks subject access about every group (each demo platform asking in turn, within its rate
 * limit: a 429 waits its Retry-After) and checks each buyer's look-up is among the inquiries.
 */
async function verify(
  base: string,
  acknowledged: readonly Acknowledged[],
  deadline: number,
): Promise<Verdict> {
  const aud = localAudience();
  const queue = groupsOf(acknowledged);
  const verdict: Verdict = { found: 0, missing: [], failed: [] };
  let ref = 0;
  const asker = async (platform: number) => {
    const p = DEMO_PLATFORMS[platform];
    if (!p) {
      return;
    }
    for (let group = queue.shift(); group; group = queue.shift()) {
      const body = JSON.stringify({
        requestRef: `durability-${++ref}`,
        subjects: group.flatMap((a) => a.subjects),
      });
      let inquiries: Inquiry[] | null = null;
      let why = "";
      while (inquiries === null && Date.now() < deadline) {
        const token = await signToken(readKey(p.id), { iss: p.id, aud, lifetime: 60 });
        const res = await fetch(`${base}/v1/subject-access`, {
          method: "POST",
          headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
          body,
          signal: AbortSignal.timeout(15_000),
        });
        if (res.status === 200) {
          inquiries = ((await res.json()) as { inquiries: Inquiry[] }).inquiries;
        } else if (res.status === 429 || res.status === 503) {
          await res.arrayBuffer();
          const wait = Math.max(Number(res.headers.get("retry-after")) || 1, 1) * 1000;
          await sleep(Math.min(wait, Math.max(deadline - Date.now(), 0)));
        } else {
          why = `${res.status} ${await res.text()}`;
          break;
        }
      }
      if (inquiries === null) {
        verdict.failed.push(why || "deadline passed");
        verdict.missing.push(...group);
        continue;
      }
      const unclaimed = inquiries.filter((i) => i.purpose === "refund_review");
      for (const a of group) {
        const i = unclaimed.findIndex(
          (q) =>
            q.platformName === a.platformName &&
            (a.at === null ? !Number.isNaN(Date.parse(q.at)) : q.at === a.at),
        );
        if (i === -1) {
          verdict.missing.push(a);
        } else {
          unclaimed.splice(i, 1);
          verdict.found++;
        }
      }
    }
  };
  await Promise.all(DEMO_PLATFORMS.map((_, i) => asker(i)));
  return verdict;
}

describe.skipIf(process.platform === "win32")(
  "a look-up answered is a look-up logged, across a hard kill",
  () => {
    let restoreLocalFiles: (() => void) | undefined;
    let stateDir = "";

    beforeAll(() => {
      restoreLocalFiles = preserveLocalFiles();
      stateDir = mkdtempSync(join(tmpdir(), "pixiu-durability-"));
      // Belt and braces: whatever happens, no ledger of this test outlives it.
      process.once("exit", killAll);
    });

    afterAll(() => {
      try {
        killAll();
      } finally {
        if (stateDir) {
          rmSync(stateDir, { recursive: true, force: true });
        }
        restoreLocalFiles?.();
      }
    });

    it("every acknowledged score query is in the buyer's inquiries after kill -9 and a restart", async () => {
      const began = Date.now();
      const port = await freePort();
      const first = await startLedger({ port, stateDir });
      const started = Date.now();
      const result = await load(first.base, () => first.killHard());
      const loaded = Date.now();

      const ledger = await startLedger({ port, stateDir });
      const restarted = Date.now();
      const verdict = await verify(ledger.base, result.acknowledged, Date.now() + VERIFY_MS);
      const verified = Date.now();
      await ledger.killHard();

      const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
      console.log(
        [
          `killed (SIGKILL to process group ${first.pid}): ${first.members.map((m) => `${m.command}[${m.pid}]`).join(", ")}`,
          `look-ups sent ${result.sent}, acknowledged ${result.acknowledged.length} (${result.acknowledged.filter((a) => a.at === null).length} with the body cut off), found ${verdict.found}, missing ${verdict.missing.length}`,
          `in flight at the kill ${result.inFlightAtKill}, failed at the kill ${result.failedAtKill}, refused while down ${result.refusedWhileDown}, other answers ${JSON.stringify(result.statuses)}, subject-access failures ${verdict.failed.length}`,
          `start ${seconds(started - began)}, load ${seconds(loaded - started)}, restart ${seconds(restarted - loaded)}, verify ${seconds(verified - restarted)}`,
        ].join("\n"),
      );

      expect(
        first.members.some((m) => m.command.includes("workerd")),
        "a workerd process was killed",
      ).toBe(true);
      expect(result.acknowledged.length, "look-ups acknowledged").toBeGreaterThan(CLIENTS);
      expect(result.inFlightAtKill, "look-ups in flight at the kill").toBeGreaterThanOrEqual(
        IN_FLIGHT_AT_KILL,
      );
      expect(verdict.failed).toEqual([]);
      expect(verdict.missing).toEqual([]);
      expect(verdict.found).toBe(result.acknowledged.length);
    });
  },
);
