/**
 * `npm run simulate`: runs a synthetic market through the ledger's rules for three years with the
 * real code (`evaluate`, `trustOf`, `findCollusion`) and prints, per scenario, how well band ≥ high
 * separates forgers from innocent buyers against issue 13's targets, each platform's trust, the
 * collusion groups found and the `after_lookup` flags; then how many forgers who switch accounts
 * but reuse their photos the photo match catches; then the tables of docs/scoring.md §8.
 * Assumptions: scripts/lib/market.ts, scripts/lib/ledger-sim.ts and docs/scoring.md §8. Seeded.
 *
 * `npm run simulate -- --daily` also runs the coalition with the job recomputing every day
 * instead of every week (about 13 s more).
 */
import type { Band, ScoreRecord } from "../worker/scoring/model";
import { DEFAULT_LEDGER, type LedgerResult, rescore, simulate } from "./lib/ledger-sim";
import {
  DAY,
  DEFAULT_MARKET,
  generateMarket,
  type Metrics,
  START,
  scoreAsV1,
  simulatePhotos,
} from "./lib/market";
import {
  checkTargets,
  REVIEW_TARGET,
  runScenario,
  SCENARIOS,
  type ScenarioRuns,
  SENSITIVITY,
  TRACK_EVERY_DAYS,
} from "./lib/scenarios";

const started = performance.now();
const pct = (x: number, digits = 1) => `${(100 * x).toFixed(digits)}%`;
const n = (x: number) => x.toLocaleString("en");
const ok = (pass: boolean) => (pass ? "met" : "NOT MET");
const day = (t: number) => new Date(t).toISOString().slice(0, 10);
/** Percentage points from `b` to `a`, signed, rounded as the percentages are printed. */
const points = (a: number, b: number) => {
  const d = Number((100 * a).toFixed(1)) - Number((100 * b).toFixed(1));
  return `${d > 0 ? "+" : d < 0 ? "−" : "±"}${Math.abs(d).toFixed(1)}`;
};
const recallOf = (m: Metrics) => `${pct(m.recall)} / ${pct(m.recallDetected)}`;
const gapOf = (m: Metrics, to: Metrics) =>
  `${points(m.recall, to.recall)} / ${points(m.recallDetected, to.recallDetected)} points`;

const ideal = scoreAsV1(generateMarket(DEFAULT_MARKET));
const L = DEFAULT_LEDGER;
console.log(
  `Market: ${n(DEFAULT_MARKET.buyers)} buyers, ${DEFAULT_MARKET.platforms} honest platforms, ` +
    `${pct(DEFAULT_MARKET.forgerShare)} forgers (detected per incident: ${pct(DEFAULT_MARKET.detection)}), ` +
    `${pct(DEFAULT_MARKET.wrongConfirmation)} honest buyers wrongly confirmed once, ` +
    `${n(DEFAULT_MARKET.maliciousVictims)} buyers reported by the malicious side. Seed ${DEFAULT_MARKET.seed}.`,
);
console.log(
  `Ledger: innocents dispute ${pct(L.disputeInnocent, 0)}, forgers ${pct(L.disputeForger, 0)}; honest reporters withdraw ` +
    `${pct(L.withdrawShare, 0)} of disputed mistakes (admins void the rest); retract ${pct(L.retractWrong, 0)} of mistakes ` +
    `and ${pct(L.retractRight, 0)} of correct reports unprompted; admins clear ${pct(L.clearShare, 0)} of honest and careless ` +
    `members' flagged reports ${L.clearAfterDays[0]}–${L.clearAfterDays[1]} days after filing (each scenario also run with 50% and 0%); ` +
    `trust and groups recomputed every ${L.trustEveryDays} days.`,
);
console.log(
  "Recall target: pixiu-score/1 reading the same simulated ledger at NOW (per scenario, below): disputes, retractions " +
    "and investigations still open happen whatever the model, so that comparison is the pass/fail.",
);
console.log(
  `Also shown: the gap to the idealised pixiu-score/1 on this market (every report in at once, none disputed): ` +
    `${recallOf(ideal)} (all forgers / those with a confirmed case).\n`,
);

