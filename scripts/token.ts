/**
 * Prints a fresh JWT (and nothing else) for the local ledger.
 *   npm run -s token -- --admin
 *   npm run -s token -- --platform demo-shop-a [--scope "scores:read"] [--lifetime 120]
 */
import { parseArgs } from "node:util";
import { signToken } from "../client/token";
import { localAudience, readKey } from "./lib/local";

const { values } = parseArgs({
  options: {
    admin: { type: "boolean" },
    platform: { type: "string" },
    scope: { type: "string" },
    lifetime: { type: "string" },
  },
});

async function main() {
  if (values.admin === Boolean(values.platform)) {
    throw new Error('give exactly one of --admin or --platform <id> (optionally --scope "…")');
  }
  const lifetime = values.lifetime ? Number(values.lifetime) : 300;
  const aud = localAudience();
  const token = values.admin
    ? await signToken(readKey("admin"), { iss: "pixiu-admin", aud, lifetime, scope: values.scope })
    : await signToken(readKey(values.platform as string), {
        iss: values.platform as string,
        aud,
        lifetime,
        scope: values.scope,
      });
  process.stdout.write(`${token}\n`);
}

main().catch((err: Error) => {
  console.error(`token: ${err.message}`);
  process.exit(1);
});
