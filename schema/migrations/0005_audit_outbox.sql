CREATE TABLE `audit_outbox` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`at` integer NOT NULL,
	`actor` text NOT NULL,
	`action` text NOT NULL,
	`target` text,
	`request_id` text NOT NULL,
	`outcome` text NOT NULL,
	`details` text
);
