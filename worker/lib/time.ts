/** RFC 3339 UTC without a fractional part when there is none: `2026-11-24T08:00:00Z`. */
export function toRfc3339(ms: number): string {
  return new Date(ms).toISOString().replace(".000Z", "Z");
}

export function toRfc3339OrNull(ms: number | null | undefined): string | null {
  return ms === null || ms === undefined ? null : toRfc3339(ms);
}

export const DAY_MS = 86_400_000;
export const MINUTE_MS = 60_000;
