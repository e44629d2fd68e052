import { index, integer, primaryKey, sqliteTable, text, uniqueIndex } from "drizzle-orm/sqlite-core";
import { epochMs } from "./columns";

/**
 * The ledger chain (format 1, docs/audit.md): the closed legacy prefix of the audit log. New
 * entries go through `audit_outbox` to the log shards; this table keeps verifying as it is and
 * stays the leaf −1 of every tree checkpoint. `seq` is assigned by SQLite (AUTOINCREMENT never reuses a value),
 * so entries are totally ordered; `hash` chains each entry to the previous one once sealed.
 */
export const auditLog = sqliteTable(
  "audit_log",
  {
    seq: integer("seq").primaryKey({ autoIncrement: true }),
    at: epochMs("at").notNull(),
    actor: text("actor").notNull(),
    action: text("action").notNull(),
    target: text("target"),
    requestId: text("request_id").notNull(),
    outcome: text("outcome").notNull(),
    /** JSON object: purpose, subject keys, reasons; never a raw identifier. */
    details: text("details", { mode: "json" }).$type<Record<string, unknown>>(),
    prevHash: text("prev_hash"),
    hash: text("hash"),
  },
  (t) => [
    index("audit_actor_seq").on(t.actor, t.seq),
    index("audit_action_seq").on(t.action, t.seq),
    index("audit_at").on(t.at),
    index("audit_target_seq").on(t.target, t.seq),
    // The admin list merges this chain with the log shards newest first by (at, seq).
    index("audit_actor_at").on(t.actor, t.at),
    index("audit_action_at").on(t.action, t.at),
    index("audit_target_at").on(t.target, t.at),
  ],
);

/**
 * Audit entries waiting for the log store: every write inserts its entry here, in the same D1
 * batch as the change it records (so the two commit or fail together), and `drainOutbox`
 * (worker/log/outbox.ts) appends each row to its actor's log shard with append id
 * `outbox:<id>`, then deletes it. The columns of `audit_log` without the chain's: the shard
 * chains the entry as it writes it.
 */
export const auditOutbox = sqliteTable("audit_outbox", {
  id: integer("id").primaryKey({ autoIncrement: true }),
  at: epochMs("at").notNull(),
  actor: text("actor").notNull(),
  action: text("action").notNull(),
  target: text("target"),
  requestId: text("request_id").notNull(),
  outcome: text("outcome").notNull(),
  /** JSON object: purpose, reasons; `subjectKeys` moves beside the entry in the shard (erasable). */
  details: text("details", { mode: "json" }).$type<Record<string, unknown>>(),
});

/**
 * Signed checkpoints of the chain head: (seq, hash, at) signed with the ledger's audit key,
 * whose public half is published at /.well-known/pixiu-audit-keys.json.
 */
export const auditCheckpoints = sqliteTable("audit_checkpoints", {
  seq: integer("seq").primaryKey(),
  hash: text("hash").notNull(),
  at: epochMs("at").notNull(),
  kid: text("kid").notNull(),
  /** base64url Ed25519 signature over `pixiu-audit-checkpoint/1\n<seq>\n<hash>\n<at>`. */
  signature: text("signature").notNull(),
});

/**
 * Signed tree checkpoints (format 2, docs/audit.md): one signature over the head of the ledger
 * chain above (leaf shard −1) and of every log shard, as the Merkle root of their heads.
 */
export const logCheckpoints = sqliteTable(
  "log_checkpoints",
  {
    id: integer("id").primaryKey({ autoIncrement: true }),
    at: epochMs("at").notNull(),
    /** `treeHead(heads)`, hex. */
    root: text("root").notNull(),
    /** JSON array of `{shard, seq, hash}`, the ledger chain as shard −1, in shard order. */
    heads: text("heads").notNull(),
    kid: text("kid").notNull(),
    /** base64url Ed25519 signature over `pixiu-log/2-checkpoint\n<leaves>\n<root>\n<at>`. */
    signature: text("signature").notNull(),
  },
  // The archive looks checkpoints up by when they were signed (one a minute: millions in years).
  (t) => [
    index("log_checkpoints_at").on(t.at),
    // Heads only grow, so no two checkpoints sign the same root: a copied row is refused.
    uniqueIndex("log_checkpoints_root").on(t.root),
  ],
);

/**
 * Which tree checkpoint signed each head of a log shard still to be archived: written in the same
 * batch as the checkpoint (one row per shard whose head moved), so the archive finds the signer of
 * a segment's end by primary key, however late its entries were drained (their `at` says nothing
 * about when they were chained or signed). A note is a pointer only: the archive and segment
 * verify read the checkpoint itself and check its signature. Rows at or below a shard's archived
 * head are deleted as it archives, so the table holds the unarchived heads only.
 */
export const logSignedHeads = sqliteTable(
  "log_signed_heads",
  {
    shard: integer("shard").notNull(),
    seq: integer("seq").notNull(),
    /** `log_checkpoints.id` of the first checkpoint that signed this head. */
    checkpointId: integer("checkpoint_id").notNull(),
  },
  (t) => [primaryKey({ columns: [t.shard, t.seq] })],
);

/**
 * Per platform and UTC day: score queries, subject keys looked up, and reports filed. Kept by
 * an upsert inside the same batch as each query or write (no extra round trip); feeds the
 * admin stats and the enumeration signal (many look-ups, few reports).
 */
export const usageDaily = sqliteTable(
  "usage_daily",
  {
    day: text("day").notNull(),
    platformId: text("platform_id").notNull(),
    queries: integer("queries").notNull().default(0),
    subjects: integer("subjects").notNull().default(0),
    reports: integer("reports").notNull().default(0),
    /** Subject-access requests answered (every page counts). */
    subjectAccess: integer("subject_access").notNull().default(0),
  },
  (t) => [primaryKey({ columns: [t.day, t.platformId] })],
);

/**
 * Who looked up which subject key, when and why: the inquiry log a buyer can be shown.
 * Written in the same batch as the score query it records.
 */
export const inquiries = sqliteTable(
  "inquiries",
  {
    id: integer("id").primaryKey({ autoIncrement: true }),
    subjectKey: text("subject_key").notNull(),
    platformId: text("platform_id").notNull(),
    purpose: text("purpose").notNull(),
    at: epochMs("at").notNull(),
    requestId: text("request_id").notNull(),
  },
  (t) => [index("inquiries_subject_at").on(t.subjectKey, t.at), index("inquiries_at").on(t.at)],
);

/** Token ids already used on a state-changing request, kept until the token expires. */
export const tokenUses = sqliteTable(
  "token_uses",
  {
    /** `iss` + " " + `jti`: ids are unique per issuer only. */
    key: text("key").primaryKey(),
    expiresAt: epochMs("expires_at").notNull(),
  },
  (t) => [index("token_uses_expires").on(t.expiresAt)],
);
