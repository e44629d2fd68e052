/**
 * A back-fill row (CSV or NDJSON, raw identifiers) → the report the API takes, or why not. The
 * rules are the API's: the structure, enums, patterns and bounds from the ledger's own
 * `ReportBody` schema (generated/report-schema.ts, generated from the OpenAPI document), plus
 * the few rules a JSON Schema cannot carry, written here as the Worker writes them (timestamps,
 * personal data in notes, times against the clock). test/node/client-rows.test.ts holds these to
 * the Worker's zod schemas row by row.
 */
import { Ajv2020, type ErrorObject } from "ajv/dist/2020.js";
import type { FieldError } from "../errors.ts";
import { reportBodySchema } from "../generated/report-schema.ts";
import { hashSubject, IDENTIFIER_TYPES, type IdentifierType, normalise } from "../identifiers.ts";
import { PERSONAL_DATA } from "../provenance-shape.ts";
import type { ReportBody } from "../sdk.ts";

/** The columns of a back-fill file, in order (docs/examples/backfill.csv). */
export const BACKFILL_COLUMNS = [
  "case_id",
  "phone",
  "email",
  "national_id",
  "device",
  "payment_account",
  "category",
  "incident_at",
  "confirmed_at",
  "confirmation",
  "amount",
  "currency",
  "note",
] as const;

export type BackfillRow = Partial<Record<(typeof BACKFILL_COLUMNS)[number], string | number | null>>;

/**
 * RFC 3339 as the API reads it (zod's `z.iso.datetime({ offset: true })`): upper-case `T`,
 * seconds, optional fraction, `Z` or `±HH:MM`; and a date and time that exist.
 */
const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d+)?(Z|[+-](\d{2}):(\d{2}))$/;

export function isRfc3339(value: string): boolean {
  const m = RFC3339.exec(value);
  if (!m) {
    return false;
  }
  const [y, mo, d, h, mi, s] = m.slice(1, 7).map(Number) as [number, number, number, number, number, number];
  const date = new Date(Date.UTC(y, mo - 1, d));
  const offsetOk = m[8] === "Z" || (Number(m[9]) < 24 && Number(m[10]) < 60);
  return date.getUTCMonth() === mo - 1 && date.getUTCDate() === d && h < 24 && mi < 60 && s < 60 && offsetOk;
}

/**
 * Notes travel to other platforms, so the API refuses one that looks like it carries an e-mail
 * address, a mainland mobile number or a resident ID (worker/schemas/common.ts, PERSONAL_DATA);
 * the kit's one copy of the patterns is in provenance-shape.ts, which the provenance reader uses too.
 */
export { PERSONAL_DATA };

/** The Worker's allowance for clocks ahead of it, and its default retention (README, "Configuration"). */
export const CLOCK_SKEW_MS = 60_000;
export const DEFAULT_RETENTION_DAYS = 1826;
const DAY_MS = 86_400_000;

const ajv = new Ajv2020({ strict: false, allErrors: true, validateFormats: true });
ajv.addFormat("date-time", { type: "string", validate: isRfc3339 });
// OpenAPI's integer formats: the schema's minimum and maximum already bound the numbers.
ajv.addFormat("int32", { type: "number", validate: Number.isInteger });
ajv.addFormat("int64", { type: "number", validate: Number.isInteger });
const validateBody = ajv.compile(reportBodySchema);

export type RowResult =
  | { ok: true; caseId: string; body: ReportBody }
  | { ok: false; caseId: string; errors: FieldError[] };

export interface RowOptions {
  /** The consortium key, from `consortiumKey()`. */
  key: CryptoKey;
  /** Now, in ms since the epoch (the times are checked against it). */
  now: number;
  /** The ledger's RETENTION_DAYS (default 1826). */
  retentionDays?: number;
}

function text(value: string | number | null | undefined): string {
  return value === null || value === undefined ? "" : String(value).trim();
}

/**
 * Checks and hashes one row. Raw identifiers are normalised and hashed here and never leave
 * the result; a row without any identifier, or with one that does not normalise, is refused
 * naming its column.
 */