interface Row {
  name: string;
  runs: ScenarioRuns;
}
const rows: Row[] = [];

/** Each non-honest platform's trust over the run: when it first reported, how trust moved, where it ended. */
function trustStory(r: LedgerResult, id: string): string {
  const first = Math.min(
    ...r.buyers.flatMap((b) => b.records.filter((x) => x.platformId === id).map((x) => x.createdAt)),
  );
  const after = r.trust.filter((p) => p.at >= first);
  const role = r.platforms.get(id)?.role;
  const t = (p: { trust: Record<string, number> }) => p.trust[id] ?? 0;
  if (role === "malicious") {
    // Runs from its first report until it is at the floor for good.
    const last = after.findLastIndex((p) => t(p) > 0.05);
    const shown = after.slice(0, last + 2).map((p) => `${day(p.at)} ${t(p).toFixed(2)}`);
    const grouped = r.everGrouped.get(id);
    return `first report ${day(first)}; trust at each run since: ${shown.join(", ")}; at the floor from then on${grouped ? `; in a group from ${day(grouped)}` : ""}`;
  }
  const at = (years: number) => {
    const p = r.trust.find((q) => q.at >= START + years * 365 * DAY);
    return p ? t(p).toFixed(2) : "–";
  };
  const top = r.trust.reduce((a, b) => (t(b) > t(a) ? b : a));
  return `a year in ${at(1)}, two years in ${at(2)}, at NOW ${(r.platforms.get(id)?.trust ?? 0).toFixed(2)}; highest ${t(top).toFixed(2)} (${day(top.at)})`;
}

