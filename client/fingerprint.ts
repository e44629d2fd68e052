/**
 * `@pixiu/client/fingerprint`: a photo's PDQ fingerprint and provenance, computed on the
 * platform's side before anything is sent (docs/evidence.md). Runs wherever the WebAssembly
 * decoder loads (Node, Workers, browsers).
 *
 * @example
 *   const { pdq, quality, dihedral, provenance } = fingerprintImage(bytes);
 *   await pixiu.matchEvidence([{ pdq, dihedral }]);
 */
import { decodeImage } from "./images.ts";
import { pdqHash } from "./pdq.ts";
import { type Provenance, readProvenance } from "./provenance.ts";

export { decodeImage, ImageError, orient, sniffFormat } from "./images.ts";
export {
  DIHEDRAL,
  hammingDistance,
  PDQ_MATCH_THRESHOLD,
  type PdqResult,
  type Pixels,
  pdqHash,
} from "./pdq.ts";
export { type Provenance, readProvenance } from "./provenance.ts";

export interface Fingerprint {
  /** The PDQ hash, 64 lower-case hex digits. */
  pdq: string;
  /** 0–100; the ledger refuses fingerprints below 50. */
  quality: number;
  /** The eight dihedral hashes (turned and mirrored copies). */
  dihedral: string[];
  /** An `image_provenance` evidence item without its `kind`. */
  provenance: Provenance;
}

/** What `pixiu fingerprint <photo>` prints, for JPEG, PNG or WebP bytes (EXIF orientation applied). */
export function fingerprintImage(bytes: Uint8Array): Fingerprint {
  const { pixels } = decodeImage(bytes);
  const { hash, quality, dihedral } = pdqHash(pixels);
  return { pdq: hash, quality, dihedral, provenance: readProvenance(bytes) };
}
