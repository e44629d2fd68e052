import { ProblemError } from "./problem";

/**
 * Opaque cursors: the last id of a page, base64url-encoded so clients treat it as a token.
 *
 * @example encodeCursor("rpt_01JD…") → "cnB0XzAxSkQ…"
 */
export function encodeCursor(lastId: string): string {
  return btoa(lastId).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

export function decodeCursor(cursor: string | undefined, pattern: RegExp): string | null {
  if (cursor === undefined || cursor === "") {
    return null;
  }
  let id: string;
  try {
    id = atob(cursor.replace(/-/g, "+").replace(/_/g, "/"));
  } catch {
    id = "";
  }
  if (!pattern.test(id)) {
    throw new ProblemError("validation", "The cursor is not one this API issued.", {
      errors: [{ path: "cursor", message: "invalid cursor" }],
    });
  }
  return id;
}

/** Splits a `limit + 1` fetch into the page and the cursor of the next one. */
export function pageOf<T>(
  rows: T[],
  limit: number,
  idOf: (row: T) => string,
): { page: T[]; nextCursor: string | null } {
  const page = rows.slice(0, limit);
  const last = page[page.length - 1];
  return { page, nextCursor: rows.length > limit && last ? encodeCursor(idOf(last)) : null };
}
