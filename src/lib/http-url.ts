/** Whether `value` is an absolute `http:` or `https:` URL: the only links the gateway accepts or passes on. */
export function isHttpUrl(value: unknown, protocols: readonly string[] = ['http:', 'https:']): value is string {
  if (typeof value !== 'string') return false;
  try {
    return protocols.includes(new URL(value).protocol);
  } catch {
    return false;
  }
}
