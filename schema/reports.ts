import { index, integer, sqliteTable, text, uniqueIndex } from "drizzle-orm/sqlite-core";
import { epochMs, timestamps } from "./columns";

export const reportStatuses = ["active", "disputed", "retracted", "voided", "expired"] as const;
export type ReportStatus = (typeof reportStatuses)[number];

/** One confirmed case, as reported by one platform. Subject keys live in `report_subjects`. */
export const reports = sqliteTable(
  "reports",
  {
    id: text("id").primaryKey(),
    platformId: text("platform_id").notNull(),
    caseId: text("case_id").notNull(),
    status: text("status", { enum: reportStatuses }).notNull(),
    category: text("category").notNull(),
    confirmation: text("confirmation").notNull(),
    incidentAt: epochMs("incident_at").notNull(),
    confirmedAt: epochMs("confirmed_at").notNull(),
    amountValue: integer("amount_value").notNull(),
    amountCurrency: text("amount_currency").notNull(),
    /** JSON array of `{kind, value}`. */
    evidence: text("evidence", { mode: "json" }).$type<{ kind: string; value: string }[]>().notNull(),
    note: text("note"),
    subjectNotifiedAt: epochMs("subject_notified_at"),
    /** SHA-256 of the canonical content: decides idempotent replay (same) from conflict (different). */
    contentHash: text("content_hash").notNull(),
    /** Why the report left `active` (retraction or void reason). */
    statusReason: text("status_reason"),
    /**
     * The open dispute's deadline, copied here while a dispute is open so the score query
     * needs no join; null when no dispute is open.
     */
    disputeDeadlineAt: epochMs("dispute_deadline_at"),
    /** The buyer's latest statement from a dispute; it stays whatever the outcome. */
    statement: text("statement"),
    ...timestamps,
  },
  (t) => [
    /** Idempotency: a case id is unique per reporting platform. */
    uniqueIndex("reports_platform_case").on(t.platformId, t.caseId),
    /** A platform's own list, newest first (ids are ULIDs, so id order is creation order). */
    index("reports_platform_id").on(t.platformId, t.id),
    index("reports_platform_status_id").on(t.platformId, t.status, t.id),
    /** Admin list by status; retention sweeps by incident time. */
    index("reports_status_id").on(t.status, t.id),
    index("reports_incident_at").on(t.incidentAt),
  ],
);

/**
 * Which subject keys a report names. The primary key (subject_key, report_id) is the index the
 * score query walks: it reads only the buyer's own rows, whatever the table size.
 */
export const reportSubjects = sqliteTable(
  "report_subjects",
  {
    /** HMAC-SHA256(ledger pepper, type + ":" + platform hash), lower-case hex. */
    subjectKey: text("subject_key").notNull(),
    reportId: text("report_id").notNull(),
    subjectType: text("subject_type").notNull(),
  },
  (t) => [
    uniqueIndex("report_subjects_key_report").on(t.subjectKey, t.reportId),
    index("report_subjects_report").on(t.reportId),
  ],
);
