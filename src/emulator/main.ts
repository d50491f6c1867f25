import { createEmulator } from './emulator.ts';
import type { RateLimitOptions } from './rate-limit.ts';

/**
 * `npm run emulator -- [port] [older|newer] [cap/window[+retry-after]]`: the upstream emulator alone
 * (default port 4010, newer format, no quota). `50/1s` answers `429 quota_window_exceeded` past 50
 * requests per key per second; `3000/1m+retry-after` also sends `Retry-After`.
 */
const port = Number(process.argv[2] ?? 4010);
const format = process.argv[3] === 'older' ? 'older' : 'newer';
const rateLimit = parseRateLimit(process.argv[4]);
const emulator = createEmulator({ wireFormat: format, rateLimit });
const url = await emulator.start(port, '127.0.0.1');
const quota = rateLimit ? `, quota ${rateLimit.cap} requests per key per ${rateLimit.windowMs} ms` : '';
console.log(`task-gateway emulator (${format} wire format${quota}) at ${url}; keys starting with "sk-" are valid`);
const stop = () => void emulator.stop().then(() => process.exit(0));
process.once('SIGINT', stop);
process.once('SIGTERM', stop);

function parseRateLimit(text: string | undefined): RateLimitOptions | null {
  if (text === undefined) return null;
  const match = /^(\d+)\/(\d+)(ms|s|m)(\+retry-after)?$/.exec(text);
  if (!match) {
    console.error(`emulator: the quota must look like 50/1s, 3000/1m or 50/1s+retry-after; got ${JSON.stringify(text)}`);
    process.exit(1);
  }
  const unit = { ms: 1, s: 1_000, m: 60_000 }[match[3] as 'ms' | 's' | 'm'];
  return { cap: Number(match[1]), windowMs: Number(match[2]) * unit, retryAfter: match[4] !== undefined };
}
