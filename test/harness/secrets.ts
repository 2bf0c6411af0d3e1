import { randomBytes } from 'node:crypto';

/** A throwaway credential made at run time, so no token-shaped string lives in the repository. */
export const testToken = (label: string): string => `kiln-test-${label}-${randomBytes(16).toString('hex')}`;
