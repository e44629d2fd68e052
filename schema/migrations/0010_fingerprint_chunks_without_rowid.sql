-- fingerprint_chunks becomes a WITHOUT ROWID table: its rows are their primary key, so one B-tree
-- instead of a rowid table plus the primary key's index (npm run bench:evidence: 244 against 593
-- bytes per fingerprint, half the rows written per fingerprint, the same rows read). drizzle-kit
-- cannot express WITHOUT ROWID (schema/evidence.ts), so this migration is hand-written.
CREATE TABLE `fingerprint_chunks_without_rowid` (
	`chunk` integer NOT NULL,
	`value` integer NOT NULL,
	`fingerprint_id` integer NOT NULL,
	PRIMARY KEY(`chunk`, `value`, `fingerprint_id`)
) WITHOUT ROWID;
--> statement-breakpoint
INSERT INTO `fingerprint_chunks_without_rowid` (`chunk`, `value`, `fingerprint_id`)
	SELECT `chunk`, `value`, `fingerprint_id` FROM `fingerprint_chunks` ORDER BY `chunk`, `value`, `fingerprint_id`;
--> statement-breakpoint
DROP TABLE `fingerprint_chunks`;
--> statement-breakpoint
ALTER TABLE `fingerprint_chunks_without_rowid` RENAME TO `fingerprint_chunks`;
