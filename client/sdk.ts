/**
 * The ledger's API as a member platform calls it: typed from the ledger's own OpenAPI document
 * (generated/openapi.ts), over openapi-fetch, with a fresh signed token per request.
 *
 * @example
 *   const pixiu = new PixiuClient({ baseUrl: "https://ledger.example", platformId: "shop-a", privateJwk });
 *   const key = await consortiumKey(process.env.PIXIU_CONSORTIUM_KEY);
 *   const answer = await pixiu.score([await hashSubject(key, "phone", "138 0013 8000")]);
 */
import type { JWK } from "jose";
import createClient, { type Client } from "openapi-fetch";
import { PixiuError, PROBLEM_BASE, type Problem, syntheticProblem } from "./errors.ts";
import type { components, paths } from "./generated/openapi.ts";
import { backoffMs, isRetryableStatus, parseRetryAfter, type RetryOptions, retryOptions } from "./retry.ts";
import { signToken } from "./token.ts";

type Schemas = components["schemas"];

/** A D1 Sessions bookmark, as the ledger accepts it in `Pixiu-Bookmark`. */
const D1_BOOKMARK = /^[0-9a-f]{8}-[0-9a-f]{8}-[0-9a-f]{8}-[0-9a-f]{32}$/;

export type ReportBody = Schemas["ReportBody"];
export type Report = Schemas["Report"];
export type Subject = Schemas["Subject"];
export type ScoreAnswer = Schemas["ScoreAnswer"];
export type Photo = Schemas["Photo"];
export type Purpose = Schemas["ScoreQuery"]["purpose"];
export type ScoreBatchQuery = Schemas["ScoreBatch"]["queries"][number];
export type BulkItemResult =
  paths["/v1/reports/bulk"]["post"]["responses"][200]["content"]["application/json"]["results"][number];
export type ReportPage = Schemas["ReportPage"];
export type ReportListQuery = NonNullable<paths["/v1/reports"]["get"]["parameters"]["query"]>;
export type EvidenceMatchAnswer = Schemas["EvidenceMatchAnswer"];
export type Dispute = Schemas["Dispute"];
export type DisputeOpen = Schemas["DisputeOpen"];
export type DisputeRespond = Schemas["DisputeRespond"];
export type DisputeListQuery = NonNullable<paths["/v1/disputes"]["get"]["parameters"]["query"]>;
export type ListedDisputePage = Schemas["ListedDisputePage"];
export type SubjectAccessQuery = Schemas["SubjectAccessQuery"];
export type SubjectAccess = Schemas["SubjectAccess"];
export type EventPage = Schemas["EventPage"];

export type Scope = "reports:write" | "scores:read" | "disputes:write";
export const SCOPES: readonly Scope[] = ["reports:write", "scores:read", "disputes:write"];

/** Reports per `POST /v1/reports/bulk`, buyers per `POST /v1/scores/batch` and photos per batch (docs/api.md). */
export const MAX_BULK_REPORTS = 500;
export const MAX_BATCH_QUERIES = 100;
export const MAX_BATCH_PHOTOS = 64;

/** The header that carries a D1 Sessions bookmark both ways (docs/api.md, "Consistency"). */
export const BOOKMARK_HEADER = "Pixiu-Bookmark";

export interface PixiuClientOptions {
  /**
   * The ledger, e.g. `https://ledger.example` (a path prefix such as `https://gw.example/pixiu`
   * is kept). `https://`, or `http://` to this machine only (127.0.0.0/8, ::1, localhost): tokens
   * and buyer hashes never cross a network in clear unless `allowInsecureHttp` says so. No
   * credentials, query or fragment.
   */
  baseUrl: string;
  /**
   * Allows `http://` to another host (a network you trust end to end). Also implied by your own
   * `fetch`, whose transport is yours (a service binding, a proxy agent, a test double).
   */
  allowInsecureHttp?: boolean;
  /** The calling platform's id: the tokens' issuer. */
  platformId: string;
  /** The platform's private JWK (EdDSA or ES256), as `pixiu keygen` writes it. */
  privateJwk: JWK;
  /** The key id the ledger knows the key by; defaults to the JWK's own `kid`. */
  kid?: string;
  /** The tokens' audience: the ledger's JWT_AUDIENCE (default `pixiu`). */
  audience?: string;
  /** Token lifetime in seconds (default 60; the ledger accepts at most 300). */
  tokenLifetime?: number;
  /** The scopes the platform was granted (default all three); a token never asks for more. */
  grantedScopes?: readonly Scope[];
  /** Retry policy; see retry.ts. */
  retry?: Partial<RetryOptions>;
  /** Per-attempt timeout in milliseconds (default 30 s); a timeout counts as a network failure. */
  timeoutMs?: number;
  /** The fetch to use (default the global one). */
  fetch?: (request: Request) => Promise<Response>;
  /** A bookmark to start from, e.g. one kept from an earlier process. */
  bookmark?: string;
}