export async function prepareRow(row: BackfillRow, options: RowOptions): Promise<RowResult> {
  const errors: FieldError[] = [];
  const caseId = text(row.case_id);
  const subjects: ReportBody["subjects"] = [];
  for (const type of IDENTIFIER_TYPES) {
    const raw = text(row[type]);
    if (raw === "") {
      continue;
    }
    try {
      normalise(type, raw);
      subjects.push(await hashSubject(options.key, type as IdentifierType, raw));
    } catch (err) {
      errors.push({ path: type, message: (err as Error).message });
    }
  }
  if (subjects.length === 0 && errors.length === 0) {
    errors.push({ path: "subjects", message: `at least one of ${IDENTIFIER_TYPES.join(", ")} is needed` });
  }
  const amountText = text(row.amount);
  if (!/^\d+$/.test(amountText)) {
    errors.push({
      path: "amount",
      message: "must be a whole number in the currency's minor unit (fen, cents)",
    });
  }
  const note = text(row.note);
  const body = {
    caseId,
    subjects,
    category: text(row.category),
    incidentAt: text(row.incident_at),
    confirmedAt: text(row.confirmed_at),
    confirmation: text(row.confirmation),
    amount: { value: Number(amountText), currency: text(row.currency) },
    ...(note === "" ? {} : { note }),
  };
  if (!validateBody(body)) {
    for (const e of validateBody.errors ?? []) {
      if (e.instancePath.startsWith("/subjects") && subjects.length === 0) {
        continue; // already named by the identifier columns
      }
      if (e.instancePath === "/amount/value" && errors.some((x) => x.path === "amount")) {
        continue;
      }
      errors.push(ajvError(e));
    }
  }
  if (note !== "" && PERSONAL_DATA.some((re) => re.test(note))) {
    errors.push({ path: "note", message: "must not contain personal data" });
  }
  errors.push(...timeErrors(body, options.now, options.retentionDays ?? DEFAULT_RETENTION_DAYS));
  if (errors.length > 0) {
    return { ok: false, caseId, errors };
  }
  return { ok: true, caseId, body: body as ReportBody };
}

/** The Worker's checkReportTimes (worker/services/reports.ts) for well-formed times. */
function timeErrors(body: { incidentAt: string; confirmedAt: string }, now: number, retentionDays: number) {
  const errors: FieldError[] = [];
  if (!isRfc3339(body.incidentAt) || !isRfc3339(body.confirmedAt)) {
    return errors; // the schema named them
  }
  const incidentAt = Date.parse(body.incidentAt);
  const confirmedAt = Date.parse(body.confirmedAt);
  const oldest = now - retentionDays * DAY_MS;
  if (incidentAt > confirmedAt) {
    errors.push({ path: "incidentAt", message: "must not be after confirmedAt" });
  }
  if (confirmedAt > now + CLOCK_SKEW_MS) {
    errors.push({ path: "confirmedAt", message: "must not be in the future" });
  }
  for (const [path, at] of [
    ["incidentAt", incidentAt],
    ["confirmedAt", confirmedAt],
  ] as const) {
    if (at < oldest) {
      errors.push({ path, message: `must be within the retention period (${retentionDays} days)` });
    }
  }
  return errors;
}

/** An ajv error in the API's `{path, message}` form: `amount.value`, as zod paths read. */
function ajvError(e: ErrorObject): FieldError {
  let path = e.instancePath.replace(/^\//, "").replace(/\//g, ".");
  if (e.keyword === "required" || e.keyword === "additionalProperties") {
    const prop = (e.params as { missingProperty?: string; additionalProperty?: string }).missingProperty;
    const extra = (e.params as { additionalProperty?: string }).additionalProperty;
    path = [path, prop ?? extra].filter(Boolean).join(".");
  }
  const allowed = (e.params as { allowedValues?: unknown[] }).allowedValues;
  const message = allowed ? `must be one of ${allowed.join(", ")}` : (e.message ?? "is not valid");
  return { path, message };
}
