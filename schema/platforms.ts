import { sqliteTable, text } from "drizzle-orm/sqlite-core";
import { timestamps } from "./columns";

/** A member platform: who it is, what it may do, and the public keys its tokens are signed with. */
export const platforms = sqliteTable("platforms", {
  id: text("id").primaryKey(),
  name: text("name").notNull(),
  status: text("status", { enum: ["active", "suspended"] }).notNull(),
  /** JSON array of granted scopes. */
  scopes: text("scopes", { mode: "json" }).$type<string[]>().notNull(),
  /** JSON Web Key Set of the platform's public keys (`{"keys": [...]}`). */
  jwks: text("jwks", { mode: "json" }).$type<{ keys: Record<string, unknown>[] }>().notNull(),
  ...timestamps,
});