/**
 * How one route is called: the scopes any of which it accepts (in order of preference: a token
 * carries the first one the platform holds, never several), and whether a lost answer may be
 * asked again.
 */
interface RoutePolicy {
  method: string;
  path: RegExp;
  scopes: Scope[];
  /** Safe to send again when no answer arrived: a read, or a write idempotent by its key. */
  repeatable: boolean;
}

/**
 * Routes any scope opens (the event feed, the webhook). A token asks for one of them, the read
 * scope first: a token is never broader than the one scope its route needs.
 */
const ANY: Scope[] = ["scores:read", "disputes:write", "reports:write"];

/** Every platform route, from the route guards (docs/api.md); one table, so no call can pick its own. */
const ROUTES: RoutePolicy[] = [
  // Idempotent by caseId: a replay answers 200 with the report already held.
  { method: "POST", path: /^\/v1\/reports(\/bulk)?$/, scopes: ["reports:write"], repeatable: true },
  { method: "GET", path: /^\/v1\/reports(\/[^/]+)?$/, scopes: ["reports:write"], repeatable: true },
  { method: "POST", path: /^\/v1\/reports\/[^/]+\/retract$/, scopes: ["reports:write"], repeatable: false },
  // Reads; a repeat only logs the look-up again.
  {
    method: "POST",
    path: /^\/v1\/(scores\/(query|batch)|evidence\/match)$/,
    scopes: ["scores:read"],
    repeatable: true,
  },
  {
    method: "POST",
    path: /^\/v1\/disputes(\/[^/]+\/(respond|escalate))?$/,
    scopes: ["disputes:write"],
    repeatable: false,
  },
  { method: "GET", path: /^\/v1\/disputes\/[^/]+$/, scopes: ["disputes:write"], repeatable: true },
  { method: "GET", path: /^\/v1\/disputes$/, scopes: ["disputes:write", "reports:write"], repeatable: true },
  { method: "POST", path: /^\/v1\/subject-access$/, scopes: ["disputes:write"], repeatable: false },
  { method: "GET", path: /^\/v1\/(events|webhook)$/, scopes: ANY, repeatable: true },
  { method: "PUT", path: /^\/v1\/webhook$/, scopes: ANY, repeatable: false },
  { method: "DELETE", path: /^\/v1\/webhook$/, scopes: ANY, repeatable: false },
];

/** Whether a URL's host is this machine (127.0.0.0/8, ::1, localhost). */
export function isLoopbackHost(hostname: string): boolean {
  return hostname === "localhost" || hostname === "[::1]" || /^127\.\d+\.\d+\.\d+$/.test(hostname);
}

/**
 * The checked base URL: parsed, without credentials (they would be echoed by fetch's own errors
 * and land in a back-fill's state file), query or fragment, and over https unless it is this
 * machine or `insecure` allows http. Messages never repeat the URL's credentials.
 */
export function checkBaseUrl(baseUrl: string, insecure: boolean): URL {
  let url: URL;
  try {
    url = new URL(baseUrl);
  } catch {
    throw new TypeError("PixiuClient: baseUrl is not an absolute URL (e.g. https://ledger.example)");
  }
  if (url.username || url.password) {
    throw new TypeError(
      "PixiuClient: baseUrl must not carry credentials (user:password@); the ledger authenticates by the signed token",
    );
  }
  if (url.search || url.hash) {
    throw new TypeError("PixiuClient: baseUrl must not carry a query or a fragment");
  }
  if (url.protocol === "https:" || (url.protocol === "http:" && (insecure || isLoopbackHost(url.hostname)))) {
    return url;
  }
  throw new TypeError(
    url.protocol === "http:"
      ? `PixiuClient: baseUrl must be https:// for ${url.hostname} (http:// is for a ledger on this machine): tokens and buyer hashes would cross the network in clear; set allowInsecureHttp on a network you trust end to end`
      : `PixiuClient: baseUrl must be https:// (or http:// to this machine), not ${url.protocol}`,
  );
}