function describe(name: string, runs: ScenarioRuns) {
  const { cleared: r, half, uncleared: u } = runs;
  const m = r.metrics;
  console.log(`## ${name}`);
  console.log(
    `  forgers: ${n(m.forgers)} (${n(m.forgersWithRecords)} with a confirmed case in the ledger at NOW)`,
  );
  console.log(
    `  band ≥ high: ${n(m.flaggedHigh)} buyers; precision ${pct(m.precision, 2)}; recall ${recallOf(m)} (admins clear every honest flag), ` +
      `${recallOf(half.metrics)} (half), ${recallOf(u.metrics)} (none); pixiu-score/1 on this ledger ${recallOf(r.v1)}; ` +
      `this ledger with every platform at trust 1 ${pct(rescore(r, (x) => ({ ...x, trust: 1 })).recall)}`,
  );
  console.log(
    `  pixiu-score/1 on this ledger: forgers at ≥ high ${n(r.v1.flaggedHigh - r.v1.honestHigh)}, precision ${pct(r.v1.precision, 2)}, innocents at ≥ high ${r.v1.honestHigh} (malicious victims ${r.v1.maliciousVictimsHigh}), at review or worse ${n(r.v1.honestReviewOrWorse)} (${pct(r.v1.honestReviewShare, 3)})`,
  );
  console.log(
    `  innocent buyers at review or worse: ${n(m.honestReviewOrWorse)} of ${n(m.honest)} (${pct(m.honestReviewShare, 3)}); at ≥ high: ${m.honestHigh}`,
  );
  if (r.track.length > 0) {
    const worst = r.track.reduce((a, b) => (b.innocentReview > a.innocentReview ? b : a));
    const high = r.track.reduce((a, b) => (b.innocentHigh > a.innocentHigh ? b : a));
    console.log(
      `    snapshots every ${TRACK_EVERY_DAYS} days over the three years: at review or worse at most ${n(worst.innocentReview)} at once (${day(worst.at)}), ${n(r.everReview)} ever; ` +
        `at ≥ high at most ${high.innocentHigh} at once${high.innocentHigh ? ` (${day(high.at)})` : ""}, ${r.everHigh} ever`,
    );
  }
  console.log(
    `    wrongly confirmed: ${n(m.wronglyConfirmed)}, at review or worse ${m.wronglyConfirmedReview}, at ≥ high ${m.wronglyConfirmedHigh}; ` +
      `malicious victims: ${n(m.maliciousVictims)}, at review or worse ${m.maliciousVictimsReview}, at ≥ high ${m.maliciousVictimsHigh}`,
  );
  console.log(
    "  platforms at NOW (trust; reports, corroborated, voided, withdrawn, retracted; adverse share):",
  );
  for (const [id, p] of r.platforms) {
    const adverse = (p.voided + p.withdrawn + 0.5 * p.retracted) / Math.max(p.reports, 20);
    console.log(
      `    ${id.padEnd(4)} ${p.role.padEnd(9)} t = ${p.trust.toFixed(3)}; ${p.reports}, ${p.corroborated}, ${p.voided}, ${p.withdrawn}, ${p.retracted}; ${pct(adverse)}` +
        (p.group ? `; group ${p.group}` : ""),
    );
  }
  for (const [id, p] of r.platforms) {
    if (p.role !== "honest") {
      console.log(`    ${id} (${p.role}): ${trustStory(r, id)}`);
    }
  }
  const sets = r.sets.map(
    (s) => `{${s.members.join(", ")}} ${s.observed} buyers (chance: ${s.expected.toFixed(1)})`,
  );
  const ever = [...r.everGrouped.keys()].filter((p) => r.platforms.get(p)?.role !== "malicious");
  console.log(
    `  collusion groups at NOW: ${sets.length ? sets.join("; ") : "none"}; honest platforms ever grouped: ${ever.length ? ever.join(", ") : "none"}`,
  );
  console.log(
    `  look-ups: ${n(r.lookups)}; reports filed: ${n(r.filed)}; after_lookup flags: honest ${r.flagged.honest}, careless ${r.flagged.careless}, ` +
      `feedback ${r.flagged.feedback} (of which filed because of its look-up: ${r.echoes.flagged} of ${r.echoes.filed}); cleared ${r.cleared}; counted and still flagged at NOW ${r.flaggedAtNow}` +
      ` (half cleared: ${half.flaggedAtNow}; none cleared: ${u.flaggedAtNow})`,
  );
  const careless = [...r.platforms].find(([, p]) => p.role === "careless")?.[0];
  if (careless) {
    // What the careless member's trust buys and costs: the same ledger with it alone at trust 1.
    const full = rescore(r, (x) => (x.platformId === careless ? { ...x, trust: 1 } : x));
    console.log(
      `  the same ledger with ${careless} at trust 1: recall ${recallOf(full)}; innocents at review or worse ${n(full.honestReviewOrWorse)}, at ≥ high ${full.honestHigh}`,
    );
  }
  if (r.echoes.filed > 0) {
    // The feedback platform's reports filed because of its look-up's answer (refs `f…`): whom they
    // were about, and what admins leaving its other flagged reports (its own detections) cost.
    const echo = (x: ScoreRecord) => x.ref.startsWith("f");
    const about: Record<string, number> = {};
    for (const b of r.buyers) {
      if (b.records.some(echo)) {
        about[b.kind] = (about[b.kind] ?? 0) + 1;
      }
    }
    const feedback = [...r.platforms].find(([, p]) => p.role === "feedback")?.[0];
    const ownCleared = rescore(r, (x) =>
      x.platformId === feedback && !echo(x) ? { ...x, afterLookup: false } : x,
    );
    console.log(
      `  the feedback platform's echoes were about: ${Object.entries(about)
        .map(([k, v]) => `${k} ${v}`)
        .join(", ")}; its own detections flagged: ${r.flagged.feedback - r.echoes.flagged}; ` +
        `recall with their flags cleared (same ledger): ${pct(ownCleared.recall)} / ${pct(ownCleared.recallDetected)}`,
    );
  }
  console.log(
    `  disputes: ${n(r.disputes)}; closed: ${r.closed.retracted} retracted, ${r.closed.withdrawn} withdrawn, ${r.closed.voided} voided`,
  );
}

