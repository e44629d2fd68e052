import { ProblemError } from "./problem";

/**
 * Opaque cursors: the position after the last row of a page, base64url-encoded so clients treat
 * it as a token. An id cursor is the last id; a time cursor is the last `(time, id)` pair, for
 * lists ordered by a time column with the id as tiebreak.
 *
 * @example encodeCursor("dsp_01JD…") → "ZHNwXzAxSkQ…"
 */
export function encodeCursor(lastId: string): string {
  return btoa(lastId).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function invalidCursor(): ProblemError {
  return new ProblemError("validation", "The cursor is not one this API issued.", {
    errors: [{ path: "cursor", message: "invalid cursor" }],
  });
}

/** The cursor's text, or "" when it is not base64url. */
function cursorText(cursor: string): string {
  try {
    return atob(cursor.replace(/-/g, "+").replace(/_/g, "/"));
  } catch {
    return "";
  }
}

export function decodeCursor(cursor: string | undefined, pattern: RegExp): string | null {
  if (cursor === undefined || cursor === "") {
    return null;
  }
  const id = cursorText(cursor);
  if (!pattern.test(id)) {
    throw invalidCursor();
  }
  return id;
}

/** A position in a list ordered by `(time, id)`: the last row's time (epoch ms) and id. */
export interface TimeIdCursor {
  at: number;
  id: string;
}

/** `<epoch ms>.<id>`: the time has no dot, so the first dot ends it. */
const TIME_ID = /^(0|[1-9][0-9]{0,15})\.(.+)$/;

/** @example encodeTimeIdCursor({ at: 1764576000000, id: "rpt_7QX4…" }) → "MTc2NDU3NjAwMDAwMC5ycHRf…" */
export function encodeTimeIdCursor(position: TimeIdCursor): string {
  return encodeCursor(`${position.at}.${position.id}`);
}

/**
 * The `(time, id)` a cursor from `encodeTimeIdCursor` carries; null when there is none. Anything
 * else (not base64url, not `<time>.<id>`, an id not matching `idPattern`) is a 422.
 */
export function decodeTimeIdCursor(cursor: string | undefined, idPattern: RegExp): TimeIdCursor | null {
  if (cursor === undefined || cursor === "") {
    return null;
  }
  const match = TIME_ID.exec(cursorText(cursor));
  const at = Number(match?.[1]);
  const id = match?.[2] ?? "";
  if (!match || !Number.isSafeInteger(at) || !idPattern.test(id)) {
    throw invalidCursor();
  }
  return { at, id };
}

/** Splits a `limit + 1` fetch into the page and the last row of the page if another follows. */
function split<T>(rows: T[], limit: number): { page: T[]; last: T | undefined } {
  const page = rows.slice(0, limit);
  return { page, last: rows.length > limit ? page[page.length - 1] : undefined };
}

/** Splits a `limit + 1` fetch into the page and the id cursor of the next one. */
export function pageOf<T>(
  rows: T[],
  limit: number,
  idOf: (row: T) => string,
): { page: T[]; nextCursor: string | null } {
  const { page, last } = split(rows, limit);
  return { page, nextCursor: last === undefined ? null : encodeCursor(idOf(last)) };
}

/** Splits a `limit + 1` fetch into the page and the `(time, id)` cursor of the next one. */
export function pageByTimeOf<T>(
  rows: T[],
  limit: number,
  positionOf: (row: T) => TimeIdCursor,
): { page: T[]; nextCursor: string | null } {
  const { page, last } = split(rows, limit);
  return { page, nextCursor: last === undefined ? null : encodeTimeIdCursor(positionOf(last)) };
}
