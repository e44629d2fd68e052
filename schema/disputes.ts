import { sql } from "drizzle-orm";
import { index, sqliteTable, text, uniqueIndex } from "drizzle-orm/sqlite-core";
import { epochMs, timestamps } from "./columns";

export const disputeStatuses = [
  "open",
  "overdue",
  "upheld",
  "withdrawn",
  "report_upheld",
  "report_voided",
] as const;
export type DisputeStatus = (typeof disputeStatuses)[number];
/** Statuses in which a dispute is still undecided. */
export const UNDECIDED: readonly DisputeStatus[] = ["open", "overdue"];

/** A buyer's dispute of one record, opened through a member platform. */
export const disputes = sqliteTable(
  "disputes",
  {
    id: text("id").primaryKey(),
    reportId: text("report_id").notNull(),
    /** The platform the buyer disputed through (shown to admins only). */
    openedBy: text("opened_by").notNull(),
    status: text("status", { enum: disputeStatuses }).notNull(),
    /** The buyer's own statement. */
    reason: text("reason").notNull(),
    openedAt: epochMs("opened_at").notNull(),
    deadlineAt: epochMs("deadline_at").notNull(),
    /** The reporter's response or the admin's resolution note. */
    responseNote: text("response_note"),
    decidedBy: text("decided_by"),
    decidedAt: epochMs("decided_at"),
    ...timestamps,
  },
  (t) => [
    /** One undecided dispute per record at a time, even under concurrent requests. */
    uniqueIndex("disputes_one_undecided").on(t.reportId).where(sql`status IN ('open', 'overdue')`),
    index("disputes_report").on(t.reportId, t.openedAt),
    index("disputes_status_id").on(t.status, t.id),
    index("disputes_deadline").on(t.status, t.deadlineAt),
  ],
);
