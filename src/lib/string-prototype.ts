/**
 * Makes `String.prototype` a fast-mode object again after a module defined a
 * class that extends `String` (ioredis does, for RESP3's verbatim strings).
 *
 * V8 turns an object into a dictionary when a class first extends it, and
 * back into a fast object on a property load, through an inline cache, from
 * an object that inherits from it. Strings are primitives: a string's method
 * call never makes that load, so the prototype would stay a dictionary for
 * the life of the process, and every string method call in it (`charCodeAt`,
 * `slice`, `startsWith`, in undici, graphql, the OTLP encoder and ours) looks
 * its method up in that dictionary. Measured on Node 20: a `charCodeAt` loop
 * 4 to 5 times slower, the SDK's span encoder 3 times slower (10 µs a span
 * against 3), every poll slower (docs/performance.md#string-methods).
 *
 * The load below runs through an inline cache only once the function has
 * feedback, which V8 allocates after a few calls (about 10 on Node 20): hence
 * the loop, with a wide margin. Idempotent, and cheap (tens of microseconds)
 * enough to call after every import that may define such a class.
 */
export function restoreFastStringPrototype(): void {
  const inheritor: Record<string, unknown> = Object.create(String.prototype);
  const load = () => inheritor['task-gateway: makes the prototype chain fast'];
  for (let call = 0; call < 1_000; call++) load();
}
