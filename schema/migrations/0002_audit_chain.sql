CREATE TABLE `audit_checkpoints` (
	`seq` integer PRIMARY KEY NOT NULL,
	`hash` text NOT NULL,
	`at` integer NOT NULL,
	`kid` text NOT NULL,
	`signature` text NOT NULL
);
--> statement-breakpoint
CREATE TABLE `usage_daily` (
	`day` text NOT NULL,
	`platform_id` text NOT NULL,
	`queries` integer DEFAULT 0 NOT NULL,
	`subjects` integer DEFAULT 0 NOT NULL,
	`reports` integer DEFAULT 0 NOT NULL,
	PRIMARY KEY(`day`, `platform_id`)
);
--> statement-breakpoint
CREATE INDEX `audit_target_seq` ON `audit_log` (`target`,`seq`);