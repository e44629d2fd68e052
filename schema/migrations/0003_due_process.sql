CREATE TABLE `events` (
	`seq` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`id` text NOT NULL,
	`platform_id` text NOT NULL,
	`type` text NOT NULL,
	`at` integer NOT NULL,
	`data` text NOT NULL
);
--> statement-breakpoint
CREATE UNIQUE INDEX `events_id_unique` ON `events` (`id`);--> statement-breakpoint
CREATE INDEX `events_platform_seq` ON `events` (`platform_id`,`seq`);--> statement-breakpoint
CREATE INDEX `events_at` ON `events` (`at`);--> statement-breakpoint
CREATE TABLE `webhook_deliveries` (
	`event_id` text PRIMARY KEY NOT NULL,
	`platform_id` text NOT NULL,
	`status` text NOT NULL,
	`attempts` integer DEFAULT 0 NOT NULL,
	`next_attempt_at` integer NOT NULL,
	`last_attempt_at` integer,
	`last_status` integer,
	`last_error` text,
	`delivered_at` integer,
	`created_at` integer NOT NULL
);
--> statement-breakpoint
CREATE INDEX `webhook_deliveries_due` ON `webhook_deliveries` (`status`,`next_attempt_at`);--> statement-breakpoint
CREATE INDEX `webhook_deliveries_platform` ON `webhook_deliveries` (`platform_id`,`created_at`);--> statement-breakpoint
CREATE TABLE `webhooks` (
	`platform_id` text PRIMARY KEY NOT NULL,
	`url` text NOT NULL,
	`events` text NOT NULL,
	`secret_nonce` text NOT NULL,
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL
);
--> statement-breakpoint
DROP INDEX `reports_platform_id`;--> statement-breakpoint
DROP INDEX `reports_platform_status_id`;--> statement-breakpoint
DROP INDEX `reports_status_id`;--> statement-breakpoint
ALTER TABLE `reports` ADD `dispute_id` text;--> statement-breakpoint
CREATE INDEX `reports_platform_created` ON `reports` (`platform_id`,`created_at`,`id`);--> statement-breakpoint
CREATE INDEX `reports_platform_status_created` ON `reports` (`platform_id`,`status`,`created_at`,`id`);--> statement-breakpoint
CREATE INDEX `reports_status_created` ON `reports` (`status`,`created_at`,`id`);--> statement-breakpoint
CREATE INDEX `reports_created` ON `reports` (`created_at`,`id`);--> statement-breakpoint
DROP INDEX `disputes_one_undecided`;--> statement-breakpoint
ALTER TABLE `disputes` ADD `report_platform_id` text DEFAULT '' NOT NULL;--> statement-breakpoint
ALTER TABLE `disputes` ADD `escalated_at` integer;--> statement-breakpoint
ALTER TABLE `disputes` ADD `escalation_reason` text;--> statement-breakpoint
CREATE INDEX `disputes_opened_by_id` ON `disputes` (`opened_by`,`id`);--> statement-breakpoint
CREATE INDEX `disputes_reporter_id` ON `disputes` (`report_platform_id`,`id`);--> statement-breakpoint
CREATE UNIQUE INDEX `disputes_one_undecided` ON `disputes` (`report_id`) WHERE status IN ('open', 'overdue', 'escalated');--> statement-breakpoint
ALTER TABLE `usage_daily` ADD `subject_access` integer DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE `report_subjects` ADD `platform_id` text DEFAULT '' NOT NULL;--> statement-breakpoint
ALTER TABLE `report_subjects` ADD `incident_at` integer DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE `report_subjects` ADD `counted` integer DEFAULT 1 NOT NULL;--> statement-breakpoint
ALTER TABLE `report_subjects` ADD `blocks_refiling` integer DEFAULT 0 NOT NULL;--> statement-breakpoint
CREATE INDEX `report_subjects_counted` ON `report_subjects` (`subject_key`,`platform_id`,`incident_at`,`report_id`) WHERE counted = 1;--> statement-breakpoint
CREATE INDEX `report_subjects_closed_by_process` ON `report_subjects` (`subject_key`,`platform_id`,`incident_at`) WHERE blocks_refiling = 1;--> statement-breakpoint
-- Backfill the copies this migration introduces (hand-written; drizzle-kit generates the rest).
UPDATE `report_subjects` SET
  `platform_id` = (SELECT r.platform_id FROM reports r WHERE r.id = report_subjects.report_id),
  `incident_at` = (SELECT r.incident_at FROM reports r WHERE r.id = report_subjects.report_id),
  `counted` = (SELECT r.status IN ('active', 'disputed') FROM reports r WHERE r.id = report_subjects.report_id);--> statement-breakpoint
UPDATE `disputes` SET `report_platform_id` = (SELECT r.platform_id FROM reports r WHERE r.id = disputes.report_id);--> statement-breakpoint
UPDATE `reports` SET `dispute_id` = (SELECT d.id FROM disputes d WHERE d.report_id = reports.id ORDER BY d.opened_at DESC, d.id DESC LIMIT 1);
--> statement-breakpoint
UPDATE `report_subjects` SET `blocks_refiling` = 1 WHERE `report_id` IN (SELECT r.id FROM reports r
  WHERE r.status = 'voided' OR (r.status = 'retracted'
    AND EXISTS (SELECT 1 FROM disputes d WHERE d.report_id = r.id AND d.status IN ('withdrawn', 'report_voided'))));
