/**
 * `npm run simulate`: scores a synthetic market with the real model and prints how well
 * band ≥ high separates forgers from honest buyers, what a malicious platform and a
 * feedback-loop platform can do, and how many forgers who switch accounts but reuse their
 * photos the photo match catches. Assumptions: scripts/lib/market.ts and docs/scoring.md.
 */
import type { Band } from "../worker/scoring/model";
import { DEFAULT_MARKET, measure, type SimBuyer, simulate, simulatePhotos } from "./lib/market";

const pct = (x: number) => `${(100 * x).toFixed(2)}%`;

const scenarios = [
  { name: "baseline (malicious platform mimics ordinary reviews)", params: DEFAULT_MARKET },
  {
    name: "malicious platform forges police reports",
    params: { ...DEFAULT_MARKET, maliciousConfirmation: "forged_police" as const },
  },
  { name: "one platform breaks the no-feedback rule", params: { ...DEFAULT_MARKET, feedbackPlatform: true } },
  {
    name: "one platform breaks the no-feedback rule, its reports flagged after_lookup",
    params: { ...DEFAULT_MARKET, feedbackPlatform: true, feedbackFlagged: true },
  },
];

console.log(
  `Market: ${DEFAULT_MARKET.buyers.toLocaleString()} buyers, ${DEFAULT_MARKET.platforms} honest platforms + 1 malicious, ` +
    `${pct(DEFAULT_MARKET.forgerShare)} forgers (detected per incident: ${pct(DEFAULT_MARKET.detection)}), ` +
    `${pct(DEFAULT_MARKET.wrongConfirmation)} honest buyers wrongly confirmed once, ` +
    `${DEFAULT_MARKET.maliciousVictims.toLocaleString()} buyers reported by the malicious platform. Seed ${DEFAULT_MARKET.seed}.\n`,
);
let baseline: SimBuyer[] = [];
for (const { name, params } of scenarios) {
  const started = performance.now();
  const buyers = simulate(params);
  if (params === DEFAULT_MARKET) {
    baseline = buyers;
  }
  const m = measure(buyers);
  const ms = performance.now() - started;
  console.log(`## ${name}`);
  console.log(`  forgers: ${m.forgers} (${m.forgersWithRecords} with at least one confirmed case)`);
  console.log(
    `  band ≥ high: ${m.flaggedHigh} buyers; precision ${pct(m.precision)}, recall ${pct(m.recall)} of all forgers, ${pct(m.recallDetected)} of detected forgers`,
  );
  console.log(
    `  innocent buyers at review or worse: ${m.honestReviewOrWorse} of ${m.honest} (${pct(m.honestReviewShare)})`,
  );
  console.log(
    `  wrongly confirmed once: ${m.wronglyConfirmed}, of whom at band ≥ high: ${m.wronglyConfirmedHigh}`,
  );
  console.log(
    `  malicious platform's victims: ${m.maliciousVictims}; at band ≥ high: ${m.maliciousVictimsHigh}; at review or worse: ${m.maliciousVictimsReview}`,
  );
  console.log(`  (${Math.round(ms)} ms)\n`);
}

const p = simulatePhotos(baseline, DEFAULT_MARKET);
const BANDS: Band[] = ["none", "low", "medium", "high", "critical"];
const byBand = (counts: Record<Band, number>) => BANDS.map((b) => `${b} ${counts[b]}`).join(", ");
const total = (counts: Record<Band, number>) => BANDS.reduce((n, b) => n + counts[b], 0);
const review = (counts: Record<Band, number>) => counts.medium + counts.high + counts.critical;
const high = (counts: Record<Band, number>) => counts.high + counts.critical;
console.log("## forgers switch accounts and reuse photos (baseline market, one photo per claim)");
console.log(`  confirmed cases with a photo fingerprint: ${p.fingerprints}`);
console.log(
  `  fresh accounts of forgers (${pct(DEFAULT_MARKET.switchShare)} of forgers): ${p.switched}; their photo confirmed before: ${p.switchedConfirmedBefore} (of which every confirmed copy beyond the match distance: ${p.switchedConfirmedMissed})`,
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
  `  innocent buyers claiming with their own photo: ${p.innocent}; photo matched: ${p.innocentMatched}; answer changed: ${p.innocentMoved}`,
);
console.log(`  (${Math.round(p.ms)} ms)`);
