CREATE TABLE `collusion_sets` (
	`members` text PRIMARY KEY NOT NULL,
	`observed` integer NOT NULL,
	`expected` real NOT NULL,
	`p_value` real NOT NULL,
	`computed_at` integer NOT NULL
);
--> statement-breakpoint
CREATE TABLE `platform_groups` (
	`platform_id` text PRIMARY KEY NOT NULL,
	`group_id` text NOT NULL,
	`computed_at` integer NOT NULL
);
--> statement-breakpoint
ALTER TABLE `reports` ADD `after_lookup_at` integer;--> statement-breakpoint
ALTER TABLE `reports` ADD `after_lookup_band` text;--> statement-breakpoint
ALTER TABLE `reports` ADD `after_lookup_cleared_at` integer;--> statement-breakpoint
ALTER TABLE `reports` ADD `after_lookup_cleared_by` text;--> statement-breakpoint
CREATE INDEX `reports_after_lookup` ON `reports` (`after_lookup_at`,`id`) WHERE after_lookup_at IS NOT NULL AND after_lookup_cleared_at IS NULL;