for (const s of SCENARIOS) {
  const t = performance.now();
  const runs = runScenario(s);
  describe(s.name, runs);
  const m = runs.cleared.metrics;
  const v1 = runs.cleared.v1;
  const c = checkTargets(m, v1);
  console.log(
    `  targets: precision 100% ${ok(c.precision)}; innocents at ≥ high 0 ${ok(c.victims)}; ` +
      `recall ≥ pixiu-score/1 on this ledger (${recallOf(v1)}) ${ok(c.recall)}, gap ${gapOf(m, v1)} ` +
      `(to the idealised ${recallOf(ideal)}: ${gapOf(m, ideal)}); innocents at review ≤ ${pct(REVIEW_TARGET)} ${ok(c.review)}`,
  );
  console.log(`  (${Math.round(performance.now() - t)} ms, three runs)\n`);
  rows.push({ name: s.name, runs });
}

// Where the baseline's recall goes: the same ledger at NOW, one rule of pixiu-score/2 lifted at a time,
// then what happens to reports whatever the model.
const base = (rows[0] as Row).runs.cleared;
const lift = (f: (r: ScoreRecord) => ScoreRecord) => rescore(base, f).recall;
const asV1 = (r: ScoreRecord): ScoreRecord => ({
  ...r,
  trust: 1,
  afterLookup: false,
  group: null,
  verified: true,
});
const goes: [string, number][] = [
  ["admins clear no honest flag", (rows[0] as Row).runs.uncleared.metrics.recall],
  ["admins clear half the honest flags", (rows[0] as Row).runs.half.metrics.recall],
  ["`pixiu-score/2` as designed (admins clear every honest flag)", base.metrics.recall],
  ["every platform at trust 1", lift((r) => ({ ...r, trust: 1 }))],
  ["no `after_lookup` flag", lift((r) => ({ ...r, afterLookup: false }))],
  ["both, as `pixiu-score/1` reads it: **the target**", lift(asV1)],
  [
    "… and every open dispute at full weight",
    lift((r) => ({
      ...asV1(r),
      status: r.status === "disputed" ? "active" : r.status,
      disputeDeadlineAt: null,
    })),
  ],
  [
    "… and the reports retracted counted too",
    lift((r) => ({ ...asV1(r), status: "active", disputeDeadlineAt: null })),
  ],
  [
    "… and the reports still under investigation at NOW filed: the idealised `pixiu-score/1` (every report in at once, none disputed)",
    ideal.recall,
  ],
];
console.log("## where the baseline's recall goes (same ledger at NOW, one rule lifted at a time)");
for (const [what, recall] of goes) {
  console.log(`  ${what}: ${pct(recall)}`);
}
console.log("");

console.log("## sensitivity: the baseline under other assumptions");
const sensitivity = SENSITIVITY.map((s) => {
  const t = performance.now();
  const r = simulate(s.market, s.ledger);
  const m = r.metrics;
  const honest = [...r.platforms.values()].filter((p) => p.role !== "malicious").map((p) => p.trust);
  const ever = [...r.everGrouped.keys()].filter((p) => r.platforms.get(p)?.role !== "malicious");
  const idealHere = s.id === "correlated" ? scoreAsV1(r.market) : ideal;
  console.log(
    `  ${s.name}: precision ${pct(m.precision, 2)}; recall ${recallOf(m)}; pixiu-score/1 on this ledger ${recallOf(r.v1)} (gap ${gapOf(m, r.v1)}); ` +
      `innocents at review ${n(m.honestReviewOrWorse)} (${pct(m.honestReviewShare, 3)}); ` +
      `honest trust ${Math.min(...honest).toFixed(3)}–${Math.max(...honest).toFixed(3)}; honest platforms grouped: ${ever.length ? ever.join(", ") : "none"}` +
      (s.id === "correlated" ? `; idealised target on that market ${recallOf(idealHere)}` : "") +
      ` (${Math.round(performance.now() - t)} ms)`,
  );
  return { s, r, honest, ever, idealHere };
});
console.log("");

