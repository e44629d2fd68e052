/**
 * A generated back-fill file: `rows` confirmed cases with raw identifiers, about 3 % of them
 * bad in the ways a platform's export goes wrong, each kind caught either locally (the CLI's
 * validation) or by the ledger (a case id reused with other content: 409).
 */
import { writeFileSync } from "node:fs";
import { BACKFILL_COLUMNS } from "../../client/cli/rows";
import { residentIdCheckChar } from "../../client/identifiers";

export interface Fixture {
  path: string;
  rows: number;
  /** Rows the ledger should hold once the file is in: distinct case ids, each created once. */
  valid: number;
  /** Rows that must land in the rejects file. */
  bad: number;
  caseIds: string[];
}

type Row = Record<(typeof BACKFILL_COLUMNS)[number], string>;

/** Each way a row goes bad; every 33rd row takes the next one. */
const BAD: ((row: Row) => void)[] = [
  (r) => {
    r.phone = "12345";
  },
  (r) => {
    r.incident_at = "2026-13-01T10:00:00+08:00";
  },
  (r) => {
    r.category = "fake_damage";
  },
  (r) => {
    r.phone = "";
    r.email = "";
    r.national_id = "";
    r.device = "";
    r.payment_account = "";
  },
  (r) => {
    r.amount = "129.90";
  },
  (r) => {
    r.note = "buyer called from 13800138000";
  },
  (r) => {
    const incident = r.incident_at;
    r.incident_at = r.confirmed_at;
    r.confirmed_at = incident;
  },
  (r) => {
    r.national_id = "110105199001011230"; // wrong check digit
  },
  (r) => {
    r.email = "not-an-address";
  },
  (r) => {
    r.currency = "rmb";
  },
];

function csvField(value: string): string {
  return /[",\r\n]/.test(value) ? `"${value.replace(/"/g, '""')}"` : value;
}

export function writeFixture(path: string, rows: number, prefix: string): Fixture {
  const lines = [BACKFILL_COLUMNS.join(",")];
  const caseIds: string[] = [];
  const now = Date.now();
  let bad = 0;
  let conflicts = 0;
  for (let i = 1; i <= rows; i++) {
    const incident = new Date(now - (400 - (i % 365)) * 86_400_000 - (i % 86_400) * 1000);
    const confirmed = new Date(incident.getTime() + (1 + (i % 20)) * 86_400_000);
    const birth = `${1970 + (i % 35)}${String(1 + (i % 12)).padStart(2, "0")}${String(1 + (i % 28)).padStart(2, "0")}`;
    const first17 = `110105${birth}${String(i % 1000).padStart(3, "0")}`;
    const row: Row = {
      case_id: `${prefix}-${String(i).padStart(6, "0")}`,
      phone: `139${String(10_000_000 + i * 7).slice(-8)}`,
      email: i % 2 === 0 ? `buyer.${prefix}.${i}@example.com` : "",
      national_id: i % 5 === 0 ? first17 + residentIdCheckChar(first17) : "",
      device: i % 3 === 0 ? `dev-${prefix}-${i.toString(16)}` : "",
      payment_account: "",
      category: ["ai_generated_image", "edited_image", "reused_image", "staged_damage"][i % 4] as string,
      incident_at: incident.toISOString().replace(/\.\d{3}Z$/, "Z"),
      confirmed_at: confirmed.toISOString().replace(/\.\d{3}Z$/, "Z"),
      confirmation: ["manual_review", "merchant_evidence", "platform_forensics"][i % 3] as string,
      amount: String(899 + ((i * 137) % 300_000)),
      currency: "CNY",
      note: i % 7 === 0 ? `claim ${i}, "forged" photo, refund only` : "",
    };
    if (i % 33 === 0) {
      (BAD[(i / 33) % BAD.length] as (r: Row) => void)(row);
      bad++;
    } else if (i % 1000 === 500 && i > 1) {
      // The case id of the row before, with other content: the ledger answers 409 for one of them.
      row.case_id = `${prefix}-${String(i - 1).padStart(6, "0")}`;
      conflicts++;
    } else {
      caseIds.push(row.case_id);
    }
    lines.push(BACKFILL_COLUMNS.map((c) => csvField(row[c])).join(","));
  }
  writeFileSync(path, `${lines.join("\n")}\n`);
  return { path, rows, valid: rows - bad - conflicts, bad: bad + conflicts, caseIds };
}
