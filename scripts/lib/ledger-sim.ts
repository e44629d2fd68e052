/**
 * Runs a synthetic market (`generateMarket`) through the ledger's rules over its three years, in
 * time order, with the real code at every step:
 *
 * - every claim is looked up when it arrives: `evaluate` over the buyer's records as they stand
 *   then (each platform's trust, flags and collusion group as the job last computed them);
 * - a report is filed when its investigation ends, flagged `after_lookup` when one of its
 *   reporter's own look-ups of the buyer within `AFTER_LOOKUP_WINDOW_DAYS` before it answered
 *   review or worse, as the ledger reconstructs that answer (`bandAt` of
 *   worker/services/after-lookup.ts: the other members' records as they stood then, today's
 *   trust and groups; docs/scoring.md §3c); admins clear honest members' flags on their evidence
 *   (all of them by default, a stated share to measure slower admins);
 * - buyers dispute, reporters withdraw or uphold, openers escalate, admins decide (docs/due-process.md);
 *   reporters retract some reports on their own;
 * - every `trustEveryDays` the job's work: collusion groups by `findCollusion` over the exact
 *   reporter sets, then each platform's trust by `trustOf` over its outcome counts (§2a, §3d);
 * - at NOW every buyer is scored by `evaluate`.
 *
 * Every random choice about a record or a buyer comes from a generator keyed by its name, so two
 * runs that differ in one rule (clearing or not) differ only by what that rule changes.
 */
import type { ReportStatus } from "../../schema";
import { COLLUSION, type CollusionSet, findCollusion } from "../../worker/scoring/collusion";
import { type Band, DEFAULT_MODEL, evaluate, type ScoreRecord } from "../../worker/scoring/model";
import { TRUST, type TrustCounts, trustOf } from "../../worker/scoring/trust";
import { bandAt } from "../../worker/services/after-lookup";
import type { PastRow } from "../../worker/services/scores";
import {
  atLeast,
  type BuyerKind,
  type Claim,
  DAY,
  DEFAULT_MARKET,
  generateMarket,
  keyedRng,
  type Market,
  type MarketParams,
  type MarketRecord,
  type Metrics,
  measure,
  NOW,
  pick,
  type Role,
  type SimBuyer,
  START,
} from "./market";

/** The feedback window of docs/scoring.md §3c (`AFTER_LOOKUP_WINDOW_DAYS`, default 7). */
export const AFTER_LOOKUP_WINDOW_DAYS = 7;
/** Days a dispute (or an escalation) stays open before it is overdue (`DISPUTE_DEADLINE_DAYS`). */
export const DISPUTE_DEADLINE_DAYS = 20;
/** Counted records the ledger reads per subject key and platform (`MAX_ACTIVE_REPORTS_PER_SUBJECT`). */
export const MAX_ACTIVE_REPORTS_PER_SUBJECT = 50;

/** What happens to reports once filed: the ledger's side of the simulation. */
export interface LedgerParams {
  /** Share of innocent buyers (any reporter) who dispute each record about them. */
  disputeInnocent: number;
  /** Share of forgers who dispute their records (and lose). */
  disputeForger: number;
  /** Days from a record's filing to the buyer's dispute, uniform. */
  disputeAfterDays: [number, number];
  /** Share of disputed mistakes an honest reporter withdraws; it upholds the rest (then escalated, voided). */
  withdrawShare: number;
  /** Share of forgers' disputes the opener escalates after the reporter upholds (admins uphold the record). */
  escalateForger: number;
  /** Share of an honest member's own mistakes it retracts unprompted, and of its correct reports. */
  retractWrong: number;
  retractRight: number;
  /** Days from filing to such a retraction, uniform. */
  retractAfterDays: [number, number];
  /**
   * Share of honest and careless members' flagged reports an admin clears on their own evidence,
   * `clearAfterDays` after filing; never the feedback platform's nor a malicious platform's. The
   * designed process is 1: admins review every flagged report (docs/scoring.md §3c); lower shares
   * measure what slower admins cost.
   */
  clearShare: number;
  clearAfterDays: [number, number];
  /** The job recomputes groups and trust this often (production: hourly). */
  trustEveryDays: number;
  /** Days every platform had been a member when the simulated ledger opened. */
  memberDaysAtStart: number;
  /** Every this many days, score every buyer with a record (for the figures; 0: never). */
  trackEveryDays: number;
}

