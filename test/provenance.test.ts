/**
 * The provenance reader inside workerd (issue 11): C2PA manifests in each carrier, the
 * GB 45438-2025 label in its element and attribute forms, EXIF, and nothing at all; hostile
 * metadata must not throw, and whatever the reader prints must be what the ledger's
 * `image_provenance` schema accepts.
 */
import { env } from "cloudflare:workers";
import { encode as encodePng } from "fast-png";
import { describe, expect, it } from "vitest";
import { decodeImage } from "../client/images";
import { pdqHash } from "../client/pdq";
import { type Provenance, readProvenance } from "../client/provenance";
import { PROVENANCE_LIMITS } from "../client/provenance-shape";
import { EvidenceSchema } from "../worker/schemas/reports";
import {
  aigcAttributeXmp,
  aigcElementXmp,
  box,
  concat,
  extendedWebp,
  hasExtendedXmp,
  jpegExif,
  jpegExtendedXmp,
  jpegJumbf,
  jpegXmp,
  manifest,
  manifestStore,
  pngChunk,
  pngItxt,
  spliceJpeg,
  splicePng,
  superbox,
  TRAINED,
  tiff,
  xmpPacket,
} from "./provenance-fixtures";

function fixture(path: string): Uint8Array {
  const base64 = env.TEST_IMAGES[path];
  if (base64 === undefined) {
    throw new Error(`no fixture ${path}`);
  }
  return Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
}

const JPEG = fixture("pdq/wee.jpg");
const WEBP = fixture("webp/wee-lossless.webp");
const PNG = (() => {
  const data = new Uint8Array(24 * 16 * 4).map((_, i) => (i * 37) % 251);
  return encodePng({ width: 24, height: 16, data, channels: 4, depth: 8 });
})();

const ABSENT_C2PA = { present: false, digitalSourceTypes: [], aiGenerated: false, claimGenerator: null };

const LABEL = {
  Label: "1",
  ContentProducer: "001191110108MA01KP2T5U00000",
  ProduceID: "c4c8c10647a8bb7136ce0aa675915c5d_8ffd74cc633911f188bd525400d9a7a1",
  ReservedCode1: "MEUCIQDx9nQ3b0Q0+o1u/2Fh5d1oQ0o7Bqz2k5G8q4k1+v9hWgIgS0l3wz==",
  ContentPropagator: "Example Platform 示例",
  PropagateID: "order-2026-000123",
  ReservedCode2: "",
};

const READ_LABEL = {
  label: "1",
  contentProducer: "001191110108MA01KP2T5U00000",
  produceId: "c4c8c10647a8bb7136ce0aa675915c5d_8ffd74cc633911f188bd525400d9a7a1",
  reservedCode1: "MEUCIQDx9nQ3b0Q0+o1u/2Fh5d1oQ0o7Bqz2k5G8q4k1+v9hWgIgS0l3wz==",
  contentPropagator: "Example Platform 示例",
  propagateId: "order-2026-000123",
  reservedCode2: null,
};

/** A store whose active manifest was made by a generator and declares trained algorithmic media. */
const AI_STORE = manifestStore(
  manifest({
    actions: [[{ action: "c2pa.created", digitalSourceType: TRAINED, softwareAgent: { name: "Gen" } }]],
    claim: { claim_generator_info: { name: "Example Image Generator", version: "2.1" }, alg: "sha256" },
  }),
);

/** The reader's answer must be evidence the ledger takes as it is. */
function expectAccepted(provenance: Provenance) {
  const parsed = EvidenceSchema.safeParse({ kind: "image_provenance", ...provenance });
  expect(parsed.success, JSON.stringify(parsed.error?.issues)).toBe(true);
}

