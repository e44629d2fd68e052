CREATE TABLE `log_signed_heads` (
	`shard` integer NOT NULL,
	`seq` integer NOT NULL,
	`checkpoint_id` integer NOT NULL,
	PRIMARY KEY(`shard`, `seq`)
);
