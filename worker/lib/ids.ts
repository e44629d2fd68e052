import { monotonicFactory } from "ulid";

const ulid = monotonicFactory();

export type IdPrefix = "rpt" | "dsp" | "req" | "evt";

/** Crockford's base32, as ULIDs spell it: no I, L, O or U. */
export const CROCKFORD_BASE32 = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/** Length of the part after the prefix, random or ULID alike. */
export const ID_BODY_LENGTH = 26;

/**
 * Prefixes whose ids are random rather than time-ordered. Report ids are shown to other
 * platforms as the refs of a score answer; a ULID would tell them when each record was written
 * and which records came from one upload (one bulk call yields consecutive ULIDs).
 */
const RANDOM_PREFIXES: ReadonlySet<IdPrefix> = new Set(["rpt"]);

/**
 * 26 Crockford base32 characters from `crypto.getRandomValues`: 130 random bits, the same
 * alphabet and length as a ULID, so id patterns stay `[0-9A-HJKMNP-TV-Z]{26}`.
 */
export function randomIdBody(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(ID_BODY_LENGTH));
  let body = "";
  for (const byte of bytes) {
    // 256 is a multiple of 32, so the low five bits of a uniform byte are uniform.
    body += CROCKFORD_BASE32[byte & 31];
  }
  return body;
}

/**
 * A readable id: `newId("rpt")` → `rpt_7QX4…` (random), `newId("req")` → `req_01JD3X…`
 * (ULID). Request and dispute ids sort by creation time, which logs and the dispute lists'
 * cursors rely on; report ids do not, so report lists order by `(created_at, id)`.
 */
export function newId(prefix: IdPrefix): string {
  return `${prefix}_${RANDOM_PREFIXES.has(prefix) ? randomIdBody() : ulid()}`;
}
