import { newApp } from "./app";
import { type Bindings, loadConfig } from "./env";
import { newId } from "./lib/ids";
import { auditTrail } from "./middleware/audit-trail";
import { bearerAuth } from "./middleware/auth";
import { requestContext } from "./middleware/context";
import { jsonBody, rateLimit } from "./middleware/limits";
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
import { registerDisputesOpen } from "./routes/disputes-open";
import { registerDisputesGet, registerDisputesRespond } from "./routes/disputes-read-respond";
import { registerDocs, registerHealth } from "./routes/meta";
import { registerReportsBulk } from "./routes/reports-bulk";
import { registerReportsCreate } from "./routes/reports-create";
import { registerReportsGet } from "./routes/reports-get";
import { registerReportsList } from "./routes/reports-list";
import { registerReportsRetract } from "./routes/reports-retract";
import { registerScoresBatch } from "./routes/scores-batch";
import { registerScoresQuery } from "./routes/scores-query";
import { registerSubjectAccess } from "./routes/subject-access";
import { runMaintenance } from "./services/maintenance";

const app = newApp();

app.use("*", requestContext());
app.use("/v1/*", auditTrail(), bearerAuth(), rateLimit(), jsonBody());

// Open
registerHealth(app);
registerDocs(app);

// Reports (reports:write)
registerReportsBulk(app);
registerReportsCreate(app);
registerReportsList(app);
registerReportsGet(app);
registerReportsRetract(app);

// Scores (scores:read)
registerScoresQuery(app);
registerScoresBatch(app);

// Disputes and subject access (disputes:write)
registerDisputesOpen(app);
registerDisputesGet(app);
registerDisputesRespond(app);
registerSubjectAccess(app);

// Admin: platforms
registerAdminPlatformsCreate(app);
registerAdminPlatformsList(app);
registerAdminPlatformsGet(app);
registerAdminPlatformsPatch(app);
registerAdminPlatformsKeys(app);

// Admin: reports
registerAdminReportsList(app);
registerAdminReportsGet(app);
registerAdminReportsVoid(app);

// Admin: disputes and maintenance
registerAdminDisputesList(app);
registerAdminDisputesResolve(app);
registerAdminMaintenance(app);

export { app };

export default {
  fetch: app.fetch,
  async scheduled(controller, env, ctx) {
    const config = loadConfig(env);
    const run = runMaintenance(config.DB, {
      actor: "system:scheduler",
      requestId: newId("req"),
      now: controller.scheduledTime,
      retentionDays: config.RETENTION_DAYS,
    }).then((result) => console.log(JSON.stringify({ level: "info", job: "maintenance", ...result })));
    ctx.waitUntil(run);
  },
} satisfies ExportedHandler<Bindings>;
