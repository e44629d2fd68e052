/**
 * Reporter trust (pixiu-score/2, docs/scoring.md §2a): each member platform's weight in the
 * consensus, earned and lost by what happens to its records. A pure function of the outcome
 * counts and the clock; the scheduled job recomputes it (`recomputeTrust` in
 * worker/services/trust.ts) into `platform_trust`, and the score read takes it from there in its
 * one statement. Never per query, never shown to other members.
 */

/** The constants of the trust rule: changing one changes the model (docs/scoring.md §2a). */
export const TRUST = {
  /** A member is on probation for this long after it joined… */
  probationDays: 90,
  /** …and until this many of its reports have been judged by outcomes. */
  probationReports: 20,
  /** Trust while on probation (at most), and of a platform the job has not scored yet. */
  probationTrust: 0.5,
  /** Share of a member's reports independently corroborated by another member that earns full trust. */
  corroborationTarget: 0.2,
  /**
   * Share of a member's reports that may be overturned (voided, withdrawn, half of the plain
   * retractions) at no cost: the error rate of a careful member. Honest members err too, and the
   * dispute process catches it; trust measures being worse than that.
   */
  errorAllowance: 0.05,
  /** Each adverse outcome beyond the allowance costs this many times its share of the member's reports. */
  adversePenalty: 4,
  /** A plain retraction (no dispute) is an honest correction: it counts this much of an adverse outcome. */
  retractionWeight: 0.5,
  /** Trust never falls below this: a member's records never become worthless by statistics alone. */
  floor: 0.05,
  /** The job recomputes a member's trust at most this often. */
  recomputeMs: 3_600_000,
} as const;

/** What the job counts for one platform, over its reports still in the ledger (within retention). */
export interface TrustCounts {
  /**
   * All its reports, whatever their status, but those flagged after its own look-up, uncleared and
   * still counting: an echo of the ledger's answer dilutes no adverse rate (docs/scoring.md §2a).
   */
  reports: number;
  /** Its counted reports that share a subject key with another member's counted report. */
  corroborated: number;
  /** Voided by an admin, directly or by deciding a dispute against the record. */
  voided: number;
  /** Withdrawn by the reporter under a buyer's dispute (the buyer was right). */
  withdrawn: number;
  /** Retracted by the reporter with no dispute. */
  retracted: number;
}

export interface Trust {
  /** The multiplier of the platform's evidence and of its say in the consensus, in [floor, 1]. */
  trust: number;
  probation: boolean;
}

const round4 = (x: number) => Math.round(x * 10_000) / 10_000;

/**
 * Trust from outcomes:
 *   n = max(reports, probationReports)
 *   clean = max(0, 1 − adversePenalty × max(0, (voided + withdrawn + retractionWeight × retracted) / n − errorAllowance))
 *   corroboration = min(1, (corroborated / n) / corroborationTarget)
 *   on probation: min(probationTrust, clean); otherwise corroboration × clean; at least `floor`.
 *
 * @example trustOf({ reports: 100, corroborated: 40, voided: 6, withdrawn: 2, retracted: 2 }, 200)
 *   // adverse 9 of 100: clean = 1 − 4 × (0.09 − 0.05) = 0.84 → { trust: 0.84, probation: false }
 */
export function trustOf(c: TrustCounts, memberDays: number): Trust {
  const n = Math.max(c.reports, TRUST.probationReports);
  const adverse = c.voided + c.withdrawn + TRUST.retractionWeight * c.retracted;
  const clean = Math.max(0, 1 - TRUST.adversePenalty * Math.max(0, adverse / n - TRUST.errorAllowance));
  const probation = memberDays < TRUST.probationDays || c.reports < TRUST.probationReports;
  const corroboration = Math.min(1, c.corroborated / n / TRUST.corroborationTarget);
  const raw = probation ? Math.min(TRUST.probationTrust, clean) : corroboration * clean;
  return { trust: round4(Math.max(TRUST.floor, raw)), probation };
}