export const DEFAULT_LEDGER: LedgerParams = {
  disputeInnocent: 0.5,
  disputeForger: 0.1,
  disputeAfterDays: [7, 90],
  withdrawShare: 0.5,
  escalateForger: 0.5,
  retractWrong: 0.2,
  retractRight: 0.01,
  retractAfterDays: [14, 120],
  clearShare: 1,
  clearAfterDays: [7, 30],
  trustEveryDays: 7,
  memberDaysAtStart: 365,
  trackEveryDays: 0,
};

/** A report as the ledger holds it during the run. */
interface Held extends MarketRecord {
  status: ReportStatus | "pending";
  disputeDeadlineAt: number | null;
  /** Filed within the feedback window after a look-up at review or worse (§3c)… */
  flagged: boolean;
  /** …and cleared by an admin since. */
  cleared: boolean;
  /** How it closed: retracted by the reporter alone, withdrawn under a dispute, voided by an admin. */
  closed: "retracted" | "withdrawn" | "voided" | null;
  /** When it closed. */
  closedAt: number | null;
  /**
   * Its dispute as the ledger keeps it: opened when first opened, decided when finally decided
   * (an escalation undoes the reporter's decision), the latest deadline.
   */
  dispute: { opened: number; decided: number | null; deadline: number } | null;
  /** Filed by the feedback platform because its look-up answered review or worse. */
  echo: boolean;
  /** The look-up it was flagged after, and when an admin cleared the flag. */
  flaggedAfter: number | null;
  clearedAt: number | null;
  /** Seeded draws for its outcome. */
  u: Draws;
}

/** One record's seeded draws, each uniform in [0, 1), always drawn in this order. */
interface Draws {
  retract: number;
  retractDelay: number;
  disputeDelay: number;
  respond: number;
  withdraw: number;
  escalate: number;
  escalateDelay: number;
  decide: number;
  clear: number;
  clearDelay: number;
}

const draws = (random: () => number): Draws => ({
  retract: random(),
  retractDelay: random(),
  disputeDelay: random(),
  respond: random(),
  withdraw: random(),
  escalate: random(),
  escalateDelay: random(),
  decide: random(),
  clear: random(),
  clearDelay: random(),
});

/** A report as the ledger first holds it: not filed yet, nothing decided; `echo` for the feedback platform's. */
const pending = (r: MarketRecord, echo: boolean, random: () => number): Held => ({
  ...r,
  status: "pending",
  disputeDeadlineAt: null,
  flagged: false,
  cleared: false,
  closed: null,
  closedAt: null,
  dispute: null,
  echo,
  flaggedAfter: null,
  clearedAt: null,
  u: draws(random),
});

type Event =
  | { kind: "recompute" }
  | { kind: "track" }
  | { kind: "claim"; claim: Claim }
  | { kind: "file"; rec: Held }
  | { kind: "retract" | "dispute" | "respond" | "escalate" | "decide" | "clear"; rec: Held };

/** A binary min-heap of events by time, ties in order of scheduling. */
class Queue {
  private heap: { t: number; seq: number; e: Event }[] = [];
  private seq = 0;
  push(t: number, e: Event) {
    const h = this.heap;
    h.push({ t, seq: this.seq++, e });
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.less(i, p)) {
        break;
      }
      [h[i], h[p]] = [h[p] as (typeof h)[number], h[i] as (typeof h)[number]];
      i = p;
    }
  }
  pop(): { t: number; e: Event } | undefined {
    const h = this.heap;
    const top = h[0];
    const last = h.pop();
    if (h.length > 0 && last) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && this.less(l, m)) {
          m = l;
        }
        if (r < h.length && this.less(r, m)) {
          m = r;
        }
        if (m === i) {
          break;
        }
        [h[i], h[m]] = [h[m] as (typeof h)[number], h[i] as (typeof h)[number]];
        i = m;
      }
    }
    return top;
  }
  private less(a: number, b: number) {
    const x = this.heap[a] as { t: number; seq: number };
    const y = this.heap[b] as { t: number; seq: number };
    return x.t < y.t || (x.t === y.t && x.seq < y.seq);
  }
}

