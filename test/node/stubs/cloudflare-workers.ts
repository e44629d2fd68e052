/**
 * `cloudflare:workers` outside workerd, for Node tests that import the Worker's modules only to
 * read what they declare (the OpenAPI document): nothing here ever runs a Durable Object.
 */
export class DurableObject {
  constructor(
    readonly ctx: unknown,
    readonly env: unknown,
  ) {}
}
export const env = {};
