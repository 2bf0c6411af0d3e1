/**
 * Writes the CRD reference into README.md, between the api-reference markers,
 * from crds/schema (npm run docs). A unit test fails when it is stale.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { apiReference, replaceBetweenMarkers } from '../crds/schema/docs.js';

const readme = new URL('../README.md', import.meta.url);
writeFileSync(readme, replaceBetweenMarkers(readFileSync(readme, 'utf8'), apiReference()));
console.log('README.md: API reference updated');
