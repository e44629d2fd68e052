/**
 * Bounded work per buyer (docs/scoring.md, "Bounded work per buyer"): the score read takes at
 * most MAX_ACTIVE_REPORTS_PER_SUBJECT records per (subject key, platform) whatever the table
 * holds, a platform cannot hold more than that many counted reports about one subject key, and
 * the model itself copes with any number of records.
 */
import { describe, expect, it } from "vitest";
import { DAY_MS, toRfc3339 } from "../worker/lib/time";
import { evaluate, type ScoreRecord } from "../worker/scoring/model";

const NOW = Date.parse("2026-11-25T00:00:00Z");

describe("the model at scale", () => {
  it("evaluate() scores 200,000 records without throwing (no spread into Math.min/max)", () => {
    const records: ScoreRecord[] = Array.from({ length: 200_000 }, (_, i) => ({
      ref: `rpt_${i.toString().padStart(26, "0")}`,
      platformId: `p-${i % 3}`,
      category: "ai_generated_image",
      confirmation: "platform_forensics",
      incidentAt: NOW - (i % 1000) * DAY_MS - i,
      createdAt: NOW - i,
      amountValue: 129_900,
      amountCurrency: "CNY",
      status: "active",
    }));
    const answer = evaluate(records, NOW);
    expect(answer.summary.reports).toBe(200_000);
    expect(answer.summary.platforms).toBe(3);
    expect(answer.summary.firstReportedAt).toBe(toRfc3339(NOW - 199_999));
    expect(answer.summary.lastReportedAt).toBe(toRfc3339(NOW));
    expect(answer.band).toBe("critical");
    expect(answer.reasons.map((r) => r.code)).toContain("RECENT");
  });
});