/** Every buyer with a record scored at one instant of the run. */
export interface TrackPoint {
  at: number;
  innocentReview: number;
  innocentHigh: number;
  forgersHigh: number;
}

export interface TrustPoint {
  at: number;
  trust: Record<string, number>;
}

/** A platform at NOW: its role, trust and the counts behind it. */
export interface PlatformState extends TrustCounts {
  role: Role;
  trust: number;
  /** Its collusion group's id, or null. */
  group: string | null;
}

export interface LedgerResult {
  market: Market;
  buyers: SimBuyer[];
  metrics: Metrics;
  /** The same ledger at NOW scored as `pixiu-score/1` saw it: every platform at trust 1, no flag, no group, every police or court reference taken as verified. */
  v1: Metrics;
  trust: TrustPoint[];
  /** With `trackEveryDays`: the buyers at review or worse over time… */
  track: TrackPoint[];
  /** …and the innocent buyers at review or worse (at ≥ high) at one snapshot or more. */
  everReview: number;
  everHigh: number;
  platforms: Map<string, PlatformState>;
  /** Collusion sets found at NOW, and every platform ever put in a group (with when, first). */
  sets: CollusionSet[];
  groups: Map<string, string>;
  everGrouped: Map<string, number>;
  /** The feedback platform's reports filed because of its look-up's answer, and how many were flagged. */
  echoes: { filed: number; flagged: number };
  /** Look-ups made, reports filed, flagged (by the reporter's role), cleared, still flagged and counted at NOW. */
  lookups: number;
  filed: number;
  flagged: Record<Role, number>;
  cleared: number;
  flaggedAtNow: number;
  /** Reports closed, by how. */
  closed: { retracted: number; withdrawn: number; voided: number };
  disputes: number;
  ms: number;
}

const uniform = (u: number, [lo, hi]: [number, number]) => (lo + (hi - lo) * u) * DAY;