function policyFor(method: string, pathname: string): RoutePolicy {
  const policy = ROUTES.find((r) => r.method === method && r.path.test(pathname));
  if (!policy) {
    throw new Error(`@pixiu/client: no policy for ${method} ${pathname}`);
  }
  return policy;
}

/** Content types the ledger answers problems with. */
function isJson(response: Response): boolean {
  return /json/i.test(response.headers.get("content-type") ?? "");
}

/** Statuses whose answers have no body (a Response with one cannot be built). */
const NULL_BODY_STATUSES = new Set([204, 205]);

/** The ledger's own 429 and 503 (problem+json): it refused the request before doing anything. */
function isLedgerRefusal(problem: Problem): boolean {
  return problem.type === `${PROBLEM_BASE}rate-limited` || problem.type === `${PROBLEM_BASE}unavailable`;
}

function isRedirect(response: Response): boolean {
  return (response.type as string) === "opaqueredirect" || (response.status >= 300 && response.status < 400);
}

/** A redirect is never followed: the request's body (buyer hashes, a report) goes to the ledger only. */
function redirectProblem(response: Response): Problem {
  let to = "";
  try {
    const location = response.headers.get("location");
    to = location ? ` to ${new URL(location, response.url || undefined).origin}` : "";
  } catch {
    // an unreadable Location: name no target
  }
  void response.body?.cancel().catch(() => undefined);
  return syntheticProblem(
    response.status,
    `the answer is a redirect${to}, which the client does not follow (a request's body goes to the ledger only): set baseUrl to the ledger's own address`,
  );
}

export class PixiuClient {
  /**
   * The typed openapi-fetch client underneath, for routes without a method here; its requests are
   * signed, retried and bookmarked like the methods' own.
   */
  readonly api: Client<paths>;
  readonly #options: PixiuClientOptions;
  readonly #retry: RetryOptions;
  readonly #fetch: (request: Request) => Promise<Response>;
  readonly #granted: readonly Scope[];
  /** The base URL's path (`/pixiu` behind a gateway), which route policies are matched without. */
  readonly #prefix: string;
  #bookmark: string | null;

  constructor(options: PixiuClientOptions) {
    if (!options.baseUrl || !options.platformId) {
      throw new TypeError("PixiuClient needs baseUrl and platformId");
    }
    if (!(options.kid ?? options.privateJwk?.kid)) {
      throw new TypeError("PixiuClient needs a kid: in the JWK or as the kid option");
    }
    const base = checkBaseUrl(
      options.baseUrl,
      options.allowInsecureHttp === true || options.fetch !== undefined,
    );
    this.#options = options;
    this.#retry = retryOptions(options.retry);
    this.#fetch = options.fetch ?? ((request) => globalThis.fetch(request));
    this.#granted = options.grantedScopes ?? SCOPES;
    this.#bookmark = options.bookmark ?? null;
    this.#prefix = base.pathname.replace(/\/+$/, "");
    this.api = createClient<paths>({
      baseUrl: `${base.origin}${this.#prefix}`,
      fetch: (request) => this.#send(request),
    });
  }

  /** The newest `Pixiu-Bookmark` any answer carried: sent with every later request. */
  get bookmark(): string | null {
    return this.#bookmark;
  }

  /** Reports one confirmed case; `created` is false for an idempotent replay of the same case. */
  async report(body: ReportBody): Promise<{ report: Report; created: boolean }> {
    const { data, response } = await this.api.POST("/v1/reports", { body });
    return { report: data as Report, created: response.status === 201 };
  }

