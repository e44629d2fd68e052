import { sql } from "drizzle-orm";
import { index, sqliteTable, text, uniqueIndex } from "drizzle-orm/sqlite-core";
import { epochMs, timestamps } from "./columns";

export const disputeStatuses = [
  "open",
  "overdue",
  "escalated",
  "upheld",
  "withdrawn",
  "report_upheld",
  "report_voided",
] as const;
export type DisputeStatus = (typeof disputeStatuses)[number];
/** Statuses in which a dispute is still undecided. */
export const UNDECIDED: readonly DisputeStatus[] = ["open", "overdue", "escalated"];

/** A buyer's dispute of one record, opened through a member platform. */
export const disputes = sqliteTable(
  "disputes",
  {
    id: text("id").primaryKey(),
    reportId: text("report_id").notNull(),
    /** The platform the buyer disputed through (shown to admins only). */
    openedBy: text("opened_by").notNull(),
    /** The reporting platform, copied here so a reporter's list of disputes is one index walk. */
    reportPlatformId: text("report_platform_id").notNull().default(""),
    status: text("status", { enum: disputeStatuses }).notNull(),
    /** The buyer's own statement. */
    reason: text("reason").notNull(),
    openedAt: epochMs("opened_at").notNull(),
    deadlineAt: epochMs("deadline_at").notNull(),
    /** The reporter's response or the admin's resolution note. */
    responseNote: text("response_note"),
    decidedBy: text("decided_by"),
    decidedAt: epochMs("decided_at"),
    /** When the opening platform escalated an upheld dispute to the admins, and why. */
    escalatedAt: epochMs("escalated_at"),
    escalationReason: text("escalation_reason"),
    ...timestamps,
  },
  (t) => [
    /** One undecided dispute per record at a time, even under concurrent requests. */
    uniqueIndex("disputes_one_undecided")
      .on(t.reportId)
      .where(sql`status IN ('open', 'overdue', 'escalated')`),
    index("disputes_report").on(t.reportId, t.openedAt),
    index("disputes_status_id").on(t.status, t.id),
    index("disputes_deadline").on(t.status, t.deadlineAt),
    /** `GET /v1/disputes?role=opener|reporter`: the caller's disputes, newest first. */
    index("disputes_opened_by_id").on(t.openedBy, t.id),
    index("disputes_reporter_id").on(t.reportPlatformId, t.id),
  ],
);
