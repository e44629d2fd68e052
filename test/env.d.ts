import type { D1Migration } from "cloudflare:test";
import type { Bindings } from "../worker/env";

declare module "vitest" {
  interface ProvidedContext {
    /** Base URL of the webhook receiver on 127.0.0.1 (test/receiver.global.ts). */
    receiverUrl: string;
  }
}

declare global {
  namespace Cloudflare {
    interface GlobalProps {
      mainModule: typeof import("../worker/index");
    }
    interface Env extends Bindings {
      TEST_MIGRATIONS: D1Migration[];
      /** Fixture photos by path under test/fixtures/, base64 (vitest.config.ts). */
      TEST_IMAGES: Record<string, string>;
      /** The private half of the admin key bound as ADMIN_JWKS, for minting admin tokens. */
      TEST_ADMIN_JWK: string;
    }
  }
}
