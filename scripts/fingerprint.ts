/**
 * Prints the PDQ fingerprint and provenance of one photo, as a platform computes them before
 * reporting (issue 11):
 *   npm run -s fingerprint -- photo.jpg
 *   → {"pdq":"<64 hex>","quality":0-100,"dihedral":["<64 hex>", … 8],"provenance":{"c2pa":…,"aiLabel":…,"exif":…}}
 * `provenance` is an `image_provenance` evidence item without its `kind` (docs/evidence.md). The
 * photo is read and hashed here; nothing is sent anywhere. An unreadable file or one that is not
 * a JPEG, PNG or WebP exits 1 with the reason.
 */
import { readFile } from "node:fs/promises";
import { decodeImage } from "../client/images";
import { pdqHash } from "../client/pdq";
import { readProvenance } from "../client/provenance";

async function main() {
  const [path, ...rest] = process.argv.slice(2);
  if (!path || rest.length > 0) {
    throw new Error("usage: npm run -s fingerprint -- <image.jpg|image.png|image.webp>");
  }
  let bytes: Uint8Array;
  try {
    bytes = new Uint8Array(await readFile(path));
  } catch (err) {
    throw new Error(`cannot read ${path}: ${(err as Error).message}`);
  }
  const { pixels } = decodeImage(bytes);
  const { hash, quality, dihedral } = pdqHash(pixels);
  const provenance = readProvenance(bytes);
  process.stdout.write(`${JSON.stringify({ pdq: hash, quality, dihedral, provenance })}\n`);
}

main().catch((err: Error) => {
  console.error(`fingerprint: ${err.message}`);
  process.exit(1);
});
