/**
 * Unit tests of the address parser (worker/lib/ip.ts): the source key the anonymous audit budget
 * counts under, and the table of blocks a webhook URL may not name (worker/services/webhooks.ts).
 */
import { describe, expect, it } from "vitest";
import { formatIp, inCidr, lastOf, parseCidr, parseIp, sourceKey } from "../worker/lib/ip";
import { REFUSED_RANGES, webhookUrlProblem } from "../worker/services/webhooks";

describe("parseIp", () => {
  it("reads every IPv6 spelling of one address as the same bytes", () => {
    const spellings = [
      "2001:db8::1",
      "2001:DB8::1",
      "2001:0db8:0000:0000:0000:0000:0000:0001",
      "2001:db8:0:0::0:1",
      "[2001:db8::1]",
      "2001:db8::1%eth0",
      "2001:db8::0.0.0.1",
    ];
    const expected = formatIp(parseIp("2001:db8::1") ?? { version: 4, bytes: new Uint8Array(4) });
    expect(expected).toBe("2001:db8:0:0:0:0:0:1");
    for (const text of spellings) {
      const ip = parseIp(text);
      expect(ip && formatIp(ip), text).toBe(expected);
    }
  });

  it("refuses what is not an address", () => {
    for (const text of [
      "",
      "local",
      "1.2.3",
      "1.2.3.4.5",
      "256.1.1.1",
      "01.2.3.4",
      "0x7f.0.0.1",
      "1::2::3",
      "1:2:3:4:5:6:7:8:9",
      "1:2:3:4:5:6:7:8::",
      "12345::",
      "::g",
      "2001:db8::1.2.3",
      "src-01",
    ]) {
      expect(parseIp(text), text).toBeNull();
    }
  });
});

describe("sourceKey: the anonymous audit budget's key", () => {
  it("is the /64 of an IPv6 source, whatever its spelling or zone", () => {
    const key = "2001:db8:1:2::/64";
    for (const source of [
      "2001:db8:1:2::1",
      "2001:db8:1:2:ffff:ffff:ffff:ffff",
      "2001:0DB8:0001:0002:0000:0000:0000:00ab",
      "2001:db8:1:2::ab%eth0",
    ]) {
      expect(sourceKey(source), source).toBe(key);
    }
    expect(sourceKey("2001:db8:1:3::1")).not.toBe(key);
  });

  it("is the IPv4 address itself, IPv4-mapped IPv6 included", () => {
    expect(sourceKey("198.51.100.7")).toBe("198.51.100.7");
    expect(sourceKey("::ffff:198.51.100.7")).toBe("198.51.100.7");
    expect(sourceKey("::FFFF:c633:6407")).toBe("198.51.100.7");
  });

  it("is the text itself, cut to 64 characters, when it is no address", () => {
    expect(sourceKey("local")).toBe("local");
    expect(sourceKey("x".repeat(500))).toBe("x".repeat(64));
  });
});

describe("webhook URL rules: the refused ranges", () => {
  const host = (bytes: Uint8Array, version: 4 | 6) =>
    version === 4 ? formatIp({ version, bytes }) : `[${formatIp({ version, bytes })}]`;

  it("every block parses, and its first and last address are refused", () => {
    for (const range of REFUSED_RANGES) {
      const block = parseCidr(range.cidr);
      for (const bytes of [block.bytes, lastOf(block)]) {
        const url = `https://${host(bytes, block.version)}/hook`;
        expect(webhookUrlProblem(url, false), `${url} (${range.name})`).not.toBeNull();
        if (!range.loopback) {
          expect(webhookUrlProblem(url, true), `${url} with loopback allowed`).not.toBeNull();
        }
      }
    }
  });

  it("covers the IANA special-purpose blocks named in the red-team review", () => {
    const covered = (text: string) => {
      const ip = parseIp(text);
      return ip !== null && REFUSED_RANGES.some((r) => inCidr(ip, parseCidr(r.cidr)));
    };
    for (const text of [
      "2002:a9fe:a9fe::", // 6to4 of 169.254.169.254
      "2001:0:4136:e378:8000:63bf:3fff:fdd2", // Teredo
      "fec0::1",
      "2001:db8::1",
      "3fff::1",
      "100::1",
      "192.0.2.1",
      "198.18.0.1",
      "198.19.255.255",
      "198.51.100.7",
      "203.0.113.7",
      "240.0.0.1",
      "255.255.255.255",
      "::ffff:7f00:1",
      "64:ff9b::a9fe:a9fe",
    ]) {
      expect(covered(text), text).toBe(true);
    }
  });

  it("public unicast addresses next to the refused blocks stay accepted", () => {
    for (const url of [
      "https://8.8.8.8/hook",
      "https://1.1.1.1/hook",
      "https://192.0.3.1/hook",
      "https://198.17.255.255/hook",
      "https://198.20.0.1/hook",
      "https://198.51.99.255/hook",
      "https://203.0.114.1/hook",
      "https://223.255.255.254/hook",
      "https://[2606:4700:4700::1111]/hook",
      "https://[2001:4860:4860::8888]/hook",
      "https://[2003::1]/hook",
      "https://[2001:200::1]/hook",
      "https://hooks.example.com/hook",
    ]) {
      expect(webhookUrlProblem(url, false), url).toBeNull();
    }
  });

  it("a malformed or misaligned block is a load-time error", () => {
    expect(() => parseCidr("10.0.0.1/8")).toThrow(/host bits/);
    expect(() => parseCidr("10.0.0.0/33")).toThrow(/not a CIDR/);
    expect(() => parseCidr("10.0.0.0")).toThrow(/not a CIDR/);
  });
});
