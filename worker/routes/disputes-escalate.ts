import type { App } from "../app";
import { conflictResponse, notFoundResponse, ProblemError } from "../lib/problem";
import { authenticatedRoute } from "../lib/route";
import { DAY_MS } from "../lib/time";
import { guard } from "../middleware/auth";
import { IdParam } from "../schemas/common";
import { DisputeEscalateSchema, DisputeSchema } from "../schemas/disputes";
import { escalateDispute, toDispute, visibleDispute } from "../services/disputes";

const route = authenticatedRoute({
  method: "post",
  path: "/v1/disputes/{id}/escalate",
  operationId: "escalateDispute",
  tags: ["Disputes"],
  summary: "The opening platform escalates a dispute the reporter upheld; an admin decides it",
  description:
    "Once per dispute, by the platform that opened it, while the dispute is `upheld` and within `DISPUTE_DEADLINE_DAYS` of the reporter's decision. The dispute becomes `escalated` and the record `disputed` again (flagged, reduced weight) until an admin resolves it; an escalation undecided past its new `deadlineAt` stops the record counting.",
  middleware: [guard("dispute.escalate", "disputes:write")] as const,
  request: {
    params: IdParam("dsp"),
    body: { required: true, content: { "application/json": { schema: DisputeEscalateSchema } } },
  },
  responses: {
    200: {
      description: "The dispute, escalated",
      content: { "application/json": { schema: DisputeSchema } },
    },
    ...notFoundResponse,
    ...conflictResponse,
  },
});

export function registerDisputesEscalate(app: App) {
  app.openapi(route, async (c) => {
    const { reason } = c.req.valid("json");
    const row = await visibleDispute(c.var.scope, c.req.valid("param").id);
    const { principal, now, config } = c.var;
    if (principal.kind !== "platform" || row.opened_by !== principal.platformId) {
      throw new ProblemError("forbidden", "only the platform that opened a dispute escalates it");
    }
    if (row.status === "escalated") {
      throw new ProblemError("conflict", `dispute ${row.id} is already escalated; an admin decides it`);
    }
    if (row.status !== "upheld") {
      throw new ProblemError(
        "conflict",
        row.status === "open" || row.status === "overdue"
          ? `dispute ${row.id} is still undecided; it can be escalated once the reporter upholds the record`
          : `dispute ${row.id} is ${row.status}: ${row.status === "report_upheld" ? "an admin already decided it" : "the record no longer counts"}`,
      );
    }
    const window = config.DISPUTE_DEADLINE_DAYS * DAY_MS;
    if (row.decided_at !== null && now >= row.decided_at + window) {
      throw new ProblemError(
        "conflict",
        `dispute ${row.id} was upheld more than ${config.DISPUTE_DEADLINE_DAYS} days ago; it can no longer be escalated`,
      );
    }
    const escalated = await escalateDispute(c.var.scope, row, { reason, deadlineAt: now + window });
    return c.json(toDispute(escalated, false), 200);
  });
}
