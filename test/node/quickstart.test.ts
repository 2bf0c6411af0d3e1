/**
 * The README's quick start on a cluster whose node runs pods: kiln installed
 * by its own manifests runs from its image (built from the Dockerfile), the
 * PostgresInstance's StatefulSet starts PostgreSQL 17 in a pod, the
 * controller's Ready follows the pod's real readiness (nothing patches a
 * status here), the agent, in its pod, creates the database inside that
 * server, and a client pod connects with the connection Secret.
 */
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { connectControlPlane, type ControlPlaneClient } from '../harness/connect.js';
import { waitFor } from '../harness/wait.js';
import { installKiln, KILN_IMAGE, ROOT } from './install-kiln.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Any = any;

let cp: ControlPlaneClient;
const getJson = async (args: string[]): Promise<Any> => {
  const r = await cp.kubectl(['get', ...args, '-o', 'json']);
  return r.code === 0 ? JSON.parse(r.stdout) : undefined;
};
const condition = (o: Any, type: string) => (o?.status?.conditions as { type: string; status: string; message?: string; lastTransitionTime: string }[] | undefined)?.find((c) => c.type === type);

/** What to print when a wait fails: the pods and the last lines of kiln's logs. */
async function diagnostics(): Promise<string> {
  const pods = await cp.kubectl(['get', 'pods', '-A', '-o', 'wide']);
  const logs = await Promise.all(['kiln-controller', 'kiln-agent'].map(async (d) => `--- ${d}\n${(await cp.kubectl(['logs', '-n', 'kiln-system', `deploy/${d}`, '--tail=20'])).stdout}`));
  const events = await cp.kubectl(['get', 'events', '-A', '--sort-by=.lastTimestamp']);
  return [pods.stdout, ...logs, events.stdout.split('\n').slice(-25).join('\n')].join('\n');
}
let diag = '';
const context = () => diag;
async function refreshDiagnostics() {
  diag = await diagnostics().catch((e: unknown) => String(e));
}

beforeAll(() => {
  cp = connectControlPlane(inject('nodeControlPlane'));
});

afterAll(async () => {
  if (diag) console.log(diag);
  await cp?.kubectl(['delete', 'namespace', 'quickstart', 'team-a', 'team-b', '--wait=false']);
});

describe('quick start on a real node', () => {
  it('installs kiln from its image; the controller and the agent run in pods', async () => {
    await installKiln(cp);
    const pods = await getJson(['pods', '-n', 'kiln-system']);
    expect(pods.items).toHaveLength(2);
    for (const p of pods.items) {
      expect(p.spec.containers[0].image).toBe(KILN_IMAGE);
      expect(p.status.containerStatuses[0].imageID).toMatch(/^sha256:|@sha256:/);
      expect(condition(p, 'Ready')?.status).toBe('True');
    }
  });

  it('runs PostgreSQL from the quick start; the agent makes the database; a client pod connects with the connection Secret', async () => {
    const t0 = Date.now();
    await cp.kubectlOk(['apply', '--server-side', '-f', path.join(ROOT, 'examples', 'quickstart')], { timeoutMs: 60_000 });

    // Not Ready while the pod starts: Ready follows the member, not the apply.
    const early = await getJson(['postgresinstance', '-n', 'quickstart', 'app-db']);
    expect(condition(early, 'Ready')?.status).not.toBe('True');

    const instance = await waitFor(
      'PostgresInstance app-db Ready',
      async () => {
        const o = await getJson(['postgresinstance', '-n', 'quickstart', 'app-db']);
        if (condition(o, 'Ready')?.status === 'True') return o;
        await refreshDiagnostics();
        return undefined;
      },
      300_000,
      context,
    );
    const readyMs = Date.now() - t0;
    const pod = await getJson(['pod', '-n', 'quickstart', 'app-db-0']);
    expect(condition(pod, 'Ready')?.status).toBe('True');
    expect(pod.spec.containers[0].image).toBe('docker.io/library/postgres:17');
    expect(instance.status.observedGeneration).toBe(instance.metadata.generation);
    // Ready came from the member: the pod was Ready before (or as) the resource became Ready.
    expect(Date.parse(condition(pod, 'Ready')!.lastTransitionTime)).toBeLessThanOrEqual(Date.parse(condition(instance, 'Ready')!.lastTransitionTime));

    await waitFor(
      'PostgresDatabase app Ready',
      async () => {
        const o = await getJson(['postgresdatabase', '-n', 'quickstart', 'app']);
        if (condition(o, 'Ready')?.status === 'True') return o;
        await refreshDiagnostics();
        return undefined;
      },
      180_000,
      context,
    );
    await waitFor('ConfigMapSync app-settings Ready', async () => condition(await getJson(['configmapsync', '-n', 'quickstart', 'app-settings']), 'Ready')?.status === 'True', 120_000, context);
    for (const ns of ['team-a', 'team-b']) expect((await getJson(['configmap', '-n', ns, 'app-settings'])).data['log-level']).toBe('info');
    const secret = await getJson(['secret', '-n', 'quickstart', 'app-connection']);
    expect(Object.keys(secret.data).sort()).toEqual(['dbname', 'host', 'password', 'port', 'uri', 'username']);

    // A client pod, as an application would: the URI from the Secret, through DNS and the Service.
    await cp.kubectlOk(['apply', '-f', '-'], {
      input: JSON.stringify({
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: 'client', namespace: 'quickstart' },
        spec: {
          restartPolicy: 'Never',
          containers: [
            {
              name: 'psql',
              image: 'docker.io/library/postgres:17',
              command: ['sh', '-c', 'psql "$DATABASE_URL" -tAc "select current_user || \'@\' || current_database()"'],
              env: [{ name: 'DATABASE_URL', valueFrom: { secretKeyRef: { name: 'app-connection', key: 'uri' } } }],
            },
          ],
        },
      }),
    });
    const phase = await waitFor(
      'client pod finished',
      async () => {
        const p = await getJson(['pod', '-n', 'quickstart', 'client']);
        return ['Succeeded', 'Failed'].includes(p?.status?.phase) && (p.status.phase as string);
      },
      120_000,
    );
    const logs = (await cp.kubectlOk(['logs', '-n', 'quickstart', 'client'])).trim();
    expect(phase, logs).toBe('Succeeded');
    expect(logs).toBe('app@app');
    const connectedMs = Date.now() - t0;
    console.log(`[kiln] quick start on a real node: kubectl apply -> PostgresInstance Ready ${readyMs} ms -> a client pod connected with the connection Secret ${connectedMs} ms`);
    diag = '';
  });
});
