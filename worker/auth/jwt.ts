import {
  createLocalJWKSet,
  decodeJwt,
  decodeProtectedHeader,
  errors,
  type JSONWebKeySet,
  type JWTPayload,
  jwtVerify,
} from "jose";

/**
 * Everything the ledger does with JWTs lives here; nothing else imports jose.
 * The limits below are CONTRACT §2 and RFC 8725's advice, as constants.
 */
export const ALLOWED_ALGORITHMS = ["ES256", "EdDSA"] as const;
/** Longest accepted `exp - iat`. */
export const MAX_LIFETIME_SECONDS = 300;
/** How far in the future `iat` may be (the caller's clock may run ahead). */
export const MAX_IAT_SKEW_SECONDS = 60;
export const MAX_JTI_LENGTH = 64;
export const ADMIN_ISSUER = "pixiu-admin";

export class TokenError extends Error {
  override readonly name = "TokenError";
}

export interface VerifiedToken {
  iss: string;
  kid: string;
  jti: string;
  iat: number;
  exp: number;
  /** Requested scopes, when the token narrows its principal's grant. */
  scope: string[] | null;
}

/** A key set ready for verification; build once per key set and keep it. */
export type KeyResolver = ReturnType<typeof createLocalJWKSet>;

export function keyResolver(jwks: JSONWebKeySet): KeyResolver {
  return createLocalJWKSet(jwks);
}

/** Reads `iss` without verifying anything, to pick the key set to verify against. */
export function unverifiedIssuer(token: string): string {
  let payload: JWTPayload;
  try {
    payload = decodeJwt(token);
  } catch {
    throw new TokenError("token is not a JWT");
  }
  if (typeof payload.iss !== "string" || payload.iss.length === 0) {
    throw new TokenError("token has no iss");
  }
  return payload.iss;
}

/**
 * Verifies signature, algorithm, audience, issuer and the lifetime rules.
 *
 * @example const t = await verifyToken(jwt, { audience: "pixiu", keys, now: Date.now() });
 */
export async function verifyToken(
  token: string,
  options: { audience: string; issuer: string; keys: KeyResolver; now: number },
): Promise<VerifiedToken> {
  let header: ReturnType<typeof decodeProtectedHeader>;
  try {
    header = decodeProtectedHeader(token);
  } catch {
    throw new TokenError("token header is not readable");
  }
  if (!ALLOWED_ALGORITHMS.includes(header.alg as (typeof ALLOWED_ALGORITHMS)[number])) {
    throw new TokenError(`algorithm ${String(header.alg)} is not accepted`);
  }
  if (typeof header.kid !== "string" || header.kid.length === 0) {
    throw new TokenError("token header has no kid");
  }
  if (header.crit !== undefined) {
    throw new TokenError("crit headers are not accepted");
  }
  let payload: JWTPayload;
  try {
    ({ payload } = await jwtVerify(token, options.keys, {
      algorithms: [...ALLOWED_ALGORITHMS],
      audience: options.audience,
      issuer: options.issuer,
      requiredClaims: ["iss", "aud", "iat", "exp", "jti"],
      currentDate: new Date(options.now),
    }));
  } catch (err) {
    throw new TokenError(describeJoseError(err));
  }
  // jose accepts any `aud` list that includes the audience; the contract wants `aud` to equal
  // it, so a token also addressed to another service cannot be replayed here (RFC 8725 §3.9).
  const aud = Array.isArray(payload.aud) && payload.aud.length === 1 ? payload.aud[0] : payload.aud;
  if (aud !== options.audience) {
    throw new TokenError(`claim aud must be exactly ${options.audience}`);
  }
  const { iat, exp, jti } = payload as { iat: number; exp: number; jti: unknown };
  if (typeof jti !== "string" || jti.length < 1 || jti.length > MAX_JTI_LENGTH) {
    throw new TokenError(`jti must be a string of 1–${MAX_JTI_LENGTH} characters`);
  }
  if (exp - iat > MAX_LIFETIME_SECONDS) {
    throw new TokenError(`token lifetime exceeds ${MAX_LIFETIME_SECONDS} s`);
  }
  if (exp <= iat) {
    throw new TokenError("exp must be after iat");
  }
  if (iat > options.now / 1000 + MAX_IAT_SKEW_SECONDS) {
    throw new TokenError("iat is in the future");
  }
  let scope: string[] | null = null;
  if (payload.scope !== undefined) {
    if (typeof payload.scope !== "string") {
      throw new TokenError("scope must be a space-separated string");
    }
    scope = payload.scope.split(" ").filter((s) => s.length > 0);
  }
  return { iss: options.issuer, kid: header.kid, jti, iat, exp, scope };
}

function describeJoseError(err: unknown): string {
  if (err instanceof errors.JWTExpired) {
    return "token has expired";
  }
  if (err instanceof errors.JWTClaimValidationFailed) {
    return `claim ${err.claim} is invalid: ${err.reason}`;
  }
  if (err instanceof errors.JWKSNoMatchingKey) {
    return "no key of this issuer matches the kid";
  }
  if (err instanceof errors.JWSSignatureVerificationFailed) {
    return "signature verification failed";
  }
  if (err instanceof errors.JOSEAlgNotAllowed) {
    return "algorithm is not accepted";
  }
  if (err instanceof errors.JOSEError) {
    return `token is invalid (${err.code})`;
  }
  return "token is invalid";
}
