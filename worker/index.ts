import { secureHeaders } from "hono/secure-headers";
import { newApp } from "./app";
import { API_CSP, DOCS_CSP } from "./docs/page";
import { type Bindings, loadConfig, type WebhookMessage } from "./env";
import { newId } from "./lib/ids";
import { auditTrail } from "./middleware/audit-trail";
import { bearerAuth } from "./middleware/auth";
import { rejectBadBookmark, requestContext } from "./middleware/context";
import { jsonBody, rateLimit } from "./middleware/limits";
import {
  registerAdminAuditExport,
  registerAdminAuditList,
  registerAdminAuditVerify,
} from "./routes/admin-audit";
import { registerAdminAuditArchive } from "./routes/admin-audit-archive";
import { registerAdminDisputesList, registerAdminDisputesResolve } from "./routes/admin-disputes";
import { registerAdminMaintenance } from "./routes/admin-maintenance";
import { registerAdminPlatformsCreate } from "./routes/admin-platforms-create";
import { registerAdminPlatformsGet, registerAdminPlatformsList } from "./routes/admin-platforms-read";
import { registerAdminPlatformsKeys, registerAdminPlatformsPatch } from "./routes/admin-platforms-update";
import {
  registerAdminReportsGet,
  registerAdminReportsList,
  registerAdminReportsVoid,
} from "./routes/admin-reports";
import {
  registerAdminReportsAfterLookupList,
  registerAdminReportsClearAfterLookup,
} from "./routes/admin-reports-after-lookup";
import { registerAdminReportsVerifyConfirmation } from "./routes/admin-reports-verify";
import { registerAdminReportsVoidBulk } from "./routes/admin-reports-void-bulk";
import { registerAdminStats } from "./routes/admin-stats";
import { registerDisputesEscalate } from "./routes/disputes-escalate";
import { registerDisputesList } from "./routes/disputes-list";
import { registerDisputesOpen } from "./routes/disputes-open";
import { registerDisputesGet, registerDisputesRespond } from "./routes/disputes-read-respond";
import { registerEventsList } from "./routes/events-list";
import { registerEvidenceMatch } from "./routes/evidence-match";
import { registerAuditKeys, registerDocs, registerHealth } from "./routes/meta";
import { registerReportsBulk } from "./routes/reports-bulk";
import { registerReportsCreate } from "./routes/reports-create";
import { registerReportsGet } from "./routes/reports-get";
import { registerReportsList } from "./routes/reports-list";
import { registerReportsRetract } from "./routes/reports-retract";
import { registerScoresBatch } from "./routes/scores-batch";
import { registerScoresQuery } from "./routes/scores-query";
import { registerSubjectAccess } from "./routes/subject-access";
import { registerWebhookPut } from "./routes/webhook-put";
import { registerWebhookDelete, registerWebhookGet } from "./routes/webhook-read-delete";
import { scheduledJob } from "./services/maintenance";
import { deadLetterBatch, deliverBatch, WEBHOOK_DLQ, WEBHOOK_QUEUE } from "./services/webhooks";

const app = newApp();

app.use("*", requestContext());
// The usual security headers on every answer, errors included; a policy that lets an API answer
// load nothing, and one that lets the reference page load from the ledger's own origin only.
const apiHeaders = secureHeaders({ contentSecurityPolicy: API_CSP, xFrameOptions: "DENY" });
const docsHeaders = secureHeaders({ contentSecurityPolicy: DOCS_CSP, xFrameOptions: "DENY" });
app.use("*", (c, next) => (c.req.path === "/docs" ? docsHeaders(c, next) : apiHeaders(c, next)));
// Authentication before anything else reads the request: a request without a valid token is
// audited only within the rejected-token budget per source address, however else it is wrong.
app.use("/v1/*", auditTrail(), bearerAuth(), rateLimit(), rejectBadBookmark(), jsonBody());

// Open
registerHealth(app);
registerDocs(app);
registerAuditKeys(app);

// Reports (reports:write)
registerReportsBulk(app);
registerReportsCreate(app);
registerReportsList(app);
registerReportsGet(app);
registerReportsRetract(app);

// Scores and evidence matches (scores:read)
registerScoresQuery(app);
registerScoresBatch(app);
registerEvidenceMatch(app);

// Disputes and subject access (disputes:write)
registerDisputesOpen(app);
registerDisputesList(app);
registerDisputesGet(app);
registerDisputesRespond(app);
registerDisputesEscalate(app);
registerSubjectAccess(app);

// Events and webhooks (any platform scope)
registerEventsList(app);
registerWebhookPut(app);
registerWebhookGet(app);
registerWebhookDelete(app);

// Admin: platforms
registerAdminPlatformsCreate(app);
registerAdminPlatformsList(app);
registerAdminPlatformsGet(app);
registerAdminPlatformsPatch(app);
registerAdminPlatformsKeys(app);

// Admin: reports (the static after-lookup path before `{id}`, which would otherwise take it)
registerAdminReportsList(app);
registerAdminReportsAfterLookupList(app);
registerAdminReportsGet(app);
registerAdminReportsVoid(app);
registerAdminReportsVoidBulk(app);
registerAdminReportsVerifyConfirmation(app);
registerAdminReportsClearAfterLookup(app);

// Admin: disputes and maintenance
registerAdminDisputesList(app);
registerAdminDisputesResolve(app);
registerAdminMaintenance(app);

// Admin: audit and statistics
registerAdminAuditList(app);
registerAdminAuditVerify(app);
registerAdminAuditExport(app);
registerAdminAuditArchive(app);
registerAdminStats(app);

export { LogShard } from "./log/shard";
export { app };

export default {
  fetch: app.fetch,
  async scheduled(controller, env, ctx) {
    const config = loadConfig(env);
    const job = scheduledJob(config, {
      actor: "system:scheduler",
      requestId: newId("req"),
      now: controller.scheduledTime,
    });
    ctx.waitUntil(
      job.then((result) => console.log(JSON.stringify({ level: "info", job: "scheduled", ...result }))),
    );
  },
  /** Webhook deliveries and their dead letters (docs/due-process.md, "Events and webhooks"). */
  async queue(batch, env, _ctx) {
    const config = loadConfig(env);
    switch (batch.queue) {
      case WEBHOOK_QUEUE:
        return deliverBatch(batch, config);
      case WEBHOOK_DLQ:
        return deadLetterBatch(batch, config);
      default:
        console.error(
          JSON.stringify({ level: "error", msg: "message from an unknown queue", queue: batch.queue }),
        );
        batch.retryAll();
    }
  },
} satisfies ExportedHandler<Bindings, WebhookMessage>;
