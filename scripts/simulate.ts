/**
 * `npm run simulate`: runs a synthetic market through the ledger's rules for three years with the
 * real code (`evaluate`, `trustOf`, `findCollusion`) and prints, per scenario, how well band ≥ high
 * separates forgers from innocent buyers against issue 13's targets, each platform's trust, the
 * collusion groups found and the `after_lookup` flags; then how many forgers who switch accounts
 * but reuse their photos the photo match catches. Assumptions: scripts/lib/market.ts,
 * scripts/lib/ledger-sim.ts and docs/scoring.md §8. Seeded.
 */
import type { Band, ScoreRecord } from "../worker/scoring/model";
import { DEFAULT_LEDGER, type LedgerResult, rescore, simulate } from "./lib/ledger-sim";
import { DEFAULT_MARKET, generateMarket, type Metrics, scoreAsV1, simulatePhotos } from "./lib/market";
import {
  checkTargets,
  REVIEW_TARGET,
  runScenario,
  SCENARIOS,
  SENSITIVITY,
  TRACK_EVERY_DAYS,
} from "./lib/scenarios";

const started = performance.now();
const pct = (x: number, digits = 1) => `${(100 * x).toFixed(digits)}%`;
const n = (x: number) => x.toLocaleString("en");
const ok = (pass: boolean) => (pass ? "met" : "NOT MET");

const reference = scoreAsV1(generateMarket(DEFAULT_MARKET));
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
    `and ${pct(L.retractRight, 0)} of correct reports unprompted; admins clear ${pct(L.clearShare, 0)} of honest flagged ` +
    `reports; trust and groups recomputed every ${L.trustEveryDays} days.`,
);
console.log(
  `Recall target (pixiu-score/1 on this market, every report in at once): ${pct(reference.recall)} of all forgers, ` +
    `${pct(reference.recallDetected)} of those with a confirmed case.\n`,
);

interface Row {
  name: string;
  m: Metrics;
  u: Metrics;
  r: LedgerResult;
}
const rows: Row[] = [];

function describe(name: string, r: LedgerResult, u: LedgerResult | null) {
  const m = r.metrics;
  console.log(`## ${name}`);
  console.log(
    `  forgers: ${n(m.forgers)} (${n(m.forgersWithRecords)} with a confirmed case in the ledger at NOW)`,
  );
  console.log(
    `  band ≥ high: ${n(m.flaggedHigh)} buyers; precision ${pct(m.precision, 2)}; recall ${pct(m.recall)} / ${pct(m.recallDetected)} (admins clear flags)` +
      (u ? `, ${pct(u.metrics.recall)} / ${pct(u.metrics.recallDetected)} (no clearing)` : "") +
      `; pixiu-score/1 on this ledger ${pct(r.v1.recall)} / ${pct(r.v1.recallDetected)}`,
  );
  console.log(
    `  pixiu-score/1 on this ledger: precision ${pct(r.v1.precision, 2)}, innocents at ≥ high ${r.v1.honestHigh} (malicious victims ${r.v1.maliciousVictimsHigh}), at review or worse ${n(r.v1.honestReviewOrWorse)} (${pct(r.v1.honestReviewShare, 3)})`,
  );
  console.log(
    `  innocent buyers at review or worse: ${n(m.honestReviewOrWorse)} of ${n(m.honest)} (${pct(m.honestReviewShare, 3)}); at ≥ high: ${m.honestHigh}`,
  );
  if (r.track.length > 0) {
    const worst = r.track.reduce((a, b) => (b.innocentReview > a.innocentReview ? b : a));
    const high = r.track.reduce((a, b) => (b.innocentHigh > a.innocentHigh ? b : a));
    const day = (t: number) => new Date(t).toISOString().slice(0, 10);
    console.log(
      `    snapshots every ${TRACK_EVERY_DAYS} days over the three years: at review or worse at most ${n(worst.innocentReview)} at once (${day(worst.at)}), ${n(r.everReview)} ever; ` +
        `at ≥ high at most ${high.innocentHigh} at once${high.innocentHigh ? ` (${day(high.at)})` : ""}, ${r.everHigh} ever`,
    );
  }
  console.log(
    `    wrongly confirmed: ${n(m.wronglyConfirmed)}, at review or worse ${m.wronglyConfirmedReview}, at ≥ high ${m.wronglyConfirmedHigh}; ` +
      `malicious victims: ${n(m.maliciousVictims)}, at review or worse ${m.maliciousVictimsReview}, at ≥ high ${m.maliciousVictimsHigh}`,
  );
  console.log("  platforms at NOW (trust; reports, corroborated, voided, withdrawn, retracted):");
  for (const [id, p] of r.platforms) {
    console.log(
      `    ${id.padEnd(4)} ${p.role.padEnd(9)} t = ${p.trust.toFixed(3)}; ${p.reports}, ${p.corroborated}, ${p.voided}, ${p.withdrawn}, ${p.retracted}` +
        (p.group ? `; group ${p.group}` : ""),
    );
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
      (u ? ` (no clearing: ${u.flaggedAtNow})` : ""),
  );
  console.log(
    `  disputes: ${n(r.disputes)}; closed: ${r.closed.retracted} retracted, ${r.closed.withdrawn} withdrawn, ${r.closed.voided} voided`,
  );
}

