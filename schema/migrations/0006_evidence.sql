CREATE TABLE `fingerprint_chunks` (
	`chunk` integer NOT NULL,
	`value` integer NOT NULL,
	`fingerprint_id` integer NOT NULL,
	PRIMARY KEY(`chunk`, `value`, `fingerprint_id`)
);
--> statement-breakpoint
CREATE TABLE `fingerprints` (
	`id` integer PRIMARY KEY NOT NULL,
	`report_id` text NOT NULL,
	`platform_id` text NOT NULL,
	`hash` text NOT NULL,
	`quality` integer NOT NULL,
	`category` text NOT NULL,
	`incident_at` integer NOT NULL,
	`counted` integer DEFAULT 1 NOT NULL
);
--> statement-breakpoint
CREATE UNIQUE INDEX `fingerprints_report_hash` ON `fingerprints` (`report_id`,`hash`);