import { base64UrlToBytes, hmacHex, importHmacKey } from "../lib/crypto";
import type { Subject, SubjectType } from "../schemas/common";

let pepperKey: { source: string; key: Promise<CryptoKey> } | undefined;

function keyFor(pepper: string): Promise<CryptoKey> {
  if (pepperKey?.source !== pepper) {
    pepperKey = { source: pepper, key: importHmacKey(base64UrlToBytes(pepper)) };
  }
  return pepperKey.key;
}

export interface KeyedSubject {
  type: SubjectType;
  /** HMAC-SHA256(ledger pepper, type + ":" + platform hash), hex: the only form the ledger stores. */
  key: string;
}

/**
 * Applies the ledger's pepper to the platforms' hashes. The platform's hash itself is never
 * stored or logged, so a database leak reveals neither identifiers nor the hashes platforms hold.
 */
export async function pepperSubjects(pepper: string, subjects: readonly Subject[]): Promise<KeyedSubject[]> {
  const key = await keyFor(pepper);
  return Promise.all(
    subjects.map(async (s) => ({ type: s.type, key: await hmacHex(key, `${s.type}:${s.hash}`) })),
  );
}
