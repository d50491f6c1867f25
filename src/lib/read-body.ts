/** A body read up to a limit: `overflow` when it was longer, and then `bytes` holds only what came before. */
export interface BoundedBody {
  bytes: Buffer;
  overflow: boolean;
}

/**
 * Reads a stream (an HTTP request or an undici response body) into memory, but
 * never more than `maxBytes`: past the limit it stops reading and says so. The
 * caller decides what an overflow means (a 413, a typed error, a dropped hint)
 * and whether the rest of the stream must still be drained or the connection closed.
 */
export async function readBounded(stream: AsyncIterable<Buffer>, maxBytes: number): Promise<BoundedBody> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of stream) {
    size += chunk.length;
    if (size > maxBytes) return { bytes: Buffer.concat(chunks), overflow: true };
    chunks.push(chunk);
  }
  return { bytes: Buffer.concat(chunks), overflow: false };
}
