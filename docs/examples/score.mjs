// Scores a buyer with @pixiu/client (npm install @pixiu/client): node score.mjs "+86 138 0013 8000"
import { readFileSync } from "node:fs";
import { consortiumKey, hashSubject, PixiuClient } from "@pixiu/client";

const keyFile = process.env.PIXIU_KEY ?? ".local/keys/demo-shop-a.private.jwk.json";
const pixiu = new PixiuClient({
  baseUrl: process.env.PIXIU_URL ?? "http://127.0.0.1:8787",
  platformId: process.env.PIXIU_PLATFORM ?? "demo-shop-a",
  privateJwk: JSON.parse(readFileSync(keyFile, "utf8")),
});
const key = await consortiumKey(process.env.PIXIU_CONSORTIUM_KEY);
const answer = await pixiu.score([await hashSubject(key, "phone", process.argv[2] ?? "13800138000")]);
console.log(JSON.stringify({ score: answer.score, band: answer.band, action: answer.action }));
