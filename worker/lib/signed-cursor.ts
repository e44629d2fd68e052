import { base64UrlToBytes } from "./crypto";

const encoder = new TextEncoder();

function toBase64Url(bytes: Uint8Array): string {
  let bin = "";
  for (const b of bytes) {
    bin += String.fromCharCode(b);
  }
  return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

const derived = new Map<string, Promise<CryptoKey>>();

/**
 * A cursor-signing key derived from a secret (the ledger pepper) for one purpose:
 * HMAC-SHA256(secret, "pixiu/cursor/" + purpose). Each purpose gets its own key, so a cursor of
 * one kind never verifies as another, and the pepper itself never signs anything readable.
 */
export function cursorKey(secret: string, purpose: string): Promise<CryptoKey> {
  const id = `${purpose}\n${secret}`;
  let key = derived.get(id);
  if (!key) {
    key = (async () => {
      const master = await crypto.subtle.importKey(
        "raw",
        base64UrlToBytes(secret),
        { name: "HMAC", hash: "SHA-256" },
        false,
        ["sign"],
      );
      const raw = await crypto.subtle.sign("HMAC", master, encoder.encode(`pixiu/cursor/${purpose}`));
      return crypto.subtle.importKey("raw", raw, { name: "HMAC", hash: "SHA-256" }, false, [
        "sign",
        "verify",
      ]);
    })();
    derived.set(id, key);
  }
  return key;
}

/**
 * A tamper-evident cursor: `base64url(JSON payload) "." base64url(HMAC-SHA256(key, first part))`.
 * The payload is readable (it holds positions, never secrets) but cannot be changed.
 *
 * @example await signCursor(key, { n: 2, r: [1764000000000, "rpt_…"] }) → "eyJuIjoyLC….Xk3…"
 */
export async function signCursor(key: CryptoKey, payload: unknown): Promise<string> {
  const body = toBase64Url(encoder.encode(JSON.stringify(payload)));
  const mac = new Uint8Array(await crypto.subtle.sign("HMAC", key, encoder.encode(body)));
  return `${body}.${toBase64Url(mac)}`;
}

/** The payload of a cursor `signCursor` made with this key, or null for anything else. */
export async function openCursor(key: CryptoKey, cursor: string): Promise<unknown> {
  const match = /^([A-Za-z0-9_-]{1,2048})\.([A-Za-z0-9_-]{43})$/.exec(cursor);
  if (!(match?.[1] && match[2])) {
    return null;
  }
  const [, body, mac] = match;
  // crypto.subtle.verify compares in constant time.
  if (!(await crypto.subtle.verify("HMAC", key, base64UrlToBytes(mac), encoder.encode(body)))) {
    return null;
  }
  try {
    return JSON.parse(new TextDecoder().decode(base64UrlToBytes(body))) as unknown;
  } catch {
    return null;
  }
}
