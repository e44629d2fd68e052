/**
 * The repository speaks for itself (issue 12, point 4): no Markdown file of ours links outside the
 * repository (a relative link that climbs out of it, or to the consortium's shared folder), and
 * every relative link, with its #anchor, lands on a file and heading that exist.
 */
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { ROOT } from "../../scripts/lib/local";

const SKIP = new Set(["node_modules", ".git", ".wrangler", "dist", "public", "bench-results", ".local"]);

function markdownFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (SKIP.has(name)) {
      return [];
    }
    if (statSync(path).isDirectory()) {
      return markdownFiles(path);
    }
    return name.endsWith(".md") ? [path] : [];
  });
}

/** GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens. */
function anchors(markdown: string): Set<string> {
  const out = new Set<string>();
  for (const line of markdown.split("\n")) {
    const m = /^#{1,6}\s+(.*)$/.exec(line);
    if (m) {
      out.add(
        (m[1] ?? "")
          .trim()
          .toLowerCase()
          .replace(/[^\p{L}\p{N}\s_-]/gu, "")
          .replace(/\s/g, "-"),
      );
    }
  }
  return out;
}

const files = markdownFiles(ROOT);
const links = files.flatMap((file) => {
  const text = readFileSync(file, "utf8").replace(/```[\s\S]*?```/g, "");
  return [...text.matchAll(/\]\(([^)\s]+)\)/g)].map((m) => ({ file, target: m[1] as string }));
});

describe("documentation links", () => {
  it("finds our Markdown files", () => {
    expect(files.map((f) => relative(ROOT, f))).toEqual(expect.arrayContaining(["README.md", "docs/api.md"]));
    expect(links.filter((l) => !/^[a-z]+:/i.test(l.target)).length).toBeGreaterThan(30);
  });

  it("no file mentions the consortium's shared folder", () => {
    const offenders = files.filter((f) =>
      /\.\.\/shared\b|shared\/(CONTRACT|DOMAIN|STYLE)\.md/.test(readFileSync(f, "utf8")),
    );
    expect(offenders.map((f) => relative(ROOT, f))).toEqual([]);
  });

  it("every relative link stays inside the repository and lands on a file and heading that exist", () => {
    const broken: string[] = [];
    for (const { file, target } of links) {
      if (/^[a-z][a-z0-9+.-]*:/i.test(target)) {
        continue; // a URL: a reference, not a part of the repository
      }
      const [path = "", anchor] = target.split("#");
      const dest = path === "" ? file : resolve(dirname(file), decodeURIComponent(path));
      const where = `${relative(ROOT, file)} → ${target}`;
      if (relative(ROOT, dest).startsWith("..")) {
        broken.push(`${where}: outside the repository`);
        continue;
      }
      if (!existsSync(dest)) {
        broken.push(`${where}: no such file`);
        continue;
      }
      if (anchor && dest.endsWith(".md") && !anchors(readFileSync(dest, "utf8")).has(anchor)) {
        broken.push(`${where}: no such heading`);
      }
    }
    expect(broken).toEqual([]);
  });
});