for (const s of SCENARIOS) {
  const t = performance.now();
  const { cleared, uncleared } = runScenario(s);
  describe(s.name, cleared, uncleared);
  const c = checkTargets(cleared.metrics, reference);
  console.log(
    `  targets: precision 100% ${ok(c.precision)}; innocents at ≥ high 0 ${ok(c.victims)}; recall ≥ ${pct(reference.recall)} / ${pct(reference.recallDetected)} ${ok(c.recall)}; innocents at review ≤ ${pct(REVIEW_TARGET)} ${ok(c.review)}`,
  );
  console.log(`  (${Math.round(performance.now() - t)} ms, both runs)\n`);
  rows.push({ name: s.name, m: cleared.metrics, u: uncleared.metrics, r: cleared });
}

// Where the baseline's recall goes: the same ledger at NOW, one rule of pixiu-score/2 lifted at a time.
const base = rows[0] as Row;
const lift = (f: (r: ScoreRecord) => ScoreRecord) => rescore(base.r, f).recall;
console.log("## where the baseline's recall goes (same ledger at NOW, one rule lifted at a time)");
console.log(`  pixiu-score/2: ${pct(base.m.recall)}`);
console.log(`  every platform at trust 1: ${pct(lift((r) => ({ ...r, trust: 1 })))}`);
console.log(`  no after_lookup flag: ${pct(lift((r) => ({ ...r, afterLookup: false })))}`);
console.log(
  `  both (pixiu-score/1 on this ledger): ${pct(lift((r) => ({ ...r, trust: 1, afterLookup: false })))}`,
);
console.log(
  `  the same market, every report in at once, none disputed (the target): ${pct(reference.recall)}\n`,
);

console.log("## sensitivity: the baseline under other assumptions");
for (const s of SENSITIVITY) {
  const t = performance.now();
  const r = simulate(s.market, s.ledger);
  const m = r.metrics;
  const honest = [...r.platforms.values()].filter((p) => p.role !== "malicious").map((p) => p.trust);
  const ever = [...r.everGrouped.keys()].filter((p) => r.platforms.get(p)?.role !== "malicious");
  console.log(
    `  ${s.name}: precision ${pct(m.precision, 2)}; recall ${pct(m.recall)} / ${pct(m.recallDetected)}; innocents at review ${n(m.honestReviewOrWorse)} (${pct(m.honestReviewShare, 3)}); ` +
      `honest trust ${Math.min(...honest).toFixed(3)}–${Math.max(...honest).toFixed(3)}; honest platforms grouped: ${ever.length ? ever.join(", ") : "none"}` +
      (s.id === "correlated" ? `; target on that market ${pct(scoreAsV1(r.market).recall)}` : "") +
      ` (${Math.round(performance.now() - t)} ms)`,
  );
}
console.log("");

