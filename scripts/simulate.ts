/**
 * `npm run simulate`: scores a synthetic market with the real model and prints how well
 * band ≥ high separates forgers from honest buyers, and what a malicious platform and a
 * feedback-loop platform can do. Assumptions: scripts/lib/market.ts and docs/scoring.md.
 */
import { DEFAULT_MARKET, measure, simulate } from "./lib/market";

const pct = (x: number) => `${(100 * x).toFixed(2)}%`;

const scenarios = [
  { name: "baseline (malicious platform mimics ordinary reviews)", params: DEFAULT_MARKET },
  {
    name: "malicious platform forges police reports",
    params: { ...DEFAULT_MARKET, maliciousConfirmation: "forged_police" as const },
  },
  { name: "one platform breaks the no-feedback rule", params: { ...DEFAULT_MARKET, feedbackPlatform: true } },
];

console.log(
  `Market: ${DEFAULT_MARKET.buyers.toLocaleString()} buyers, ${DEFAULT_MARKET.platforms} honest platforms + 1 malicious, ` +
    `${pct(DEFAULT_MARKET.forgerShare)} forgers (detected per incident: ${pct(DEFAULT_MARKET.detection)}), ` +
    `${pct(DEFAULT_MARKET.wrongConfirmation)} honest buyers wrongly confirmed once, ` +
    `${DEFAULT_MARKET.maliciousVictims.toLocaleString()} buyers reported by the malicious platform. Seed ${DEFAULT_MARKET.seed}.\n`,
);
for (const { name, params } of scenarios) {
  const started = performance.now();
  const m = measure(simulate(params));
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
