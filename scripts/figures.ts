/**
 * `npm run figures`: draws docs/figures/*.svg from the real scoring code and the simulation (the
 * same scenario runs as `npm run simulate`: scripts/lib/scenarios.ts), so the pictures in
 * docs/scoring.md can never drift from the model, and the PDQ distance
 * histogram of docs/evidence.md from the real hasher (`client/pdq.ts`) and the fixture photos.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Confirmation } from "../worker/schemas/reports";
import { type Band, DEFAULT_MODEL, evaluate, type ScoreRecord } from "../worker/scoring/model";
import { MAX_EXACT_DISTANCE } from "../worker/services/fingerprints";
import { chunksOfHex, distance, Population, realPhotos } from "./lib/fingerprint-population";
import { DEFAULT_LEDGER, type LedgerResult, simulate } from "./lib/ledger-sim";
import { ROOT } from "./lib/local";
import { DAY, DEFAULT_MARKET, NOW, rng, type SimBuyer, START, simulatePhotos } from "./lib/market";
import type { Photo } from "./lib/photos";
import { SCENARIOS, type Scenario, TRACK_EVERY_DAYS } from "./lib/scenarios";

const OUT = join(ROOT, "docs", "figures");

interface Series {
  name: string;
  color: string;
  points: [number, number][];
  dashed?: boolean;
}

const W = 700;
const H = 360;
const M = { left: 56, right: 210, top: 36, bottom: 48 };

const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;");

function chart(opts: {
  title: string;
  x: { label: string; min: number; max: number; ticks: number[]; format?: (v: number) => string };
  y: { label: string; min: number; max: number; ticks: number[] };
  series: Series[];
  bars?: boolean;
  hlines?: { y: number; label: string }[];
  /** Vertical markers; the label sits left of the line unless `right`. */
  vlines?: { x: number; label: string; right?: boolean }[];
}): string {
  const pw = W - M.left - M.right;
  const ph = H - M.top - M.bottom;
  const sx = (v: number) => M.left + ((v - opts.x.min) / (opts.x.max - opts.x.min)) * pw;
  const sy = (v: number) => M.top + ph - ((v - opts.y.min) / (opts.y.max - opts.y.min)) * ph;
  const fx = opts.x.format ?? ((v: number) => String(v));
  const parts: string[] = [];
  parts.push(`<rect width="${W}" height="${H}" fill="#fff"/>`);
  parts.push(`<text x="${M.left}" y="22" font-size="15" font-weight="600">${esc(opts.title)}</text>`);
  for (const t of opts.y.ticks) {
    parts.push(`<line x1="${M.left}" x2="${M.left + pw}" y1="${sy(t)}" y2="${sy(t)}" stroke="#eee"/>`);
    parts.push(
      `<text x="${M.left - 8}" y="${sy(t) + 4}" font-size="11" text-anchor="end" fill="#555">${t}</text>`,
    );
  }
  for (const t of opts.x.ticks) {
    parts.push(
      `<text x="${sx(t)}" y="${M.top + ph + 18}" font-size="11" text-anchor="middle" fill="#555">${esc(fx(t))}</text>`,
    );
  }
  parts.push(
    `<line x1="${M.left}" x2="${M.left + pw}" y1="${M.top + ph}" y2="${M.top + ph}" stroke="#333"/>`,
  );
  parts.push(`<line x1="${M.left}" x2="${M.left}" y1="${M.top}" y2="${M.top + ph}" stroke="#333"/>`);
  parts.push(
    `<text x="${M.left + pw / 2}" y="${H - 10}" font-size="12" text-anchor="middle">${esc(opts.x.label)}</text>`,
  );
  parts.push(
    `<text transform="translate(16 ${M.top + ph / 2}) rotate(-90)" font-size="12" text-anchor="middle">${esc(opts.y.label)}</text>`,
  );
  for (const h of opts.hlines ?? []) {
    parts.push(
      `<line x1="${M.left}" x2="${M.left + pw}" y1="${sy(h.y)}" y2="${sy(h.y)}" stroke="#999" stroke-dasharray="4 3"/>`,
    );
    parts.push(
      `<text x="${M.left + pw - 4}" y="${sy(h.y) - 4}" font-size="10" text-anchor="end" fill="#777">${esc(h.label)}</text>`,
    );
  }
  for (const v of opts.vlines ?? []) {
    parts.push(
      `<line x1="${sx(v.x)}" x2="${sx(v.x)}" y1="${M.top}" y2="${M.top + ph}" stroke="#999" stroke-dasharray="4 3"/>`,
    );
    parts.push(
      `<text x="${sx(v.x) + (v.right ? 4 : -4)}" y="${M.top + 12}" font-size="10" text-anchor="${v.right ? "start" : "end"}" fill="#777">${esc(v.label)}</text>`,
    );
  }
  const n = opts.series.length;
  opts.series.forEach((s, i) => {
    if (opts.bars) {
      const step =
        s.points.length > 1
          ? sx((s.points[1] as [number, number])[0]) - sx((s.points[0] as [number, number])[0])
          : 10;
      const bw = (step * 0.8) / n;
      for (const [x, y] of s.points) {
        const left = sx(x) + step * 0.1 + i * bw;
        parts.push(
          `<rect x="${left.toFixed(1)}" y="${sy(y).toFixed(1)}" width="${bw.toFixed(1)}" height="${(sy(opts.y.min) - sy(y)).toFixed(1)}" fill="${s.color}"/>`,
        );
      }
    } else {
      const d = s.points
        .map(([x, y], k) => `${k === 0 ? "M" : "L"}${sx(x).toFixed(1)},${sy(y).toFixed(1)}`)
        .join(" ");
      parts.push(
        `<path d="${d}" fill="none" stroke="${s.color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="6 4"' : ""}/>`,
      );
      if (s.points.length <= 12) {
        for (const [x, y] of s.points) {
          parts.push(`<circle cx="${sx(x).toFixed(1)}" cy="${sy(y).toFixed(1)}" r="3" fill="${s.color}"/>`);
        }
      }
    }
    const ly = M.top + 8 + i * 18;
    parts.push(`<rect x="${W - M.right + 14}" y="${ly - 8}" width="12" height="10" fill="${s.color}"/>`);
    parts.push(`<text x="${W - M.right + 32}" y="${ly + 1}" font-size="11">${esc(s.name)}</text>`);
  });
  return `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" font-family="system-ui, sans-serif">\n${parts.join("\n")}\n</svg>\n`;
}

