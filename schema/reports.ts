import { sql } from "drizzle-orm";
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
    /** The open or latest dispute of the report, or null. */
    disputeId: text("dispute_id"),
    /**
     * The police report's or court ruling's reference (case or ruling number), given with a
     * `police_report` or `court_ruling` confirmation so the consortium can verify it.
     */
    confirmationRef: text("confirmation_ref"),
    /**
     * When an admin verified the strong confirmation (and who): only then does it weigh as one and
     * lift its platform's cap (docs/scoring.md §2); null until then.
     */
    confirmationVerifiedAt: epochMs("confirmation_verified_at"),
    confirmationVerifiedBy: text("confirmation_verified_by"),
    /**
     * Set when the report was filed within the feedback window after its reporter's own look-up
     * of one of its subject keys answered `review` or worse (docs/scoring.md §3c): the time of
     * that look-up. Until an admin clears it the record adds no consensus weight.
     */
    afterLookupAt: epochMs("after_lookup_at"),
    /** The band that look-up answered (`medium`, `high` or `critical`). */
    afterLookupBand: text("after_lookup_band"),
    /** When an admin cleared the flag (and who): the record then counts as any other. */
    afterLookupClearedAt: epochMs("after_lookup_cleared_at"),
    afterLookupClearedBy: text("after_lookup_cleared_by"),
    ...timestamps,
  },
  (t) => [
    /** Idempotency: a case id is unique per reporting platform. */
    uniqueIndex("reports_platform_case").on(t.platformId, t.caseId),
    /**
     * A platform's own list, newest first. Report ids are random (a score answer's refs must not
     * tell which records came from one upload), so lists order by (created_at, id).
     */
    index("reports_platform_created").on(t.platformId, t.createdAt, t.id),
    index("reports_platform_status_created").on(t.platformId, t.status, t.createdAt, t.id),
    /** Admin list by status; retention sweeps by incident time. */
    index("reports_status_created").on(t.status, t.createdAt, t.id),
    index("reports_created").on(t.createdAt, t.id),
    index("reports_incident_at").on(t.incidentAt),
    /** The admins' list of flagged reports still waiting to be cleared, newest first. */
    index("reports_after_lookup")
      .on(t.afterLookupAt, t.id)
      .where(sql`after_lookup_at IS NOT NULL AND after_lookup_cleared_at IS NULL`),
    /** The admins' list of flagged reports an admin cleared, most recently cleared first. */
    index("reports_after_lookup_cleared")
      .on(t.afterLookupClearedAt, t.id)
      .where(sql`after_lookup_cleared_at IS NOT NULL`),
  ],
);

/**
 * Which subject keys a report names. The report's platform, incident time and whether it counts
 * are copied onto each link, so the score query walks one partial index per (key, platform),
 * newest first, and stops after the few records the model can use: rows read follow the
 * buyer's own records, capped per platform, whatever the table size and however many records
 * one member piles on one buyer.
 */
export const reportSubjects = sqliteTable(
  "report_subjects",
  {
    /** HMAC-SHA256(ledger pepper, type + ":" + platform hash), lower-case hex. */
    subjectKey: text("subject_key").notNull(),
    reportId: text("report_id").notNull(),
    subjectType: text("subject_type").notNull(),
    platformId: text("platform_id").notNull().default(""),
    incidentAt: epochMs("incident_at").notNull().default(0),
    /** 1 while the report is `active` or `disputed` (it may count), 0 once closed. */
    counted: integer("counted").notNull().default(1),
    /**
     * 1 once the report was closed through due process (withdrawn or voided under a dispute, or
     * voided by an admin): its reporter may not file the same incident about this subject again.
     */
    blocksRefiling: integer("blocks_refiling").notNull().default(0),
  },
  (t) => [
    uniqueIndex("report_subjects_key_report").on(t.subjectKey, t.reportId),
    index("report_subjects_report").on(t.reportId),
    index("report_subjects_counted")
      .on(t.subjectKey, t.platformId, t.incidentAt, t.reportId)
      .where(sql`counted = 1`),
    /**
     * A key's links of closed reports: the after-look-up check (docs/scoring.md §3c) reads the
     * records a past look-up saw, and those closed since are among them; with this index it reads
     * the buyer's closed links, never the counted ones (bounded by `report_subjects_counted`).
     */
    index("report_subjects_closed").on(t.subjectKey, t.reportId).where(sql`counted = 0`),
    index("report_subjects_closed_by_process")
      .on(t.subjectKey, t.platformId, t.incidentAt)
      .where(sql`blocks_refiling = 1`),
  ],
);
