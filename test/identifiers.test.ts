/**
 * Client-side identifiers (CONTRACT §1): every identifier type normalised as the contract
 * states it, invalid input rejected at the client, and the hash checked against an HMAC-SHA256
 * computed here independently (WebCrypto, and one known answer computed outside JavaScript).
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  consortiumKey,
  hashSubject,
  IDENTIFIER_TYPES,
  IdentifierError,
  type IdentifierType,
  normalise,
  normaliseEmail,
  normaliseNationalId,
  normalisePhone,
  residentIdCheckChar,
} from "../client/identifiers";

/** 32 key bytes 0x00…0x1f; the known answers below were computed with Python's hmac module. */
const KEY_BYTES = Uint8Array.from({ length: 32 }, (_, i) => i);
const KEY_B64URL = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";

function toBase64url(bytes: Uint8Array): string {
  return btoa(String.fromCharCode(...bytes))
    .replace(/\+/g, "-")
    .replace(/\//g, "_")
    .replace(/=+$/, "");
}

/** HMAC-SHA256 over exactly `T + ":" + normalised`, independent of client/identifiers.ts. */
async function referenceHash(keyBytes: Uint8Array, message: string): Promise<string> {
  const key = await crypto.subtle.importKey("raw", keyBytes, { name: "HMAC", hash: "SHA-256" }, false, [
    "sign",
  ]);
  const mac = new Uint8Array(await crypto.subtle.sign("HMAC", key, new TextEncoder().encode(message)));
  return [...mac].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * ISO 7064 MOD 11-2, written from the standard rather than copied: the weight of the digit
 * i places left of the check character is 2^i mod 11, and the check value c makes
 * Σ weight × digit + c ≡ 1 (mod 11); c = 10 is written X.
 */
function mod11_2(first17: string): string {
  let sum = 0;
  for (let i = 0; i < 17; i++) {
    let weight = 1;
    for (let k = 0; k < 17 - i; k++) {
      weight = (weight * 2) % 11;
    }
    sum += Number(first17[i]) * weight;
  }
  const c = (12 - (sum % 11)) % 11;
  return c === 10 ? "X" : String(c);
}

function rejects(fn: () => unknown): void {
  expect(fn).toThrow(IdentifierError);
}

const hmacKey = consortiumKey(KEY_B64URL);
const hashOf = async (type: IdentifierType, value: string) =>
  (await hashSubject(await hmacKey, type, value)).hash;

// ---------------------------------------------------------------------------------------------
// Generators
// ---------------------------------------------------------------------------------------------

/** Mobile prefixes whose every 8-digit continuation is a valid CN number. */
const MOBILE_PREFIXES = ["133", "135", "136", "137", "138", "139", "150", "151", "152", "157", "158", "159"];

const cnMobile = fc
  .tuple(fc.constantFrom(...MOBILE_PREFIXES), fc.stringMatching(/^\d{8}$/))
  .map(([prefix, rest]) => `${prefix}${rest}`);

const separator = fc.constantFrom("", " ", "-", " - ", ".", "  ");

/** A national mobile number respelled: separators between digits, a country prefix, padding. */
const phoneSpelling = (national: string) =>
  fc
    .tuple(
      fc.constantFrom("", "+86", "+86 ", "0086", "0086 ", "86", "(+86) ", "+86-"),
      fc.array(separator, { minLength: national.length, maxLength: national.length }),
      fc.constantFrom("", " ", "\t"),
      fc.constantFrom("", " ", "\n"),
    )
    .map(
      ([prefix, seps, lead, trail]) =>
        lead + prefix + [...national].map((d, i) => (i === 0 ? d : seps[i] + d)).join("") + trail,
    );

const REGION_CODES = ["110101", "110105", "310104", "440305", "510107", "330106", "420111", "610113"];

/** A real-format resident ID: region, birth date, sequence, MOD 11-2 check character. */
const residentId = fc
  .tuple(
    fc.constantFrom(...REGION_CODES),
    fc.date({
      min: new Date("1930-01-01T00:00:00Z"),
      max: new Date("2010-12-31T00:00:00Z"),
      noInvalidDate: true,
    }),
    fc.stringMatching(/^\d{3}$/),
  )
  .map(([region, birth, seq]) => {
    const first17 = `${region}${birth.toISOString().slice(0, 10).replace(/-/g, "")}${seq}`;
    return first17 + mod11_2(first17);
  });

const lower = "abcdefghijklmnopqrstuvwxyz0123456789";
const localCore = fc.string({ unit: fc.constantFrom(...lower), minLength: 1, maxLength: 12 });
const EMAIL_DOMAINS = ["qq.com", "163.com", "outlook.com", "example.co.uk", "gmail.com", "googlemail.com"];

/** Upper-cases a random subset of characters. */
function randomCase(value: string, mask: boolean[]): string {
  return [...value].map((ch, i) => (mask[i % Math.max(1, mask.length)] ? ch.toUpperCase() : ch)).join("");
}

// ---------------------------------------------------------------------------------------------
// Phone
// ---------------------------------------------------------------------------------------------

describe("phone", () => {
  it.each([
    "13800138000",
    "138 0013 8000",
    "138-0013-8000",
    "138.0013.8000",
    "(138) 0013-8000",
    "1 3 8 0 0 1 3 8 0 0 0",
    "138–0013–8000",
    "+8613800138000",
    "+86 138 0013 8000",
    "+86-138-0013-8000",
    "+86 (0)138 0013 8000",
    "(+86) 138 0013 8000",
    "0086 138 0013 8000",
    "0086-13800138000",
    "86 138 0013 8000",
    "8613800138000",
    "  13800138000  ",
    "\t+86 13800138000\n",
    "１３８００１３８０００",
    "８６１３８００１３８０００",
    "＋８６ １３８ ００１３ ８０００",
  ])("%j normalises to +8613800138000", (spelling) => {
    expect(normalisePhone(spelling)).toBe("+8613800138000");
    expect(normalise("phone", spelling)).toBe("+8613800138000");
  });

  it.each([
    ["010 1234 5678", "+861012345678"],
    ["(010) 1234-5678", "+861012345678"],
    ["+86 10 1234 5678", "+861012345678"],
    ["0086 10 12345678", "+861012345678"],
    ["021-6123 4567", "+862161234567"],
    ["+86 21 6123 4567", "+862161234567"],
    ["+1 650 253 0000", "+16502530000"],
    ["001 650 253 0000", "+16502530000"],
    ["+852 5123 4567", "+85251234567"],
    ["+44 20 7946 0958", "+442079460958"],
  ])("%j normalises to %s (landlines, CN's 00 international prefix, other regions)", (spelling, e164) => {
    expect(normalisePhone(spelling)).toBe(e164);
  });

  it("reads a number without a country code in region CN, not anywhere else", () => {
    // A US national number is not a valid CN number: it is refused, never guessed as +1.
    rejects(() => normalisePhone("650 253 0000"));
    expect(normalisePhone("+1 650 253 0000")).toBe("+16502530000");
  });

  it.each([
    "",
    "   ",
    "abc",
    "12345",
    "1380013800",
    "138001380001",
    "+86 138 0013 800",
    "11012345678",
    "0000000000",
    "+86",
    "+999 1234 5678",
  ])("rejects %j", (input) => {
    rejects(() => normalisePhone(input));
    rejects(() => normalise("phone", input));
  });

  it("is idempotent on generated valid numbers in any spelling", () => {
    fc.assert(
      fc.property(
        cnMobile.chain((n) => phoneSpelling(n).map((s) => [n, s] as const)),
        ([national, spelling]) => {
          const once = normalisePhone(spelling);
          expect(once).toBe(`+86${national}`);
          expect(normalisePhone(once)).toBe(once);
        },
      ),
      { numRuns: 500 },
    );
  });
});

// ---------------------------------------------------------------------------------------------
// E-mail
// ---------------------------------------------------------------------------------------------

describe("email", () => {
  it.each([
    ["alice@qq.com", "alice@qq.com"],
    ["  Alice@QQ.com\t", "alice@qq.com"],
    ["ALICE@QQ.COM", "alice@qq.com"],
    ["alice+refunds@qq.com", "alice@qq.com"],
    ["alice+a+b@qq.com", "alice@qq.com"],
    // Dots are significant outside Gmail.
    ["al.ice@qq.com", "al.ice@qq.com"],
    ["al.ice+x@outlook.com", "al.ice@outlook.com"],
    // Gmail: dots removed, googlemail.com folded into gmail.com.
    ["al.ice@gmail.com", "alice@gmail.com"],
    ["A.L.I.C.E@GMAIL.COM", "alice@gmail.com"],
    ["al.ice+shop@googlemail.com", "alice@gmail.com"],
    [" Alice.Smith+promo@GoogleMail.com ", "alicesmith@gmail.com"],
    // Only gmail.com and googlemail.com are Gmail; a look-alike subdomain keeps its dots.
    ["al.ice@mail.gmail.com.cn", "al.ice@mail.gmail.com.cn"],
    // Domain in ASCII (punycode); a full-width dot is an IDNA label separator.
    ["用户@例子.测试", "用户@xn--fsqu00a.xn--0zwm56d"],
    ["buyer@例子。测试", "buyer@xn--fsqu00a.xn--0zwm56d"],
    ["x@BÜCHER.de", "x@xn--bcher-kva.de"],
    ["x@xn--bcher-kva.de", "x@xn--bcher-kva.de"],
    ["Ä@qq.com", "ä@qq.com"],
  ])("%j normalises to %j", (input, expected) => {
    expect(normaliseEmail(input)).toBe(expected);
    expect(normalise("email", input)).toBe(expected);
  });

  it.each([
    "",
    "   ",
    "plainaddress",
    "@qq.com",
    "alice@",
    "al ice@qq.com",
    "alice@q q.com",
    "alice@localhost",
    "alice@.com",
    "alice@qq.com.",
    "alice@qq..com",
    "alice@-qq.com",
    "alice@qq_mail.com",
    "+tag@qq.com",
    "...@gmail.com",
    ".+x@googlemail.com",
    "a@b@qq.com",
    // The URL parser would drop these silently and give another address's hash.
    "alice@qq.com/x",
    "alice@qq.com:25",
    "alice@qq.com?x=1",
    "alice@qq.com#x",
    "alice@qq.com\\x",
    "alice@qq%2ecom",
    // IPv4 literals, which the URL parser would also rewrite (123.456 → 123.0.1.200).
    "alice@123.456",
    "alice@1.2.3.4",
    "alice@[1.2.3.4]",
  ])("rejects %j", (input) => {
    rejects(() => normaliseEmail(input));
  });

  it("is idempotent, and every spelling of one address normalises alike", () => {
    fc.assert(
      fc.property(
        localCore,
        fc.constantFrom(...EMAIL_DOMAINS),
        fc.array(fc.boolean(), { minLength: 1, maxLength: 8 }),
        fc.option(localCore, { nil: undefined }),
        fc.array(fc.nat({ max: 11 }), { maxLength: 4 }),
        fc.constantFrom("", " ", "\t", "\n "),
        (core, domain, caseMask, tag, dotAt, pad) => {
          const gmail = domain === "gmail.com" || domain === "googlemail.com";
          // Dots only change the address at Gmail, so only there are they a spelling variant.
          const dotted = gmail
            ? [...core].map((ch, i) => (dotAt.includes(i) && i > 0 ? `.${ch}` : ch)).join("")
            : core;
          const spelled = `${pad}${randomCase(`${dotted}${tag === undefined ? "" : `+${tag}`}@${domain}`, caseMask)}${pad}`;
          const once = normaliseEmail(spelled);
          expect(once).toBe(`${core}@${gmail ? "gmail.com" : domain}`);
          expect(normaliseEmail(once)).toBe(once);
        },
      ),
      { numRuns: 500 },
    );
  });
});

describe("email: Unicode normalisation (identifier rules v2)", () => {
  it.each([
    // A combining acute accent after e, and the precomposed é.
    ["Jose\u0301@example.com", "José@example.com", "josé@example.com"],
    // Hangul: conjoining jamo and the precomposed syllables.
    ["\u1112\u1161\u11AB\u1100\u1173\u11AF@example.com", "한글@example.com", "한글@example.com"],
    // Upper-case with a combining mark: lower-casing between two NFC passes.
    ["A\u030Angstro\u0308m@example.com", "Ångström@example.com", "ångström@example.com"],
    // Gmail rules still apply after normalisation.
    ["Jo.se\u0301+x@GoogleMail.com", "josé@gmail.com", "josé@gmail.com"],
  ])("%j and %j normalise to %j and hash the same", async (decomposed, composed, expected) => {
    expect(normaliseEmail(decomposed)).toBe(expected);
    expect(normaliseEmail(composed)).toBe(expected);
    expect(normaliseEmail(decomposed).normalize("NFC")).toBe(normaliseEmail(decomposed));
    expect(await hashOf("email", decomposed)).toBe(await hashOf("email", composed));
  });

  it("the NFC and NFD spellings of any address hash the same", async () => {
    const letters = [..."aeiouAEIOUnNcCsSzZ", "é", "Å", "ö", "ñ", "ç", "ß", "ǅ", "한", "글", "ﬁ", "Ω", "Ω"];
    await fc.assert(
      fc.asyncProperty(
        fc.string({ unit: fc.constantFrom(...letters), minLength: 1, maxLength: 10 }),
        fc.constantFrom(...EMAIL_DOMAINS),
        async (local, domain) => {
          const address = `${local}@${domain}`;
          const nfc = address.normalize("NFC");
          const nfd = address.normalize("NFD");
          expect(normaliseEmail(nfd)).toBe(normaliseEmail(nfc));
          expect(await hashOf("email", nfd)).toBe(await hashOf("email", nfc));
          // The normalised form is NFC and a fixed point.
          const once = normaliseEmail(nfd);
          expect(once.normalize("NFC")).toBe(once);
          expect(normaliseEmail(once)).toBe(once);
        },
      ),
      { numRuns: 300 },
    );
  });
});

// ---------------------------------------------------------------------------------------------
// PRC resident identity number
// ---------------------------------------------------------------------------------------------

describe("national_id", () => {
  it("agrees with the examples published in GB 11643-1999", () => {
    expect(mod11_2("11010519491231002")).toBe("X");
    expect(mod11_2("44052418800101001")).toBe("4");
    expect(normaliseNationalId("11010519491231002X")).toBe("11010519491231002X");
    expect(normaliseNationalId("440524188001010014")).toBe("440524188001010014");
  });

  it("upper-cases a final x and trims", () => {
    expect(normaliseNationalId("11010519491231002x")).toBe("11010519491231002X");
    expect(normaliseNationalId(" 11010519491231002x\n")).toBe("11010519491231002X");
    expect(normalise("national_id", "11010519491231002x")).toBe("11010519491231002X");
  });

  it.each([
    ["wrong check digit", "110105194912310021"],
    ["wrong check digit (X where a digit belongs)", "44052418800101001X"],
    ["17 characters", "11010519491231002"],
    ["19 characters", "11010519491231002X0"],
    ["the old 15-digit format", "110105491231002"],
    ["X not at the end", "1101051949123100X2"],
    ["a letter other than X", "11010519491231002Y"],
    ["full-width digits", "１１０１０５１９４９１２３１００２Ｘ"],
    ["inner spaces", "110105 19491231 002X"],
    ["empty", ""],
  ])("rejects %s", (_label, input) => {
    rejects(() => normaliseNationalId(input));
  });

  it("accepts every generated valid ID, in either case of X, idempotently", () => {
    fc.assert(
      fc.property(residentId, (id) => {
        expect(residentIdCheckChar(id.slice(0, 17))).toBe(id[17]);
        expect(normaliseNationalId(id)).toBe(id);
        expect(normaliseNationalId(id.toLowerCase())).toBe(id);
        expect(normaliseNationalId(normaliseNationalId(id))).toBe(id);
      }),
      { numRuns: 500 },
    );
  });

  it("rejects every single-digit substitution and every other check character", () => {
    fc.assert(
      fc.property(residentId, fc.nat({ max: 16 }), fc.integer({ min: 1, max: 9 }), (id, pos, delta) => {
        const digit = (Number(id[pos]) + delta) % 10;
        const changed = `${id.slice(0, pos)}${digit}${id.slice(pos + 1)}`;
        rejects(() => normaliseNationalId(changed));
        for (const check of "0123456789X") {
          if (check !== id[17]) {
            rejects(() => normaliseNationalId(id.slice(0, 17) + check));
          }
        }
      }),
      { numRuns: 300 },
    );
  });

  it("rejects every transposition of two adjacent different digits", () => {
    fc.assert(
      fc.property(residentId, fc.nat({ max: 15 }), (id, pos) => {
        fc.pre(id[pos] !== id[pos + 1]);
        const swapped = `${id.slice(0, pos)}${id[pos + 1]}${id[pos]}${id.slice(pos + 2)}`;
        rejects(() => normaliseNationalId(swapped));
      }),
      { numRuns: 300 },
    );
  });
});

// ---------------------------------------------------------------------------------------------
// Device and payment account
// ---------------------------------------------------------------------------------------------

describe("device and payment_account", () => {
  it.each(["device", "payment_account"] as const)("%s is trimmed, otherwise as given", (type) => {
    expect(normalise(type, "  AbC-123 xyz\t")).toBe("AbC-123 xyz");
    expect(normalise(type, "6222 0200 0000 0000 000")).toBe("6222 0200 0000 0000 000");
    expect(normalise(type, "ÄÖÜ.äöü")).toBe("ÄÖÜ.äöü");
    rejects(() => normalise(type, ""));
    rejects(() => normalise(type, " \t\n "));
  });

  it("is idempotent and keeps everything but surrounding whitespace", () => {
    fc.assert(
      fc.property(
        fc.string({ minLength: 1, maxLength: 40 }).filter((s) => s.trim().length > 0),
        fc.constantFrom("device", "payment_account") as fc.Arbitrary<IdentifierType>,
        (value, type) => {
          const once = normalise(type, value);
          expect(once).toBe(value.trim());
          expect(normalise(type, once)).toBe(once);
        },
      ),
      { numRuns: 500 },
    );
  });
});

// ---------------------------------------------------------------------------------------------
// Hashing
// ---------------------------------------------------------------------------------------------

describe("hashSubject", () => {
  it("matches HMAC-SHA256 known answers computed outside JavaScript", async () => {
    expect(await hashOf("phone", "138 0013 8000")).toBe(
      "24da5131860738d5f3528f2345a2d577d22fd3a7b7d4306d6568546e3a77c670",
    );
    expect(await hashOf("email", " Alice.Smith+promo@GoogleMail.com ")).toBe(
      "02c038fb4bcf5152c75cad14cac0cd0c7573fb2c76d3ea7f815cd2aced0fe61b",
    );
    expect(await hashOf("national_id", "11010519491231002x")).toBe(
      "9142899f71277e1928fa00a19f3f51d59d362de81217aa956acc0fb8827accdf",
    );
    expect(await hashOf("device", "  AbC-123 xyz ")).toBe(
      "2410f983374eb2ab7a638b749c2c83dce739bb8f605e1d961d285a461c153bfc",
    );
  });

  it.each([
    ["phone", "+86 138-0013-8000", "+8613800138000"],
    ["email", "Al.Ice+x@googlemail.com", "alice@gmail.com"],
    ["national_id", "440524188001010014", "440524188001010014"],
    ["device", " dev-7f3a ", "dev-7f3a"],
    ["payment_account", " alipay:2088 1234 ", "alipay:2088 1234"],
  ] as const)(
    "%s: HMAC over exactly `type:normalised`, 64 lower-case hex, typed",
    async (type, raw, norm) => {
      const result = await hashSubject(await hmacKey, type, raw);
      expect(result.type).toBe(type);
      expect(result.hash).toMatch(/^[0-9a-f]{64}$/);
      expect(result.hash).toBe(await referenceHash(KEY_BYTES, `${type}:${norm}`));
      expect((await hashSubject(await hmacKey, type, raw)).hash).toBe(result.hash);
    },
  );

  it("differs by type for the same value", async () => {
    const value = "13800138000";
    const hashes = await Promise.all(
      (["phone", "device", "payment_account"] as const).map((type) => hashOf(type, value)),
    );
    expect(new Set(hashes).size).toBe(3);
    expect(hashes[1]).toBe(await referenceHash(KEY_BYTES, `device:${value}`));
    expect(hashes[2]).toBe(await referenceHash(KEY_BYTES, `payment_account:${value}`));
  });

  it("never hashes invalid input: it is an error at the client", async () => {
    const key = await hmacKey;
    await expect(hashSubject(key, "phone", "1380013800")).rejects.toThrow(IdentifierError);
    await expect(hashSubject(key, "national_id", "110105194912310021")).rejects.toThrow(IdentifierError);
    await expect(hashSubject(key, "email", "alice@123.456")).rejects.toThrow(IdentifierError);
    await expect(hashSubject(key, "device", "   ")).rejects.toThrow(IdentifierError);
  });

  it("decodes base64url keys (with - and _) and refuses keys under 32 bytes", async () => {
    const bytes = Uint8Array.from({ length: 32 }, (_, i) => (i % 2 === 0 ? 0xfb : 0xff));
    const b64url = toBase64url(bytes);
    expect(b64url).toMatch(/[-_]/);
    const result = await hashSubject(await consortiumKey(b64url), "device", "d1");
    expect(result.hash).toBe(await referenceHash(bytes, "device:d1"));
    await expect(consortiumKey(toBase64url(new Uint8Array(31)))).rejects.toThrow(IdentifierError);
  });

  it("equals an independent HMAC for any key and any identifier type", async () => {
    const samples: Record<IdentifierType, string[]> = {
      phone: ["13800138000", "+86 139 0013 9000"],
      email: ["Bob+x@163.com", "b.o.b@gmail.com"],
      national_id: ["11010519491231002x", "440524188001010014"],
      device: ["idfa:ABC", " android-1 "],
      payment_account: ["6222020000000000000", "wx:o6_bm"],
    };
    await fc.assert(
      fc.asyncProperty(
        fc.uint8Array({ minLength: 32, maxLength: 64 }),
        fc.constantFrom(...IDENTIFIER_TYPES),
        fc.nat({ max: 1 }),
        async (bytes, type, i) => {
          const raw = samples[type][i] as string;
          const { hash } = await hashSubject(await consortiumKey(toBase64url(bytes)), type, raw);
          expect(hash).toBe(await referenceHash(bytes, `${type}:${normalise(type, raw)}`));
        },
      ),
      { numRuns: 200 },
    );
  });

  it("hashes every spelling of a phone number alike", async () => {
    const key = await hmacKey;
    await fc.assert(
      fc.asyncProperty(
        cnMobile.chain((n) => fc.tuple(fc.constant(n), phoneSpelling(n), phoneSpelling(n))),
        async ([national, a, b]) => {
          const expected = await referenceHash(KEY_BYTES, `phone:+86${national}`);
          expect((await hashSubject(key, "phone", a)).hash).toBe(expected);
          expect((await hashSubject(key, "phone", b)).hash).toBe(expected);
        },
      ),
      { numRuns: 300 },
    );
  });

  it("hashes distinct normalised values differently", async () => {
    const key = await hmacKey;
    await fc.assert(
      fc.asyncProperty(fc.uniqueArray(cnMobile, { minLength: 2, maxLength: 2 }), async ([a, b]) => {
        const ha = (await hashSubject(key, "phone", a as string)).hash;
        const hb = (await hashSubject(key, "phone", b as string)).hash;
        expect(ha).not.toBe(hb);
      }),
      { numRuns: 200 },
    );
    await fc.assert(
      fc.asyncProperty(
        fc.uniqueArray(
          fc.string({ minLength: 1, maxLength: 24 }).map((s) => s.trim()),
          { minLength: 2, maxLength: 2, selector: (s) => s },
        ),
        fc.constantFrom("device", "payment_account") as fc.Arbitrary<IdentifierType>,
        async ([a, b], type) => {
          fc.pre((a as string).length > 0 && (b as string).length > 0);
          expect((await hashSubject(key, type, a as string)).hash).not.toBe(
            (await hashSubject(key, type, b as string)).hash,
          );
        },
      ),
      { numRuns: 200 },
    );
    await fc.assert(
      fc.asyncProperty(residentId, residentId, async (a, b) => {
        fc.pre(a !== b);
        expect((await hashSubject(key, "national_id", a)).hash).not.toBe(
          (await hashSubject(key, "national_id", b)).hash,
        );
      }),
      { numRuns: 200 },
    );
  });
});