const bandLines = [
  { y: DEFAULT_MODEL.bands.medium, label: "medium (review)" },
  { y: DEFAULT_MODEL.bands.high, label: "high (require return)" },
  { y: DEFAULT_MODEL.bands.critical, label: "critical" },
];

let ref = 0;
function rec(platformId: string, confirmation: Confirmation, ageDays: number): ScoreRecord {
  ref += 1;
  const incidentAt = NOW - ageDays * DAY;
  return {
    ref: `f${ref}`,
    platformId,
    category: "ai_generated_image",
    confirmation,
    incidentAt,
    createdAt: incidentAt,
    amountValue: 29900,
    amountCurrency: "CNY",
    status: "active",
    // A police or court line shows such a confirmation once an admin verified it (docs/scoring.md §2).
    verified: true,
  };
}

function scoreVsPlatforms(): string {
  const line = (name: string, color: string, make: (p: number) => ScoreRecord[]): Series => ({
    name,
    color,
    points: [1, 2, 3, 4, 5, 6, 7, 8].map((k) => {
      const records = Array.from({ length: k }, (_, p) => make(p)).flat();
      return [k, evaluate(records, NOW).score];
    }),
  });
  return chart({
    title: "Score against the number of platforms that confirmed the buyer",
    x: {
      label: "distinct platforms reporting (one fresh case each unless noted)",
      min: 0.5,
      max: 8.5,
      ticks: [1, 2, 3, 4, 5, 6, 7, 8],
    },
    y: { label: "score", min: 0, max: 100, ticks: [0, 20, 40, 60, 80, 100] },
    hlines: bandLines,
    series: [
      line("3 forensics cases each", "#b91c1c", (p) => [
        rec(`p${p}`, "platform_forensics", 10),
        rec(`p${p}`, "platform_forensics", 40),
        rec(`p${p}`, "platform_forensics", 80),
      ]),
      line("platform forensics", "#2563eb", (p) => [rec(`p${p}`, "platform_forensics", 10)]),
      line("manual review", "#16a34a", (p) => [rec(`p${p}`, "manual_review", 10)]),
      line("police report", "#9333ea", (p) => [rec(`p${p}`, "police_report", 10)]),
    ],
  });
}

