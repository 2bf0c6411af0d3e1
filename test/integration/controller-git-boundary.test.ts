/**
 * The Git boundary seen from the controller (issue #19), against the real
 * kube-apiserver and a real bare repository: a manifest path someone pushed
 * as a symbolic link to a secret file is replaced unread, and the resource's
 * status and events say so; the cluster's directory is marked with the
 * cluster's identity (the kube-system namespace's UID).
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, expect, inject, it } from 'vitest';
import { kubeSystemUid } from '../../controller/git/sink.js';
import { Manager } from '../../controller/manager.js';
import { connectControlPlane, type ControlPlaneClient } from '../harness/connect.js';
import { waitFor } from '../harness/wait.js';
import { initBareRepo, plainGit } from '../harness/git.js';

let cp: ControlPlaneClient;
let manager: Manager;
const ns = `kiln-gitbound-${randomBytes(3).toString('hex')}`;
const tmp = mkdtempSync(join(tmpdir(), 'kiln-gitbound-'));
const bare = join(tmp, 'deploy.git');
const logs: string[] = [];
const SECRET = `sa-token-${randomBytes(12).toString('hex')}`;
const git = (cwd: string, ...args: string[]) => plainGit(cwd, args);

async function get(kind: string, name: string) {
  const r = await cp.kubectl(['get', '-n', ns, kind, name, '-o', 'json']);
  return r.code === 0 ? JSON.parse(r.stdout) : undefined;
}

beforeAll(async () => {
  cp = connectControlPlane(inject('controlPlane'));
  await cp.kubectlOk(['create', 'namespace', ns]);
  initBareRepo(bare, tmp);
  // Someone with push access: the manifest of DataGrid g1 is a link to a file the controller can read.
  const secretFile = join(tmp, 'token');
  writeFileSync(secretFile, `${SECRET}\n`);
  const clone = join(tmp, 'attacker');
  git(tmp, 'clone', '--quiet', bare, clone);
  mkdirSync(join(clone, `clusters/edge/${ns}/datagrid/g1`), { recursive: true });
  symlinkSync(secretFile, join(clone, `clusters/edge/${ns}/datagrid/g1/manifest.yaml`));
  git(clone, 'add', '-A');
  git(clone, 'commit', '--quiet', '-m', 'attacker: link');
  git(clone, 'push', '--quiet', 'origin', 'HEAD:main');

  const kc = new KubeConfig();
  kc.loadFromFile(cp.kubeconfig);
  const log = (level: string, msg: string, fields?: Record<string, unknown>) => logs.push(`${level} ${msg} ${JSON.stringify(fields ?? {})}`);
  manager = new Manager({
    kc,
    namespaces: [ns],
    concurrency: 2,
    qps: 0,
    burst: 0,
    resyncSeconds: 0,
    version: 'test',
    log,
    sink: 'git',
    git: {
      repo: bare,
      branch: 'main',
      basePath: 'clusters',
      cluster: 'edge',
      workDir: join(tmp, 'clone'),
      debounceMs: 300,
      maxWaitMs: 3000,
      clusterIdentity: () => kubeSystemUid((ref) => manager.client.get(ref), log),
    },
  });
  await manager.start();
}, 120_000);

afterAll(async () => {
  await manager?.stop();
  await cp?.kubectl(['delete', 'namespace', ns, '--wait=false']);
  rmSync(tmp, { recursive: true, force: true });
});

it('a manifest pushed as a symbolic link to a secret: replaced unread; the resource is Ready saying so, with a Warning event; the directory carries the cluster identity', async () => {
  await cp.kubectlOk(['apply', '--server-side', '-f', '-'], {
    input: JSON.stringify({ apiVersion: 'kiln.dev/v1alpha1', kind: 'DataGrid', metadata: { name: 'g1', namespace: ns }, spec: { cache: 'c' } }),
  });
  const g1 = await waitFor(
    'g1 Ready',
    async () => {
      const g = await get('datagrid', 'g1');
      return g?.status?.conditions?.find((c: { type: string; status: string }) => c.type === 'Ready' && c.status === 'True') ? g : undefined;
    },
    30_000,
    () => logs.slice(-15).join('\n'),
  );
  const ready = g1.status.conditions.find((c: { type: string }) => c.type === 'Ready');
  expect(ready.message).toMatch(new RegExp(`clusters/edge/${ns}/datagrid/g1/manifest\\.yaml \\(git mode 120000\\).*did not read it`));
  expect(g1.status.commit).toBe(git(bare, 'rev-parse', 'main').trim());

  expect(git(bare, 'log', '-p', '--all')).not.toContain(SECRET);
  expect(logs.join('\n')).not.toContain(SECRET);
  expect(git(bare, 'ls-tree', 'main', `clusters/edge/${ns}/datagrid/g1/manifest.yaml`)).toMatch(/^100644 blob/);
  expect(git(bare, 'show', `main:clusters/edge/${ns}/datagrid/g1/manifest.yaml`)).toMatch(/^# Rendered by kiln from DataGrid/);

  const events = await waitFor(
    'LinkReplaced event',
    async () => {
      const r = await cp.kubectl(['get', 'events', '-n', ns, '--field-selector', 'involvedObject.name=g1,reason=LinkReplaced', '-o', 'json']);
      const items = r.code === 0 ? (JSON.parse(r.stdout).items as { type: string; message: string }[]) : [];
      return items.length > 0 ? items : undefined;
    },
    15_000,
  );
  expect(events[0]!.type).toBe('Warning');

  const uid = JSON.parse(await cp.kubectlOk(['get', 'namespace', 'kube-system', '-o', 'json'])).metadata.uid as string;
  expect(git(bare, 'show', 'main:clusters/edge/.kiln-cluster').trim()).toBe(uid);
});
