import { writeFileSync } from 'node:fs';
import { printSortedSchema } from '../src/executable-schema.ts';

/** `npm run schema`: writes schema.graphql from the Pothos schema. */
writeFileSync(new URL('../schema.graphql', import.meta.url), printSortedSchema());