function decayFigure(): string {
  const points = (confirmation: Confirmation): [number, number][] =>
    Array.from({ length: 67 }, (_, m) => {
      const days = m * 30.4;
      return [days / 365, evaluate([rec("p1", confirmation, days)], NOW).score];
    });
  const twoPlatforms: [number, number][] = Array.from({ length: 67 }, (_, m) => {
    const days = m * 30.4;
    return [
      days / 365,
      evaluate([rec("p1", "platform_forensics", days), rec("p2", "platform_forensics", days)], NOW).score,
    ];
  });
  return chart({
    title: "How one record fades: score against the record's age",
    x: {
      label: "years since the incident",
      min: 0,
      max: 5.5,
      ticks: [0, 1, 2, 3, 4, 5],
      format: (v) => `${v}`,
    },
    y: { label: "score", min: 0, max: 100, ticks: [0, 20, 40, 60, 80, 100] },
    hlines: bandLines,
    vlines: [{ x: DEFAULT_MODEL.retentionDays / 365, label: "retention: stops counting" }],
    series: [
      { name: "two platforms, forensics", color: "#b91c1c", points: twoPlatforms },
      { name: "court ruling", color: "#9333ea", points: points("court_ruling") },
      { name: "platform forensics", color: "#2563eb", points: points("platform_forensics") },
      { name: "manual review", color: "#16a34a", points: points("manual_review") },
    ],
  });
}

/** Charts side by side and in rows, in one picture (each chart keeps its own axes and legend). */
function panels(charts: string[], cols: number, width = 1000): string {
  const rows = Math.ceil(charts.length / cols);
  const inner = charts.map((svg, i) =>
    svg
      .trim()
      .replace(
        '<svg xmlns="http://www.w3.org/2000/svg" ',
        `<svg x="${(i % cols) * W}" y="${Math.floor(i / cols) * H}" `,
      ),
  );
  return `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${cols * W} ${rows * H}" width="${width}" height="${Math.round((width * rows * H) / (cols * W))}" font-family="system-ui, sans-serif">\n<rect width="${cols * W}" height="${rows * H}" fill="#fff"/>\n${inner.join("\n")}\n</svg>\n`;
}

type Run = { scenario: Scenario; result: LedgerResult };

/** Per scenario: the score distribution at NOW of forgers and innocent buyers with a record. */
function distributionFigure(runs: Run[]): string {
  const groups = [
    { name: "forgers", color: "#b91c1c", kind: "forger" },
    { name: "wrongly confirmed", color: "#2563eb", kind: "wrongly_confirmed" },
    { name: "malicious victims", color: "#f59e0b", kind: "malicious_victim" },
  ];
  const bins = Array.from({ length: 10 }, (_, i) => i * 10);
  const charts = runs.map(({ scenario, result }) => {
    const series = groups.map((g) => {
      const members = result.buyers.filter((b) => b.kind === g.kind && b.records.length > 0);
      return {
        name: `${g.name} (${members.length})`,
        color: g.color,
        points: bins.map((lo) => {
          const k = members.filter(
            (b) =>
              b.evaluation.score >= lo &&
              (b.evaluation.score < lo + 10 || (lo === 90 && b.evaluation.score === 100)),
          ).length;
          return [lo, (100 * k) / Math.max(1, members.length)] as [number, number];
        }),
      };
    });
    return chart({
      title: SHORT[scenario.id] ?? scenario.id,
      x: {
        label: "score at NOW (bins of 10; band high from 50)",
        min: 0,
        max: 100,
        ticks: [0, 20, 40, 60, 80, 100],
      },
      y: { label: "% of the group with a record", min: 0, max: 100, ticks: [0, 20, 40, 60, 80, 100] },
      vlines: [{ x: DEFAULT_MODEL.bands.high, label: "high", right: true }],
      series,
      bars: true,
    });
  });
  return panels(charts, 2);
}

const SHORT: Record<string, string> = {
  baseline: "Baseline",
  forged_police: "Malicious platform forges police reports",
  feedback: "A platform reports whoever the ledger flags",
  coalition: "Coalition of 3 malicious platforms",
  careless: "Careless honest platform (10× mistakes)",
};

/** Legend names, short enough for the legend column. */
const LEGEND: Record<string, string> = {
  baseline: "baseline",
  forged_police: "forged police reports",
  feedback: "feedback platform",
  coalition: "coalition of 3",
  careless: "careless platform",
};

const years = (at: number) => (at - START) / (365 * DAY);

