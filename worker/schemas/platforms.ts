import { z } from "@hono/zod-openapi";
import { PLATFORM_ID_PATTERN, PLATFORM_SCOPES } from "../auth/principal";
import { DateTime, PlatformRef } from "./common";

const b64url = z.string().regex(/^[A-Za-z0-9_-]+$/, "must be base64url");

const common = {
  kid: z.string().min(1).max(128),
  use: z.literal("sig").optional(),
  key_ops: z.array(z.literal("verify")).max(1).optional(),
};

/** Public signing keys only: a private part (`d`) or any other key type is refused. */
export const PublicJwkSchema = z
  .discriminatedUnion("kty", [
    z
      .object({
        kty: z.literal("EC"),
        crv: z.literal("P-256"),
        x: b64url.length(43),
        y: b64url.length(43),
        alg: z.literal("ES256").optional(),
        ...common,
      })
      .strict(),
    z
      .object({
        kty: z.literal("OKP"),
        crv: z.literal("Ed25519"),
        x: b64url.length(43),
        alg: z.literal("EdDSA").optional(),
        ...common,
      })
      .strict(),
  ])
  .openapi("PublicJwk");

export const JwksSchema = z
  .object({
    keys: z
      .array(PublicJwkSchema)
      .min(1)
      .max(10)
      .superRefine((keys, ctx) => {
        const seen = new Set<string>();
        keys.forEach((k, i) => {
          if (seen.has(k.kid)) {
            ctx.addIssue({ code: "custom", path: [i, "kid"], message: "duplicate kid" });
          }
          seen.add(k.kid);
        });
      }),
  })
  .strict()
  .openapi("Jwks");

export const ScopesSchema = z
  .array(z.enum(PLATFORM_SCOPES))
  .min(1)
  .max(PLATFORM_SCOPES.length)
  .refine((s) => new Set(s).size === s.length, "duplicate scope");

export const PlatformIdSchema = z
  .string()
  .regex(PLATFORM_ID_PATTERN, "must be 2–63 characters of a–z 0–9 -, starting with a letter or digit")
  .refine((id) => id !== "pixiu-admin", "is reserved")
  .openapi({ example: "shop-a" });

export const PlatformCreateSchema = z
  .object({
    id: PlatformIdSchema,
    name: z.string().trim().min(1).max(200),
    scopes: ScopesSchema,
    jwks: JwksSchema,
  })
  .strict()
  .openapi("PlatformCreate");

export const PlatformPatchSchema = z
  .object({
    status: z.enum(["active", "suspended"]).optional(),
    name: z.string().trim().min(1).max(200).optional(),
    scopes: ScopesSchema.optional(),
  })
  .strict()
  .refine((p) => Object.keys(p).length > 0, "give at least one of status, name, scopes")
  .openapi("PlatformPatch");

export const PlatformSchema = z
  .object({
    id: PlatformRef,
    name: z.string().max(200),
    status: z.enum(["active", "suspended"]),
    scopes: z.array(z.string().max(32)).max(PLATFORM_SCOPES.length),
    jwks: z.object({
      keys: z
        .array(z.record(z.string(), z.unknown()))
        .max(10)
        .openapi({ description: "The platform's public keys, as PublicJwk" }),
    }),
    createdAt: DateTime,
    updatedAt: DateTime,
  })
  .openapi("Platform");

export const PlatformParam = z.object({
  id: z
    .string()
    .max(63)
    .openapi({ param: { name: "id", in: "path" }, example: "shop-a" }),
});

/** Platforms a group or a stats table lists at most: a ceiling for the document, not enforced. */
export const MAX_LISTED_PLATFORMS = 10_000;

/**
 * A collusion group as admins see it (docs/scoring.md §3d): platforms whose reports overlap on
 * buyers no other platform reports beyond chance, counted as one in the consensus. Never shown to
 * members.
 */
export const CollusionGroupSchema = z
  .object({
    id: PlatformRef.openapi({ description: "The group's id: its smallest member id" }),
    members: z.array(PlatformRef).min(2).max(MAX_LISTED_PLATFORMS).openapi({ description: "Sorted" }),
  })
  .openapi("CollusionGroup");
