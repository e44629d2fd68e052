/**
 * Signing a request token as a member platform (or an admin) would (CONTRACT §2).
 *
 * @example await signToken(privateJwk, { iss: "shop-a", aud: "pixiu", scope: "scores:read" })
 */
import { importJWK, type JWK, SignJWT } from "jose";

export interface TokenOptions {
  iss: string;
  aud?: string;
  /** Lifetime in seconds (the ledger accepts at most 300). */
  lifetime?: number;
  scope?: string;
  jti?: string;
  /** Seconds since the epoch; defaults to now. */
  iat?: number;
}

export async function signToken(privateJwk: JWK, options: TokenOptions): Promise<string> {
  const alg = privateJwk.kty === "OKP" ? "EdDSA" : "ES256";
  if (!privateJwk.kid) {
    throw new Error("the private JWK needs a kid");
  }
  const key = await importJWK(privateJwk, alg);
  const iat = options.iat ?? Math.floor(Date.now() / 1000);
  const jwt = new SignJWT(options.scope === undefined ? {} : { scope: options.scope })
    .setProtectedHeader({ alg, kid: privateJwk.kid, typ: "JWT" })
    .setIssuer(options.iss)
    .setAudience(options.aud ?? "pixiu")
    .setIssuedAt(iat)
    .setExpirationTime(iat + (options.lifetime ?? 120))
    .setJti(options.jti ?? crypto.randomUUID());
  return jwt.sign(key);
}