/** Trust over the three years, recomputed weekly as the job does, of honest and other members. */
function trustFigure(runs: Run[]): string {
  const of = (id: string) => runs.find((r) => r.scenario.id === id)?.result as LedgerResult;
  const line = (name: string, color: string, run: string, platform: string, dashed = false): Series => ({
    name,
    color,
    dashed,
    points: of(run).trust.map((p) => [years(p.at), p.trust[platform] ?? 0]),
  });
  return chart({
    title: "Reporter trust over the simulated years (recomputed weekly)",
    x: {
      label: "years since the simulated ledger opened",
      min: 0,
      max: 3.05,
      ticks: [0, 0.5, 1, 1.5, 2, 2.5, 3],
    },
    y: { label: "trust t", min: 0, max: 1, ticks: [0, 0.2, 0.4, 0.6, 0.8, 1] },
    hlines: [{ y: 0.5, label: "probation (fewer than 20 reports)" }],
    series: [
      line("honest member (p2)", "#16a34a", "baseline", "p2"),
      line("feedback platform (p7)", "#9333ea", "feedback", "p7", true),
      line("careless member (p1)", "#2563eb", "careless", "p1"),
      line("malicious platform (mal)", "#f59e0b", "baseline", "mal"),
      line("coalition member (m2)", "#b91c1c", "coalition", "m2", true),
    ],
  });
}

/** Innocent buyers at review or worse, every week, per scenario: what a table at NOW hides. */
function innocentsFigure(runs: Run[]): string {
  const colors = ["#16a34a", "#9333ea", "#0891b2", "#b91c1c", "#2563eb"];
  const top =
    Math.ceil(Math.max(...runs.flatMap((r) => r.result.track.map((t) => t.innocentReview))) / 20) * 20;
  return chart({
    title: "Innocent buyers at review or worse, week by week",
    x: {
      label: "years since the simulated ledger opened",
      min: 0,
      max: 3.05,
      ticks: [0, 0.5, 1, 1.5, 2, 2.5, 3],
    },
    y: {
      label: "innocent buyers (of 198,021)",
      min: 0,
      max: top,
      ticks: Array.from({ length: top / 20 + 1 }, (_, k) => k * 20),
    },
    // The baseline last, on top: the other lines follow it except where their scenario bites.
    series: runs
      .map(({ scenario, result }, i) => ({
        name: LEGEND[scenario.id] ?? scenario.id,
        color: colors[i % colors.length] as string,
        dashed: scenario.id === "forged_police" || scenario.id === "feedback",
        points: result.track.map((t): [number, number] => [years(t.at), t.innocentReview]),
      }))
      .reverse(),
  });
}

function photoReuseFigure(buyers: SimBuyer[]): string {
  const p = simulatePhotos(buyers, DEFAULT_MARKET);
  const bands: Band[] = ["none", "low", "medium", "high", "critical"];
  const share = (counts: Record<Band, number>): [number, number][] => {
    const total = bands.reduce((n, b) => n + counts[b], 0);
    return bands.map((b, i) => [i, (100 * counts[b]) / Math.max(1, total)]);
  };
  const multi = bands.reduce((n, b) => n + p.switchedMultiByBand[b], 0);
  return chart({
    title: `Forgers' ${p.switched} fresh accounts, scored with their claim's photo`,
    x: {
      label: "band",
      min: 0,
      max: 5,
      ticks: [0.5, 1.5, 2.5, 3.5, 4.5],
      format: (v) => bands[Math.floor(v)] ?? "",
    },
    y: { label: "% of the group", min: 0, max: 100, ticks: [0, 20, 40, 60, 80, 100] },
    series: [
      {
        name: "records only",
        color: "#9ca3af",
        points: bands.map((_, i) => [i, i === 0 ? 100 : 0]),
      },
      { name: "with the photo", color: "#2563eb", points: share(p.switchedByBand) },
      {
        name: `photo on 2+ platforms (${multi})`,
        color: "#b91c1c",
        points: share(p.switchedMultiByBand),
      },
    ],
    bars: true,
  });
}

/**
 * How far apart PDQ puts copies of a photo and different photos, against the match limit: the
 * fixture originals (and bridge tiles, each a picture of its own) and their edit chains, turns
 * and mirrors, all hashed by the real hasher, next to pairs of different photos and pairs of the
 * bench's synthetic population (`npm run bench:evidence` uses the same generator and seed).
 */
