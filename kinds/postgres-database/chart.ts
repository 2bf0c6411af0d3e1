/**
 * PostgresDatabase renders nothing: the database, its owner role and the
 * connection Secret live inside PostgreSQL and the cluster, and the kiln agent
 * makes them (agent/). The chart exists so every kind has one, and so synth
 * reports the resource like any other.
 */
import { Chart } from 'cdk8s';
import type { Construct } from 'constructs';
import type { PostgresDatabaseSpec } from '../../imports/kiln.dev.js';
import type { KilnResource } from '../types.js';

export type PostgresDatabaseResource = KilnResource<PostgresDatabaseSpec>;
export const connectionSecretName = (r: PostgresDatabaseResource) => `${r.metadata.name}-connection`;

export class PostgresDatabaseChart extends Chart {
  constructor(scope: Construct, id: string, resource: PostgresDatabaseResource) {
    super(scope, id, { namespace: resource.metadata.namespace, disableResourceNameHashes: true });
  }
}
