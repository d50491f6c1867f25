/** The upstream's per-key quota, as the emulator enforces it (UPSTREAM.md, `429 quota_window_exceeded`). */
export interface RateLimitOptions {
  /** Requests one key may make per window. */
  cap: number;
  /** The window, in ms: fixed windows aligned on multiples of it. Default 1 000 ms. */
  windowMs?: number;
  /** Whether a 429 also carries `Retry-After` (seconds until the window resets). Default false (the docs promise none). */
  retryAfter?: boolean;
}

/** What a request was told: go ahead, or the 429 to answer. */
export type RateLimitVerdict = { allowed: true } | { allowed: false; body: Record<string, unknown>; headers: Record<string, string> };

export interface RateLimiter {
  /** Counts one request of `apiKey` at `at` (ms) and says whether it may proceed. */
  check(apiKey: string, at: number): RateLimitVerdict;
}

/**
 * A fixed-window counter per key: every request (GET, submit, cancel) counts,
 * rejected ones included, as a quota that counts attempts would. Past `cap`,
 * the answer is the documented quota 429 with `window`, `used`, `cap` and
 * `reset_at` (Unix seconds) inside `error`.
 */
export function createRateLimiter(options: RateLimitOptions): RateLimiter {
  const { cap, windowMs = 1_000, retryAfter = false } = options;
  const windows = new Map<string, { start: number; used: number }>();
  const window = windowMs % 60_000 === 0 ? `${windowMs / 60_000}m` : windowMs % 1_000 === 0 ? `${windowMs / 1_000}s` : `${windowMs}ms`;
  return {
    check(apiKey, at) {
      const start = Math.floor(at / windowMs) * windowMs;
      let current = windows.get(apiKey);
      if (!current || current.start !== start) {
        current = { start, used: 0 };
        // One entry per key: the map holds only the current window of each.
        windows.set(apiKey, current);
      }
      current.used += 1;
      if (current.used <= cap) return { allowed: true };
      const resetMs = start + windowMs;
      const headers: Record<string, string> = {};
      if (retryAfter) headers['retry-after'] = String(Math.max(0, Math.ceil((resetMs - at) / 1_000)));
      return {
        allowed: false,
        body: {
          error: {
            code: 'quota_window_exceeded',
            message: `Quota window exceeded: ${current.used} of ${cap} requests in ${window}.`,
            window,
            used: current.used,
            cap,
            reset_at: Math.ceil(resetMs / 1_000),
          },
        },
        headers,
      };
    },
  };
}