// Photos: the baseline ledger at NOW, with trust, flags and groups on every match.
const p = simulatePhotos(base.buyers, DEFAULT_MARKET);
const BANDS: Band[] = ["none", "low", "medium", "high", "critical"];
const byBand = (counts: Record<Band, number>) => BANDS.map((b) => `${b} ${counts[b]}`).join(", ");
const total = (counts: Record<Band, number>) => BANDS.reduce((k, b) => k + counts[b], 0);
const review = (counts: Record<Band, number>) => counts.medium + counts.high + counts.critical;
const high = (counts: Record<Band, number>) => counts.high + counts.critical;
const multi = total(p.switchedMultiByBand);
console.log("## forgers switch accounts and reuse photos (baseline ledger at NOW, one photo per claim)");
console.log(`  counted confirmed cases with a photo fingerprint: ${n(p.fingerprints)}`);
console.log(
  `  fresh accounts of forgers (${pct(DEFAULT_MARKET.switchShare, 0)} of forgers): ${p.switched}; their photo confirmed before: ${p.switchedConfirmedBefore} (of which every confirmed copy beyond the match distance: ${p.switchedConfirmedMissed})`,
);
console.log("  without the photo in the query: every one at none (allow)");
console.log(`  with it, by band: ${byBand(p.switchedByBand)}`);
console.log(
  `    at review or worse: ${review(p.switchedByBand)} (${pct(review(p.switchedByBand) / Math.max(1, p.switched))}); at band ≥ high: ${high(p.switchedByBand)} (${pct(high(p.switchedByBand) / Math.max(1, p.switched))})`,
);
console.log(
  `  of them, photo confirmed on 2+ platforms: ${multi}; by band: ${byBand(p.switchedMultiByBand)}; at review or worse: ${review(p.switchedMultiByBand)} (${pct(review(p.switchedMultiByBand) / Math.max(1, multi))}); at band ≥ high: ${high(p.switchedMultiByBand)} (${pct(high(p.switchedMultiByBand) / Math.max(1, multi))})`,
);
console.log(
  `    below high: the copy within the match distance of fewer than two platforms' fingerprints ${p.switchedMultiBelowHigh.onePlatform} (of none: ${p.switchedMultiByBand.none}); of two or more, one under dispute or flagged ${p.switchedMultiBelowHigh.disputedOrFlagged}`,
);
console.log(
  `  forgers claiming again on their own account with a reused photo: answers changed ${p.ownAccountMoved}`,
);
console.log(
  `  innocent buyers claiming with their own photo: ${n(p.innocent)}; photo matched: ${p.innocentMatched}; answer changed: ${p.innocentMoved}`,
);
console.log(`  (${Math.round(p.ms)} ms)\n`);

