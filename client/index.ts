/**
 * `@pixiu/client`: what a member platform needs to talk to the ledger, in any runtime with
 * WebCrypto and fetch (Node ≥ 20, Workers, browsers). Photo fingerprints are in
 * `@pixiu/client/fingerprint` (they load a WebAssembly decoder); file helpers and the back-fill in
 * `@pixiu/client/node`.
 */
export { type FieldError, PixiuError, PROBLEM_BASE, type Problem } from "./errors.ts";
export type { components, paths } from "./generated/openapi.ts";
export {
  consortiumKey,
  hashSubject,
  IDENTIFIER_TYPES,
  IdentifierError,
  type IdentifierType,
  normalise,
  normaliseEmail,
  normaliseNationalId,
  normalisePhone,
} from "./identifiers.ts";
export { DEFAULT_RETRY, type RetryOptions } from "./retry.ts";
export {
  BOOKMARK_HEADER,
  type BulkItemResult,
  type Dispute,
  type DisputeOpen,
  type DisputeRespond,
  type EvidenceMatchAnswer,
  MAX_BATCH_PHOTOS,
  MAX_BATCH_QUERIES,
  MAX_BULK_REPORTS,
  type Photo,
  PixiuClient,
  type PixiuClientOptions,
  type Purpose,
  type Report,
  type ReportBody,
  type ReportPage,
  SCOPES,
  type Scope,
  type ScoreAnswer,
  type ScoreBatchQuery,
  type Subject,
  type SubjectAccess,
  type SubjectAccessQuery,
} from "./sdk.ts";
export { signToken, type TokenOptions } from "./token.ts";
