import { drizzle } from "drizzle-orm/d1";
import { ProblemError } from "./problem";

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

/** D1 bookmarks are short printable tokens (hex groups joined by dashes). */
const BOOKMARK = /^[0-9A-Za-z-]{1,256}$/;

/**
 * Opens the request's D1 session (the Sessions API). Reads (GET, HEAD) with no bookmark may be
 * served by the nearest replica ("first-unconstrained"); writes start at the primary
 * ("first-primary"), so a precondition never reads a lagging copy; a bookmark from an earlier
 * answer pins the session at or after that point. Without replication enabled the database is
 * its own only copy and every constraint behaves the same.
 */
export function openSession(db: D1Database, method: string, bookmark: string | undefined): D1DatabaseSession {
  if (bookmark !== undefined) {
    if (!BOOKMARK.test(bookmark)) {
      throw new ProblemError("validation", `${BOOKMARK_HEADER} is not a D1 bookmark`, {
        errors: [{ path: `header/${BOOKMARK_HEADER}`, message: "not a D1 bookmark" }],
      });
    }
    return db.withSession(bookmark);
  }
  const read = method === "GET" || method === "HEAD";
  return db.withSession(read ? "first-unconstrained" : "first-primary");
}

/**
 * The sharding seam: the database that holds a subject key's records. One database today;
 * splitting the ledger by subject-key prefix over several D1 databases changes this function
 * and the few multi-key reads that call it (docs/architecture.md, "Capacity").
 */
export function ledgerFor(db: Db, _subjectKeys: readonly string[]): Db {
  return db;
}