describe("readProvenance", () => {
  it("finds nothing in photos that carry none of it, in each format", () => {
    for (const bytes of [PNG, WEBP, fixture("webp/square-lossy.webp")]) {
      const read = readProvenance(bytes);
      expect(read).toEqual({ c2pa: ABSENT_C2PA, aiLabel: null, exif: null });
      expectAccepted(read);
    }
    expect(readProvenance(new TextEncoder().encode("not an image"))).toEqual({
      c2pa: ABSENT_C2PA,
      aiLabel: null,
      exif: null,
    });
  });

  it("reads a JPEG's EXIF, XMP label and a C2PA store split over APP11 segments", () => {
    const bytes = spliceJpeg(
      JPEG,
      jpegExif({
        make: "Canon",
        model: "Canon EOS R5",
        software: "Adobe Photoshop 25.0 (Windows)",
        orientation: 1,
        dateTimeOriginal: "2026:10:02 10:00:00",
        offsetTimeOriginal: "+08:00",
      }),
      jpegXmp(aigcElementXmp(LABEL)),
      jpegJumbf(AI_STORE, 100), // several packets: the reader must join them
    );
    expect(
      jpegJumbf(AI_STORE, 100).filter((b, i, all) => b === 0xff && all[i + 1] === 0xeb).length,
    ).toBeGreaterThan(3);
    const read = readProvenance(bytes);
    expect(read).toEqual({
      c2pa: {
        present: true,
        digitalSourceTypes: [TRAINED],
        aiGenerated: true,
        claimGenerator: "Example Image Generator/2.1",
      },
      aiLabel: READ_LABEL,
      exif: {
        make: "Canon",
        model: "Canon EOS R5",
        software: "Adobe Photoshop 25.0 (Windows)",
        dateTimeOriginal: "2026-10-02T10:00:00+08:00",
      },
    });
    expectAccepted(read);
    // Metadata does not change the pixels' fingerprint.
    expect(pdqHash(decodeImage(bytes).pixels).hash).toBe(pdqHash(decodeImage(JPEG).pixels).hash);
  });

  it("reads a PNG's caBX store, eXIf and compressed iTXt XMP in the attribute form", () => {
    const store = manifestStore(
      manifest({
        label: "urn:c2pa:ingredient",
        actions: [[{ action: "c2pa.created", digitalSourceType: TRAINED.replace("http:", "https:") }]],
        claim: { claim_generator: "Ingredient Maker/1.0" },
      }),
      manifest({
        actionsLabel: "c2pa.actions",
        actions: [
          [{ action: "c2pa.opened" }],
          [
            {
              action: "c2pa.edited",
              parameters: {
                digitalSourceType:
                  "http://cv.iptc.org/newscodes/digitalsourcetype/compositeWithTrainedAlgorithmicMedia",
              },
            },
          ],
        ],
        claim: { claim_generator: "Photo Editor/7.1 c2pa-rs/0.40" },
      }),
    );
    const bytes = splicePng(
      PNG,
      pngChunk("eXIf", tiff({ make: "Apple", model: "iPhone 15 Pro", software: "17.1" })),
      pngItxt("XML:com.adobe.xmp", aigcAttributeXmp({ ...LABEL, Label: 2 }), true),
      pngChunk("caBX", store),
    );
    const read = readProvenance(bytes);
    expect(read.c2pa).toEqual({
      present: true,
      // Both manifests' types, the IPTC one printed under http:, once each; the active (last) claim's generator.
      digitalSourceTypes: [
        TRAINED,
        "http://cv.iptc.org/newscodes/digitalsourcetype/compositeWithTrainedAlgorithmicMedia",
      ],
      aiGenerated: true,
      claimGenerator: "Photo Editor/7.1 c2pa-rs/0.40",
    });
    expect(read.aiLabel).toEqual({ ...READ_LABEL, label: "2" });
    expect(read.exif).toEqual({
      make: "Apple",
      model: "iPhone 15 Pro",
      software: "17.1",
      dateTimeOriginal: null,
    });
    expectAccepted(read);
    expect(decodeImage(bytes).pixels.width).toBe(24);
  });

  it("reads a WebP's C2PA, XMP and EXIF chunks", () => {
    const store = manifestStore(
      manifest({
        actions: [
          [
            {
              action: "c2pa.created",
              digitalSourceType: "http://cv.iptc.org/newscodes/digitalsourcetype/digitalCapture",
            },
          ],
        ],
        claim: { claim_generator_info: [{ name: "Camera App" }] },
      }),
    );
    const bytes = extendedWebp(WEBP, {
      width: 34,
      height: 42,
      exif: tiff({ make: "Google", model: "Pixel 9", orientation: 6 }),
      xmp: aigcElementXmp({ label: "1", contentproducer: "doubao" }, "ns1"),
      c2pa: store,
    });
    const read = readProvenance(bytes);
    expect(read.c2pa).toEqual({
      present: true,
      digitalSourceTypes: ["http://cv.iptc.org/newscodes/digitalsourcetype/digitalCapture"],
      aiGenerated: false,
      claimGenerator: "Camera App",
    });
    expect(read.aiLabel).toMatchObject({ label: "1", contentProducer: "doubao", produceId: null });
    expect(read.exif).toEqual({ make: "Google", model: "Pixel 9", software: null, dateTimeOriginal: null });
    expectAccepted(read);
    const decoded = decodeImage(bytes);
    expect([decoded.orientation, decoded.pixels.width, decoded.pixels.height]).toEqual([6, 42, 34]);
  });

  it("reads Annex E's fields put directly in the TC260 namespace, and a PNG text chunk named AIGC", () => {
    const direct = spliceJpeg(
      JPEG,
      jpegXmp(
        xmpPacket(
          `xmlns:TC260="http://www.tc260.org.cn/ns/AIGC/1.0" TC260:Label="3"`,
          "<TC260:ProduceID>p-1</TC260:ProduceID>",
        ),
      ),
    );
    expect(readProvenance(direct).aiLabel).toMatchObject({
      label: "3",
      produceId: "p-1",
      contentProducer: null,
    });
    const text = splicePng(PNG, pngChunk("tEXt", new TextEncoder().encode(`AIGC\0${JSON.stringify(LABEL)}`)));
    expect(readProvenance(text).aiLabel).toEqual(READ_LABEL);
  });

  it("reads an XMP packet appended after the image, where no carrier holds it", () => {
    const bytes = concat(PNG, new TextEncoder().encode(aigcElementXmp(LABEL)));
    expect(readProvenance(bytes).aiLabel).toEqual(READ_LABEL);
  });

  it("ignores XMP that is not the label, and other namespaces' AIGC properties", () => {
    const other = xmpPacket(
      `xmlns:x2="http://example.com/ns/" x2:AIGC="{&quot;Label&quot;:&quot;1&quot;}"`,
      "<x2:Label>1</x2:Label>",
    );
    expect(readProvenance(spliceJpeg(JPEG, jpegXmp(other))).aiLabel).toBeNull();
    const plain = xmpPacket(
      `xmlns:dc="http://purl.org/dc/elements/1.1/"`,
      "<dc:format>image/jpeg</dc:format>",
    );
    expect(readProvenance(spliceJpeg(JPEG, jpegXmp(plain))).aiLabel).toBeNull();
  });

  it("says a label or a store is present even when it cannot be read", () => {
    const label = readProvenance(
      spliceJpeg(
        JPEG,
        jpegXmp(
          xmpPacket(
            `xmlns:TC260="${"http://www.tc260.org.cn/ns/AIGC/1.0/"}"`,
            "<TC260:AIGC>{not json</TC260:AIGC>",
          ),
        ),
      ),
    );
    expect(label.aiLabel).toEqual(Object.fromEntries(Object.keys(READ_LABEL).map((k) => [k, null])));
    expectAccepted(label);
    const garbage = superbox(
      "c2pa",
      "c2pa",
      superbox(
        "c2ma",
        "urn:c2pa:x",
        superbox(
          "c2as",
          "c2pa.assertions",
          superbox("cbor", "c2pa.actions", box("cbor", new Uint8Array([0xbf, 0x61]))),
        ),
      ),
    );
    const store = readProvenance(splicePng(PNG, pngChunk("caBX", garbage)));
    expect(store.c2pa).toEqual({
      present: true,
      digitalSourceTypes: [],
      aiGenerated: false,
      claimGenerator: null,
    });
    expectAccepted(store);
  });

  it("cuts text to its bound, drops identifiers that do not fit, and never cuts an id", () => {
    const long = "Ω".repeat(300);
    const bytes = spliceJpeg(
      JPEG,
      jpegExif({ make: `  Cam\u0007era\n  Co  `, model: long, software: "x" }),
      jpegXmp(
        aigcElementXmp({
          Label: "1",
          ProduceID: "a".repeat(PROVENANCE_LIMITS.contentId + 1),
          PropagateID: "has space",
          ContentProducer: long,
        }),
      ),
    );
    const read = readProvenance(bytes);
    expect(read.exif?.make).toBe("Cam era Co");
    expect(read.exif?.model).toBe("Ω".repeat(PROVENANCE_LIMITS.model));
    expect(read.aiLabel).toMatchObject({
      produceId: null,
      propagateId: null,
      contentProducer: "Ω".repeat(PROVENANCE_LIMITS.party),
    });
    expectAccepted(read);
  });

  it("reads only the extended XMP the main packet names, and only when its parts cover it", () => {
    const guid = "0123456789ABCDEF0123456789ABCDEF";
    const other = "FEDCBA9876543210FEDCBA9876543210";
    const label = aigcElementXmp(LABEL);
    const named = spliceJpeg(
      JPEG,
      jpegXmp(hasExtendedXmp(guid)),
      ...jpegExtendedXmp(other, aigcElementXmp({ ...LABEL, Label: "3" })),
      ...jpegExtendedXmp(guid, label),
    );
    expect(readProvenance(named).aiLabel).toEqual(READ_LABEL);
    // Not named by the main packet: not read.
    expect(
      readProvenance(spliceJpeg(JPEG, jpegXmp(xmpPacket("")), ...jpegExtendedXmp(guid, label))).aiLabel,
    ).toBe(null);
    // A part missing, or a total the parts do not reach: not read (and nothing allocated).
    const parts = jpegExtendedXmp(guid, label);
    expect(readProvenance(spliceJpeg(JPEG, jpegXmp(hasExtendedXmp(guid)), ...parts.slice(1))).aiLabel).toBe(
      null,
    );
    const short = jpegExtendedXmp(guid, label, 100, 4 * 1024 * 1024);
    expect(readProvenance(spliceJpeg(JPEG, jpegXmp(hasExtendedXmp(guid)), ...short)).aiLabel).toBe(null);
  });

  it("drops a source type the ledger would refuse: not an http(s) URI or a URN, or personal data", () => {
    const types = [
      "mailto:zhang.san@example.com",
      "tel:+8613812345678",
      "13812345678",
      "https://user@example.com/type",
      "https://example.com/types/13812345678",
      "https://example.com/types/edited",
      TRAINED.replace("http:", "HTTPS:"),
    ];
    const read = readProvenance(
      splicePng(
        PNG,
        pngChunk(
          "caBX",
          manifestStore(
            manifest({ actions: [types.map((t) => ({ action: "c2pa.edited", digitalSourceType: t }))] }),
          ),
        ),
      ),
    );
    expect(read.c2pa.digitalSourceTypes).toEqual(["https://example.com/types/edited", TRAINED]);
    expectAccepted(read);
  });

  it("keeps at most eight distinct source types, and no unprintable one", () => {
    const actions = Array.from({ length: 12 }, (_, i) => ({
      action: "c2pa.edited",
      digitalSourceType: `urn:example:type-${i % 10}`,
    }));
    actions.push({ action: "c2pa.edited", digitalSourceType: "has a space" });
    const read = readProvenance(
      splicePng(PNG, pngChunk("caBX", manifestStore(manifest({ actions: [actions] })))),
    );
    expect(read.c2pa.digitalSourceTypes).toEqual(
      Array.from({ length: 8 }, (_, i) => `urn:example:type-${i}`),
    );
    expectAccepted(read);
  });

  it("survives hostile metadata: truncated boxes and segments, deep nesting, a deflate bomb", () => {
    const store = manifestStore(
      manifest({ actions: [[{ action: "c2pa.created", digitalSourceType: TRAINED }]] }),
    );
    let nested = box("free", new Uint8Array(0));
    for (let i = 0; i < 200; i++) {
      nested = superbox("c2pa", "c2pa", nested);
    }
    const bomb = pngItxt("XML:com.adobe.xmp", `${aigcElementXmp(LABEL)}${" ".repeat(20_000_000)}`, true);
    const cases = [
      spliceJpeg(JPEG, jpegJumbf(store, 40)).subarray(0, 200),
      splicePng(PNG, pngChunk("caBX", store.subarray(0, store.length - 30))),
      splicePng(PNG, pngChunk("caBX", nested)),
      splicePng(PNG, bomb),
      extendedWebp(WEBP, { width: 34, height: 42, c2pa: store }).subarray(0, 2300),
      spliceJpeg(JPEG, jpegExif({ make: "x" }).subarray(0, 12)),
    ];
    for (const bytes of cases) {
      const read = readProvenance(bytes);
      expectAccepted(read);
    }
    // Inflation stops at a megabyte, and the label at the start of the bomb is still read.
    expect(readProvenance(splicePng(PNG, bomb)).aiLabel).toEqual(READ_LABEL);
  });
});
