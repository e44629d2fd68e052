import { monotonicFactory } from "ulid";

const ulid = monotonicFactory();

export type IdPrefix = "rpt" | "dsp" | "req" | "evt";

/**
 * A readable, time-ordered id: `newId("rpt")` → `rpt_01JD3X…`. ULIDs sort by creation time,
 * so ordering by id is ordering by age, which cursor pagination relies on.
 */
export function newId(prefix: IdPrefix): string {
  return `${prefix}_${ulid()}`;
}
