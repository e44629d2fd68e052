CREATE TABLE `audit_log` (
	`seq` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`at` integer NOT NULL,
	`actor` text NOT NULL,
	`action` text NOT NULL,
	`target` text,
	`request_id` text NOT NULL,
	`outcome` text NOT NULL,
	`details` text,
	`prev_hash` text,
	`hash` text
);
--> statement-breakpoint
CREATE INDEX `audit_actor_seq` ON `audit_log` (`actor`,`seq`);--> statement-breakpoint
CREATE INDEX `audit_action_seq` ON `audit_log` (`action`,`seq`);--> statement-breakpoint
CREATE INDEX `audit_at` ON `audit_log` (`at`);--> statement-breakpoint
CREATE TABLE `inquiries` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`subject_key` text NOT NULL,
	`platform_id` text NOT NULL,
	`purpose` text NOT NULL,
	`at` integer NOT NULL,
	`request_id` text NOT NULL
);
--> statement-breakpoint
CREATE INDEX `inquiries_subject_at` ON `inquiries` (`subject_key`,`at`);--> statement-breakpoint
CREATE INDEX `inquiries_at` ON `inquiries` (`at`);--> statement-breakpoint
CREATE TABLE `token_uses` (
	`key` text PRIMARY KEY NOT NULL,
	`expires_at` integer NOT NULL
);
--> statement-breakpoint
CREATE INDEX `token_uses_expires` ON `token_uses` (`expires_at`);--> statement-breakpoint
CREATE TABLE `platforms` (
	`id` text PRIMARY KEY NOT NULL,
	`name` text NOT NULL,
	`status` text NOT NULL,
	`scopes` text NOT NULL,
	`jwks` text NOT NULL,
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL
);
--> statement-breakpoint
CREATE TABLE `report_subjects` (
	`subject_key` text NOT NULL,
	`report_id` text NOT NULL,
	`subject_type` text NOT NULL
);
--> statement-breakpoint
CREATE UNIQUE INDEX `report_subjects_key_report` ON `report_subjects` (`subject_key`,`report_id`);--> statement-breakpoint
CREATE INDEX `report_subjects_report` ON `report_subjects` (`report_id`);--> statement-breakpoint
CREATE TABLE `reports` (
	`id` text PRIMARY KEY NOT NULL,
	`platform_id` text NOT NULL,
	`case_id` text NOT NULL,
	`status` text NOT NULL,
	`category` text NOT NULL,
	`confirmation` text NOT NULL,
	`incident_at` integer NOT NULL,
	`confirmed_at` integer NOT NULL,
	`amount_value` integer NOT NULL,
	`amount_currency` text NOT NULL,
	`evidence` text NOT NULL,
	`note` text,
	`subject_notified_at` integer,
	`content_hash` text NOT NULL,
	`status_reason` text,
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL
);
--> statement-breakpoint
CREATE UNIQUE INDEX `reports_platform_case` ON `reports` (`platform_id`,`case_id`);--> statement-breakpoint
CREATE INDEX `reports_platform_id` ON `reports` (`platform_id`,`id`);--> statement-breakpoint
CREATE INDEX `reports_platform_status_id` ON `reports` (`platform_id`,`status`,`id`);--> statement-breakpoint
CREATE INDEX `reports_status_id` ON `reports` (`status`,`id`);--> statement-breakpoint
CREATE INDEX `reports_incident_at` ON `reports` (`incident_at`);