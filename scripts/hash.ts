/**
 * Prints the hash of one identifier with the local consortium key, as a platform computes it.
 *   npm run -s hash -- phone "+86 138 0013 8000"
 * The key is PIXIU_CONSORTIUM_KEY from the environment, else from .dev.vars, else the demo key.
 */
import { consortiumKey, hashSubject, IDENTIFIER_TYPES, type IdentifierType } from "../client/identifiers";
import { consortiumKeyValue } from "./lib/local";

async function main() {
  const [type, ...rest] = process.argv.slice(2);
  const value = rest.join(" ");
  if (!type || !IDENTIFIER_TYPES.includes(type as IdentifierType) || rest.length === 0) {
    throw new Error(`usage: npm run -s hash -- <${IDENTIFIER_TYPES.join("|")}> <value>`);
  }
  const key = await consortiumKey(consortiumKeyValue());
  const { hash } = await hashSubject(key, type as IdentifierType, value);
  process.stdout.write(`${hash}\n`);
}

main().catch((err: Error) => {
  console.error(`hash: ${err.message}`);
  process.exit(1);
});
