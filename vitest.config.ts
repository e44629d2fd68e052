import { readFileSync } from "node:fs";
import { cloudflareTest, readD1Migrations } from "@cloudflare/vitest-plugin";
import { exportJWK, generateKeyPair } from "jose";
import { configDefaults, defineConfig } from "vitest/config";

/**
 * Two projects, both run by `npm test`:
 *
 * - `workers`: the tests inside workerd with a real local D1 (miniflare). Migrations are read here
 *   and applied in test/setup.ts; a fresh admin key pair is made per run, its public half bound as
 *   ADMIN_JWKS exactly as production binds it, its private half handed to the tests. A webhook
 *   receiver runs on the Node side (test/receiver.global.ts); its URL reaches tests by inject().
 *   Workers cannot read the disk, so the fixture photos they decode are bound as base64
 *   (TEST_IMAGES, by path under test/fixtures/).
 * - `node`: tests that drive the ledger from outside, as `npm start` runs it (test/node/): they
 *   start and kill real processes, so they get minutes, not seconds. The PDQ compatibility test
 *   is here too, as it reads its fixture photos from disk.
 *
 * Inline projects inherit the root's options (Vitest 5), so the root holds none of its own.
 */
export default defineConfig(async () => {
  const migrations = await readD1Migrations("schema/migrations");
  const admin = await generateKeyPair("EdDSA", { extractable: true });
  const kid = "test-admin";
  const publicJwk = { ...(await exportJWK(admin.publicKey)), kid, alg: "EdDSA", use: "sig" };
  const privateJwk = { ...(await exportJWK(admin.privateKey)), kid, alg: "EdDSA" };
  const audit = await generateKeyPair("EdDSA", { extractable: true });
  const auditJwk = { ...(await exportJWK(audit.privateKey)), kid: "test-audit" };
  const images = Object.fromEntries(
    [
      "pdq/wee.jpg",
      "pdq/bridge-original.jpg",
      "pdq/bridge-rotate-90.jpg",
      "pdq/q0003.jpg",
      "pdq/variants/blur-a-little.jpg",
      "pdq/variants/square-256x256.jpg",
      "webp/square-lossy.webp",
      "webp/wee-lossless.webp",
      "webp/wee-animated.webp",
      "webp/wee-orientation-6.webp",
    ].map((path) => [path, readFileSync(`test/fixtures/${path}`).toString("base64")]),
  );
  const pepper = Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString("base64url");
  return {
    test: {
      projects: [
        {
          plugins: [
            cloudflareTest({
              wrangler: { configPath: "./wrangler.toml" },
              miniflare: {
                bindings: {
                  TEST_MIGRATIONS: migrations,
                  TEST_IMAGES: images,
                  TEST_ADMIN_JWK: JSON.stringify(privateJwk),
                  ADMIN_JWKS: JSON.stringify({ keys: [publicJwk] }),
                  LEDGER_PEPPER: pepper,
                  AUDIT_SIGNING_JWK: JSON.stringify(auditJwk),
                  // The log store runs sharded in the tests (one shard locally by default).
                  LOG_SHARDS: "2",
                  // Webhooks may point at the test receiver on 127.0.0.1 (test/receiver.global.ts).
                  WEBHOOK_ALLOW_LOOPBACK: "true",
                },
              },
            }),
          ],
          test: {
            name: "workers",
            include: ["test/**/*.test.ts"],
            exclude: [...configDefaults.exclude, "test/node/**"],
            setupFiles: ["./test/setup.ts"],
            globalSetup: ["./test/receiver.global.ts"],
          },
        },
        {
          // The Worker's modules import `cloudflare:workers`; a Node test that only reads their
          // declarations (test/node/openapi-lint.test.ts) gets a stub.
          resolve: { alias: { "cloudflare:workers": "./test/node/stubs/cloudflare-workers.ts" } },
          test: {
            name: "node",
            environment: "node",
            include: ["test/node/**/*.test.ts"],
            // One file at a time: the ledgers they start share .dev.vars and .local/keys.
            fileParallelism: false,
            testTimeout: 180_000,
            hookTimeout: 60_000,
          },
        },
      ],
    },
  };
});
