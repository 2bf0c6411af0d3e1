/** Where a DirectoryService answers, shared by its chart and the agent (light: no cdk8s). */
import { memberHost } from '../names.js';

export const LDAPS_PORT = 1636;

/** ldaps to member 0 through the headless Service. */
export const directoryUrl = (namespace: string, name: string) => `ldaps://${memberHost(namespace, name, 0)}:${LDAPS_PORT}`;
