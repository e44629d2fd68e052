import { z } from "@hono/zod-openapi";
import type { App } from "../app";
import { notFoundResponse, ProblemError } from "../lib/problem";
import { authenticatedRoute } from "../lib/route";
import { verifySegment } from "../log/archive";
import { guard } from "../middleware/auth";
import { CursorQuery, count, DateTime, int } from "../schemas/common";

/** Segments per page of the archive list (R2's own maximum). */
const ARCHIVE_PAGE = 1000;

const SEGMENT_KEY = /^log\/shard-\d{3}\/\d{12}-\d{12}\.ndjson$/;

const list = authenticatedRoute({
  method: "get",
  path: "/v1/admin/audit/archive",
  operationId: "listAdminAuditArchive",
  tags: ["Admin: audit"],
  summary: "Archived log segments (R2), oldest first per shard",
  description:
    "Each segment is an audit export (`pixiu-audit-export/2`) of one shard's entries `from`–`to`, ending on a head a tree checkpoint signed, without subject keys. Download it from the bucket, or check it with `/v1/admin/audit/archive/verify`.",
  middleware: [guard("audit.archive.list", "admin")] as const,
  request: { query: z.object({ cursor: CursorQuery }) },
  responses: {
    200: {
      description: "A page of segments",
      content: {
        "application/json": {
          schema: z
            .object({
              items: z
                .array(
                  z.object({
                    key: z.string().regex(SEGMENT_KEY),
                    shard: int(-1, 63).openapi({
                      description: "−1 when the object carries no shard metadata",
                    }),
                    from: count(),
                    to: count(),
                    hash: z
                      .string()
                      .max(64)
                      .openapi({ description: "The segment's head hash, or empty when unknown" }),
                    size: count(),
                    uploaded: DateTime,
                  }),
                )
                .max(ARCHIVE_PAGE),
              nextCursor: z.string().max(1024).nullable().openapi({ description: "R2's list cursor" }),
            })
            .openapi("ArchivePage"),
        },
      },
    },
  },
});

const verify = authenticatedRoute({
  method: "get",
  path: "/v1/admin/audit/archive/verify",
  operationId: "verifyAdminAuditArchiveSegment",
  tags: ["Admin: audit"],
  summary: "Verify one archived segment: its chain, and the tree checkpoints that sign it",
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
              error: z.string().max(1000).optional(),
              badShard: int(-1, 63).optional(),
              firstBadSeq: count().optional(),
              treeCheckpoints: count(),
              shards: z.array(z.record(z.string(), z.unknown())).max(64),
            })
            .passthrough()
            .openapi("ArchiveVerdict"),
        },
      },
    },
    ...notFoundResponse,
  },
});

export function registerAdminAuditArchive(app: App) {
  app.openapi(list, async (c) => {
    const { cursor } = c.req.valid("query");
    const page = await c.var.config.LOG_ARCHIVE.list({
      prefix: "log/",
      limit: ARCHIVE_PAGE,
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
