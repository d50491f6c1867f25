import { createLruMap } from '../lib/lru-map.ts';

export interface PersistedQueryStoreOptions {
  /** Operations kept in all; the least recently used goes first. Default 1 000. */
  maxEntries?: number;
  /** Operation text kept in all, in bytes (UTF-16, 2 per character). Default 4 194 304 (4 MiB). */
  maxBytes?: number;
  /** Operations one client may have registered; past it that client's oldest registration goes. Default 100. */
  maxEntriesPerClient?: number;
  /** Operation text one client may have registered, in bytes. Default 524 288 (512 KiB). */
  maxBytesPerClient?: number;
  /** Clients whose registrations are counted; the one that registered least recently is forgotten first. Default 10 000. */
  maxClients?: number;
}

/**
 * Automatic persisted queries by sha-256, readable by anyone who knows the hash
 * and bounded in all (entries and bytes) and per registering client, so that
 * one client flooding registrations only ever replaces its own: it holds at
 * most a tenth of the entries and an eighth of the bytes by default.
 */
export interface PersistedQueryStore {
  /** The operation text of `hash`, or undefined when unknown or forgotten. */
  get(hash: string): string | undefined;
  /** Keeps `text` (which must have the sha-256 `hash` and have validated) as registered by `client`. */
  register(client: string, hash: string, text: string): void;
  readonly size: number;
}

interface Stored {
  text: string;
  client: string;
}

export function createPersistedQueryStore(options: PersistedQueryStoreOptions = {}): PersistedQueryStore {
  const {
    maxEntries = 1_000,
    maxBytes = 4 * 1024 * 1024, // 4 MiB
    maxEntriesPerClient = 100,
    maxBytesPerClient = 512 * 1024, // 512 KiB
    maxClients = 10_000,
  } = options;
  const bytesOf = (text: string) => text.length * 2;
  const documents = createLruMap<string, Stored>({ maxEntries, maxBytes, sizeOf: (stored) => bytesOf(stored.text) });
  /** Per client: what it registered (hash -> bytes), oldest first. A hash the total bound pushed out stays counted until it ages out. */
  const ledgers = createLruMap<string, { hashes: Map<string, number>; bytes: number }>({ maxEntries: maxClients });

  return {
    get: (hash) => documents.get(hash)?.text,
    register(client, hash, text) {
      // Known already (from this client or another): used, not registered again.
      if (documents.get(hash) !== undefined) return;
      const bytes = bytesOf(text);
      if (bytes > maxBytesPerClient) return;
      documents.set(hash, { text, client });
      let ledger = ledgers.get(client);
      if (!ledger) {
        ledger = { hashes: new Map(), bytes: 0 };
        ledgers.set(client, ledger);
      }
      ledger.bytes -= ledger.hashes.get(hash) ?? 0;
      ledger.hashes.delete(hash);
      ledger.hashes.set(hash, bytes);
      ledger.bytes += bytes;
      for (const [old, oldBytes] of ledger.hashes) {
        if (ledger.hashes.size <= maxEntriesPerClient && ledger.bytes <= maxBytesPerClient) break;
        ledger.hashes.delete(old);
        ledger.bytes -= oldBytes;
        // Another client may have registered the same text since this one's copy was pushed out.
        if (documents.peek(old)?.client === client) documents.delete(old);
      }
    },
    get size() {
      return documents.size;
    },
  };
}
