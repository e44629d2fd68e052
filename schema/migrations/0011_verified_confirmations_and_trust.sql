CREATE TABLE `platform_trust` (
	`platform_id` text PRIMARY KEY NOT NULL,
	`trust` real NOT NULL,
	`probation` integer NOT NULL,
	`reports` integer NOT NULL,
	`corroborated` integer NOT NULL,
	`voided` integer NOT NULL,
	`withdrawn` integer NOT NULL,
	`retracted` integer NOT NULL,
	`computed_at` integer NOT NULL
);
--> statement-breakpoint
ALTER TABLE `reports` ADD `confirmation_ref` text;--> statement-breakpoint
ALTER TABLE `reports` ADD `confirmation_verified_at` integer;--> statement-breakpoint
ALTER TABLE `reports` ADD `confirmation_verified_by` text;