  /**
   * Reports any number of cases, `MAX_BULK_REPORTS` per call, `concurrency` calls at a time;
   * one result per report, in order, with `index` into `reports` (201 created, 200 already
   * present, 409/422 refused with its problem).
   */
  async reportBulk(reports: ReportBody[], options: { concurrency?: number } = {}): Promise<BulkItemResult[]> {
    const chunks = chunk(reports, MAX_BULK_REPORTS);
    const results = await mapConcurrent(chunks, options.concurrency ?? 1, async (part, n) => {
      const { data, response } = await this.api.POST("/v1/reports/bulk", { body: { reports: part } });
      // One result per report of the call, each index once: anything else is not an answer to it.
      const answered = [...(data?.results ?? [])].sort((a, b) => a.index - b.index);
      if (answered.length !== part.length || answered.some((r, i) => r.index !== i)) {
        throw mismatch(
          response,
          `a bulk call of ${part.length} reports was answered with ${answered.length} results that do not name each once`,
        );
      }
      const offset = n * MAX_BULK_REPORTS;
      return answered.map((r) => ({ ...r, index: r.index + offset }));
    });
    return results.flat();
  }

  async getReport(id: string): Promise<Report> {
    const { data } = await this.api.GET("/v1/reports/{id}", { params: { path: { id } } });
    return data as Report;
  }

  /** One page of the platform's own reports, newest first. */
  async listReports(query: Partial<ReportListQuery> = {}): Promise<ReportPage> {
    const { data } = await this.api.GET("/v1/reports", { params: { query: query as ReportListQuery } });
    return data as ReportPage;
  }

  /** Every report of the platform matching `query`, page by page. */
  async *reports(query: Partial<Omit<ReportListQuery, "cursor">> = {}): AsyncGenerator<Report> {
    let cursor: string | undefined;
    do {
      const page = await this.listReports({ ...query, ...(cursor ? { cursor } : {}) });
      yield* page.items;
      cursor = page.nextCursor ?? undefined;
    } while (cursor);
  }

  async retract(id: string, reason: string): Promise<Report> {
    const { data } = await this.api.POST("/v1/reports/{id}/retract", {
      params: { path: { id } },
      body: { reason },
    });
    return data as Report;
  }

  /** One buyer's shared risk score; all subjects are the same buyer. */
  async score(
    subjects: Subject[],
    options: { purpose?: Purpose; evidence?: Photo[] } = {},
  ): Promise<ScoreAnswer> {
    const { data } = await this.api.POST("/v1/scores/query", {
      body: {
        subjects,
        purpose: options.purpose ?? "refund_review",
        ...(options.evidence ? { evidence: options.evidence } : {}),
      },
    });
    return data as ScoreAnswer;
  }

  /**
   * Scores any number of buyers: split into calls of at most `MAX_BATCH_QUERIES` buyers and
   * `MAX_BATCH_PHOTOS` photos, answers in the order of `queries`.
   */
  async scoreBatch(
    queries: ScoreBatchQuery[],
    options: { purpose?: Purpose; concurrency?: number } = {},
  ): Promise<(ScoreAnswer & { ref: string })[]> {
    const batches: ScoreBatchQuery[][] = [];
    let current: ScoreBatchQuery[] = [];
    let photos = 0;
    for (const query of queries) {
      const n = query.evidence?.length ?? 0;
      if (current.length === MAX_BATCH_QUERIES || (current.length > 0 && photos + n > MAX_BATCH_PHOTOS)) {
        batches.push(current);
        current = [];
        photos = 0;
      }
      current.push(query);
      photos += n;
    }
    if (current.length > 0) {
      batches.push(current);
    }
    const answers = await mapConcurrent(batches, options.concurrency ?? 1, async (part) => {
      const { data, response } = await this.api.POST("/v1/scores/batch", {
        body: { purpose: options.purpose ?? "refund_review", queries: part },
      });
      // The answers are matched to the buyers by place: a short or reordered answer would put one
      // buyer's score on another, so it is refused whole.
      const results = data?.results ?? [];
      if (results.length !== part.length || results.some((r, i) => r.ref !== part[i]?.ref)) {
        throw mismatch(
          response,
          `a batch of ${part.length} buyers was answered with ${results.length} results not in their order`,
        );
      }
      return results;
    });
    return answers.flat();
  }

