import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { errorCodes } from '../src/error-codes.ts';
import * as upstreamErrors from '../src/upstream/errors.ts';

describe('the table of error codes', () => {
  it('is the documented error table (docs/errors.md), code for code and word for word', () => {
    const doc = readFileSync(new URL('../docs/errors.md', import.meta.url), 'utf8');
    const start = doc.indexOf('## Codes');
    expect(start).toBeGreaterThan(-1);
    const section = doc.slice(start, doc.indexOf('\n## ', start + 1));
    const rows = [...section.matchAll(/^\| `([A-Z_]+)` \| (.+) \|$/gm)].map(([, code, when]) => [code, when]);
    expect(rows).toEqual(Object.entries(errorCodes));
  });

  it('names a code from the table for every typed upstream failure', () => {
    const classes = Object.values(upstreamErrors).filter((value) => typeof value === 'function');
    expect(classes.length).toBeGreaterThan(10);
    for (const ErrorClass of classes) {
      // Every constructor takes a message or a task id first; `clientCode` is a class field.
      const error = new (ErrorClass as new (...args: unknown[]) => upstreamErrors.UpstreamError)('x', null);
      expect(error).toBeInstanceOf(upstreamErrors.UpstreamError);
      if (ErrorClass !== upstreamErrors.UpstreamError) expect(Object.keys(errorCodes)).toContain(error.clientCode);
    }
  });
});
