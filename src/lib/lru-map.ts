export interface LruMapOptions<K, V> {
  /** Most entries kept; the least recently used goes first. */
  maxEntries: number;
  /** Most bytes kept, as `sizeOf` counts them. Default: no byte bound. */
  maxBytes?: number;
  /** The size of one value, in bytes. Default: every value counts 0. */
  sizeOf?: (value: V) => number;
  /** Told of each entry dropped to keep within the bounds (not of `delete` or of a value replaced by `set`). Default: nothing. */
  onEvict?: (key: K, value: V) => void;
}

/**
 * A `Map` bounded by entries and, optionally, by bytes: reading or writing an
 * entry makes it the most recent, and the least recent are dropped past
 * either bound. A value larger than `maxBytes` on its own is not kept at all.
 */
export interface LruMap<K, V> {
  get(key: K): V | undefined;
  /** Reads an entry without making it the most recent (a hot path's read: no reordering per call). */
  peek(key: K): V | undefined;
  set(key: K, value: V): void;
  delete(key: K): void;
  /** Drops every entry. */
  clear(): void;
  readonly size: number;
  /** Bytes held, by `sizeOf`. */
  readonly bytes: number;
}

export function createLruMap<K, V>(options: LruMapOptions<K, V>): LruMap<K, V> {
  const { maxEntries, maxBytes = Number.POSITIVE_INFINITY, sizeOf = () => 0, onEvict } = options;
  // Maps iterate in insertion order: re-inserting on use keeps the least recent first.
  const entries = new Map<K, { value: V; bytes: number }>();
  let bytes = 0;

  const remove = (key: K) => {
    const entry = entries.get(key);
    if (!entry) return;
    entries.delete(key);
    bytes -= entry.bytes;
  };

  return {
    get(key) {
      const entry = entries.get(key);
      if (!entry) return undefined;
      entries.delete(key);
      entries.set(key, entry);
      return entry.value;
    },
    peek: (key) => entries.get(key)?.value,
    set(key, value) {
      remove(key);
      const size = sizeOf(value);
      if (size > maxBytes) return;
      entries.set(key, { value, bytes: size });
      bytes += size;
      while (entries.size > maxEntries || bytes > maxBytes) {
        const [oldest, entry] = entries.entries().next().value as [K, { value: V }];
        remove(oldest);
        onEvict?.(oldest, entry.value);
      }
    },
    delete: remove,
    clear() {
      entries.clear();
      bytes = 0;
    },
    get size() {
      return entries.size;
    },
    get bytes() {
      return bytes;
    },
  };
}
