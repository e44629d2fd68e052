/**
 * Vitest global setup, on the Node side: a webhook receiver the tests control, a real HTTP server
 * on 127.0.0.1. The first path segment decides its answer (`/ok/…` 204, `/fail/…` 500,
 * `/redirect/…` 302 to `/ok/…`); every request is recorded, and `GET /_log?prefix=/ok/abc` answers
 * the recorded ones under a path prefix, so a test inside workerd can read what was delivered.
 * Its base URL reaches the tests through `inject("receiverUrl")`.
 */
import { createServer, type IncomingMessage } from "node:http";
import type { AddressInfo } from "node:net";
import type { TestProject } from "vitest/node";

export interface ReceivedRequest {
  method: string;
  path: string;
  headers: Record<string, string>;
  body: string;
  at: number;
}

const received: ReceivedRequest[] = [];

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    req.on("error", reject);
  });
}

const server = createServer(async (req, res) => {
  const url = new URL(req.url ?? "/", "http://127.0.0.1");
  if (url.pathname === "/_log") {
    const prefix = url.searchParams.get("prefix") ?? "/";
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify(received.filter((r) => r.path.startsWith(prefix))));
    return;
  }
  const body = await readBody(req);
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(req.headers)) {
    headers[k] = Array.isArray(v) ? v.join(", ") : (v ?? "");
  }
  received.push({ method: req.method ?? "", path: url.pathname, headers, body, at: Date.now() });
  const kind = url.pathname.split("/")[1];
  if (kind === "ok") {
    res.writeHead(204).end();
  } else if (kind === "redirect") {
    res.writeHead(302, { location: url.pathname.replace("/redirect/", "/ok/") }).end();
  } else {
    res.writeHead(500, { "content-type": "text/plain" }).end("receiver says no");
  }
});

export async function setup(project: TestProject) {
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  project.provide("receiverUrl", `http://127.0.0.1:${port}`);
}

export async function teardown() {
  await new Promise<void>((resolve) => server.close(() => resolve()));
}