  /** Confirmed fingerprints near the given photos (`@pixiu/client/fingerprint` computes them). */
  async matchEvidence(photos: Photo[], options: { purpose?: Purpose } = {}): Promise<EvidenceMatchAnswer> {
    const { data } = await this.api.POST("/v1/evidence/match", {
      body: { photos, purpose: options.purpose ?? "refund_review" },
    });
    return data as EvidenceMatchAnswer;
  }

  /** Opens a buyer's dispute of another platform's record. Not retried without an answer. */
  async openDispute(body: DisputeOpen): Promise<Dispute> {
    const { data } = await this.api.POST("/v1/disputes", { body });
    return data as Dispute;
  }

  async getDispute(id: string): Promise<Dispute> {
    const { data } = await this.api.GET("/v1/disputes/{id}", { params: { path: { id } } });
    return data as Dispute;
  }

  async listDisputes(query: Partial<DisputeListQuery> = {}): Promise<ListedDisputePage> {
    const { data } = await this.api.GET("/v1/disputes", { params: { query: query as DisputeListQuery } });
    return data as ListedDisputePage;
  }

  /** The reporter's answer to a dispute of one of its records. */
  async respondToDispute(id: string, body: DisputeRespond): Promise<Dispute> {
    const { data } = await this.api.POST("/v1/disputes/{id}/respond", { params: { path: { id } }, body });
    return data as Dispute;
  }

  async escalateDispute(id: string, reason: string): Promise<Dispute> {
    const { data } = await this.api.POST("/v1/disputes/{id}/escalate", {
      params: { path: { id } },
      body: { reason },
    });
    return data as Dispute;
  }

  /** A buyer's own file: the records and look-ups about their subjects (one page; see `nextCursor`). */
  async subjectAccess(body: SubjectAccessQuery): Promise<SubjectAccess> {
    const { data } = await this.api.POST("/v1/subject-access", { body });
    return data as SubjectAccess;
  }

  /** One page of the platform's event feed, oldest first. */
  async listEvents(query: { cursor?: string; limit?: number } = {}): Promise<EventPage> {
    const { data } = await this.api.GET("/v1/events", { params: { query } });
    return data as EventPage;
  }

