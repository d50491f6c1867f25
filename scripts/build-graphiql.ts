import { mkdir, writeFile } from 'node:fs/promises';
import { compressAsset, loadGraphiQLBundle } from '../src/http/graphiql.ts';

/**
 * Part of `npm run build`: compresses GraphiQL's assets once, at brotli's best
 * (about 12 s of CPU), into <out>/graphiql-assets/<version>/ (`<out>` the first
 * argument, default dist), where the built gateway serves them from.
 */
const out = process.argv[2] ?? 'dist';
const { version, assets } = await loadGraphiQLBundle();
const dir = new URL(`../${out}/graphiql-assets/${version}/`, import.meta.url);
await mkdir(dir, { recursive: true });
await Promise.all(
  [...assets].flatMap(([name, asset]) => [
    compressAsset(asset.identity, 'br', 11).then((bytes) => writeFile(new URL(`${name}.br`, dir), bytes)),
    compressAsset(asset.identity, 'gzip', 11).then((bytes) => writeFile(new URL(`${name}.gz`, dir), bytes)),
  ]),
);
console.log(`GraphiQL assets compressed into ${out}/graphiql-assets/${version}/`);
