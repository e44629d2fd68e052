/**
 * `pixiu backfill --dry-run` and the ledger must not disagree about a row: the CLI's checks
 * (client/cli/rows.ts, built on the ReportBody schema generated from the OpenAPI document) are
 * held here to the Worker's own zod schema, row by row, over generated rows good and bad and over
 * the timestamp forms where JSON Schema's `date-time` and zod differ.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parse } from "csv-parse/sync";
import { afterAll, describe, expect, it } from "vitest";
import { type BackfillRow, isRfc3339, PERSONAL_DATA, prepareRow } from "../../client/cli/rows";
import { consortiumKey } from "../../client/identifiers";
import { DEMO_CONSORTIUM_KEY } from "../../scripts/lib/local";
import { Rfc3339, PERSONAL_DATA as WORKER_PERSONAL_DATA } from "../../worker/schemas/common";
import { ReportBodySchema } from "../../worker/schemas/reports";
import { writeFixture } from "./backfill-fixture";

const dir = mkdtempSync(join(tmpdir(), "pixiu-rows-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("back-fill rows are checked by the API's rules", () => {
  it("uses the Worker's personal-data patterns for notes", () => {
    expect(PERSONAL_DATA.map(String)).toEqual(WORKER_PERSONAL_DATA.map(String));
  });

  it("reads timestamps as the API does", () => {
    const cases = [
      "2026-01-01T10:00:00Z",
      "2026-01-01T10:00:00.123Z",
      "2026-01-01T10:00:00+08:00",
      "2026-01-01T10:00:00-05:30",
      "2026-01-01T10:00Z",
      "2026-01-01t10:00:00z",
      "2026-01-01 10:00:00Z",
      "2026-01-01T10:00:00",
      "2026-01-01T10:00:00+0800",
      "2026-01-01T10:00:00+08",
      "2026-02-30T10:00:00Z",
      "2026-13-01T10:00:00Z",
      "2026-01-01T24:00:00Z",
      "2026-01-01T10:60:00Z",
      "2026-01-01T10:00:60Z",
      "2024-02-29T10:00:00Z",
      "2025-02-29T10:00:00Z",
      "",
    ];
    const disagreements = cases.filter((s) => isRfc3339(s) !== Rfc3339.safeParse(s).success);
    expect(disagreements).toEqual([]);
    // Some of each, or the comparison proves nothing.
    expect(cases.filter(isRfc3339).length).toBeGreaterThan(3);
    expect(cases.filter((s) => !isRfc3339(s)).length).toBeGreaterThan(3);
  });

  it("accepts and refuses the rows the Worker's schema does", async () => {
    const fixture = writeFixture(join(dir, "rows.csv"), 2_000, "R");
    const rows = parse(readFileSync(fixture.path), { columns: true }) as BackfillRow[];
    const key = await consortiumKey(DEMO_CONSORTIUM_KEY);
    const now = Date.now();
    let refused = 0;
    const disagreements: string[] = [];
    for (const [i, row] of rows.entries()) {
      const result = await prepareRow(row, { key, now });
      if (!result.ok) {
        refused++;
        // A row refused locally for a reason the schema sees must fail the schema too (rows without
        // hashable identifiers or with bad times are refused before or beside it: those have subjects
        // or times the schema cannot judge).
        const schemaOnly = result.errors.every(
          (e) =>
            !["phone", "email", "national_id", "subjects", "amount", "incidentAt"].includes(
              e.path.split(".")[0] as string,
            ) || e.message.includes("format"),
        );
        if (schemaOnly) {
          const body = {
            caseId: row.case_id,
            subjects: [{ type: "device", hash: "0".repeat(64) }],
            category: row.category,
            incidentAt: row.incident_at,
            confirmedAt: row.confirmed_at,
            confirmation: row.confirmation,
            amount: { value: Number(row.amount), currency: row.currency },
            ...(row.note ? { note: row.note } : {}),
          };
          if (ReportBodySchema.safeParse(body).success) {
            disagreements.push(
              `row ${i + 1}: refused locally (${JSON.stringify(result.errors)}) but the Worker's schema accepts it`,
            );
          }
        }
        continue;
      }
      const parsed = ReportBodySchema.safeParse(result.body);
      if (!parsed.success) {
        disagreements.push(
          `row ${i + 1}: accepted locally but the Worker says ${JSON.stringify(parsed.error.issues)}`,
        );
      }
    }
    expect(disagreements).toEqual([]);
    expect(refused).toBeGreaterThan(40);
    expect(rows.length - refused).toBeGreaterThan(1_900);
  });
});
