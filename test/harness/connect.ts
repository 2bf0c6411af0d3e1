/**
 * Re-create a control-plane handle in another process (a vitest worker, a
 * script) from the plain data that startControlPlane() produced. The servers
 * stay owned by the process that started them; this handle only runs kubectl
 * and mints identities (it needs read access to the control plane's `dir`).
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { attachControlPlane, type ControlPlaneClient, type ControlPlaneInfo } from './controlplane.js';

export type { ControlPlaneClient, ControlPlaneInfo, Identity, KubectlOptions, KubectlResult } from './controlplane.js';

export function connectControlPlane(info: ControlPlaneInfo): ControlPlaneClient {
  for (const key of ['kubeconfig', 'server', 'dir', 'binDir', 'version', 'caFile', 'adminToken'] as const) {
    if (typeof info?.[key] !== 'string' || !info[key]) {
      throw new Error(`connectControlPlane: missing "${key}" (is the integration globalSetup configured?)`);
    }
  }
  return attachControlPlane(info);
}

/** Connect using the controlplane.json a running control plane writes into its dir. */
export function connectControlPlaneDir(dir: string): ControlPlaneClient {
  const info = JSON.parse(readFileSync(path.join(dir, 'controlplane.json'), 'utf8')) as ControlPlaneInfo;
  return connectControlPlane(info);
}
