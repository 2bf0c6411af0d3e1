/**
 * vitest globalSetup for the node project: one control plane in node mode and
 * one real node (test/harness/node.ts) for every file, which run one after
 * another. The node's binaries and images come from scripts/build-node.sh
 * (cached; built here when missing, so a plain `vitest run --project node`
 * works on a machine that has the node's Debian packages).
 */
import path from 'node:path';
import type { TestProject } from 'vitest/node';
import { defaultCrdPaths, ensureBinaries, startControlPlane, type ControlPlane, type ControlPlaneInfo } from '../harness/controlplane.js';
import { buildImages, IMAGES } from '../harness/images.js';
import { buildNode, ensureBridge, NODE_NETWORK, startNode, type RealNode } from '../harness/node.js';

declare module 'vitest' {
  export interface ProvidedContext {
    nodeControlPlane: ControlPlaneInfo;
    node: { name: string; containerdAddress: string; startupMs: number; controlPlaneStartupMs: number };
  }
}

let cp: ControlPlane | undefined;
let node: RealNode | undefined;

export async function setup(project: TestProject): Promise<void> {
  const t0 = Date.now();
  const binDir = await ensureBinaries();
  const nodeBinDir = await buildNode();
  const imageDir = await buildImages();
  console.log(`[kiln] node binaries and images ready in ${Date.now() - t0} ms`);
  await ensureBridge();
  cp = await startControlPlane({ binDir, crdPaths: defaultCrdPaths(), node: { advertiseAddress: NODE_NETWORK.gateway } });
  node = await startNode(cp, { dir: path.join(cp.dir, 'node'), binDir: nodeBinDir, images: IMAGES.map((i) => path.join(imageDir, i.file)) });
  // Static provisioning: enough local volumes for every claim the files make.
  await node.addLocalVolumes(12);
  console.log(`[kiln] control plane ready in ${cp.startupMs} ms, node ${node.name} Ready in ${node.startupMs} ms (dir ${cp.dir})`);
  project.provide('nodeControlPlane', cp.info());
  project.provide('node', { name: node.name, containerdAddress: node.containerdAddress, startupMs: node.startupMs, controlPlaneStartupMs: cp.startupMs });
}

export async function teardown(): Promise<void> {
  await node?.stop();
  await cp?.stop();
}