if (process.argv.includes("--daily")) {
  const coalition = SCENARIOS.find((s) => s.id === "coalition");
  if (coalition) {
    const t = performance.now();
    const r = simulate(coalition.market, { ...DEFAULT_LEDGER, trustEveryDays: 1, trackEveryDays: 1 });
    const high = r.track.filter((x) => x.innocentHigh > 0);
    const worst = r.track.reduce((a, b) => (b.innocentReview > a.innocentReview ? b : a));
    const most = r.track.reduce((a, b) => (b.innocentHigh > a.innocentHigh ? b : a));
    console.log("## the coalition with the job recomputing every day");
    for (const id of ["m1", "m2", "m3"]) {
      const grouped = r.everGrouped.get(id) ?? Number.POSITIVE_INFINITY;
      const before = r.trust.filter((x) => x.at < grouped);
      const top = before.reduce((a, b) => ((b.trust[id] ?? 0) > (a.trust[id] ?? 0) ? b : a));
      console.log(
        `  ${id}: in a group from ${Number.isFinite(grouped) ? day(grouped) : "never"}; highest trust before ${(top.trust[id] ?? 0).toFixed(2)} (${day(top.at)})`,
      );
    }
    console.log(
      `  innocents at ≥ high on ${high.length} days (${high.map((x) => day(x.at)).join(", ")}), at most ${most.innocentHigh} at once, ${r.everHigh} ever; ` +
        `at review or worse at most ${worst.innocentReview} (${day(worst.at)}); at NOW ${r.metrics.honestHigh} at ≥ high (${Math.round(performance.now() - t)} ms)\n`,
    );
  }
}

// The tables of docs/scoring.md §8.
const cell = (pass: boolean) => (pass ? "met" : "**not met**");
const worst = (r: LedgerResult, f: (t: LedgerResult["track"][number]) => number) =>
  Math.max(0, ...r.track.map(f));
