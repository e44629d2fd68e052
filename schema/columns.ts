import { integer } from "drizzle-orm/sqlite-core";

/**
 * Times are stored as integer milliseconds since the Unix epoch (compact, indexable, cheap to
 * compare in SQL) and turned into RFC 3339 strings at the API edge.
 */
export const epochMs = (name: string) => integer(name, { mode: "number" });

/** The `created_at` / `updated_at` pair that every mutable table carries. */
export const timestamps = {
  createdAt: epochMs("created_at").notNull(),
  updatedAt: epochMs("updated_at").notNull(),
};
