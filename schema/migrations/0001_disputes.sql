CREATE TABLE `disputes` (
	`id` text PRIMARY KEY NOT NULL,
	`report_id` text NOT NULL,
	`opened_by` text NOT NULL,
	`status` text NOT NULL,
	`reason` text NOT NULL,
	`opened_at` integer NOT NULL,
	`deadline_at` integer NOT NULL,
	`response_note` text,
	`decided_by` text,
	`decided_at` integer,
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL
);
--> statement-breakpoint
CREATE UNIQUE INDEX `disputes_one_undecided` ON `disputes` (`report_id`) WHERE status IN ('open', 'overdue');--> statement-breakpoint
CREATE INDEX `disputes_report` ON `disputes` (`report_id`,`opened_at`);--> statement-breakpoint
CREATE INDEX `disputes_status_id` ON `disputes` (`status`,`id`);--> statement-breakpoint
CREATE INDEX `disputes_deadline` ON `disputes` (`status`,`deadline_at`);--> statement-breakpoint
ALTER TABLE `reports` ADD `dispute_deadline_at` integer;--> statement-breakpoint
ALTER TABLE `reports` ADD `statement` text;