/**
 * `npm run purge`: runs the maintenance job (retention purge, overdue disputes, expired rows)
 * on the local ledger now, through the admin API. `npm start` must be running.
 */
import { signToken } from "../client/token";
import { localAudience, readKey } from "./lib/local";

const BASE = process.env.PIXIU_URL ?? "http://127.0.0.1:8787";

async function main() {
  const token = await signToken(readKey("admin"), { iss: "pixiu-admin", aud: localAudience() });
  const res = await fetch(`${BASE}/v1/admin/maintenance/run`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: "{}",
  });
  const body = await res.text();
  if (!res.ok) {
    throw new Error(`${res.status} ${body}`);
  }
  process.stdout.write(`${body}\n`);
}

main().catch((err: Error) => {
  console.error(`purge: ${err.message} (is \`npm start\` running?)`);
  process.exit(1);
});