  /**
   * Every request goes through here: a fresh token per attempt (a new jti, the route's narrowest
   * scope), the newest bookmark, retries by the policy, and an error thrown for anything but 2xx.
   * Redirects are not followed (a body of buyer hashes goes to the ledger or nowhere), and the
   * answer is read whole here, so a connection lost mid-answer is a network failure like any
   * other.
   */
  async #send(request: Request): Promise<Response> {
    const url = new URL(request.url);
    const policy = policyFor(request.method, this.#routePath(url.pathname));
    // One scope, the first the platform holds: a token that leaks opens one kind of route.
    const scope = policy.scopes.find((s) => this.#granted.includes(s)) ?? (policy.scopes[0] as Scope);
    const body =
      request.method === "GET" || request.method === "DELETE" ? undefined : await request.arrayBuffer();
    const retry = this.#retry;
    const notRetried = policy.repeatable ? "" : " (not retried: the request may have taken effect)";
    for (let attempt = 1; ; attempt++) {
      const headers = new Headers(request.headers);
      headers.set("authorization", `Bearer ${await this.#token(scope)}`);
      if (this.#bookmark) {
        headers.set(BOOKMARK_HEADER, this.#bookmark);
      }
      let response: Response;
      let bytes: ArrayBuffer | null = null;
      try {
        response = await this.#fetch(
          new Request(url, {
            method: request.method,
            headers,
            body,
            redirect: "manual",
            signal: AbortSignal.timeout(this.#options.timeoutMs ?? 30_000),
          }),
        );
        if (response.ok) {
          bytes = await response.arrayBuffer();
        }
      } catch (cause) {
        if (policy.repeatable && attempt < retry.attempts) {
          await retry.sleep(backoffMs(retry, attempt, null));
          continue;
        }
        throw new PixiuError({
          status: 0,
          problem: syntheticProblem(
            0,
            `${request.method} ${url.pathname}: ${(cause as Error)?.message ?? cause}${notRetried}`,
          ),
          attempts: attempt,
          cause,
        });
      }
      this.#keepBookmark(response.headers.get(BOOKMARK_HEADER));
      if (response.ok && bytes !== null) {
        if (bytes.byteLength > 0 && !isJson(response)) {
          // A captive portal's or a proxy's page answered 200: not the ledger's answer.
          throw new PixiuError({
            status: response.status,
            problem: syntheticProblem(
              response.status,
              `${request.method} ${url.pathname}: the answer is ${response.headers.get("content-type") || "untyped"}, not JSON: not the ledger's`,
            ),
            requestId: response.headers.get("x-request-id"),
            attempts: attempt,
          });
        }
        return new Response(NULL_BODY_STATUSES.has(response.status) ? null : bytes, {
          status: response.status,
          statusText: response.statusText,
          headers: response.headers,
        });
      }
      const retryAfter = parseRetryAfter(response.headers.get("retry-after"));
      const problem = isRedirect(response) ? redirectProblem(response) : await readProblem(response);
      if (
        isRetryableStatus(response.status) &&
        attempt < retry.attempts &&
        (retryAfter === null || retryAfter * 1000 <= retry.maxRetryAfterMs) &&
        // A write is sent again only after the ledger's own refusal, which comes before any work;
        // an edge's or a proxy's 503 may come after the ledger committed.
        (policy.repeatable || isLedgerRefusal(problem))
      ) {
        await retry.sleep(backoffMs(retry, attempt, retryAfter));
        continue;
      }
      throw new PixiuError({
        status: response.status,
        problem,
        requestId: response.headers.get("x-request-id"),
        retryAfter,
        attempts: attempt,
      });
    }
  }

  /** A request's path as the route table names it: without the base URL's own path. */
  #routePath(pathname: string): string {
    return this.#prefix && pathname.startsWith(`${this.#prefix}/`)
      ? pathname.slice(this.#prefix.length)
      : pathname;
  }

  /** Bookmarks are ordered as strings (D1's are fixed-width hex); the newest seen wins. */
  #keepBookmark(value: string | null) {
    // Only D1's own format (as the ledger checks it, worker/lib/db.ts): one bad answer must not make
    // every later request a 422.
    if (value && D1_BOOKMARK.test(value) && (this.#bookmark === null || value > this.#bookmark)) {
      this.#bookmark = value;
    }
  }

  #token(scope: string): Promise<string> {
    const kid = this.#options.kid ?? this.#options.privateJwk.kid;
    return signToken(
      { ...this.#options.privateJwk, kid },
      {
        iss: this.#options.platformId,
        aud: this.#options.audience ?? "pixiu",
        lifetime: this.#options.tokenLifetime ?? 60,
        scope,
      },
    );
  }
}

async function readProblem(response: Response): Promise<Problem> {
  const text = await response.text().catch(() => "");
  if (isJson(response)) {
    try {
      const body = JSON.parse(text) as Partial<Problem>;
      if (typeof body.type === "string" && typeof body.title === "string") {
        return { status: response.status, detail: "", instance: "", ...body } as Problem;
      }
    } catch {
      // not JSON after all: fall through
    }
  }
  return syntheticProblem(response.status, text.slice(0, 500) || response.statusText);
}

export function chunk<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) {
    out.push(items.slice(i, i + size));
  }
  return out;
}

/**
 * `fn` over `items`, at most `concurrency` at a time; results in the order of `items`. A
 * concurrency that is not a number of at least 1 is refused (NaN once meant no worker at all:
 * nothing sent, an empty result, no error).
 */
export async function mapConcurrent<T, R>(
  items: readonly T[],
  concurrency: number,
  fn: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  if (!(concurrency >= 1)) {
    throw new RangeError(`concurrency must be a number of at least 1, not ${concurrency}`);
  }
  const results: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i] as T, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(Math.floor(concurrency), items.length) }, worker));
  return results;
}

/** A 2xx whose content does not answer the request it came for. */
function mismatch(response: Response, detail: string): PixiuError {
  return new PixiuError({
    status: response.status,
    problem: { ...syntheticProblem(response.status, detail), title: "Answer does not match the request" },
    requestId: response.headers.get("x-request-id"),
    attempts: 1,
  });
}
