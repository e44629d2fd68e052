ALTER TABLE `reports` ADD `confirmation_ref` text;--> statement-breakpoint
ALTER TABLE `reports` ADD `confirmation_verified_at` integer;--> statement-breakpoint
ALTER TABLE `reports` ADD `confirmation_verified_by` text;