/**
 * The scenarios of docs/scoring.md §8 and issue 13's targets, shared by `npm run simulate` and
 * `npm run figures` so the table and the pictures come from the same runs.
 */
import { DEFAULT_LEDGER, type LedgerParams, type LedgerResult, simulate } from "./ledger-sim";
import { DEFAULT_MARKET, type MarketParams, type Metrics } from "./market";

export interface Scenario {
  id: string;
  name: string;
  market: MarketParams;
}

export const SCENARIOS: Scenario[] = [
  { id: "baseline", name: "baseline (malicious platform mimics ordinary reviews)", market: DEFAULT_MARKET },
  {
    id: "forged_police",
    name: "malicious platform forges police reports",
    market: { ...DEFAULT_MARKET, maliciousConfirmation: "forged_police" },
  },
  {
    id: "feedback",
    name: "a platform reports whoever the ledger flags (p7)",
    market: { ...DEFAULT_MARKET, feedbackPlatform: true },
  },
  {
    id: "coalition",
    name: "coalition of 3 malicious platforms (m1–m3) reporting the same 2,000 buyers",
    market: { ...DEFAULT_MARKET, maliciousPlatforms: 3 },
  },
  {
    id: "careless",
    name: "careless honest platform (p1, 10× the wrong confirmations)",
    market: { ...DEFAULT_MARKET, carelessFactor: 10 },
  },
];

/** The same baseline under other assumptions: how much the answers lean on them. */
export const SENSITIVITY: { id: string; name: string; market: MarketParams; ledger: LedgerParams }[] = [
  {
    id: "clear_all",
    name: "admins clear every honest flagged report",
    market: DEFAULT_MARKET,
    ledger: { ...DEFAULT_LEDGER, clearShare: 1 },
  },
  {
    id: "disputes_25",
    name: "a quarter of wrongly reported buyers dispute (not half)",
    market: DEFAULT_MARKET,
    ledger: { ...DEFAULT_LEDGER, disputeInnocent: 0.25 },
  },
  {
    id: "disputes_75",
    name: "three quarters of wrongly reported buyers dispute",
    market: DEFAULT_MARKET,
    ledger: { ...DEFAULT_LEDGER, disputeInnocent: 0.75 },
  },
  {
    id: "slow",
    name: "every investigation takes twice as long",
    market: { ...DEFAULT_MARKET, investigationFactor: 2 },
    ledger: DEFAULT_LEDGER,
  },
  {
    id: "fast",
    name: "every investigation takes half as long",
    market: { ...DEFAULT_MARKET, investigationFactor: 0.5 },
    ledger: DEFAULT_LEDGER,
  },
  {
    id: "correlated",
    name: "correlated platforms (earlier versions' draw: p1 and p2 share 3.4× the forgers chance predicts)",
    market: { ...DEFAULT_MARKET, platformChoice: "correlated" },
    ledger: DEFAULT_LEDGER,
  },
];

/** Days between the figures' snapshots of every buyer's band. */
export const TRACK_EVERY_DAYS = 7;

/** Runs a scenario with admins clearing flagged reports (the default, tracked over time) and without. */
export function runScenario(s: Scenario): { cleared: LedgerResult; uncleared: LedgerResult } {
  return {
    cleared: simulate(s.market, { ...DEFAULT_LEDGER, trackEveryDays: TRACK_EVERY_DAYS }),
    uncleared: simulate(s.market, { ...DEFAULT_LEDGER, clearShare: 0 }),
  };
}

export interface TargetCheck {
  precision: boolean;
  victims: boolean;
  recall: boolean;
  review: boolean;
}

/** Issue 13's targets; `reference` is pixiu-score/1 on the baseline market (`scoreAsV1`). */
export const REVIEW_TARGET = 0.007;
export function checkTargets(m: Metrics, reference: Metrics): TargetCheck {
  return {
    precision: m.precision === 1,
    victims: m.honestHigh === 0,
    recall: m.recall >= reference.recall && m.recallDetected >= reference.recallDetected,
    review: m.honestReviewShare <= REVIEW_TARGET,
  };
}
