/**
 * How kiln names the Services of a kind with members. Light on purpose (no
 * cdk8s): the charts name their Services with these and the agent, which
 * never loads a chart, finds the servers by them.
 */

/** The headless Service that gives each member its DNS name has the resource's name. */
export const headlessServiceName = (resource: string) => resource;

/** The Service applications connect to. */
export const clientServiceName = (resource: string) => `${resource}-client`;

/** Member `ordinal`'s DNS name through the headless Service. */
export const memberHost = (namespace: string, resource: string, ordinal: number) => `${resource}-${ordinal}.${headlessServiceName(resource)}.${namespace}.svc`;

/** The client Service's DNS name. */
export const clientServiceHost = (namespace: string, resource: string) => `${clientServiceName(resource)}.${namespace}.svc`;