// Photos: the baseline ledger at NOW, with trust, flags and groups on every match.
const p = simulatePhotos(base.r.buyers, DEFAULT_MARKET);
const BANDS: Band[] = ["none", "low", "medium", "high", "critical"];
const byBand = (counts: Record<Band, number>) => BANDS.map((b) => `${b} ${counts[b]}`).join(", ");
const total = (counts: Record<Band, number>) => BANDS.reduce((k, b) => k + counts[b], 0);
const review = (counts: Record<Band, number>) => counts.medium + counts.high + counts.critical;
const high = (counts: Record<Band, number>) => counts.high + counts.critical;
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
const multi = total(p.switchedMultiByBand);
console.log(
  `  of them, photo confirmed on 2+ platforms: ${multi}; by band: ${byBand(p.switchedMultiByBand)}; at review or worse: ${review(p.switchedMultiByBand)} (${pct(review(p.switchedMultiByBand) / Math.max(1, multi))}); at band ≥ high: ${high(p.switchedMultiByBand)} (${pct(high(p.switchedMultiByBand) / Math.max(1, multi))})`,
);
console.log(
  `  forgers claiming again on their own account with a reused photo: answers changed ${p.ownAccountMoved}`,
);
console.log(
  `  innocent buyers claiming with their own photo: ${n(p.innocent)}; photo matched: ${p.innocentMatched}; answer changed: ${p.innocentMoved}`,
);
console.log(`  (${Math.round(p.ms)} ms)\n`);

// The tables of docs/scoring.md §8.
const worst = (r: LedgerResult, f: (t: LedgerResult["track"][number]) => number) =>
  Math.max(0, ...r.track.map(f));
console.log("## tables (docs/scoring.md §8)");
console.log(
  "| scenario | precision of band ≥ high | recall, all / with a confirmed case: admins clear half the honest flags; none | innocents at `review` or worse: at NOW (worst week) | innocents at ≥ high: at NOW (worst week) | targets |",
);
console.log("| --- | --- | --- | --- | --- | --- |");
for (const row of rows) {
  const c = checkTargets(row.m, reference);
  const cell = (pass: boolean) => (pass ? "met" : "**not met**");
  console.log(
    `| ${row.name} | ${pct(row.m.precision)} | ${pct(row.m.recall)} / ${pct(row.m.recallDetected)}; ${pct(row.u.recall)} / ${pct(row.u.recallDetected)} | ` +
      `${pct(row.m.honestReviewShare, 3)}, ${n(row.m.honestReviewOrWorse)} (${worst(row.r, (t) => t.innocentReview)}) | ` +
      `${row.m.honestHigh} (${worst(row.r, (t) => t.innocentHigh)}) | ` +
      `precision ${cell(c.precision)}; ≥ high ${cell(c.victims)}${c.victims && worst(row.r, (t) => t.innocentHigh) > 0 ? " at NOW, **not every week**" : ""}; recall ${cell(c.recall)}; review ${cell(c.review)} |`,
  );
}
console.log("");
console.log(
  "| scenario | trust at NOW | collusion groups | `after_lookup` flags: honest members' (cleared), the feedback platform's (its reports filed because of its look-up: flagged of filed); counted and flagged at NOW | disputes; voided, withdrawn, retracted |",
);
console.log("| --- | --- | --- | --- | --- |");
for (const row of rows) {
  const r = row.r;
  const honest = [...r.platforms.values()].filter((p) => p.role === "honest").map((p) => p.trust);
  const others = [...r.platforms]
    .filter(([, p]) => p.role !== "honest")
    .map(([id, p]) => `${id} (${p.role}) ${p.trust.toFixed(2)}`);
  const sets = r.sets.map((x) => `{${x.members.join(", ")}}`).join(", ");
  const ever = [...r.everGrouped.keys()].filter((p) => r.platforms.get(p)?.role !== "malicious");
  console.log(
    `| ${row.name} | honest ${Math.min(...honest).toFixed(2)}–${Math.max(...honest).toFixed(2)}; ${others.join("; ")} | ` +
      `${sets || "none"}${ever.length ? `; honest ever grouped: ${ever.join(", ")}` : "; no honest platform ever"} | ` +
      `${n(r.flagged.honest + r.flagged.careless)} (${n(r.cleared)}), ${n(r.flagged.feedback)}${r.echoes.filed ? ` (${n(r.echoes.flagged)} of ${n(r.echoes.filed)})` : ""}; ${n(r.flaggedAtNow)} | ` +
      `${n(r.disputes)}; ${n(r.closed.voided)}, ${n(r.closed.withdrawn)}, ${n(r.closed.retracted)} |`,
  );
}
console.log(`\n(total ${((performance.now() - started) / 1000).toFixed(1)} s)`);