/** Runs the market through the ledger and scores every buyer at NOW. */
export function runLedger(market: Market, ledger: LedgerParams = DEFAULT_LEDGER): LedgerResult {
  const started = performance.now();
  const { params, kinds, roles } = market;
  const queue = new Queue();
  const held: Held[] = market.records.map((r) =>
    pending(r, false, keyedRng(params.seed, `outcome:${r.ref}`)),
  );
  /** Per buyer: the reports filed so far, and each platform's look-ups (time, band). */
  const filedOf = new Map<number, Held[]>();
  /** Per buyer and platform: the times of its look-ups (the inquiry log keeps who and when, not the answer). */
  const lookupsOf = new Map<number, Map<string, number[]>>();
  const disputes = new Map<number, boolean>();
  const disputes_ = (buyer: number) => {
    let d = disputes.get(buyer);
    if (d === undefined) {
      const u = keyedRng(params.seed, `disputes:${buyer}`)();
      d = u < (kinds[buyer] === "forger" ? ledger.disputeForger : ledger.disputeInnocent);
      disputes.set(buyer, d);
    }
    return d;
  };

  // The job's tables, as of its last run.
  let trust = new Map<string, number>();
  let groups = new Map<string, string>();
  let sets: CollusionSet[] = [];
  let lastCounts = new Map<string, TrustCounts>();
  const everGrouped = new Map<string, number>();
  const history: TrustPoint[] = [];
  const track: TrackPoint[] = [];
  /** Innocent buyers at review or worse (at ≥ high) at one snapshot or more. */
  const everReview = new Set<number>();
  const everHigh = new Set<number>();
  const platforms = [...roles.keys()];

  const trustFor = (p: string) => trust.get(p) ?? TRUST.probationTrust;
  const counted = (h: Held) => h.status === "active" || h.status === "disputed";
  const flagStands = (h: Held) => h.flagged && !h.cleared;
  const view = (h: Held): ScoreRecord => ({
    ref: h.ref,
    platformId: h.platformId,
    category: h.category,
    confirmation: h.confirmation,
    incidentAt: h.incidentAt,
    createdAt: h.createdAt,
    amountValue: h.amountValue,
    amountCurrency: h.amountCurrency,
    status: h.status as ReportStatus,
    disputeDeadlineAt: h.status === "disputed" ? h.disputeDeadlineAt : null,
    verified: h.verified,
    trust: trustFor(h.platformId),
    afterLookup: flagStands(h),
    group: groups.get(h.platformId) ?? null,
  });

  /** A record as the ledger's past read returns it (`pastScoreReadSql`), with today's trust and group. */
  const pastRow = (h: Held, key: string): PastRow => ({
    subject_key: key,
    id: h.ref,
    platform_id: h.platformId,
    category: h.category,
    confirmation: h.confirmation,
    incident_at: h.incidentAt,
    created_at: h.createdAt,
    amount_value: h.amountValue,
    amount_currency: h.amountCurrency,
    status: h.status as ReportStatus,
    updated_at: h.closedAt ?? h.createdAt,
    confirmation_verified_at: h.verified ? h.createdAt : null,
    after_lookup_at: h.flaggedAfter,
    after_lookup_cleared_at: h.clearedAt,
    disputes: h.dispute ? JSON.stringify([[h.dispute.opened, h.dispute.decided, h.dispute.deadline]]) : null,
    trust: trustFor(h.platformId),
    group_id: groups.get(h.platformId) ?? null,
  });

  /** The job: groups over the exact sets of counted, unflagged reporters; then trust (§2a, §3d). */
  const recompute = (at: number) => {
    const reporterSets: string[][] = [];
    for (const list of filedOf.values()) {
      const set = new Set<string>();
      for (const h of list) {
        if (counted(h) && !flagStands(h)) {
          set.add(h.platformId);
        }
      }
      if (set.size >= 2) {
        reporterSets.push([...set]);
      }
    }
    const found = findCollusion(reporterSets, COLLUSION);
    sets = found.sets;
    groups = found.groups;
    for (const p of groups.keys()) {
      if (!everGrouped.has(p)) {
        everGrouped.set(p, at);
      }
    }
    const counts = new Map<string, TrustCounts>(
      platforms.map((p) => [p, { reports: 0, corroborated: 0, voided: 0, withdrawn: 0, retracted: 0 }]),
    );
    for (const list of filedOf.values()) {
      // Corroboration counts buyers, not reports: at most one per platform and buyer (§2a).
      const corroboratedHere = new Set<string>();
      for (const h of list) {
        const c = counts.get(h.platformId) as TrustCounts;
        // An echo still standing (flagged, uncleared, counted) is not one of its reports (§2a).
        if (!(counted(h) && flagStands(h))) {
          c.reports++;
        }
        if (h.closed === "voided") {
          c.voided++;
        } else if (h.closed === "withdrawn") {
          c.withdrawn++;
        } else if (h.closed === "retracted") {
          c.retracted++;
        }
        // Corroborated: a counted report, not flagged, sharing the buyer with a counted, unflagged
        // report of another platform outside its collusion group.
        if (counted(h) && !flagStands(h) && !corroboratedHere.has(h.platformId)) {
          const group = groups.get(h.platformId);
          const corroborated = list.some(
            (o) =>
              o.platformId !== h.platformId &&
              counted(o) &&
              !flagStands(o) &&
              (group === undefined || groups.get(o.platformId) !== group),
          );
          if (corroborated) {
            corroboratedHere.add(h.platformId);
            c.corroborated++;
          }
        }
      }
    }
    lastCounts = counts;
    const memberDays = ledger.memberDaysAtStart + (at - START) / DAY;
    trust = new Map(platforms.map((p) => [p, trustOf(counts.get(p) as TrustCounts, memberDays).trust]));
    history.push({ at, trust: Object.fromEntries(trust) });
  };

  let lookups = 0;
  let filed = 0;
  let cleared = 0;
  let disputeCount = 0;
  const flagged: Record<Role, number> = { honest: 0, careless: 0, feedback: 0, malicious: 0 };
  let feedbackRefs = 0;
  const echoes = { filed: 0, flagged: 0 };

  const lookUp = (claim: Claim, at: number) => {
    const role = roles.get(claim.platformId) as Role;
    if (role === "malicious") {
      return;
    }
    const list = filedOf.get(claim.buyer) ?? [];
    const band = list.length === 0 ? "none" : evaluate(list.map(view), at, DEFAULT_MODEL).band;
    lookups++;
    const byPlatform = lookupsOf.get(claim.buyer) ?? new Map<string, number[]>();
    const mine = byPlatform.get(claim.platformId) ?? [];
    mine.push(at);
    byPlatform.set(claim.platformId, mine);
    lookupsOf.set(claim.buyer, byPlatform);
    // The feedback platform reports whoever its look-up shows at review or worse, right away
    // (unless it holds a counted report about the buyer already).
    if (
      role === "feedback" &&
      atLeast(band, "medium") &&
      !list.some((h) => h.platformId === claim.platformId && counted(h))
    ) {
      const random = keyedRng(params.seed, `feedback:${claim.key}`);
      const normal = Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
      const rec = pending(
        {
          ref: `f${++feedbackRefs}`,
          buyer: claim.buyer,
          platformId: claim.platformId,
          category: pick(random, [
            ["ai_generated_image", 0.5],
            ["edited_image", 0.5],
          ]),
          confirmation: "manual_review",
          incidentAt: at,
          createdAt: at + 3_600_000,
          amountValue: Math.max(5, Math.round(250 * Math.exp(1.3 * normal))) * 100,
          amountCurrency: "CNY",
          verified: true,
          wrong: kinds[claim.buyer] !== "forger",
        },
        true,
        random,
      );
      held.push(rec);
      queue.push(rec.createdAt, { kind: "file", rec });
    }
  };

  const file = (rec: Held, at: number) => {
    const list = filedOf.get(rec.buyer) ?? [];
    // While the buyer disputes one of its records, the reporter cannot report the buyer again
    // (409, docs/due-process.md): it files once the dispute is decided.
    if (list.some((h) => h.platformId === rec.platformId && h.status === "disputed")) {
      queue.push(at + DAY, { kind: "file", rec });
      return;
    }
    rec.createdAt = at;
    rec.status = "active";
    filed++;
    list.push(rec);
    filedOf.set(rec.buyer, list);
    // The ledger's check (docs/scoring.md §3c, `bandAt`): each of the reporter's own look-ups of
    // the buyer in the window, newest first, answered again from the other members' records as
    // they stood then, with today's trust and groups; the latest at review or worse flags it.
    // Every look-up: the ledger's second shard call finds those beyond the newest 20 per key
    // wherever the answer was review or worse (§3c, step 4).
    const key = `buyer:${rec.buyer}`;
    const window = (lookupsOf.get(rec.buyer)?.get(rec.platformId) ?? [])
      .filter((l) => l <= at && at - l <= AFTER_LOOKUP_WINDOW_DAYS * DAY)
      .sort((a, b) => b - a);
    if (window.length > 0) {
      const rows = list.filter((h) => h !== rec).map((h) => pastRow(h, key));
      rec.flaggedAfter =
        window.find((l) =>
          atLeast(
            bandAt(
              rows,
              { at: l, keys: [key] },
              MAX_ACTIVE_REPORTS_PER_SUBJECT,
              DEFAULT_MODEL,
              rec.platformId,
            ),
            "medium",
          ),
        ) ?? null;
    }
    rec.flagged = rec.flaggedAfter !== null;
    const role = roles.get(rec.platformId) as Role;
    const u = rec.u;
    if (rec.echo) {
      echoes.filed++;
      echoes.flagged += rec.flagged ? 1 : 0;
    }
    if (rec.flagged) {
      flagged[role]++;
      if (rec.verified && (rec.confirmation === "police_report" || rec.confirmation === "court_ruling")) {
        // Verifying a police or court reference clears the flag too (§3c); the simulation takes
        // honest members' references as verified when filed.
        rec.cleared = true;
        rec.clearedAt = at;
        cleared++;
      } else if ((role === "honest" || role === "careless") && u.clear < ledger.clearShare) {
        queue.push(at + uniform(u.clearDelay, ledger.clearAfterDays), { kind: "clear", rec });
      }
    }
    if (role !== "malicious" && u.retract < (rec.wrong ? ledger.retractWrong : ledger.retractRight)) {
      queue.push(at + uniform(u.retractDelay, ledger.retractAfterDays), { kind: "retract", rec });
    }
    if (disputes_(rec.buyer)) {
      queue.push(at + uniform(u.disputeDelay, ledger.disputeAfterDays), { kind: "dispute", rec });
    }
  };

  const step = (e: Event, at: number) => {
    if (e.kind === "recompute") {
      recompute(at);
      return;
    }
    if (e.kind === "track") {
      let innocentReview = 0;
      let innocentHigh = 0;
      let forgersHigh = 0;
      for (const [buyer, list] of filedOf) {
        const band = evaluate(list.map(view), at, DEFAULT_MODEL).band;
        if (kinds[buyer] === "forger") {
          forgersHigh += atLeast(band, "high") ? 1 : 0;
          continue;
        }
        if (atLeast(band, "medium")) {
          innocentReview++;
          everReview.add(buyer);
        }
        if (atLeast(band, "high")) {
          innocentHigh++;
          everHigh.add(buyer);
        }
      }
      track.push({ at, innocentReview, innocentHigh, forgersHigh });
      return;
    }
    if (e.kind === "claim") {
      lookUp(e.claim, at);
      return;
    }
    const rec = e.rec;
    const role = roles.get(rec.platformId) as Role;
    const u = rec.u;
    switch (e.kind) {
      case "file":
        file(rec, at);
        return;
      case "retract":
        // A plain retraction: only of a record no dispute is open on.
        if (rec.status === "active") {
          rec.status = "retracted";
          rec.closed = "retracted";
          rec.closedAt = at;
        }
        return;
      case "dispute":
        if (rec.status === "active") {
          disputeCount++;
          rec.status = "disputed";
          rec.disputeDeadlineAt = at + DISPUTE_DEADLINE_DAYS * DAY;
          rec.dispute = { opened: at, decided: null, deadline: rec.disputeDeadlineAt };
          queue.push(at + uniform(u.respond, [1, 10]), { kind: "respond", rec });
        }
        return;
      case "respond":
        if (rec.status !== "disputed") {
          return;
        }
        if (rec.dispute) {
          rec.dispute.decided = at;
        }
        if (rec.wrong && role !== "malicious" && u.withdraw < ledger.withdrawShare) {
          rec.status = "retracted";
          rec.closed = "withdrawn";
          rec.closedAt = at;
          return;
        }
        // Upheld: the record counts fully again; the buyer's platform escalates a mistake or a
        // lie always, a forger's dispute sometimes.
        rec.status = "active";
        rec.disputeDeadlineAt = null;
        if (rec.wrong || u.escalate < ledger.escalateForger) {
          queue.push(at + uniform(u.escalateDelay, [1, 7]), { kind: "escalate", rec });
        }
        return;
      case "escalate":
        if (rec.status === "active") {
          rec.status = "disputed";
          rec.disputeDeadlineAt = at + DISPUTE_DEADLINE_DAYS * DAY;
          if (rec.dispute) {
            // As the ledger keeps an escalation: undecided again, with the new deadline.
            rec.dispute.decided = null;
            rec.dispute.deadline = rec.disputeDeadlineAt;
          }
          queue.push(at + uniform(u.decide, [3, 17]), { kind: "decide", rec });
        }
        return;
      case "decide":
        if (rec.status === "disputed") {
          // Admins decide on the evidence: a mistake or a lie is voided, a forgery stands.
          rec.status = rec.wrong ? "voided" : "active";
          rec.closed = rec.wrong ? "voided" : null;
          rec.closedAt = rec.wrong ? at : null;
          rec.disputeDeadlineAt = null;
          if (rec.dispute) {
            rec.dispute.decided = at;
          }
        }
        return;
      case "clear":
        if (rec.flagged && !rec.cleared) {
          rec.cleared = true;
          rec.clearedAt = at;
          cleared++;
        }
        return;
    }
  };

  for (let t = START; t < NOW; t += ledger.trustEveryDays * DAY) {
    queue.push(t, { kind: "recompute" });
  }
  if (ledger.trackEveryDays > 0) {
    // Just after each recompute, so a point sees the tables of the same day.
    for (let t = START + ledger.trackEveryDays * DAY; t < NOW; t += ledger.trackEveryDays * DAY) {
      queue.push(t + 1, { kind: "track" });
    }
  }
  for (const claim of market.claims) {
    queue.push(claim.at, { kind: "claim", claim });
  }
  for (const rec of held) {
    queue.push(rec.createdAt, { kind: "file", rec });
  }
  for (;;) {
    const next = queue.pop();
    if (!next || next.t > NOW) {
      break;
    }
    step(next.e, next.t);
  }
  recompute(NOW);

  // Every buyer scored at NOW; buyers with no report share one answer.
  const empty = evaluate([], NOW, DEFAULT_MODEL);
  const buyers: SimBuyer[] = kinds.map((kind, i) => {
    const list = filedOf.get(i);
    if (!list) {
      return { kind, records: [], evaluation: empty };
    }
    const records = list.map(view);
    return { kind, records, evaluation: evaluate(records, NOW, DEFAULT_MODEL) };
  });
  const asV1 = (b: SimBuyer): Band =>
    b.records.length === 0
      ? "none"
      : evaluate(
          b.records.map((r) => ({ ...r, trust: 1, afterLookup: false, group: null, verified: true })),
          NOW,
          DEFAULT_MODEL,
        ).band;
  const closed = { retracted: 0, withdrawn: 0, voided: 0 };
  let flaggedAtNow = 0;
  for (const list of filedOf.values()) {
    for (const h of list) {
      if (h.closed) {
        closed[h.closed]++;
      }
      flaggedAtNow += counted(h) && flagStands(h) ? 1 : 0;
    }
  }
  return {
    market,
    buyers,
    metrics: measure(buyers.map((b) => ({ kind: b.kind, records: b.records, band: b.evaluation.band }))),
    v1: measure(buyers.map((b) => ({ kind: b.kind, records: b.records, band: asV1(b) }))),
    trust: history,
    track,
    everReview: everReview.size,
    everHigh: everHigh.size,
    platforms: new Map(
      platforms.map((p) => [
        p,
        {
          ...(lastCounts.get(p) as TrustCounts),
          role: roles.get(p) as Role,
          trust: trustFor(p),
          group: groups.get(p) ?? null,
        },
      ]),
    ),
    sets,
    groups,
    everGrouped,
    echoes,
    lookups,
    filed,
    flagged,
    cleared,
    flaggedAtNow,
    closed,
    disputes: disputeCount,
    ms: performance.now() - started,
  };
}

/**
 * The ledger of `result` at NOW scored again with every record transformed (a rule of the model
 * lifted, say): what that rule costs or buys, everything else equal.
 */
export function rescore(result: LedgerResult, transform: (r: ScoreRecord) => ScoreRecord): Metrics {
  return measure(
    result.buyers.map((b) => ({
      kind: b.kind,
      records: b.records,
      band: b.records.length ? evaluate(b.records.map(transform), NOW, DEFAULT_MODEL).band : "none",
    })),
  );
}

/** The market of `params` through the ledger: `generateMarket` then `runLedger`. */
export function simulate(
  params: MarketParams = DEFAULT_MARKET,
  ledger: LedgerParams = DEFAULT_LEDGER,
): LedgerResult {
  return runLedger(generateMarket(params), ledger);
}

export type { BuyerKind };
