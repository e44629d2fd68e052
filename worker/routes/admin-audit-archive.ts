import { createRoute, z } from "@hono/zod-openapi";
import type { App } from "../app";
import { notFoundResponse, ProblemError, problemResponses } from "../lib/problem";
import { verifySegment } from "../log/archive";
import { guard } from "../middleware/auth";
import { CursorQuery } from "../schemas/common";

const SEGMENT_KEY = /^log\/shard-\d{3}\/\d{12}-\d{12}\.ndjson$/;

const list = createRoute({
  method: "get",
  path: "/v1/admin/audit/archive",
  tags: ["Admin: audit"],
  summary: "Archived log segments (R2), oldest first per shard",
  description:
    "Each segment is an audit export (`pixiu-audit-export/2`) of one shard's entries `from`–`to`, ending on a head a tree checkpoint signed, without subject keys. Download it from the bucket, or check it with `/v1/admin/audit/archive/verify`.",
  security: [{ bearer: [] }],
  middleware: [guard("audit.archive.list", "admin")] as const,
  request: { query: z.object({ cursor: CursorQuery }) },
  responses: {
    200: {
      description: "A page of segments",
      content: {
        "application/json": {
          schema: z
            .object({
              items: z.array(
                z.object({
                  key: z.string(),
                  shard: z.number().int(),
                  from: z.number().int(),
                  to: z.number().int(),
                  hash: z.string(),
                  size: z.number().int(),
                  uploaded: z.string(),
                }),
              ),
              nextCursor: z.string().nullable(),
            })
            .openapi("ArchivePage"),
        },
      },
    },
    ...problemResponses,
  },
});

const verify = createRoute({
  method: "get",
  path: "/v1/admin/audit/archive/verify",
  tags: ["Admin: audit"],
  summary: "Verify one archived segment: its chain, and the tree checkpoints that sign it",
  security: [{ bearer: [] }],
  middleware: [guard("audit.archive.verify", "admin")] as const,
  request: { query: z.object({ key: z.string().regex(SEGMENT_KEY, "must be a segment key from the list") }) },
  responses: {
    200: {
      description: "The verdict of the offline verifier, run on the stored segment",
      content: {
        "application/json": {
          schema: z
            .object({
              ok: z.boolean(),
              error: z.string().optional(),
              badShard: z.number().int().optional(),
              firstBadSeq: z.number().int().optional(),
              treeCheckpoints: z.number().int(),
              shards: z.array(z.record(z.string(), z.unknown())),
            })
            .passthrough()
            .openapi("ArchiveVerdict"),
        },
      },
    },
    ...notFoundResponse,
    ...problemResponses,
  },
});

export function registerAdminAuditArchive(app: App) {
  app.openapi(list, async (c) => {
    const { cursor } = c.req.valid("query");
    const page = await c.var.config.LOG_ARCHIVE.list({
      prefix: "log/",
      limit: 1000,
      include: ["customMetadata"],
      ...(cursor ? { cursor } : {}),
    });
    return c.json(
      {
        items: page.objects.map((o) => ({
          key: o.key,
          shard: Number(o.customMetadata?.shard ?? -1),
          from: Number(o.customMetadata?.from ?? 0),
          to: Number(o.customMetadata?.to ?? 0),
          hash: o.customMetadata?.hash ?? "",
          size: o.size,
          uploaded: o.uploaded.toISOString(),
        })),
        nextCursor: page.truncated ? page.cursor : null,
      },
      200,
    );
  });

  app.openapi(verify, async (c) => {
    const { key } = c.req.valid("query");
    c.set("auditTarget", key);
    const verdict = await verifySegment(c.var.config, c.var.db, key);
    if (!verdict) {
      throw new ProblemError("not_found", `no archived segment ${key}`);
    }
    return c.json(verdict as never, 200);
  });
}
