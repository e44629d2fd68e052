/**
 * Generated from client/openapi.json by openapi-typescript (`npm run -s client:generate`).
 * Do not edit: test/node/client-generated.test.ts fails when this file and the Worker's
 * document disagree.
 */
export interface paths {
    "/healthz": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** Liveness: answers without touching the database */
        get: operations["getHealth"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/.well-known/pixiu-audit-keys.json": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** The public keys that verify the audit log's signed checkpoints */
        get: operations["getAuditKeys"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/reports/bulk": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Report up to 500 cases
         * @description Each item is processed as if posted alone (201, 200 replay, 409, 422, including 422 for an item over the per-subject cap MAX_ACTIVE_REPORTS_PER_SUBJECT, counting the earlier items of the same call); one bad item fails only itself. The valid items are written in one D1 batch. Each item is checked for the after-look-up flag as a single report is (docs/scoring.md §3c), all in one read of the inquiry log; 503 when it cannot be read (nothing written).
         */
        post: operations["createReportsBulk"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/reports": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** The caller's own reports, newest first */
        get: operations["listReports"];
        put?: never;
        /**
         * Report a confirmed case
         * @description Idempotent per `caseId`: the same content again answers 200 with the same report; different content answers 409. A platform holds at most MAX_ACTIVE_REPORTS_PER_SUBJECT active or disputed reports per subject: one more answers 422 and writes nothing. A report filed within AFTER_LOOKUP_WINDOW_DAYS after the platform's own look-up of one of its subjects answered `review` or worse is flagged (`afterLookup`) and adds no consensus weight until an admin clears it (docs/scoring.md §3c); 503 when the inquiry log cannot be read for that check (nothing written).
         */
        post: operations["createReport"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/reports/{id}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** One of the caller's own reports */
        get: operations["getReport"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/reports/{id}/retract": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Retract one of the caller's own reports
         * @description A retracted report never counts again. Retracting a closed report answers 409.
         */
        post: operations["retractReport"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/scores/query": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Score one buyer
         * @description All subjects are one buyer: a report matching any of them counts once. With `evidence` (the claim's photos, as `POST /v1/evidence/match` takes them), confirmed fingerprints near the photos move the score by the rules of docs/scoring.md §3b and are listed in `photos`. One read on the ledger database; the look-up is logged in the log store, with the photos' hashes, before the answer leaves (503 when it cannot be).
         */
        post: operations["queryScore"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/scores/batch": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Score up to 100 buyers
         * @description One D1 round trip for the whole batch; results in the order of `queries`. Each query may carry `evidence` (up to 16 photos), at most MAX_BATCH_PHOTOS (64) photos over the whole batch.
         */
        post: operations["scoreBatch"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/evidence/match": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Match refund photos against confirmed fingerprints
         * @description Per photo, the confirmed fingerprints (`image_pdq` evidence of active or disputed reports) within MAX_MATCH_DISTANCE, one entry per fingerprint hash: its distance, how many platforms confirmed a case with it, the categories and the incident times. Never the reporter, the case or the buyer. One read on the ledger database; the look-up is logged in the log store before the answer leaves (503 when it cannot be).
         */
        post: operations["matchEvidence"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/disputes": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * The disputes the caller opened or that concern its reports, newest first
         * @description `role=reporter` lists the disputes of the caller's own records (what it must answer within the deadline); `role=opener` those it opened for buyers; without `role`, both. Filter by `status` (`open`, `overdue`, `escalated`, …).
         */
        get: operations["listDisputes"];
        put?: never;
        /**
         * Open a buyer's dispute of a record
         * @description The subjects must match the record (else 404). The record becomes `disputed`: it counts at reduced weight, and not at all once the dispute is open past `deadlineAt` without a decision. One undecided dispute per record (409). The reporting platform cannot dispute its own record (403): a dispute is the buyer's side.
         */
        post: operations["openDispute"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/disputes/{id}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** One dispute: for the platform that opened it, the reporting platform, and admins */
        get: operations["getDispute"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/disputes/{id}/respond": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * The reporting platform upholds its record or withdraws it
         * @description `withdraw` retracts the record. `uphold` restores it to `active`, only before the deadline: past it, an admin decides.
         */
        post: operations["respondToDispute"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/disputes/{id}/escalate": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * The opening platform escalates a dispute the reporter upheld; an admin decides it
         * @description Once per dispute, by the platform that opened it, while the dispute is `upheld` and within `DISPUTE_DEADLINE_DAYS` of the reporter's decision. The dispute becomes `escalated` and the record `disputed` again (flagged, reduced weight) until an admin resolves it; an escalation undecided past its new `deadlineAt` stops the record counting.
         */
        post: operations["escalateDispute"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/subject-access": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Everything held about a buyer, and who looked them up
         * @description Every record about these subjects, whatever its status, with the furnishing platform's name and the buyer's statement; and every look-up (time, purpose, platform), newest first, a page of each list at a time. For the buyer's platform to show the buyer, under its own `requestRef`. The request is itself a look-up (purpose `subject_access`, shown in the buyer's next answer; the pages of one request show as one), counts in usage and is audited.
         */
        post: operations["requestSubjectAccess"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/events": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * The caller's event feed, oldest first
         * @description Disputes of the caller's reports (opened, responded, escalated, decided, overdue), its reports voided or expired, and the decisions of disputes it opened. Events are kept at least 30 days (`EVENT_RETENTION_DAYS`). Keep `nextCursor` and poll with it: it marks the position after the last event returned.
         */
        get: operations["listEvents"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/webhook": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * The caller's webhook, its latest deliveries and failures, and counts by status
         * @description The signing secret is never shown again (PUT issues a new one). A delivery that keeps failing is retried with backoff and finally marked `dead`; nothing is disabled.
         */
        get: operations["getWebhook"];
        /**
         * Register (or replace) the caller's webhook endpoint; answers its signing secret once
         * @description Deliveries carry the feed's event JSON, signed per Standard Webhooks (`webhook-id`, `webhook-timestamp`, `webhook-signature`). The URL must be https, without user info or fragment, at most 2,048 characters, and not name localhost or a private, loopback or link-local address. Every PUT issues a new secret: the previous one stops signing at once.
         */
        put: operations["putWebhook"];
        post?: never;
        /** Remove the caller's webhook; undelivered deliveries are then marked dead */
        delete: operations["deleteWebhook"];
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/admin/platforms": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** All member platforms, by id */
        get: operations["listAdminPlatforms"];
        put?: never;
        /** Register a member platform with its public keys */
        post: operations["createAdminPlatform"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/admin/platforms/{id}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** One member platform */
        get: operations["getAdminPlatform"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        /**
         * Suspend or reactivate a platform, rename it, change its scopes
         * @description Takes effect at once in this isolate and within PLATFORM_CACHE_TTL_SECONDS everywhere.
         */
        patch: operations["updateAdminPlatform"];
        trace?: never;
    };
    "/v1/admin/platforms/{id}/keys": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        /**
         * Replace a platform's key set (rotation)
         * @description Publish the new key alongside the old one first, then remove the old one once no token uses it.
         */
        put: operations["replaceAdminPlatformKeys"];
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/admin/reports": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** All reports, newest first, by platform and status */
        get: operations["listAdminReports"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/admin/reports/after-lookup": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * Reports flagged as filed after their reporter's own look-up, newest look-up first
         * @description The reports filed within AFTER_LOOKUP_WINDOW_DAYS after their reporter's own look-up of one of their subjects answered `review` or worse (docs/scoring.md §3c), still waiting to be cleared (whatever their status: a closed one counts nowhere and cannot be cleared), newest look-up first; with `cleared=true`, those an admin cleared, most recently cleared first, with who and when.
         */
        get: operations["listAdminAfterLookupReports"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/admin/reports/{id}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** Any report, with its platformId */
        get: operations["getAdminReport"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/admin/reports/{id}/void": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /** Void a report that should never have been made */
        post: operations["voidAdminReport"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/admin/reports/void": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Void many reports at once: up to 1000 ids, or one platform's open reports filed in a time range
         * @description For cleaning up a poisoning flood. Only `active` and `disputed` reports are voided; an undecided dispute on one is decided `report_voided`. Each voided report is its own audit entry and its own `report.voided` event. One call voids at most 1000 (oldest filed first) in one D1 batch; `more: true` says the filter matches more.
         */
        post: operations["voidAdminReportsBulk"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/admin/reports/{id}/verify-confirmation": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Verify a report's police report or court ruling, so it weighs as a strong confirmation
         * @description An admin who checked the report's `confirmationRef` with the police or court marks it verified: only then does the record weigh as `police_report`/`court_ruling` and lift its platform's cap (docs/scoring.md §2). Idempotent: verifying again answers the report unchanged. 404 for no such report; 409 when its confirmation is not a police report or court ruling, it carries no reference, or it no longer counts (retracted, voided, expired).
         */
        post: operations["verifyAdminReportConfirmation"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/admin/reports/{id}/clear-after-lookup": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Clear a report's after-look-up flag, so it counts towards the consensus again
         * @description An admin who found that the report stands on the platform's own evidence, not on the ledger's answer, clears its `after_lookup` flag: the record then counts as any other, in the consensus and in reporter trust (docs/scoring.md §3c, §2a). Audited as `report.clear_after_lookup` with the reason. Idempotent: clearing again answers the report unchanged. 404 for no such report; 409 when it is not flagged, or no longer counts (retracted, voided, expired).
         */
        post: operations["clearAdminReportAfterLookup"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/admin/disputes": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** Disputes by status, newest first (`overdue`: open past the deadline, awaiting an admin; `escalated`: the opener contests the reporter's uphold, awaiting an admin) */
        get: operations["listAdminDisputes"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/admin/disputes/{id}/resolve": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /** Decide an undecided dispute: keep the record or void it */
        post: operations["resolveAdminDispute"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/admin/maintenance/run": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Run the scheduled job now: retention purge, overdue disputes, expired rows, webhook re-sends, collusion groups, reporter trust, audit checkpoint
         * @description Idempotent; the same job the Cron Trigger runs every minute. Send `{}`. Claims the token's `jti` like every admin write: a replayed token is a 401 and runs nothing.
         */
        post: operations["runAdminMaintenance"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/admin/audit": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * Audit entries of the ledger chain and every log shard, newest first, filtered by actor, action, target and time
         * @description Ordered by (at descending, source, seq descending), the ledger chain (D1) being the first source and the shards following in shard order; `nextCursor` is an opaque position in that order.
         */
        get: operations["listAdminAuditEntries"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/admin/audit/verify": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * Verify the ledger chain and every log shard's chain, from the genesis or from the latest signed checkpoint
         * @description Seals pending ledger entries first. The top-level fields are the ledger chain's verdict (`firstBadSeq` names its first bad `seq` when an entry was altered, removed or reordered; `unsealed` counts entries written but not yet chained, not a fault); `shards` holds one verdict per log shard (never anything unsealed: a shard chains as it writes). `outbox` accounts for every audit outbox id (none deleted before its drain). `ok` is true only when the ledger, every shard, every stored checkpoint and the outbox's accounting verify.
         */
        get: operations["verifyAdminAudit"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/admin/audit/export": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * Stream the ledger chain and every log shard's chain as NDJSON, with the signed checkpoints
         * @description Format `pixiu-audit-export/2` (docs/audit.md): one `header`, one `keys` (the ledger's public audit keys), the ledger chain's `entry` lines in seq order (from `since` or `sinceSeq`), then each shard's `log-entry` lines in shard and seq order (from `since`, else whole), then `checkpoint` (format 1) and `tree-checkpoint` lines. Verify offline with `npm run audit:verify -- export.ndjson`.
         */
        get: operations["exportAdminAudit"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/admin/audit/archive": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * Archived log segments (R2), oldest first per shard
         * @description Each segment is an audit export (`pixiu-audit-export/2`) of one shard's entries `from`–`to`, ending on a head a tree checkpoint signed, without subject keys. Download it from the bucket, or check it with `/v1/admin/audit/archive/verify`.
         */
        get: operations["listAdminAuditArchive"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/admin/audit/archive/verify": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** Verify one archived segment: its chain, and the tree checkpoints that sign it */
        get: operations["verifyAdminAuditArchiveSegment"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/admin/stats": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * Counts by status, queries per day, each platform's look-ups against its reports, and collusion groups
         * @description `usage` lists, per platform over the last 30 days, score queries, subject keys looked up and reports filed. A platform that looks up far more buyers than it reports (`lookupsPerReport`) may be enumerating the ledger. Beside them, its subject-access pages (`subjectAccess`) and the disputes it opened (`disputesOpened`): buyers' own requests, which a platform could otherwise use to read files without a score query.
         */
        get: operations["getAdminStats"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
}
export type webhooks = Record<string, never>;
export interface components {
    schemas: {
        Problem: {
            type: string;
            title: string;
            /** Format: int32 */
            status: number;
            detail: string;
            instance: string;
            errors?: {
                path: string;
                message: string;
            }[];
        };
        AuditKeySet: {
            keys: {
                /** @enum {string} */
                kty: "OKP";
                /** @enum {string} */
                crv: "Ed25519";
                x: string;
                kid: string;
                /** @enum {string} */
                alg: "EdDSA";
                /** @enum {string} */
                use: "sig";
            }[];
        };
        ReportBulk: {
            reports: unknown[];
        };
        Report: {
            /** @example rpt_01JD3X5Z8YQ4W2E6R7T9V0B1N2 */
            id: string;
            caseId: string;
            platformId: string;
            /** @enum {string} */
            status: "active" | "disputed" | "retracted" | "voided" | "expired";
            subjects: {
                /** @enum {string} */
                type: "phone" | "email" | "national_id" | "device" | "payment_account";
                /** @description The ledger's peppered key for the subject (never the hash sent) */
                key: string;
            }[];
            /** @enum {string} */
            category: "ai_generated_image" | "edited_image" | "reused_image" | "staged_damage" | "other_forgery";
            /**
             * Format: date-time
             * @example 2026-11-24T08:00:00Z
             */
            incidentAt: string;
            /**
             * Format: date-time
             * @example 2026-11-24T08:00:00Z
             */
            confirmedAt: string;
            /** @enum {string} */
            confirmation: "manual_review" | "merchant_evidence" | "platform_forensics" | "police_report" | "court_ruling";
            /** @description The police report's or court ruling's reference, when given */
            confirmationRef: string | null;
            /**
             * Format: date-time
             * @description When a consortium admin verified the police report or court ruling; null until then (it then weighs as platform forensics)
             * @example 2026-11-24T08:00:00Z
             */
            confirmationVerifiedAt: string | null;
            amount: components["schemas"]["Amount"];
            evidence: components["schemas"]["Evidence"][];
            note: string | null;
            /**
             * Format: date-time
             * @example 2026-11-24T08:00:00Z
             */
            subjectNotifiedAt: string | null;
            /** @description Why it was closed: the retraction or void reason, or the ledger's own */
            statusReason: string | null;
            /** @description The buyer's latest statement from a dispute */
            statement: string | null;
            /**
             * @description The record's open or latest dispute (`GET /v1/disputes/{id}`), or null
             * @example dsp_01JD3X5Z8YQ4W2E6R7T9V0B1N2
             */
            disputeId: string | null;
            afterLookup: components["schemas"]["AfterLookupFlag"];
            /**
             * Format: date-time
             * @example 2026-11-24T08:00:00Z
             */
            createdAt: string;
            /**
             * Format: date-time
             * @example 2026-11-24T08:00:00Z
             */
            updatedAt: string;
        };
        /**
         * @example {
         *       "value": 129900,
         *       "currency": "CNY"
         *     }
         */
        Amount: {
            /** Format: int64 */
            value: number;
            currency: string;
        };
        Evidence: {
            /** @enum {string} */
            kind: "image_pdq";
            value: string;
            /** Format: int32 */
            quality: number;
        } | components["schemas"]["ProvenanceEvidence"] | {
            /** @enum {string} */
            kind: "image_sha256" | "image_phash" | "ai_label" | "packing_video" | "forensic_report" | "other";
            value: string;
        };
        /**
         * @example {
         *       "kind": "image_provenance",
         *       "c2pa": {
         *         "present": true,
         *         "digitalSourceTypes": [
         *           "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
         *         ],
         *         "aiGenerated": true,
         *         "claimGenerator": "Example Image Generator/1.0"
         *       },
         *       "aiLabel": null,
         *       "exif": null
         *     }
         */
        ProvenanceEvidence: {
            /** @enum {string} */
            kind: "image_provenance";
            c2pa: {
                present: boolean;
                digitalSourceTypes: string[];
                aiGenerated: boolean;
                claimGenerator: string | null;
            };
            aiLabel: {
                label: string | null;
                contentProducer: string | null;
                produceId: string | null;
                reservedCode1: string | null;
                contentPropagator: string | null;
                propagateId: string | null;
                reservedCode2: string | null;
            } | null;
            exif: {
                make: string | null;
                model: string | null;
                software: string | null;
                dateTimeOriginal: string | null;
            } | null;
        };
        /** @description Set when the report was filed within AFTER_LOOKUP_WINDOW_DAYS after the reporting platform's own look-up of one of its subjects answered `review` or worse: until an admin clears it, the record counts as its platform's own evidence but adds no consensus weight (docs/scoring.md §3c). Null when not flagged. */
        AfterLookupFlag: {
            /**
             * Format: date-time
             * @description When the reporting platform's own look-up of one of the report's subjects was made
             * @example 2026-11-24T08:00:00Z
             */
            lookedUpAt: string;
            /**
             * @description What that look-up answered (reconstructed)
             * @enum {string}
             */
            band: "medium" | "high" | "critical";
            /**
             * Format: date-time
             * @description When a consortium admin cleared the flag (the record then counts as any other); null until then
             * @example 2026-11-24T08:00:00Z
             */
            clearedAt: string | null;
        } | null;
        ReportBody: {
            /** @example JD-2026-000123 */
            caseId: string;
            subjects: components["schemas"]["Subject"][];
            /** @enum {string} */
            category: "ai_generated_image" | "edited_image" | "reused_image" | "staged_damage" | "other_forgery";
            /**
             * Format: date-time
             * @example 2026-11-05T16:30:00Z
             */
            incidentAt: string;
            /**
             * Format: date-time
             * @example 2026-11-05T16:30:00Z
             */
            confirmedAt: string;
            /** @enum {string} */
            confirmation: "manual_review" | "merchant_evidence" | "platform_forensics" | "police_report" | "court_ruling";
            /**
             * @description With `police_report` or `court_ruling` only: the report's or ruling's reference, which the consortium verifies before the record weighs as a strong confirmation (docs/scoring.md §2)
             * @example 京公(朝)立字[2026]1234号
             */
            confirmationRef?: string | null;
            amount: components["schemas"]["Amount"];
            /** @default [] */
            evidence?: components["schemas"]["Evidence"][];
            note?: string | null;
            /**
             * Format: date-time
             * @example 2026-11-05T16:30:00Z
             */
            subjectNotifiedAt?: string | null;
        };
        /**
         * @example {
         *       "type": "phone",
         *       "hash": "5e8f0c2a9d4b7e1f3a6c8b0d2e4f6a8c1b3d5e7f9a0c2e4b6d8f0a1c3e5b7d9f"
         *     }
         */
        Subject: {
            /** @enum {string} */
            type: "phone" | "email" | "national_id" | "device" | "payment_account";
            hash: string;
        };
        ReportPage: {
            items: components["schemas"]["Report"][];
            nextCursor: string | null;
        };
        ScoreAnswer: {
            /** Format: int32 */
            score: number;
            /** @enum {string} */
            band: "none" | "low" | "medium" | "high" | "critical";
            /** @enum {string} */
            action: "allow" | "review" | "require_return";
            reasons: {
                code: string;
                detail: string;
            }[];
            summary: {
                /** Format: int64 */
                reports: number;
                /** Format: int64 */
                platforms: number;
                /** Format: int64 */
                disputed: number;
                /**
                 * Format: date-time
                 * @example 2026-11-24T08:00:00Z
                 */
                firstReportedAt: string | null;
                /**
                 * Format: date-time
                 * @example 2026-11-24T08:00:00Z
                 */
                lastReportedAt: string | null;
                amounts: {
                    currency: string;
                    /** Format: int64 */
                    value: number;
                }[];
            };
            records: {
                /** @example rpt_01JD3X5Z8YQ4W2E6R7T9V0B1N2 */
                ref: string;
                /** @enum {string} */
                category: "ai_generated_image" | "edited_image" | "reused_image" | "staged_damage" | "other_forgery";
                /** @enum {string} */
                confirmation: "manual_review" | "merchant_evidence" | "platform_forensics" | "police_report" | "court_ruling";
                /**
                 * Format: date-time
                 * @example 2026-11-24T08:00:00Z
                 */
                incidentAt: string;
                /** @enum {string} */
                amountTier: "minor" | "relatively_large" | "huge" | "especially_huge" | "unknown_currency";
                /** @enum {string} */
                status: "active" | "disputed" | "retracted" | "voided" | "expired";
                counted: boolean;
                disputed: boolean;
                /** @description For a police_report or court_ruling: whether a consortium admin verified it (unverified, it weighs as platform_forensics and lifts no cap); null for other confirmations */
                verified: boolean | null;
                /** @description Filed right after its reporter's own look-up of this buyer answered review or worse, and not yet cleared by a consortium admin: it adds no consensus weight (docs/scoring.md §3c) */
                afterLookup: boolean;
                statement: string | null;
            }[];
            /** @description Only when the query sent `evidence`: per photo in request order, the confirmed fingerprints that count towards the score (not those of this buyer's own records, nor of a case whose dispute is past its deadline), nearest first. */
            photos?: {
                /** Format: int32 */
                index: number;
                matches: components["schemas"]["PhotoMatch"][];
            }[];
            /** @example pixiu-score/2 */
            model: string;
            /**
             * Format: date-time
             * @example 2026-11-24T08:00:00Z
             */
            evaluatedAt: string;
        };
        PhotoMatch: {
            /**
             * Format: int32
             * @description Bits of 256 that differ from the nearest hash given
             */
            distance: number;
            /**
             * Format: int64
             * @description Distinct platforms that confirmed a case with it
             */
            platforms: number;
            categories: ("ai_generated_image" | "edited_image" | "reused_image" | "staged_damage" | "other_forgery")[];
            /**
             * Format: date-time
             * @example 2026-11-24T08:00:00Z
             */
            firstSeenAt: string;
            /**
             * Format: date-time
             * @example 2026-11-24T08:00:00Z
             */
            lastSeenAt: string;
        };
        ScoreQuery: {
            subjects: components["schemas"]["Subject"][];
            /** @enum {string} */
            purpose: "refund_review" | "account_review" | "dispute_handling";
            /** @description The claim's photos (0–16), matched against confirmed fingerprints in the same read (docs/scoring.md §3b). */
            evidence?: components["schemas"]["Photo"][];
        };
        Photo: {
            pdq: string;
            /** @description The photo's eight dihedral hashes (`npm run -s fingerprint` prints them), the first the photo's own (`pdq`): a copy turned or mirrored matches too; the best distance over them counts. */
            dihedral?: string[];
        };
        ScoreBatch: {
            /** @enum {string} */
            purpose: "refund_review" | "account_review" | "dispute_handling";
            queries: {
                ref: string;
                subjects: components["schemas"]["Subject"][];
                /** @description The claim's photos (0–16), matched against confirmed fingerprints in the same read (docs/scoring.md §3b). */
                evidence?: components["schemas"]["Photo"][];
            }[];
        };
        EvidenceMatchAnswer: {
            /** Format: int32 */
            maxDistance: number;
            photos: {
                /** Format: int32 */
                index: number;
                matches: components["schemas"]["PhotoMatch"][];
            }[];
        };
        EvidenceMatchQuery: {
            /** @enum {string} */
            purpose: "refund_review" | "account_review" | "dispute_handling";
            photos: components["schemas"]["Photo"][];
        };
        Dispute: {
            /** @example dsp_01JD3X5Z8YQ4W2E6R7T9V0B1N2 */
            id: string;
            /** @enum {string} */
            status: "open" | "overdue" | "escalated" | "upheld" | "withdrawn" | "report_upheld" | "report_voided";
            /** @example rpt_01JD3X5Z8YQ4W2E6R7T9V0B1N2 */
            reportRef: string;
            /**
             * Format: date-time
             * @example 2026-11-24T08:00:00Z
             */
            openedAt: string;
            /**
             * Format: date-time
             * @example 2026-11-24T08:00:00Z
             */
            deadlineAt: string;
            reason: string;
            responseNote: string | null;
            /**
             * Format: date-time
             * @example 2026-11-24T08:00:00Z
             */
            decidedAt: string | null;
            /**
             * Format: date-time
             * @description When the opening platform escalated the reporter's uphold to the admins
             * @example 2026-11-24T08:00:00Z
             */
            escalatedAt: string | null;
            escalationReason: string | null;
            openedBy?: string;
            reportPlatformId?: string;
        };
        DisputeOpen: {
            reportRef: string;
            subjects: components["schemas"]["Subject"][];
            /** @description The buyer's own statement; stays with the record */
            reason: string;
        };
        ListedDisputePage: {
            items: components["schemas"]["ListedDispute"][];
            nextCursor: string | null;
        };
        ListedDispute: components["schemas"]["Dispute"] & {
            /**
             * @description `opener`: the caller opened it for a buyer; `reporter`: it disputes the caller's record
             * @enum {string}
             */
            role: "opener" | "reporter";
        };
        DisputeRespond: {
            /** @enum {string} */
            decision: "uphold" | "withdraw";
            note: string;
        };
        DisputeEscalate: {
            /** @description Why the buyer contests the reporter's uphold */
            reason: string;
        };
        SubjectAccess: {
            records: {
                /** @example rpt_01JD3X5Z8YQ4W2E6R7T9V0B1N2 */
                ref: string;
                /** @enum {string} */
                status: "active" | "disputed" | "retracted" | "voided" | "expired";
                /** @description Who furnished the record */
                platformName: string;
                /** @enum {string} */
                category: "ai_generated_image" | "edited_image" | "reused_image" | "staged_damage" | "other_forgery";
                /** @enum {string} */
                confirmation: "manual_review" | "merchant_evidence" | "platform_forensics" | "police_report" | "court_ruling";
                /**
                 * Format: date-time
                 * @example 2026-11-24T08:00:00Z
                 */
                incidentAt: string;
                /**
                 * Format: date-time
                 * @example 2026-11-24T08:00:00Z
                 */
                confirmedAt: string;
                /**
                 * Format: date-time
                 * @example 2026-11-24T08:00:00Z
                 */
                reportedAt: string;
                amount: components["schemas"]["Amount"];
                /**
                 * Format: date-time
                 * @example 2026-11-24T08:00:00Z
                 */
                subjectNotifiedAt: string | null;
                statusReason: string | null;
                statement: string | null;
            }[];
            inquiries: {
                /**
                 * Format: date-time
                 * @description When the look-up (its first page) was made
                 * @example 2026-11-24T08:00:00Z
                 */
                at: string;
                /** @enum {string} */
                purpose: "refund_review" | "account_review" | "dispute_handling" | "subject_access";
                platformName: string;
            }[];
            /** @description Send it back (with the same subjects and requestRef) for the next page of both lists, within 15 minutes of the request's first page; null on the last page */
            nextCursor: string | null;
        };
        SubjectAccessQuery: {
            /** @description The platform's own ticket for the buyer's request; audited */
            requestRef: string;
            subjects: components["schemas"]["Subject"][];
            cursor?: string;
            /**
             * Format: int32
             * @default 100
             */
            limit?: number;
        };
        EventPage: {
            items: components["schemas"]["Event"][];
            /** @description Where the next page starts: keep it and poll with it for newer events (null only while the feed is empty) */
            nextCursor: string | null;
            /** @description Whether more events follow right now */
            hasMore: boolean;
        };
        Event: {
            /** @example evt_01JD3X5Z8YQ4W2E6R7T9V0B1N2 */
            id: string;
            type: components["schemas"]["EventType"];
            /**
             * Format: date-time
             * @example 2026-11-24T08:00:00Z
             */
            at: string;
            /**
             * @description Ids of the records concerned (disputeId, reportId, …), never an identifier
             * @example {
             *       "disputeId": "dsp_01JD3X5Z8YQ4W2E6R7T9V0B1N2",
             *       "reportId": "rpt_01JD3X5Z8YQ4W2E6R7T9V0B1N3"
             *     }
             */
            data: {
                [key: string]: unknown;
            };
        };
        /** @enum {string} */
        EventType: "dispute.opened" | "dispute.responded" | "dispute.escalated" | "dispute.decided" | "dispute.overdue" | "report.voided" | "report.expired";
        WebhookCreated: {
            url: string;
            events: components["schemas"]["EventType"][];
            /**
             * Format: date-time
             * @example 2026-11-24T08:00:00Z
             */
            createdAt: string;
            /**
             * Format: date-time
             * @example 2026-11-24T08:00:00Z
             */
            updatedAt: string;
            /**
             * @description The signing secret (Standard Webhooks, `whsec_…`): shown only in this answer
             * @example whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw
             */
            secret: string;
        };
        WebhookPut: {
            /** @example https://hooks.shop.example/pixiu */
            url: string;
            events: components["schemas"]["EventType"][];
        };
        Webhook: {
            url: string;
            events: components["schemas"]["EventType"][];
            /**
             * Format: date-time
             * @example 2026-11-24T08:00:00Z
             */
            createdAt: string;
            /**
             * Format: date-time
             * @example 2026-11-24T08:00:00Z
             */
            updatedAt: string;
            /** @description The latest 20 deliveries, newest first */
            deliveries: components["schemas"]["WebhookDelivery"][];
            counts: {
                /** Format: int64 */
                pending: number;
                /** Format: int64 */
                delivered: number;
                /** Format: int64 */
                failed: number;
                /** Format: int64 */
                dead: number;
            };
        };
        WebhookDelivery: {
            /** @example evt_01JD3X5Z8YQ4W2E6R7T9V0B1N2 */
            eventId: string;
            /**
             * @description Null when the event was purged
             * @enum {string|null}
             */
            type: "dispute.opened" | "dispute.responded" | "dispute.escalated" | "dispute.decided" | "dispute.overdue" | "report.voided" | "report.expired" | null;
            /** @enum {string} */
            status: "pending" | "delivered" | "failed" | "dead";
            /** Format: int64 */
            attempts: number;
            /**
             * Format: date-time
             * @example 2026-11-24T08:00:00Z
             */
            lastAttemptAt: string | null;
            /** Format: int32 */
            lastStatus: number | null;
            lastError: string | null;
            /**
             * Format: date-time
             * @example 2026-11-24T08:00:00Z
             */
            deliveredAt: string | null;
        };
        Platform: {
            id: string;
            name: string;
            /** @enum {string} */
            status: "active" | "suspended";
            scopes: string[];
            jwks: {
                /** @description The platform's public keys, as PublicJwk */
                keys: {
                    [key: string]: unknown;
                }[];
            };
            /**
             * Format: date-time
             * @example 2026-11-24T08:00:00Z
             */
            createdAt: string;
            /**
             * Format: date-time
             * @example 2026-11-24T08:00:00Z
             */
            updatedAt: string;
        };
        PlatformCreate: {
            /** @example shop-a */
            id: string;
            name: string;
            scopes: ("reports:write" | "scores:read" | "disputes:write")[];
            jwks: components["schemas"]["Jwks"];
        };
        Jwks: {
            keys: components["schemas"]["PublicJwk"][];
        };
        PublicJwk: {
            /** @enum {string} */
            kty: "EC";
            /** @enum {string} */
            crv: "P-256";
            x: string;
            y: string;
            /** @enum {string} */
            alg?: "ES256";
            kid: string;
            /** @enum {string} */
            use?: "sig";
            key_ops?: "verify"[];
        } | {
            /** @enum {string} */
            kty: "OKP";
            /** @enum {string} */
            crv: "Ed25519";
            x: string;
            /** @enum {string} */
            alg?: "EdDSA";
            kid: string;
            /** @enum {string} */
            use?: "sig";
            key_ops?: "verify"[];
        };
        PlatformPage: {
            items: components["schemas"]["Platform"][];
            nextCursor: string | null;
        };
        AdminPlatform: components["schemas"]["Platform"] & {
            /** @description The platform's reporter trust and the outcome counts behind it, recomputed by the scheduled job */
            trust: {
                trust: number;
                probation: boolean;
                /**
                 * Format: date-time
                 * @description When the job last computed it; null: not yet
                 * @example 2026-11-24T08:00:00Z
                 */
                computedAt: string | null;
                counts: {
                    /** Format: int64 */
                    reports: number;
                    /** Format: int64 */
                    corroborated: number;
                    /** Format: int64 */
                    voided: number;
                    /** Format: int64 */
                    withdrawn: number;
                    /** Format: int64 */
                    retracted: number;
                } | null;
            };
            group: components["schemas"]["CollusionGroup"];
        };
        /** @description The platform's collusion group (docs/scoring.md §3d), as the scheduled job last found it; null: in none */
        CollusionGroup: {
            /** @description The group's id: its smallest member id */
            id: string;
            /** @description Sorted */
            members: string[];
        } | null;
        PlatformPatch: {
            /** @enum {string} */
            status?: "active" | "suspended";
            name?: string;
            scopes?: ("reports:write" | "scores:read" | "disputes:write")[];
        };
        AdminReportPage: {
            items: components["schemas"]["Report"][];
            nextCursor: string | null;
        };
        AfterLookupReportPage: {
            items: components["schemas"]["AfterLookupReport"][];
            nextCursor: string | null;
        };
        AfterLookupReport: {
            /** @example rpt_01JD3X5Z8YQ4W2E6R7T9V0B1N2 */
            id: string;
            platformId: string;
            caseId: string;
            /** @enum {string} */
            status: "active" | "disputed" | "retracted" | "voided" | "expired";
            /** @enum {string} */
            category: "ai_generated_image" | "edited_image" | "reused_image" | "staged_damage" | "other_forgery";
            /** @enum {string} */
            confirmation: "manual_review" | "merchant_evidence" | "platform_forensics" | "police_report" | "court_ruling";
            /**
             * Format: date-time
             * @example 2026-11-24T08:00:00Z
             */
            createdAt: string;
            /**
             * Format: date-time
             * @description When the reporter's own look-up was made
             * @example 2026-11-24T08:00:00Z
             */
            afterLookupAt: string;
            /**
             * @description What that look-up answered (reconstructed, docs/scoring.md §3c)
             * @enum {string}
             */
            afterLookupBand: "medium" | "high" | "critical";
            /**
             * Format: date-time
             * @description When an admin cleared the flag; null while it stands
             * @example 2026-11-24T08:00:00Z
             */
            clearedAt: string | null;
            /** @description The admin who cleared it (`admin:<kid>`); null while it stands */
            clearedBy: string | null;
        };
        ReportBulkVoidResult: {
            /** @description The reports this call voided */
            voided: string[];
            /** @description Listed ids not voided: unknown, or already closed */
            skipped: {
                /** @example rpt_01JD3X5Z8YQ4W2E6R7T9V0B1N2 */
                id: string;
                reason: string;
            }[];
            /** @description The filter matches more open reports: call again */
            more: boolean;
        };
        ReportBulkVoid: {
            reason: string;
            /** @description Up to 1000 report ids */
            ids?: string[];
            /** @description Every open report of this platform… */
            platformId?: string;
            /**
             * Format: date-time
             * @description …filed at or after this time…
             * @example 2026-11-05T16:30:00Z
             */
            since?: string;
            /**
             * Format: date-time
             * @description …and before this time
             * @example 2026-11-05T16:30:00Z
             */
            until?: string;
        };
        VerifyConfirmationBody: {
            /**
             * @description How the reference was checked (with whom, when), for the audit log
             * @example Case number confirmed by phone with the issuing police station.
             */
            note: string;
        };
        ClearAfterLookupBody: {
            /**
             * @description Why the report stands on its own evidence, for the audit log
             * @example The platform's forensic report predates its look-up; the case was opened on 2026-11-02.
             */
            reason: string;
        };
        DisputePage: {
            items: components["schemas"]["Dispute"][];
            nextCursor: string | null;
        };
        DisputeResolve: {
            /** @enum {string} */
            outcome: "report_upheld" | "report_voided";
            note: string;
        };
        AuditPage: {
            items: components["schemas"]["AuditEntry"][];
            nextCursor: string | null;
        };
        AuditEntry: {
            /** Format: int64 */
            seq: number;
            /**
             * Format: date-time
             * @example 2026-11-24T08:00:00Z
             */
            at: string;
            actor: string;
            action: string;
            target: string | null;
            requestId: string;
            outcome: string;
            details: {
                [key: string]: unknown;
            } | null;
            prevHash: string | null;
            /** @description Null until the sealer chains a ledger entry; never null in a shard */
            hash: string | null;
            /**
             * Format: int32
             * @description The log shard whose chain holds the entry; null for the ledger chain (D1)
             */
            shard: number | null;
            /** @description Shard entries: the chained commitment to the subject keys, or null */
            keys: string | null;
            /** @description Shard entries: the subject keys committed to, and the claim photos' PDQ hashes probed (`photo:<hash>`), while retained; null once erased (and for the ledger) */
            subjectKeys: string[] | null;
        };
        ArchivePage: {
            items: {
                key: string;
                /**
                 * Format: int32
                 * @description −1 when the object carries no shard metadata
                 */
                shard: number;
                /** Format: int64 */
                from: number;
                /** Format: int64 */
                to: number;
                /** @description The segment's head hash, or empty when unknown */
                hash: string;
                /** Format: int64 */
                size: number;
                /**
                 * Format: date-time
                 * @example 2026-11-24T08:00:00Z
                 */
                uploaded: string;
            }[];
            /** @description R2's list cursor */
            nextCursor: string | null;
        };
        ArchiveVerdict: {
            ok: boolean;
            error?: string;
            /** Format: int32 */
            badShard?: number;
            /** Format: int64 */
            firstBadSeq?: number;
            /** Format: int64 */
            treeCheckpoints: number;
            shards: {
                [key: string]: unknown;
            }[];
        } & {
            [key: string]: unknown;
        };
        Stats: {
            platforms: {
                [key: string]: number;
            };
            reports: {
                [key: string]: number;
            };
            disputes: {
                [key: string]: number;
            };
            queriesPerDay: {
                /** Format: date */
                day: string;
                /** Format: int64 */
                queries: number;
                /** Format: int64 */
                subjects: number;
            }[];
            /**
             * Format: int32
             * @description LOOKUP_DAILY_CAP: distinct subject keys a platform may look up per UTC day
             */
            lookupDailyCap: number;
            usage: {
                platformId: string;
                /** Format: int64 */
                queries: number;
                /** Format: int64 */
                subjects: number;
                /** Format: int64 */
                reports: number;
                lookupsPerReport: number | null;
                /**
                 * Format: int64
                 * @description Subject-access pages answered
                 */
                subjectAccess: number;
                /**
                 * Format: int64
                 * @description Disputes this platform opened
                 */
                disputesOpened: number;
                /**
                 * Format: int64
                 * @description Distinct subject keys looked up today (UTC), against `lookupDailyCap`
                 */
                distinctSubjectsToday: number;
            }[];
            /** @description Collusion (docs/scoring.md §3d): platforms whose reports overlap on buyers no other platform reports, beyond what chance explains. Such overlap does not multiply the consensus. */
            collusion: {
                /**
                 * Format: date-time
                 * @description When the collusion job last ran (at most once an hour); null: never
                 * @example 2026-11-24T08:00:00Z
                 */
                computedAt: string | null;
                /** @description Exact sets of reporters whose shared buyers (reported by these platforms and no other) are beyond chance, the smallest p-value first, at most 1000 */
                sets: {
                    /** @description Sorted */
                    members: string[];
                    /**
                     * Format: int64
                     * @description Buyers reported by exactly these platforms
                     */
                    observed: number;
                    /** @description What chance predicts, at its most cautious */
                    expected: number;
                    /** @description Poisson P(X ≥ observed) at `expected` */
                    pValue: number;
                    /**
                     * Format: date-time
                     * @example 2026-11-24T08:00:00Z
                     */
                    computedAt: string;
                }[];
                /** @description Platforms of overlapping sets: each group counts as one platform in the consensus */
                groups: components["schemas"]["CollusionGroup"][];
            };
            audit: {
                /**
                 * Format: int64
                 * @description Audit entries written: the ledger chain's, every log shard's, and those in the outbox
                 */
                entries: number;
                /**
                 * Format: int64
                 * @description Entries written but not yet chained: the ledger chain's unsealed tail (its closed legacy prefix) plus outbox rows not yet drained to the log shards
                 */
                unsealed: number;
                lastCheckpoint: {
                    /** Format: int64 */
                    seq: number;
                    /**
                     * Format: date-time
                     * @example 2026-11-24T08:00:00Z
                     */
                    at: string;
                } | null;
            };
        };
    };
    responses: never;
    parameters: never;
    requestBodies: never;
    headers: {
        /** @description The route class's quota policy (draft-ietf-httpapi-ratelimit-headers-11 §3): requests (`q`) per principal per window (`w`, seconds). On every answer past the rate limiter; a 429 of the daily look-up cap adds `"lookups"`, counted in distinct subject keys. */
        "RateLimit-Policy": string;
        /** @description On a 429 only: the exhausted policy, with no quota left (`r=0`) for at most `t` seconds (draft-ietf-httpapi-ratelimit-headers-11 §4). The limiter does not report remaining counts, so other answers do not carry it. */
        RateLimit: string;
        /** @description Seconds to wait before retrying (RFC 9110 §10.2.3). */
        "Retry-After": number;
    };
    pathItems: never;
}
export type $defs = Record<string, never>;
export interface operations {
    getHealth: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Alive */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": {
                        /** @enum {boolean} */
                        ok: true;
                    };
                };
            };
            /** @description Internal error */
            500: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
        };
    };
    getAuditKeys: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description A JSON Web Key Set */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["AuditKeySet"];
                };
            };
            /** @description Internal error */
            500: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
        };
    };
    createReportsBulk: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["ReportBulk"];
            };
        };
        responses: {
            /** @description One result per item, in order */
            200: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": {
                        results: {
                            /** Format: int32 */
                            index: number;
                            /** Format: int32 */
                            status: number;
                            /** @example rpt_01JD3X5Z8YQ4W2E6R7T9V0B1N2 */
                            id?: string;
                            problem?: components["schemas"]["Problem"];
                        }[];
                    };
                };
            };
            /** @description Malformed JSON */
            400: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Missing, invalid, expired or replayed token */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Suspended platform or missing scope */
            403: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Body too large */
            413: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Content type is not application/json */
            415: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Validation failed; `errors` lists each field */
            422: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Rate limited (the route class's limit per principal, or the daily look-up cap); see Retry-After */
            429: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    RateLimit: components["headers"]["RateLimit"];
                    "Retry-After": components["headers"]["Retry-After"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Internal error */
            500: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description The inquiry log could not be read to check whether the report follows the platform's own look-up of the buyer, so nothing was written; retry after Retry-After */
            503: {
                headers: {
                    "Retry-After": components["headers"]["Retry-After"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
        };
    };
    listReports: {
        parameters: {
            query?: {
                status?: "active" | "disputed" | "retracted" | "voided" | "expired";
                cursor?: string;
                limit?: number;
            };
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description A page of reports */
            200: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ReportPage"];
                };
            };
            /** @description Malformed JSON */
            400: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Missing, invalid, expired or replayed token */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Suspended platform or missing scope */
            403: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Body too large */
            413: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Content type is not application/json */
            415: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Validation failed; `errors` lists each field */
            422: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Rate limited (the route class's limit per principal, or the daily look-up cap); see Retry-After */
            429: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    RateLimit: components["headers"]["RateLimit"];
                    "Retry-After": components["headers"]["Retry-After"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Internal error */
            500: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
        };
    };
    createReport: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["ReportBody"];
            };
        };
        responses: {
            /** @description Idempotent replay: the report already held */
            200: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Report"];
                };
            };
            /** @description Created */
            201: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Report"];
                };
            };
            /** @description Malformed JSON */
            400: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Missing, invalid, expired or replayed token */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Suspended platform or missing scope */
            403: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Conflict */
            409: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Body too large */
            413: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Content type is not application/json */
            415: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Validation failed; `errors` lists each field */
            422: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Rate limited (the route class's limit per principal, or the daily look-up cap); see Retry-After */
            429: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    RateLimit: components["headers"]["RateLimit"];
                    "Retry-After": components["headers"]["Retry-After"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Internal error */
            500: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description The inquiry log could not be read to check whether the report follows the platform's own look-up of the buyer, so nothing was written; retry after Retry-After */
            503: {
                headers: {
                    "Retry-After": components["headers"]["Retry-After"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
        };
    };
    getReport: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The report */
            200: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Report"];
                };
            };
            /** @description Malformed JSON */
            400: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Missing, invalid, expired or replayed token */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Suspended platform or missing scope */
            403: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Not found (also for another platform's resources) */
            404: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Body too large */
            413: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Content type is not application/json */
            415: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Validation failed; `errors` lists each field */
            422: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Rate limited (the route class's limit per principal, or the daily look-up cap); see Retry-After */
            429: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    RateLimit: components["headers"]["RateLimit"];
                    "Retry-After": components["headers"]["Retry-After"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Internal error */
            500: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
        };
    };
    retractReport: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                id: string;
            };
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": {
                    reason: string;
                };
            };
        };
        responses: {
            /** @description The report, retracted */
            200: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Report"];
                };
            };
            /** @description Malformed JSON */
            400: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Missing, invalid, expired or replayed token */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Suspended platform or missing scope */
            403: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Not found (also for another platform's resources) */
            404: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Conflict */
            409: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Body too large */
            413: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Content type is not application/json */
            415: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Validation failed; `errors` lists each field */
            422: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Rate limited (the route class's limit per principal, or the daily look-up cap); see Retry-After */
            429: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    RateLimit: components["headers"]["RateLimit"];
                    "Retry-After": components["headers"]["Retry-After"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Internal error */
            500: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
        };
    };
    queryScore: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["ScoreQuery"];
            };
        };
        responses: {
            /** @description The buyer's shared risk score */
            200: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ScoreAnswer"];
                };
            };
            /** @description Malformed JSON */
            400: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Missing, invalid, expired or replayed token */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Suspended platform or missing scope */
            403: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Body too large */
            413: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Content type is not application/json */
            415: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Validation failed; `errors` lists each field */
            422: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Rate limited (the route class's limit per principal, or the daily look-up cap); see Retry-After */
            429: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    RateLimit: components["headers"]["RateLimit"];
                    "Retry-After": components["headers"]["Retry-After"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Internal error */
            500: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description The look-up could not be logged durably, so it was not answered; retry after Retry-After */
            503: {
                headers: {
                    "Retry-After": components["headers"]["Retry-After"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
        };
    };
    scoreBatch: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["ScoreBatch"];
            };
        };
        responses: {
            /** @description One answer per query */
            200: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": {
                        results: (components["schemas"]["ScoreAnswer"] & {
                            ref: string;
                        })[];
                    };
                };
            };
            /** @description Malformed JSON */
            400: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Missing, invalid, expired or replayed token */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Suspended platform or missing scope */
            403: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Body too large */
            413: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Content type is not application/json */
            415: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Validation failed; `errors` lists each field */
            422: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Rate limited (the route class's limit per principal, or the daily look-up cap); see Retry-After */
            429: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    RateLimit: components["headers"]["RateLimit"];
                    "Retry-After": components["headers"]["Retry-After"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Internal error */
            500: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description The look-up could not be logged durably, so it was not answered; retry after Retry-After */
            503: {
                headers: {
                    "Retry-After": components["headers"]["Retry-After"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
        };
    };
    matchEvidence: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["EvidenceMatchQuery"];
            };
        };
        responses: {
            /** @description The matches, per photo */
            200: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["EvidenceMatchAnswer"];
                };
            };
            /** @description Malformed JSON */
            400: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Missing, invalid, expired or replayed token */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Suspended platform or missing scope */
            403: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Body too large */
            413: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Content type is not application/json */
            415: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Validation failed; `errors` lists each field */
            422: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Rate limited (the route class's limit per principal, or the daily look-up cap); see Retry-After */
            429: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    RateLimit: components["headers"]["RateLimit"];
                    "Retry-After": components["headers"]["Retry-After"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Internal error */
            500: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description The look-up could not be logged durably, so it was not answered; retry after Retry-After */
            503: {
                headers: {
                    "Retry-After": components["headers"]["Retry-After"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
        };
    };
    listDisputes: {
        parameters: {
            query?: {
                status?: "open" | "overdue" | "escalated" | "upheld" | "withdrawn" | "report_upheld" | "report_voided";
                role?: "opener" | "reporter";
                cursor?: string;
                limit?: number;
            };
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description A page of disputes */
            200: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ListedDisputePage"];
                };
            };
            /** @description Malformed JSON */
            400: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Missing, invalid, expired or replayed token */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Suspended platform or missing scope */
            403: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Body too large */
            413: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Content type is not application/json */
            415: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Validation failed; `errors` lists each field */
            422: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Rate limited (the route class's limit per principal, or the daily look-up cap); see Retry-After */
            429: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    RateLimit: components["headers"]["RateLimit"];
                    "Retry-After": components["headers"]["Retry-After"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Internal error */
            500: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
        };
    };
    openDispute: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["DisputeOpen"];
            };
        };
        responses: {
            /** @description Opened */
            201: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Dispute"];
                };
            };
            /** @description Malformed JSON */
            400: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Missing, invalid, expired or replayed token */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Suspended platform or missing scope */
            403: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Not found (also for another platform's resources) */
            404: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Conflict */
            409: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Body too large */
            413: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Content type is not application/json */
            415: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Validation failed; `errors` lists each field */
            422: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Rate limited (the route class's limit per principal, or the daily look-up cap); see Retry-After */
            429: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    RateLimit: components["headers"]["RateLimit"];
                    "Retry-After": components["headers"]["Retry-After"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Internal error */
            500: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
        };
    };
    getDispute: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The dispute */
            200: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Dispute"];
                };
            };
            /** @description Malformed JSON */
            400: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Missing, invalid, expired or replayed token */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Suspended platform or missing scope */
            403: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Not found (also for another platform's resources) */
            404: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Body too large */
            413: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Content type is not application/json */
            415: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Validation failed; `errors` lists each field */
            422: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Rate limited (the route class's limit per principal, or the daily look-up cap); see Retry-After */
            429: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    RateLimit: components["headers"]["RateLimit"];
                    "Retry-After": components["headers"]["Retry-After"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Internal error */
            500: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
        };
    };
    respondToDispute: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                id: string;
            };
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["DisputeRespond"];
            };
        };
        responses: {
            /** @description The dispute, decided */
            200: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Dispute"];
                };
            };
            /** @description Malformed JSON */
            400: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Missing, invalid, expired or replayed token */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Suspended platform or missing scope */
            403: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Not found (also for another platform's resources) */
            404: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Conflict */
            409: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Body too large */
            413: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Content type is not application/json */
            415: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Validation failed; `errors` lists each field */
            422: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Rate limited (the route class's limit per principal, or the daily look-up cap); see Retry-After */
            429: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    RateLimit: components["headers"]["RateLimit"];
                    "Retry-After": components["headers"]["Retry-After"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Internal error */
            500: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
        };
    };
    escalateDispute: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                id: string;
            };
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["DisputeEscalate"];
            };
        };
        responses: {
            /** @description The dispute, escalated */
            200: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Dispute"];
                };
            };
            /** @description Malformed JSON */
            400: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Missing, invalid, expired or replayed token */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Suspended platform or missing scope */
            403: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Not found (also for another platform's resources) */
            404: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Conflict */
            409: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Body too large */
            413: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Content type is not application/json */
            415: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Validation failed; `errors` lists each field */
            422: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Rate limited (the route class's limit per principal, or the daily look-up cap); see Retry-After */
            429: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    RateLimit: components["headers"]["RateLimit"];
                    "Retry-After": components["headers"]["Retry-After"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Internal error */
            500: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
        };
    };
    requestSubjectAccess: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["SubjectAccessQuery"];
            };
        };
        responses: {
            /** @description The buyer's file */
            200: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["SubjectAccess"];
                };
            };
            /** @description Malformed JSON */
            400: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Missing, invalid, expired or replayed token */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Suspended platform or missing scope */
            403: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Body too large */
            413: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Content type is not application/json */
            415: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Validation failed; `errors` lists each field */
            422: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Rate limited (the route class's limit per principal, or the daily look-up cap); see Retry-After */
            429: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    RateLimit: components["headers"]["RateLimit"];
                    "Retry-After": components["headers"]["Retry-After"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Internal error */
            500: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description The look-up could not be logged durably, so it was not answered; retry after Retry-After */
            503: {
                headers: {
                    "Retry-After": components["headers"]["Retry-After"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
        };
    };
    listEvents: {
        parameters: {
            query?: {
                cursor?: string;
                limit?: number;
            };
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description A page of events */
            200: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["EventPage"];
                };
            };
            /** @description Malformed JSON */
            400: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Missing, invalid, expired or replayed token */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Suspended platform or missing scope */
            403: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Body too large */
            413: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Content type is not application/json */
            415: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Validation failed; `errors` lists each field */
            422: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Rate limited (the route class's limit per principal, or the daily look-up cap); see Retry-After */
            429: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    RateLimit: components["headers"]["RateLimit"];
                    "Retry-After": components["headers"]["Retry-After"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Internal error */
            500: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
        };
    };
    getWebhook: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The webhook */
            200: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Webhook"];
                };
            };
            /** @description Malformed JSON */
            400: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Missing, invalid, expired or replayed token */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Suspended platform or missing scope */
            403: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Not found (also for another platform's resources) */
            404: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Body too large */
            413: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Content type is not application/json */
            415: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Validation failed; `errors` lists each field */
            422: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Rate limited (the route class's limit per principal, or the daily look-up cap); see Retry-After */
            429: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    RateLimit: components["headers"]["RateLimit"];
                    "Retry-After": components["headers"]["Retry-After"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Internal error */
            500: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
        };
    };
    putWebhook: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["WebhookPut"];
            };
        };
        responses: {
            /** @description Registered; `secret` is shown only here */
            200: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["WebhookCreated"];
                };
            };
            /** @description Malformed JSON */
            400: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Missing, invalid, expired or replayed token */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Suspended platform or missing scope */
            403: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Body too large */
            413: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Content type is not application/json */
            415: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Validation failed; `errors` lists each field */
            422: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Rate limited (the route class's limit per principal, or the daily look-up cap); see Retry-After */
            429: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    RateLimit: components["headers"]["RateLimit"];
                    "Retry-After": components["headers"]["Retry-After"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Internal error */
            500: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
        };
    };
    deleteWebhook: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Removed */
            204: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content?: never;
            };
            /** @description Malformed JSON */
            400: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Missing, invalid, expired or replayed token */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Suspended platform or missing scope */
            403: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Not found (also for another platform's resources) */
            404: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Body too large */
            413: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Content type is not application/json */
            415: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Validation failed; `errors` lists each field */
            422: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Rate limited (the route class's limit per principal, or the daily look-up cap); see Retry-After */
            429: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    RateLimit: components["headers"]["RateLimit"];
                    "Retry-After": components["headers"]["Retry-After"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Internal error */
            500: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
        };
    };
    listAdminPlatforms: {
        parameters: {
            query?: {
                cursor?: string;
                limit?: number;
            };
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description A page of platforms */
            200: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["PlatformPage"];
                };
            };
            /** @description Malformed JSON */
            400: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Missing, invalid, expired or replayed token */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Suspended platform or missing scope */
            403: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Body too large */
            413: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Content type is not application/json */
            415: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Validation failed; `errors` lists each field */
            422: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Rate limited (the route class's limit per principal, or the daily look-up cap); see Retry-After */
            429: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    RateLimit: components["headers"]["RateLimit"];
                    "Retry-After": components["headers"]["Retry-After"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Internal error */
            500: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
        };
    };
    createAdminPlatform: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["PlatformCreate"];
            };
        };
        responses: {
            /** @description Registered */
            201: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Platform"];
                };
            };
            /** @description Malformed JSON */
            400: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Missing, invalid, expired or replayed token */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Suspended platform or missing scope */
            403: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Conflict */
            409: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Body too large */
            413: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Content type is not application/json */
            415: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Validation failed; `errors` lists each field */
            422: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Rate limited (the route class's limit per principal, or the daily look-up cap); see Retry-After */
            429: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    RateLimit: components["headers"]["RateLimit"];
                    "Retry-After": components["headers"]["Retry-After"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Internal error */
            500: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
        };
    };
    getAdminPlatform: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The platform, with its reporter trust and collusion group (admins only) */
            200: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["AdminPlatform"];
                };
            };
            /** @description Malformed JSON */
            400: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Missing, invalid, expired or replayed token */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Suspended platform or missing scope */
            403: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Not found (also for another platform's resources) */
            404: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Body too large */
            413: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Content type is not application/json */
            415: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Validation failed; `errors` lists each field */
            422: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Rate limited (the route class's limit per principal, or the daily look-up cap); see Retry-After */
            429: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    RateLimit: components["headers"]["RateLimit"];
                    "Retry-After": components["headers"]["Retry-After"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Internal error */
            500: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
        };
    };
    updateAdminPlatform: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                id: string;
            };
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["PlatformPatch"];
            };
        };
        responses: {
            /** @description The platform */
            200: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Platform"];
                };
            };
            /** @description Malformed JSON */
            400: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Missing, invalid, expired or replayed token */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Suspended platform or missing scope */
            403: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Not found (also for another platform's resources) */
            404: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Body too large */
            413: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Content type is not application/json */
            415: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Validation failed; `errors` lists each field */
            422: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Rate limited (the route class's limit per principal, or the daily look-up cap); see Retry-After */
            429: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    RateLimit: components["headers"]["RateLimit"];
                    "Retry-After": components["headers"]["Retry-After"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Internal error */
            500: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
        };
    };
    replaceAdminPlatformKeys: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                id: string;
            };
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["Jwks"];
            };
        };
        responses: {
            /** @description The platform */
            200: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Platform"];
                };
            };
            /** @description Malformed JSON */
            400: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Missing, invalid, expired or replayed token */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Suspended platform or missing scope */
            403: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Not found (also for another platform's resources) */
            404: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Body too large */
            413: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Content type is not application/json */
            415: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Validation failed; `errors` lists each field */
            422: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Rate limited (the route class's limit per principal, or the daily look-up cap); see Retry-After */
            429: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    RateLimit: components["headers"]["RateLimit"];
                    "Retry-After": components["headers"]["Retry-After"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Internal error */
            500: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
        };
    };
    listAdminReports: {
        parameters: {
            query?: {
                platformId?: string;
                status?: "active" | "disputed" | "retracted" | "voided" | "expired";
                cursor?: string;
                limit?: number;
            };
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description A page of reports */
            200: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["AdminReportPage"];
                };
            };
            /** @description Malformed JSON */
            400: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Missing, invalid, expired or replayed token */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Suspended platform or missing scope */
            403: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Body too large */
            413: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Content type is not application/json */
            415: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Validation failed; `errors` lists each field */
            422: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Rate limited (the route class's limit per principal, or the daily look-up cap); see Retry-After */
            429: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    RateLimit: components["headers"]["RateLimit"];
                    "Retry-After": components["headers"]["Retry-After"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Internal error */
            500: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
        };
    };
    listAdminAfterLookupReports: {
        parameters: {
            query?: {
                /** @description `true`: the flags admins cleared instead of those waiting */
                cleared?: "true" | "false";
                cursor?: string;
                limit?: number;
            };
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description A page of flagged reports */
            200: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["AfterLookupReportPage"];
                };
            };
            /** @description Malformed JSON */
            400: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Missing, invalid, expired or replayed token */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Suspended platform or missing scope */
            403: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Body too large */
            413: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Content type is not application/json */
            415: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Validation failed; `errors` lists each field */
            422: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Rate limited (the route class's limit per principal, or the daily look-up cap); see Retry-After */
            429: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    RateLimit: components["headers"]["RateLimit"];
                    "Retry-After": components["headers"]["Retry-After"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Internal error */
            500: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
        };
    };
    getAdminReport: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The report */
            200: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Report"];
                };
            };
            /** @description Malformed JSON */
            400: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Missing, invalid, expired or replayed token */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Suspended platform or missing scope */
            403: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Not found (also for another platform's resources) */
            404: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Body too large */
            413: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Content type is not application/json */
            415: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Validation failed; `errors` lists each field */
            422: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Rate limited (the route class's limit per principal, or the daily look-up cap); see Retry-After */
            429: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    RateLimit: components["headers"]["RateLimit"];
                    "Retry-After": components["headers"]["Retry-After"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Internal error */
            500: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
        };
    };
    voidAdminReport: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                id: string;
            };
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": {
                    reason: string;
                };
            };
        };
        responses: {
            /** @description The report, voided */
            200: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Report"];
                };
            };
            /** @description Malformed JSON */
            400: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Missing, invalid, expired or replayed token */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Suspended platform or missing scope */
            403: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Not found (also for another platform's resources) */
            404: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Conflict */
            409: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Body too large */
            413: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Content type is not application/json */
            415: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Validation failed; `errors` lists each field */
            422: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Rate limited (the route class's limit per principal, or the daily look-up cap); see Retry-After */
            429: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    RateLimit: components["headers"]["RateLimit"];
                    "Retry-After": components["headers"]["Retry-After"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Internal error */
            500: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
        };
    };
    voidAdminReportsBulk: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["ReportBulkVoid"];
            };
        };
        responses: {
            /** @description What was voided */
            200: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ReportBulkVoidResult"];
                };
            };
            /** @description Malformed JSON */
            400: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Missing, invalid, expired or replayed token */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Suspended platform or missing scope */
            403: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Body too large */
            413: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Content type is not application/json */
            415: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Validation failed; `errors` lists each field */
            422: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Rate limited (the route class's limit per principal, or the daily look-up cap); see Retry-After */
            429: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    RateLimit: components["headers"]["RateLimit"];
                    "Retry-After": components["headers"]["Retry-After"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Internal error */
            500: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
        };
    };
    verifyAdminReportConfirmation: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                id: string;
            };
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["VerifyConfirmationBody"];
            };
        };
        responses: {
            /** @description The report, its confirmation verified */
            200: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Report"];
                };
            };
            /** @description Malformed JSON */
            400: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Missing, invalid, expired or replayed token */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Suspended platform or missing scope */
            403: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Not found (also for another platform's resources) */
            404: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Conflict */
            409: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Body too large */
            413: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Content type is not application/json */
            415: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Validation failed; `errors` lists each field */
            422: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Rate limited (the route class's limit per principal, or the daily look-up cap); see Retry-After */
            429: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    RateLimit: components["headers"]["RateLimit"];
                    "Retry-After": components["headers"]["Retry-After"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Internal error */
            500: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
        };
    };
    clearAdminReportAfterLookup: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                id: string;
            };
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["ClearAfterLookupBody"];
            };
        };
        responses: {
            /** @description The report, its flag cleared */
            200: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Report"];
                };
            };
            /** @description Malformed JSON */
            400: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Missing, invalid, expired or replayed token */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Suspended platform or missing scope */
            403: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Not found (also for another platform's resources) */
            404: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Conflict */
            409: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Body too large */
            413: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Content type is not application/json */
            415: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Validation failed; `errors` lists each field */
            422: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Rate limited (the route class's limit per principal, or the daily look-up cap); see Retry-After */
            429: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    RateLimit: components["headers"]["RateLimit"];
                    "Retry-After": components["headers"]["Retry-After"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Internal error */
            500: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
        };
    };
    listAdminDisputes: {
        parameters: {
            query?: {
                status?: "open" | "overdue" | "escalated" | "upheld" | "withdrawn" | "report_upheld" | "report_voided";
                cursor?: string;
                limit?: number;
            };
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description A page of disputes */
            200: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["DisputePage"];
                };
            };
            /** @description Malformed JSON */
            400: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Missing, invalid, expired or replayed token */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Suspended platform or missing scope */
            403: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Body too large */
            413: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Content type is not application/json */
            415: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Validation failed; `errors` lists each field */
            422: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Rate limited (the route class's limit per principal, or the daily look-up cap); see Retry-After */
            429: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    RateLimit: components["headers"]["RateLimit"];
                    "Retry-After": components["headers"]["Retry-After"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Internal error */
            500: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
        };
    };
    resolveAdminDispute: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                id: string;
            };
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["DisputeResolve"];
            };
        };
        responses: {
            /** @description The dispute, decided */
            200: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Dispute"];
                };
            };
            /** @description Malformed JSON */
            400: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Missing, invalid, expired or replayed token */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Suspended platform or missing scope */
            403: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Not found (also for another platform's resources) */
            404: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Conflict */
            409: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Body too large */
            413: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Content type is not application/json */
            415: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Validation failed; `errors` lists each field */
            422: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Rate limited (the route class's limit per principal, or the daily look-up cap); see Retry-After */
            429: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    RateLimit: components["headers"]["RateLimit"];
                    "Retry-After": components["headers"]["Retry-After"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Internal error */
            500: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
        };
    };
    runAdminMaintenance: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": Record<string, never>;
            };
        };
        responses: {
            /** @description What the run did */
            200: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": {
                        /** Format: int64 */
                        reportsPurged: number;
                        /** Format: int64 */
                        inquiriesPurged: number;
                        /** Format: int64 */
                        tokenUsesPurged: number;
                        /** Format: int64 */
                        disputesMarkedOverdue: number;
                        /** Format: int64 */
                        eventsPurged: number;
                        /** Format: int64 */
                        webhooksResent: number;
                        /**
                         * Format: int64
                         * @description Platforms whose reporter trust this run recomputed (docs/scoring.md §2a)
                         */
                        trustRecomputed: number;
                        /** @description The collusion job (docs/scoring.md §3d); null when it ran within the last hour (docs/operations.md) */
                        collusion: {
                            /**
                             * Format: int64
                             * @description Shared buyers counted (two or more reporting platforms)
                             */
                            buyers: number;
                            /**
                             * Format: int64
                             * @description Collusion sets found
                             */
                            sets: number;
                            /**
                             * Format: int64
                             * @description Platforms in a collusion group
                             */
                            grouped: number;
                            /** @description Whether the groups changed (audited as `collusion.groups`) */
                            changed: boolean;
                        } | null;
                        complete: boolean;
                        log: {
                            /** Format: int64 */
                            keysErased: number;
                            /** Format: int64 */
                            inquiriesPurged: number;
                        };
                        /** @description Audit outbox rows this run moved to the log shards, and those left for the next */
                        outbox: {
                            /** Format: int64 */
                            drained: number;
                            /** Format: int64 */
                            failed: number;
                        };
                        /** @description Log segments moved to the R2 archive by this run */
                        archived: {
                            segments: string[];
                            /** Format: int64 */
                            entries: number;
                        };
                        /** @description The tree checkpoint signed, if any head moved: `seq`/`hash` the ledger chain's head, `heads` every leaf (the ledger as shard −1) */
                        checkpoint: {
                            /** Format: int64 */
                            seq: number;
                            hash: string;
                            /**
                             * Format: int64
                             * @description Epoch milliseconds
                             */
                            at: number;
                            root: string;
                            heads: {
                                /** Format: int32 */
                                shard: number;
                                /** Format: int64 */
                                seq: number;
                                hash: string;
                            }[];
                        } | null;
                    };
                };
            };
            /** @description Malformed JSON */
            400: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Missing, invalid, expired or replayed token */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Suspended platform or missing scope */
            403: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Body too large */
            413: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Content type is not application/json */
            415: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Validation failed; `errors` lists each field */
            422: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Rate limited (the route class's limit per principal, or the daily look-up cap); see Retry-After */
            429: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    RateLimit: components["headers"]["RateLimit"];
                    "Retry-After": components["headers"]["Retry-After"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Internal error */
            500: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
        };
    };
    listAdminAuditEntries: {
        parameters: {
            query?: {
                actor?: string;
                action?: string;
                target?: string;
                since?: string;
                until?: string;
                cursor?: string;
                limit?: number;
            };
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description A page of entries */
            200: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["AuditPage"];
                };
            };
            /** @description Malformed JSON */
            400: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Missing, invalid, expired or replayed token */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Suspended platform or missing scope */
            403: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Body too large */
            413: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Content type is not application/json */
            415: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Validation failed; `errors` lists each field */
            422: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Rate limited (the route class's limit per principal, or the daily look-up cap); see Retry-After */
            429: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    RateLimit: components["headers"]["RateLimit"];
                    "Retry-After": components["headers"]["Retry-After"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Internal error */
            500: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
        };
    };
    verifyAdminAudit: {
        parameters: {
            query?: {
                from?: "genesis" | "checkpoint";
            };
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The verdict */
            200: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": {
                        ok: boolean;
                        /** Format: int64 */
                        checked: number;
                        from: {
                            /** Format: int64 */
                            seq: number;
                            checkpoint: boolean;
                        };
                        head: {
                            /** Format: int64 */
                            seq: number;
                            hash: string;
                        } | null;
                        /** Format: int64 */
                        unsealed: number;
                        checkpoints: {
                            /** Format: int64 */
                            checked: number;
                            /** Format: int64 */
                            invalid: number;
                        };
                        treeCheckpoints: {
                            /** Format: int64 */
                            count: number;
                            /** Format: int64 */
                            invalid: number;
                        };
                        /** Format: int64 */
                        firstBadSeq?: number;
                        reason?: string;
                        /** @description The audit outbox's accounting: every id up to `top` is waiting (`pending`) or held by a shard; `missing` ranges were deleted before reaching the log (a fault). */
                        outbox: {
                            /** Format: int64 */
                            through: number;
                            /** Format: int64 */
                            top: number;
                            /** Format: int64 */
                            pending: number;
                            missing: [
                                number,
                                number
                            ][];
                        };
                        shards: {
                            /** Format: int32 */
                            shard: number;
                            ok: boolean;
                            /** Format: int64 */
                            checked: number;
                            from: {
                                /** Format: int64 */
                                seq: number;
                                checkpoint: boolean;
                            };
                            head: {
                                /** Format: int64 */
                                seq: number;
                                hash: string;
                            };
                            /** @enum {number} */
                            unsealed: 0;
                            /** Format: int64 */
                            firstBadSeq?: number;
                            reason?: string;
                        }[];
                    };
                };
            };
            /** @description Malformed JSON */
            400: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Missing, invalid, expired or replayed token */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Suspended platform or missing scope */
            403: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Body too large */
            413: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Content type is not application/json */
            415: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Validation failed; `errors` lists each field */
            422: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Rate limited (the route class's limit per principal, or the daily look-up cap); see Retry-After */
            429: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    RateLimit: components["headers"]["RateLimit"];
                    "Retry-After": components["headers"]["Retry-After"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Internal error */
            500: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
        };
    };
    exportAdminAudit: {
        parameters: {
            query?: {
                since?: string;
                /** @description First seq of the ledger chain (shards are then exported whole) */
                sinceSeq?: number;
            };
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description NDJSON, streamed: one JSON object a line */
            200: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/x-ndjson": string;
                };
            };
            /** @description Malformed JSON */
            400: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Missing, invalid, expired or replayed token */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Suspended platform or missing scope */
            403: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Body too large */
            413: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Content type is not application/json */
            415: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Validation failed; `errors` lists each field */
            422: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Rate limited (the route class's limit per principal, or the daily look-up cap); see Retry-After */
            429: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    RateLimit: components["headers"]["RateLimit"];
                    "Retry-After": components["headers"]["Retry-After"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Internal error */
            500: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
        };
    };
    listAdminAuditArchive: {
        parameters: {
            query?: {
                cursor?: string;
            };
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description A page of segments */
            200: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ArchivePage"];
                };
            };
            /** @description Malformed JSON */
            400: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Missing, invalid, expired or replayed token */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Suspended platform or missing scope */
            403: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Body too large */
            413: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Content type is not application/json */
            415: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Validation failed; `errors` lists each field */
            422: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Rate limited (the route class's limit per principal, or the daily look-up cap); see Retry-After */
            429: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    RateLimit: components["headers"]["RateLimit"];
                    "Retry-After": components["headers"]["Retry-After"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Internal error */
            500: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
        };
    };
    verifyAdminAuditArchiveSegment: {
        parameters: {
            query: {
                key: string;
            };
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The verdict of the offline verifier, run on the stored segment */
            200: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ArchiveVerdict"];
                };
            };
            /** @description Malformed JSON */
            400: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Missing, invalid, expired or replayed token */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Suspended platform or missing scope */
            403: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Not found (also for another platform's resources) */
            404: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Body too large */
            413: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Content type is not application/json */
            415: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Validation failed; `errors` lists each field */
            422: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Rate limited (the route class's limit per principal, or the daily look-up cap); see Retry-After */
            429: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    RateLimit: components["headers"]["RateLimit"];
                    "Retry-After": components["headers"]["Retry-After"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Internal error */
            500: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
        };
    };
    getAdminStats: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Statistics */
            200: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Stats"];
                };
            };
            /** @description Malformed JSON */
            400: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Missing, invalid, expired or replayed token */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Suspended platform or missing scope */
            403: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Body too large */
            413: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Content type is not application/json */
            415: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Validation failed; `errors` lists each field */
            422: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Rate limited (the route class's limit per principal, or the daily look-up cap); see Retry-After */
            429: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    RateLimit: components["headers"]["RateLimit"];
                    "Retry-After": components["headers"]["Retry-After"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Internal error */
            500: {
                headers: {
                    "RateLimit-Policy": components["headers"]["RateLimit-Policy"];
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
        };
    };
}
