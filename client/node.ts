/**
 * `@pixiu/client/node`: the Node-only parts (files): reading a key, fingerprinting a photo on
 * disk, and the back-fill `pixiu backfill` runs, for platforms that drive it from their own code.
 *
 * @example
 *   const summary = await backfill({ file: "cases.csv", client, key, ledger: url, platform: "shop-a" });
 */
import { readFile } from "node:fs/promises";
import { type Fingerprint, fingerprintImage } from "./fingerprint.ts";

export {
  type BackfillOptions,
  type BackfillSummary,
  backfill,
  lockFileFor,
  rejectsFileFor,
  stateFileFor,
} from "./cli/backfill.ts";
export { readJwkFile } from "./cli/config.ts";
export { LockedError } from "./cli/lock.ts";
export { BACKFILL_COLUMNS, type BackfillRow, prepareRow, type RowResult } from "./cli/rows.ts";

/** What `pixiu fingerprint <path>` prints. */
export async function fingerprintFile(path: string): Promise<Fingerprint> {
  return fingerprintImage(new Uint8Array(await readFile(path)));
}
