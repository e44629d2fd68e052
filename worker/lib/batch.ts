import { SQL, sql } from "drizzle-orm";
import { SQLiteAsyncDialect } from "drizzle-orm/sqlite-core";
import type { Db } from "./db";

/**
 * A statement for a D1 batch: a drizzle `sql` template or a drizzle query builder.
 *
 * drizzle's own `db.batch()` cannot carry a raw `sql` query with bound parameters (its
 * SQLiteRaw has no prepared statement to bind), and the set-based writes here are raw SQL
 * over `json_each`, so statements are compiled by drizzle and batched through D1 directly.
 */
export type Statement = SQL | { toSQL(): { sql: string; params: unknown[] } };

const dialect = new SQLiteAsyncDialect();

export function prepare(d1: Db, statement: Statement): D1PreparedStatement {
  const query = statement instanceof SQL ? dialect.sqlToQuery(statement) : statement.toSQL();
  return d1.prepare(query.sql).bind(...query.params);
}

/** Runs statements as one D1 batch: one round trip, one transaction, all or nothing. */
export function batch(d1: Db, statements: readonly Statement[]): Promise<D1Result[]> {
  return d1.batch(statements.map((s) => prepare(d1, s)));
}

/** Statements by name for one batch: a statement, or a run of them (in order). */
export type NamedStatements = Record<string, Statement | readonly Statement[]>;

/** A named batch's results, by the same names: one result per statement, a list per run. */
export type NamedResults<T extends NamedStatements> = {
  [K in keyof T]: T[K] extends readonly Statement[] ? D1Result[] : D1Result;
};

/** The statements of a named batch in order, and a way to give its results their names back. */
export function flattenNamed<T extends NamedStatements>(named: T) {
  const statements: Statement[] = [];
  const spans: [keyof T, number, number | null][] = [];
  for (const [name, value] of Object.entries(named) as [keyof T, Statement | readonly Statement[]][]) {
    if (Array.isArray(value)) {
      spans.push([name, statements.length, value.length]);
      statements.push(...(value as readonly Statement[]));
    } else {
      spans.push([name, statements.length, null]);
      statements.push(value as Statement);
    }
  }
  const name = (results: readonly D1Result[]): NamedResults<T> => {
    const out: Record<keyof T, D1Result | D1Result[]> = {} as Record<keyof T, D1Result | D1Result[]>;
    for (const [key, start, length] of spans) {
      out[key] = length === null ? (results[start] as D1Result) : results.slice(start, start + length);
    }
    return out as NamedResults<T>;
  };
  return { statements, name };
}

/**
 * A batch whose results come back by name (one round trip, one transaction, all or nothing).
 *
 * @example const { update, readBack } = await batchNamed(db, { update: sql`…`, readBack: sql`…` });
 */
export async function batchNamed<T extends NamedStatements>(d1: Db, named: T): Promise<NamedResults<T>> {
  const { statements, name } = flattenNamed(named);
  return name(await batch(d1, statements));
}

/** Every result of a named batch, in statement order (for what scans them all, like event deliveries). */
export function allResults(results: NamedResults<NamedStatements>): D1Result[] {
  return Object.values(results).flatMap((r) => (Array.isArray(r) ? r : [r]));
}

/** The rows of one statement's result. */
export function rowsOf<T>(result: D1Result | undefined): T[] {
  return (result?.results ?? []) as T[];
}

/** Runs one read and returns its rows. */
export async function all<T>(d1: Db, statement: Statement): Promise<T[]> {
  return (await prepare(d1, statement).all<T>()).results;
}

const PRECONDITION_MARK = "pixiu-precondition";

/**
 * A batch statement that aborts the whole batch unless the statement just before it changed at
 * least one row. D1 has no interactive transactions, so a guarded UPDATE followed by this is how
 * a batch says "only if the row was still in the state I read": the losing side of a race rolls
 * back entirely (no stray audit entry, no half-applied change). SQLite's `changes()` sees the
 * previous statement of the batch; `json()` of a non-JSON string raises the error.
 */
export function abortUnlessChanged(): SQL {
  return sql`SELECT CASE WHEN changes() > 0 THEN 1 ELSE json(${PRECONDITION_MARK}) END`;
}

/** Whether a batch failed on `abortUnlessChanged()`. */
export function isPreconditionFailure(err: unknown): boolean {
  return classifyD1Error(err).kind === "precondition";
}

/**
 * What a failed D1 statement or batch ran into, read in one place from SQLite's message:
 * a failed `abortUnlessChanged()` precondition; a unique or primary-key constraint, named
 * `table.column` as SQLite names it (`token_uses.key`, `disputes.report_id`, `platforms.id`); or
 * anything else. Callers map the constraint they expect to a problem and rethrow the rest.
 *
 * @example if (isUniqueViolation(err, "platforms.id")) throw new ProblemError("conflict", …);
 */
export type D1Failure =
  | { kind: "precondition" }
  | { kind: "unique"; constraints: string[] }
  | { kind: "other" };

const UNIQUE = /UNIQUE constraint failed: ([\w.]+(?:, [\w.]+)*)/;

export function classifyD1Error(err: unknown): D1Failure {
  const message = String((err as Error)?.message ?? err);
  if (message.includes("malformed JSON")) {
    return { kind: "precondition" };
  }
  const unique = UNIQUE.exec(message);
  if (unique?.[1]) {
    return { kind: "unique", constraints: unique[1].split(", ") };
  }
  return { kind: "other" };
}

/** Whether a D1 failure is the unique constraint on `constraint` (`table.column`). */
export function isUniqueViolation(err: unknown, constraint: string): boolean {
  const failure = classifyD1Error(err);
  return failure.kind === "unique" && failure.constraints.includes(constraint);
}
