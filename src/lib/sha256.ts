import { createHash } from 'node:crypto';

/** sha-256 of a text, hex: how API keys and callback tokens are named wherever they are kept or shared. */
export function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}
