/**
 * Finds the cluster to talk to: --kubeconfig, then $KUBECONFIG or
 * ~/.kube/config, then the in-cluster service account. Unlike
 * KubeConfig.loadFromDefault(), it never falls back to http://localhost:8080.
 */
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';

const SA_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

export class NoClusterConfigError extends Error {}

export function loadKubeConfig(opts: { kubeconfig?: string; context?: string } = {}): KubeConfig {
  const kc = new KubeConfig();
  const files = opts.kubeconfig
    ? [opts.kubeconfig]
    : (process.env['KUBECONFIG'] ?? '').split(':').filter(Boolean).concat(process.env['KUBECONFIG'] ? [] : [join(homedir(), '.kube', 'config')]);
  const file = files.find((f) => existsSync(f));
  if (opts.kubeconfig && !file) throw new NoClusterConfigError(`kubeconfig ${opts.kubeconfig} does not exist`);
  if (file) {
    kc.loadFromFile(file);
  } else if (process.env['KUBERNETES_SERVICE_HOST'] && existsSync(join(SA_DIR, 'token'))) {
    kc.loadFromCluster();
  } else {
    throw new NoClusterConfigError(
      'no cluster configuration found: pass --kubeconfig, set KUBECONFIG, create ~/.kube/config, or run inside a cluster',
    );
  }
  if (opts.context) kc.setCurrentContext(opts.context);
  const cluster = kc.getCurrentCluster();
  if (!cluster?.server) throw new NoClusterConfigError(`the kubeconfig${file ? ` ${file}` : ''} names no cluster server for its current context`);
  return kc;
}