function distanceFigure(): string {
  const seed = 11;
  const real = realPhotos(seed);
  const nearest = (of: Photo, hash: string) => {
    const q = chunksOfHex(hash);
    return Math.min(...of.dihedral.map((d) => distance(chunksOfHex(d), q)));
  };
  const plain = (a: string, b: string) => distance(chunksOfHex(a), chunksOfHex(b));
  const edits = real.inSet.filter((r) => r.kind === "edited");
  const bridge = real.originals[0] as Photo;
  const turnedHashes = real.inSet.filter((r) => r.kind === "turned").map((r) => r.hash);
  const photos = [...real.originals, ...real.heldOut];
  const pairs: number[] = [];
  for (const [i, a] of photos.entries()) {
    for (const b of photos.slice(i + 1)) {
      pairs.push(nearest(a, b.hash));
    }
  }
  const random = rng(seed);
  const pop = new Population(50_000);
  pop.grow(50_000, random);
  const sample: number[] = [];
  while (sample.length < 20_000) {
    const i = Math.floor(random() * pop.size);
    const j = Math.floor(random() * pop.size);
    if (i !== j) {
      sample.push(distance(pop.at(i), pop.at(j)));
    }
  }
  const width = 4;
  const bins = Array.from({ length: 176 / width }, (_, k) => k * width);
  const histogram = (xs: number[]): [number, number][] =>
    bins.map((lo) => [
      lo + width / 2,
      (100 * xs.filter((x) => x >= lo && x < lo + width).length) / Math.max(1, xs.length),
    ]);
  // Crops and slight turns move PDQ's grid; the other edits change values, not positions.
  const moved = edits.filter((e) => /crop|turn/.test(e.edit));
  const kept = edits.filter((e) => !/crop|turn/.test(e.edit));
  const series: Series[] = [
    {
      name: `edited, no crop/turn (${kept.length})`,
      color: "#b91c1c",
      points: histogram(kept.map((e) => e.toSource)),
    },
    {
      name: `edited with crop/turn (${moved.length})`,
      color: "#b91c1c",
      dashed: true,
      points: histogram(moved.map((e) => e.toSource)),
    },
    {
      name: `turned/mirrored (${turnedHashes.length})`,
      color: "#f59e0b",
      points: histogram(turnedHashes.map((h) => nearest(bridge, h))),
    },
    {
      name: `same, plain hash (${turnedHashes.length})`,
      color: "#a16207",
      dashed: true,
      points: histogram(turnedHashes.map((h) => plain(bridge.hash, h))),
    },
    { name: `different photos (${pairs.length})`, color: "#2563eb", points: histogram(pairs) },
    {
      name: `bench hashes (${sample.length / 1000}k)`,
      color: "#16a34a",
      dashed: true,
      points: histogram(sample),
    },
  ];
  const within = (xs: number[]) => `${xs.filter((x) => x <= MAX_EXACT_DISTANCE).length}/${xs.length}`;
  console.log(
    `pdq-distances: within ${MAX_EXACT_DISTANCE}: edited without crop/turn ${within(kept.map((e) => e.toSource))}, with crop/turn ${within(moved.map((e) => e.toSource))}, turned/mirrored ${within(turnedHashes.map((h) => nearest(bridge, h)))} (plain hash ${within(turnedHashes.map((h) => plain(bridge.hash, h)))}); nearest different photos ${Math.min(...pairs)}, nearest bench pair ${Math.min(...sample)}`,
  );
  const top = Math.ceil(Math.max(...series.flatMap((s) => s.points.map(([, y]) => y))) / 10) * 10;
  return chart({
    title: "PDQ distance: copies of a photo against different photos",
    x: {
      label: "bits of 256 that differ (nearest of the original's 8 dihedral hashes unless plain)",
      min: 0,
      max: 176,
      ticks: [0, 16, 32, 48, 64, 80, 96, 112, 128, 144, 160, 176],
    },
    y: {
      label: "% of the group (bins of 4 bits)",
      min: 0,
      max: top,
      ticks: Array.from({ length: top / 10 + 1 }, (_, k) => k * 10),
    },
    vlines: [{ x: MAX_EXACT_DISTANCE + 0.5, label: `${MAX_EXACT_DISTANCE}: match limit`, right: true }],
    series,
  });
}

mkdirSync(OUT, { recursive: true });
writeFileSync(join(OUT, "score-vs-platforms.svg"), scoreVsPlatforms());
writeFileSync(join(OUT, "decay.svg"), decayFigure());
const runs: Run[] = SCENARIOS.map((scenario) => ({
  scenario,
  result: simulate(scenario.market, { ...DEFAULT_LEDGER, trackEveryDays: TRACK_EVERY_DAYS }),
}));
writeFileSync(join(OUT, "simulated-distribution.svg"), distributionFigure(runs));
writeFileSync(join(OUT, "trust-over-time.svg"), trustFigure(runs));
writeFileSync(join(OUT, "innocents-over-time.svg"), innocentsFigure(runs));
writeFileSync(join(OUT, "photo-reuse.svg"), photoReuseFigure((runs[0] as Run).result.buyers));
writeFileSync(join(OUT, "pdq-distances.svg"), distanceFigure());
console.log(
  `wrote ${OUT}/{score-vs-platforms,decay,simulated-distribution,trust-over-time,innocents-over-time,photo-reuse,pdq-distances}.svg`,
);
