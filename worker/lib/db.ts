import { drizzle } from "drizzle-orm/d1";

/**
 * What the ledger's queries need of D1: the database binding or one of its sessions (both have
 * `prepare` and `batch`). Every query of a request goes through the request's session.
 */
export type Db = D1Database | D1DatabaseSession;

/** drizzle over a database or a session: its D1 driver only ever calls `prepare` and `batch`. */
export function orm(db: Db) {
  return drizzle(db as D1Database);
}

/**
 * Request and response header carrying a D1 Sessions bookmark. A client that sends back the
 * bookmark of its last answer reads at least what that answer saw, whichever replica serves it
 * (read-your-writes under D1 read replication).
 */
export const BOOKMARK_HEADER = "pixiu-bookmark";

/** A D1 bookmark: three groups of 8 hex digits and one of 32 (as D1 and workerd issue them). */
const BOOKMARK = /^[0-9a-f]{8}-[0-9a-f]{8}-[0-9a-f]{8}-[0-9a-f]{32}$/;

export function isBookmark(value: string): boolean {
  return BOOKMARK.test(value);
}

/**
 * POST routes that only read the ledger database: the look-ups. Their log goes to the log store
 * (`worker/log`), so the ledger sees one read statement, which a read replica may serve.
 */
export const READ_ONLY_POSTS: ReadonlySet<string> = new Set([
  "/v1/scores/query",
  "/v1/scores/batch",
  "/v1/subject-access",
  "/v1/evidence/match",
]);

/**
 * Opens the request's D1 session (the Sessions API). Writes (anything but GET, HEAD and the
 * read-only POSTs) start at the primary ("first-primary"), which is at or after any bookmark, so
 * a precondition never reads a lagging copy. Reads start at the caller's bookmark when it sent
 * one (read-your-writes) and otherwise anywhere ("first-unconstrained": the nearest replica may
 * answer). A malformed bookmark is ignored here and refused by `rejectBadBookmark` once the
 * request is authenticated. Without read replication the database is its own only copy and
 * every constraint behaves alike.
 */
export function openSession(
  db: D1Database,
  method: string,
  path: string,
  bookmark: string | undefined,
): D1DatabaseSession {
  const read = method === "GET" || method === "HEAD" || (method === "POST" && READ_ONLY_POSTS.has(path));
  if (!read) {
    return db.withSession("first-primary");
  }
  return db.withSession(bookmark !== undefined && isBookmark(bookmark) ? bookmark : "first-unconstrained");
}

/**
 * The sharding seam: the database that holds these subject keys' records. One database today.
 * Every lookup by subject key goes through it (the score query, subject access, opening a
 * dispute); splitting the ledger by subject-key prefix over several D1 databases changes this
 * function and makes those callers fan out over the shards the keys touch
 * (docs/architecture.md, "Capacity").
 */
export function ledgerFor(db: Db, _subjectKeys: readonly string[]): Db {
  return db;
}
