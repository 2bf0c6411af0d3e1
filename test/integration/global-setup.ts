/**
 * vitest globalSetup for the integration project: builds (if needed) and
 * starts one real control plane for the whole run, and provides its
 * coordinates to the test workers:
 *
 *   import { inject } from 'vitest';
 *   import { connectControlPlane } from '../harness/connect.js';
 *   const cp = connectControlPlane(inject('controlPlane'));
 *
 * Set KILN_USE_CLUSTER=1 to reuse the cluster started by `npm run cluster:up`
 * instead of starting a fresh one.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { TestProject } from 'vitest/node';
import { attachControlPlane, defaultCacheRoot, defaultCrdPaths, ensureBinaries, startControlPlane, type ControlPlane, type ControlPlaneInfo } from '../harness/controlplane.js';
import { startStandInKubelet, type StandInKubelet } from '../harness/stand-in-kubelet.js';

declare module 'vitest' {
  export interface ProvidedContext {
    controlPlane: ControlPlaneInfo;
    kubeconfig: string;
    adminToken: string;
    server: string;
    binDir: string;
    dir: string;
  }
}

let cp: ControlPlane | undefined;
let kubelet: StandInKubelet | undefined;

function reuseCluster(): ControlPlaneInfo | undefined {
  if (process.env.KILN_USE_CLUSTER !== '1') return undefined;
  const stateFile = path.join(defaultCacheRoot(), 'cluster', 'state.json');
  if (!existsSync(stateFile)) throw new Error(`KILN_USE_CLUSTER=1 but ${stateFile} is missing: run npm run cluster:up`);
  const state = JSON.parse(readFileSync(stateFile, 'utf8')) as ControlPlaneInfo & { pid: number };
  process.kill(state.pid, 0); // throws if the cluster process is gone
  return state;
}

async function applyCrds(info: ControlPlaneInfo): Promise<void> {
  await attachControlPlane(info).installCrds(defaultCrdPaths());
}

export async function setup(project: TestProject): Promise<void> {
  let info = reuseCluster();
  if (info) {
    await applyCrds(info);
  } else {
    const binDir = await ensureBinaries();
    cp = await startControlPlane({ binDir, crdPaths: defaultCrdPaths() });
    info = cp.info();
    console.log(`[kiln] control plane ${info.version} at ${info.server} ready in ${cp.startupMs} ms (dir ${info.dir})`);
  }
  const plain: ControlPlaneInfo = {
    kubeconfig: info.kubeconfig,
    server: info.server,
    dir: info.dir,
    binDir: info.binDir,
    version: info.version,
    caFile: info.caFile,
    adminToken: info.adminToken,
  };
  // Pods run (in status) as on a cluster with a node; see stand-in-kubelet.ts. A cluster from
  // `npm run cluster:up` runs its own.
  if (cp) kubelet = startStandInKubelet(plain, (msg) => console.warn(`[kiln] ${msg}`));
  project.provide('controlPlane', plain);
  project.provide('kubeconfig', plain.kubeconfig);
  project.provide('adminToken', plain.adminToken);
  project.provide('server', plain.server);
  project.provide('binDir', plain.binDir);
  project.provide('dir', plain.dir);
}

export async function teardown(): Promise<void> {
  kubelet?.stop();
  await cp?.stop();
  cp = undefined;
}
