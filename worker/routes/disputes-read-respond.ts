import type { App } from "../app";
import { conflictResponse, notFoundResponse, ProblemError } from "../lib/problem";
import { authenticatedRoute } from "../lib/route";
import { guard } from "../middleware/auth";
import { IdParam } from "../schemas/common";
import { DisputeRespondSchema, DisputeSchema } from "../schemas/disputes";
import { decideDispute, toDispute, visibleDispute } from "../services/disputes";

const get = authenticatedRoute({
  method: "get",
  path: "/v1/disputes/{id}",
  operationId: "getDispute",
  tags: ["Disputes"],
  summary: "One dispute: for the platform that opened it, the reporting platform, and admins",
  middleware: [guard("dispute.read", "disputes:write", "admin")] as const,
  request: { params: IdParam("dsp") },
  responses: {
    200: { description: "The dispute", content: { "application/json": { schema: DisputeSchema } } },
    ...notFoundResponse,
  },
});

const respond = authenticatedRoute({
  method: "post",
  path: "/v1/disputes/{id}/respond",
  operationId: "respondToDispute",
  tags: ["Disputes"],
  summary: "The reporting platform upholds its record or withdraws it",
  description:
    "`withdraw` retracts the record. `uphold` restores it to `active`, only before the deadline: past it, an admin decides.",
  middleware: [guard("dispute.respond", "disputes:write")] as const,
  request: {
    params: IdParam("dsp"),
    body: { required: true, content: { "application/json": { schema: DisputeRespondSchema } } },
  },
  responses: {
    200: { description: "The dispute, decided", content: { "application/json": { schema: DisputeSchema } } },
    ...notFoundResponse,
    ...conflictResponse,
  },
});

export function registerDisputesGet(app: App) {
  app.openapi(get, async (c) => {
    const row = await visibleDispute(c.var.scope, c.req.valid("param").id);
    return c.json(toDispute(row, c.var.principal.kind === "admin"), 200);
  });
}

export function registerDisputesRespond(app: App) {
  app.openapi(respond, async (c) => {
    const { decision, note } = c.req.valid("json");
    const row = await visibleDispute(c.var.scope, c.req.valid("param").id);
    const p = c.var.principal;
    if (p.kind !== "platform" || row.report_platform_id !== p.platformId) {
      throw new ProblemError("forbidden", "only the reporting platform responds to a dispute");
    }
    if (row.status === "escalated") {
      throw new ProblemError("conflict", `dispute ${row.id} is escalated; an admin decides it`);
    }
    if (row.status !== "open" && row.status !== "overdue") {
      throw new ProblemError("conflict", `dispute ${row.id} is already ${row.status}`);
    }
    if (decision === "uphold" && c.var.now >= row.deadline_at) {
      throw new ProblemError("conflict", `dispute ${row.id} is past its deadline; an admin decides it now`);
    }
    const decided = await decideDispute(
      c.var.scope,
      row,
      decision === "uphold"
        ? { status: "upheld", reportTo: "active", note, event: { type: "dispute.responded", decision } }
        : {
            status: "withdrawn",
            reportTo: "retracted",
            note,
            event: { type: "dispute.responded", decision },
          },
    );
    return c.json(toDispute(decided, false), 200);
  });
}
