import { drizzle } from "drizzle-orm/d1";
import { newApp } from "./app";
import { type Bindings, loadConfig } from "./env";
import { auditTrail } from "./middleware/audit-trail";
import { bearerAuth } from "./middleware/auth";
import { requestContext } from "./middleware/context";
import { jsonBody, rateLimit } from "./middleware/limits";
import { registerAdminPlatformsCreate } from "./routes/admin-platforms-create";
import { registerAdminPlatformsGet, registerAdminPlatformsList } from "./routes/admin-platforms-read";
import { registerAdminPlatformsKeys, registerAdminPlatformsPatch } from "./routes/admin-platforms-update";
import {
  registerAdminReportsGet,
  registerAdminReportsList,
  registerAdminReportsVoid,
} from "./routes/admin-reports";
import { registerDocs, registerHealth } from "./routes/meta";
import { registerReportsBulk } from "./routes/reports-bulk";
import { registerReportsCreate } from "./routes/reports-create";
import { registerReportsGet } from "./routes/reports-get";
import { registerReportsList } from "./routes/reports-list";
import { registerReportsRetract } from "./routes/reports-retract";
import { registerScoresBatch } from "./routes/scores-batch";
import { registerScoresQuery } from "./routes/scores-query";
import { purgeExpiredTokenUses } from "./services/maintenance";

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

export { app };

export default {
  fetch: app.fetch,
  async scheduled(controller, env, ctx) {
    const config = loadConfig(env);
    const db = drizzle(config.DB);
    ctx.waitUntil(
      purgeExpiredTokenUses(db, controller.scheduledTime).then((n) =>
        console.log(JSON.stringify({ level: "info", job: "purge-token-uses", deleted: n })),
      ),
    );
  },
} satisfies ExportedHandler<Bindings>;
