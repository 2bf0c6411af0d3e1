/**
 * A DirectoryService runs for real on the node (OpenLDAP behind the directory
 * image's commands, images/directory/), and a DirectoryBackup's Job runs the
 * image's `backup` command to completion, which reaches the resource's status.
 *
 * One stand-in, said here and in the README: a DirectoryBackup snapshots the
 * member's volume (VolumeSnapshot) and clones a claim from it, which takes a
 * CSI driver with snapshots. None can be built here: the Go module proxy
 * refuses github.com/kubernetes-csi/csi-driver-host-path and
 * node-driver-registrar (403 "not available"). So the test does what the
 * driver would: it copies the member's volume and offers the copy as a
 * PersistentVolume pre-bound to the clone claim kiln creates. The Job, its
 * image, slapcat, the claims, the scheduler's volume binding and the status
 * are real.
 */
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { Client } from 'ldapts';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { connectControlPlane, type ControlPlaneClient } from '../harness/connect.js';
import { run } from '../harness/run.js';
import { waitFor } from '../harness/wait.js';
import { installKiln } from './install-kiln.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Any = any;
const IMAGE = 'localhost/kiln-test/directory:openldap';
const SUFFIX = 'dc=kiln,dc=test';
const PASSWORD = randomBytes(12).toString('hex');

let cp: ControlPlaneClient;
let ns: string;
const getJson = async (args: string[]): Promise<Any> => {
  const r = await cp.kubectl(['get', ...args, '-n', ns, '-o', 'json']);
  return r.code === 0 ? JSON.parse(r.stdout) : undefined;
};
const condition = (o: Any, type: string) => (o?.status?.conditions as { type: string; status: string; message?: string }[] | undefined)?.find((c) => c.type === type);
const apply = (...items: unknown[]) => cp.kubectlOk(['apply', '--server-side', '-f', '-'], { input: JSON.stringify({ apiVersion: 'v1', kind: 'List', items }) });
const describeAll = async () =>
  [
    (await cp.kubectl(['get', 'pods,pvc,jobs,directoryservices,directorybackups', '-n', ns, '-o', 'wide'])).stdout,
    (await cp.kubectl(['get', 'events', '-n', ns, '--sort-by=.lastTimestamp'])).stdout,
    (await cp.kubectl(['logs', '-n', 'kiln-system', 'deployment/kiln-controller', '--tail=15'])).stdout,
  ].join('\n');

beforeAll(async () => {
  cp = connectControlPlane(inject('nodeControlPlane'));
  ns = `directory-${randomBytes(3).toString('hex')}`;
  await cp.kubectlOk(['create', 'namespace', ns]);
  await installKiln(cp);
});

afterAll(async () => {
  await cp?.kubectl(['delete', 'namespace', ns, '--wait=false']);
});

describe('directory on a real node', () => {
  it('runs a DirectoryService from the directory image; a DirectoryBackup Job exports its data and its status says so', async () => {
    const resources = { requests: { cpu: '100m', memory: '64Mi' }, limits: { memory: '256Mi' } };
    await apply(
      { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'ds-admin', namespace: ns }, stringData: { password: PASSWORD } },
      {
        apiVersion: 'kiln.dev/v1alpha1',
        kind: 'DirectoryService',
        metadata: { name: 'ds', namespace: ns },
        spec: {
          image: IMAGE,
          replicas: 1,
          resources,
          storage: { size: '1Gi' },
          env: [{ name: 'DS_ADMIN_PASSWORD', valueFrom: { secretKeyRef: { name: 'ds-admin', key: 'password' } } }],
        },
      },
    );
    const t0 = Date.now();
    await waitFor('DirectoryService ds Ready', async () => condition(await getJson(['directoryservice', 'ds']), 'Ready')?.status === 'True', 240_000).catch(async (e: unknown) => {
      throw new Error(`${String(e)}\n${await describeAll()}`);
    });
    console.log(`[kiln] DirectoryService on a real node: apply -> Ready ${Date.now() - t0} ms`);

    // Write an entry through the member's pod IP, as a client in the cluster would.
    const pod = await getJson(['pod', 'ds-0']);
    const ldap = new Client({ url: `ldap://${pod.status.podIP}:1389`, timeout: 10_000, connectTimeout: 10_000 });
    try {
      await ldap.bind(`uid=admin,${SUFFIX}`, PASSWORD);
      await ldap.add(`ou=people,${SUFFIX}`, { objectClass: ['organizationalUnit'], ou: 'people' });
      const { searchEntries } = await ldap.search(SUFFIX, { filter: '(ou=people)' });
      expect(searchEntries.map((e) => e.dn)).toEqual([`ou=people,${SUFFIX}`]);
    } finally {
      await ldap.unbind();
    }

    // The CSI driver's part (see the header): a copy of the member's volume, pre-bound to the clone claim.
    const claim = await getJson(['pvc', 'data-ds-0']);
    const pv = JSON.parse(await cp.kubectlOk(['get', 'pv', claim.spec.volumeName, '-o', 'json']));
    const source: string = pv.spec.local.path;
    const copy = `${source}-snapshot-${randomBytes(3).toString('hex')}`;
    const cpResult = await run('cp', ['-a', source, copy]);
    expect(cpResult.code, cpResult.stderr).toBe(0);
    await cp.kubectlOk(['apply', '--server-side', '-f', '-'], {
      input: JSON.stringify({
        apiVersion: 'v1',
        kind: 'PersistentVolume',
        metadata: { name: `${ns}-b1-source` },
        spec: {
          ...pv.spec,
          claimRef: { namespace: ns, name: 'b1-source' },
          local: { path: copy },
          persistentVolumeReclaimPolicy: 'Retain',
        },
      }),
    });

    await apply({
      apiVersion: 'kiln.dev/v1alpha1',
      kind: 'DirectoryBackup',
      metadata: { name: 'b1', namespace: ns },
      spec: { directoryService: 'ds', ordinal: 0, image: IMAGE, resources, storage: { size: '1Gi' } },
    });
    const t1 = Date.now();
    const backup = await waitFor(
      'DirectoryBackup b1 Ready',
      async () => {
        const o = await getJson(['directorybackup', 'b1']);
        return condition(o, 'Ready')?.status === 'True' && o;
      },
      240_000,
    ).catch(async (e: unknown) => {
      throw new Error(`${String(e)}\n${await describeAll()}`);
    });
    console.log(`[kiln] DirectoryBackup on a real node: apply -> Job succeeded -> Ready ${Date.now() - t1} ms`);
    expect(condition(backup, 'Ready')?.message ?? '').toMatch(/succeeded/i);

    // The Job ran the image's backup command: its log and the LDIF in the backup volume hold the entry.
    const logs = await cp.kubectlOk(['logs', '-n', ns, 'job/b1-backup']);
    expect(logs).toMatch(/wrote \/backup\/backup-\d{8}T\d{6}Z\/data\.ldif: \d+ entries of dc=kiln,dc=test/);
    const backupClaim = await getJson(['pvc', 'b1-backup']);
    const backupPv = JSON.parse(await cp.kubectlOk(['get', 'pv', backupClaim.spec.volumeName, '-o', 'json']));
    const dir: string = backupPv.spec.local.path;
    const written = readdirSync(dir).filter((d) => d.startsWith('backup-'));
    expect(written).toHaveLength(1);
    expect(readFileSync(path.join(dir, written[0]!, 'data.ldif'), 'utf8')).toContain(`dn: ou=people,${SUFFIX}`);
  });
});