console.log("## tables (docs/scoring.md §8)");
console.log(
  "| scenario | precision of band ≥ high | recall (all / with a confirmed case): admins clear every honest flag; half; none | the recall target: `pixiu-score/1` on the same ledger (gap; gap to the idealised " +
    `${recallOf(ideal)}) | innocents at \`review\` or worse: at NOW (worst week) | innocents at ≥ high: at NOW (worst week) | targets |`,
);
console.log("| --- | --- | --- | --- | --- | --- | --- |");
for (const { name, runs } of rows) {
  const { cleared: r, half, uncleared: u } = runs;
  const m = r.metrics;
  const c = checkTargets(m, r.v1);
  const weekHigh = worst(r, (t) => t.innocentHigh);
  console.log(
    `| ${name} | ${pct(m.precision)} | ${recallOf(m)}; ${recallOf(half.metrics)}; ${recallOf(u.metrics)} | ` +
      `${recallOf(r.v1)} (${gapOf(m, r.v1)}; ${gapOf(m, ideal)}) | ` +
      `${pct(m.honestReviewShare, 3)}, ${n(m.honestReviewOrWorse)} (${worst(r, (t) => t.innocentReview)}) | ` +
      `${m.honestHigh} (${weekHigh}) | ` +
      `precision ${cell(c.precision)}; ≥ high ${cell(c.victims)}${c.victims && weekHigh > 0 ? " at NOW, **not every week**" : ""}; recall ${cell(c.recall)}; review ${cell(c.review)} |`,
  );
}
console.log("");
console.log(
  "| scenario | trust at NOW | collusion groups | `after_lookup` flags: honest members' (cleared), the feedback platform's (its reports filed because of its look-up: flagged of filed); counted and flagged at NOW (half cleared; none) | disputes; voided, withdrawn, retracted |",
);
console.log("| --- | --- | --- | --- | --- |");
for (const { name, runs } of rows) {
  const r = runs.cleared;
  const honest = [...r.platforms.values()].filter((x) => x.role === "honest").map((x) => x.trust);
  const others = [...r.platforms]
    .filter(([, x]) => x.role !== "honest")
    .map(([id, x]) => `${id} (${x.role}) ${x.trust.toFixed(2)}`);
  const sets = r.sets.map((x) => `{${x.members.join(", ")}}`).join(", ");
  const ever = [...r.everGrouped.keys()].filter((x) => r.platforms.get(x)?.role !== "malicious");
  console.log(
    `| ${name} | honest ${Math.min(...honest).toFixed(2)}–${Math.max(...honest).toFixed(2)}; ${others.join("; ")} | ` +
      `${sets || "none"}${ever.length ? `; honest ever grouped: ${ever.join(", ")}` : "; no honest platform ever"} | ` +
      `${n(r.flagged.honest + r.flagged.careless)} (${n(r.cleared)}), ${n(r.flagged.feedback)}${r.echoes.filed ? ` (${n(r.echoes.flagged)} of ${n(r.echoes.filed)})` : ""}; ` +
      `${n(r.flaggedAtNow)} (${n(runs.half.flaggedAtNow)}; ${n(runs.uncleared.flaggedAtNow)}) | ` +
      `${n(r.disputes)}; ${n(r.closed.voided)}, ${n(r.closed.withdrawn)}, ${n(r.closed.retracted)} |`,
  );
}
console.log("");
console.log("| the baseline's ledger at the end, scored with | recall of all forgers |");
console.log("| --- | --- |");
for (const [what, recall] of goes) {
  console.log(`| ${what} | ${pct(recall)} |`);
}
console.log("");
console.log(
  "| assumption changed | precision | recall (all / with a confirmed case) | `pixiu-score/1` on that ledger (gap) | innocents at `review` | honest trust | honest platforms grouped |",
);
console.log("| --- | --- | --- | --- | --- | --- | --- |");
{
  const m = base.metrics;
  const honest = [...base.platforms.values()].filter((x) => x.role !== "malicious").map((x) => x.trust);
  console.log(
    `| none (the baseline: admins clear every honest flag) | ${pct(m.precision)} | ${recallOf(m)} | ${recallOf(base.v1)} (${gapOf(m, base.v1)}) | ${n(m.honestReviewOrWorse)} | ` +
      `${Math.min(...honest).toFixed(2)}–${Math.max(...honest).toFixed(2)} | none |`,
  );
}
for (const { s, r, honest, ever, idealHere } of sensitivity) {
  const m = r.metrics;
  console.log(
    `| ${s.name} | ${pct(m.precision)} | ${recallOf(m)}${s.id === "correlated" ? ` (idealised target on that market: ${recallOf(idealHere)})` : ""} | ` +
      `${recallOf(r.v1)} (${gapOf(m, r.v1)}) | ${n(m.honestReviewOrWorse)} | ${Math.min(...honest).toFixed(2)}–${Math.max(...honest).toFixed(2)} | ` +
      `${ever.length ? `**${ever.join(", ")}**` : "none"} |`,
  );
}
console.log("");
const row = (label: string, counts: Record<Band, number>, of: number) =>
  `| ${label} | ${n(of)} | ${BANDS.map((b) => n(counts[b])).join(" | ")} | ${n(review(counts))} (${pct(review(counts) / Math.max(1, of))}) | ${n(high(counts))} (${pct(high(counts) / Math.max(1, of))}) |`;
console.log(
  "| | accounts | `none` | `low` | `medium` | `high` | `critical` | at `review` or worse | at ≥ `high` |",
);
console.log("| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
console.log(
  row(
    "fresh accounts, records only (as `pixiu-score/1` saw them)",
    { none: p.switched, low: 0, medium: 0, high: 0, critical: 0 },
    p.switched,
  ),
);
console.log(row("fresh accounts, with the claim's photo", p.switchedByBand, p.switched));
console.log(row("… whose photo two or more platforms had confirmed", p.switchedMultiByBand, multi));
console.log(
  `| innocent buyers, with their own photo | ${n(p.innocent)} | answers changed: **${p.innocentMoved}** (${p.innocentMatched ? `${p.innocentMatched} photos matched` : "no photo matched"}) | | | | | | |`,
);
console.log(
  `| forgers again on their own account, with a reused photo | ${n(base.metrics.forgers)} | answers changed: **${p.ownAccountMoved}** | | | | | | |`,
);
console.log(`\n(total ${((performance.now() - started) / 1000).toFixed(1)} s)`);
