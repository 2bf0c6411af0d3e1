/** Where a PostgresInstance answers, shared by its chart and the agent (light: no cdk8s). */
import { clientServiceHost } from '../names.js';

/** The port PostgreSQL listens on in its pod, and the client Service's default. */
export const POSTGRES_PORT = 5432;

/** The address applications in the cluster use: the instance's client Service. */
export const postgresServiceAddress = (namespace: string, name: string, port: number) => ({ host: clientServiceHost(namespace, name), port });
