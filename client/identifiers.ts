/**
 * Client-side identifier hashing (CONTRACT §1): what a member platform runs before anything
 * leaves it. The ledger never imports this module and never sees a raw identifier.
 *
 * @example
 *   const key = consortiumKey("q2V…");            // 32 bytes, base64url
 *   await hashSubject(key, "phone", "138 0013 8000") // → { type: "phone", hash: "5e8f…" }
 */
import { parsePhoneNumberFromString } from "libphonenumber-js/max";

export const IDENTIFIER_TYPES = ["phone", "email", "national_id", "device", "payment_account"] as const;
export type IdentifierType = (typeof IDENTIFIER_TYPES)[number];

export class IdentifierError extends Error {
  override readonly name = "IdentifierError";
}

/** E.164; numbers without a country code are read in region CN. Invalid numbers throw. */
export function normalisePhone(input: string): string {
  const parsed = parsePhoneNumberFromString(input.trim(), "CN");
  if (!parsed?.isValid()) {
    throw new IdentifierError(`not a valid phone number (the value is not shown: it is personal data)`);
  }
  return parsed.number;
}

const GMAIL_DOMAINS = new Set(["gmail.com", "googlemail.com"]);

/**
 * Trimmed, Unicode NFC and lower-cased (the whole address, local part included); the domain in
 * ASCII (punycode); a `+tag` removed; for Gmail, dots in the local part removed and the domain
 * made gmail.com. NFC runs before and after lower-casing: case mapping can leave a string
 * that is no longer NFC, and NFC is not closed under lower-casing, so NFC ∘ lower ∘ NFC gives
 * one form for every canonically equivalent spelling (identifier rules v2; docs/api.md).
 *
 * @example normaliseEmail("Jose\u0301@Example.com") → "josé@example.com" (é precomposed)
 */
export function normaliseEmail(input: string): string {
  const value = input.trim().normalize("NFC").toLowerCase().normalize("NFC");
  const at = value.lastIndexOf("@");
  if (at <= 0 || at === value.length - 1 || value.indexOf("@") !== at || /\s/.test(value)) {
    throw new IdentifierError(`not an e-mail address (the value is not shown: it is personal data)`);
  }
  let local = value.slice(0, at);
  let domain: string;
  // The URL parser would silently drop a port, path, query or fragment and decode %-escapes.
  if (/[/\\?#:%[\]]/.test(value.slice(at + 1))) {
    throw new IdentifierError(`not a valid e-mail domain (the value is not shown: it is personal data)`);
  }
  try {
    domain = new URL(`http://${value.slice(at + 1)}`).hostname;
  } catch {
    throw new IdentifierError(`not a valid e-mail domain (the value is not shown: it is personal data)`);
  }
  // Host names only (no IPv4 literal, which the URL parser would also rewrite: 1.257 → 1.0.1.1).
  const labels = domain.split(".");
  if (
    labels.length < 2 ||
    !labels.every((l) => /^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$/.test(l)) ||
    /^\d+$/.test(labels[labels.length - 1] ?? "")
  ) {
    throw new IdentifierError(`not a valid e-mail domain (the value is not shown: it is personal data)`);
  }
  local = local.split("+")[0] ?? "";
  if (GMAIL_DOMAINS.has(domain)) {
    local = local.replace(/\./g, "");
    domain = "gmail.com";
  }
  if (local.length === 0) {
    throw new IdentifierError(
      `e-mail address has an empty local part (the value is not shown: it is personal data)`,
    );
  }
  return `${local}@${domain}`;
}

const ID_WEIGHTS = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
const ID_CHECK = "10X98765432";

/** The ISO 7064 MOD 11-2 check character of the first 17 digits of a resident ID. */
export function residentIdCheckChar(first17: string): string {
  let sum = 0;
  for (let i = 0; i < 17; i++) {
    sum += Number(first17[i]) * (ID_WEIGHTS[i] as number);
  }
  return ID_CHECK[sum % 11] as string;
}

/** 18 characters, final `x` upper-cased, check digit valid. */
export function normaliseNationalId(input: string): string {
  const value = input.trim().toUpperCase();
  if (!/^\d{17}[\dX]$/.test(value)) {
    throw new IdentifierError("a resident ID is 17 digits and a check character (digit or X)");
  }
  if (residentIdCheckChar(value.slice(0, 17)) !== value[17]) {
    throw new IdentifierError("the resident ID's check digit does not match (ISO 7064 MOD 11-2)");
  }
  return value;
}

function normaliseOpaque(input: string, type: string): string {
  const value = input.trim();
  if (value.length === 0) {
    throw new IdentifierError(`${type} must not be empty`);
  }
  return value;
}

export function normalise(type: IdentifierType, input: string): string {
  switch (type) {
    case "phone":
      return normalisePhone(input);
    case "email":
      return normaliseEmail(input);
    case "national_id":
      return normaliseNationalId(input);
    case "device":
    case "payment_account":
      return normaliseOpaque(input, type);
  }
}

/** Imports the consortium key (32 random bytes, base64url) for HMAC-SHA256. */
export async function consortiumKey(base64url: string): Promise<CryptoKey> {
  if (typeof base64url !== "string" || base64url.trim() === "") {
    // `consortiumKey(process.env.PIXIU_CONSORTIUM_KEY)` with the variable unset.
    throw new IdentifierError(
      "no consortium key: pass the consortium's shared key (32 bytes or more, base64url), e.g. from PIXIU_CONSORTIUM_KEY",
    );
  }
  const b64 = base64url.trim().replace(/-/g, "+").replace(/_/g, "/");
  let decoded: string;
  try {
    decoded = atob(b64 + "=".repeat((4 - (b64.length % 4)) % 4));
  } catch {
    throw new IdentifierError(
      "the consortium key is not base64url (quotes or other characters around it?); the value is not shown: it is a secret",
    );
  }
  const raw = Uint8Array.from(decoded, (c) => c.charCodeAt(0));
  if (raw.length < 32) {
    throw new IdentifierError("the consortium key must be at least 32 bytes");
  }
  return crypto.subtle.importKey("raw", raw, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
}

/** H = lower-case hex of HMAC-SHA256(consortium key, type + ":" + normalised). */
export async function hashSubject(
  key: CryptoKey,
  type: IdentifierType,
  input: string,
): Promise<{ type: IdentifierType; hash: string }> {
  const message = `${type}:${normalise(type, input)}`;
  const mac = new Uint8Array(await crypto.subtle.sign("HMAC", key, new TextEncoder().encode(message)));
  return { type, hash: Array.from(mac, (b) => b.toString(16).padStart(2, "0")).join("") };
}
