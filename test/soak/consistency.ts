/**
 * The soak's end state, read from the real servers: every kiln resource
 * Ready, or Stalled with a reason and a message; every rendered child in the
 * cluster equal (in the fields kiln renders) to what kiln's render function
 * makes of the resource as it is now, owned by it; no kiln child whose owner
 * is gone or no longer renders it; every PostgresDatabase's database and role
 * in PostgreSQL and none left for a deleted resource (reclaimPolicy Delete);
 * every DirectoryService's account binds with its Secret's password.
 *
 * Each finding is one line naming the object and what is wrong, so a failed
 * soak says what to look at.
 */
import { parseAllDocuments } from 'yaml';
import { render } from '../../kinds/render.js';
import { kindDefinition } from '../../kinds/registry.js';
import { contextFromObjects } from '../../lib/context.js';
import { digest } from '../../controller/apply/applyset.js';
import { plainGit } from '../harness/git.js';
import type { K8sObject } from '../../kinds/types.js';
import type { KubeClient } from '../../kube/client.js';
import { validate } from '../../validate/index.js';
import { kstatus } from '../harness/kstatus.js';
import type { PostgresServer } from '../harness/postgres.js';
import type { SlapdServer } from '../harness/slapd.js';
import { GIT_KINDS, KINDS, directoryAccount, type SoakLayout } from './templates.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Any = any;

interface Condition {
  type: string;
  status: string;
  reason?: string;
  message?: string;
}

export interface ConsistencyResult {
  ok: boolean;
  resources: number;
  ready: number;
  stalled: { resource: string; reason: string; message: string }[];
  /** InProgress, and saying it waits for a resource that is in fact not there (the soak deleted it): no fault of kiln's. */
  waiting: { resource: string; message: string }[];
  children: number;
  findings: string[];
}

/** Kinds whose objects kiln renders or writes, read back to look for orphans (pods are the StatefulSets', not kiln's). */
const CHILD_PATHS: { kind: string; path: (ns: string) => string }[] = [
  { kind: 'ConfigMap', path: (ns) => `/api/v1/namespaces/${ns}/configmaps` },
  { kind: 'Secret', path: (ns) => `/api/v1/namespaces/${ns}/secrets` },
  { kind: 'Service', path: (ns) => `/api/v1/namespaces/${ns}/services` },
  { kind: 'PersistentVolumeClaim', path: (ns) => `/api/v1/namespaces/${ns}/persistentvolumeclaims` },
  { kind: 'StatefulSet', path: (ns) => `/apis/apps/v1/namespaces/${ns}/statefulsets` },
  { kind: 'Deployment', path: (ns) => `/apis/apps/v1/namespaces/${ns}/deployments` },
  { kind: 'Job', path: (ns) => `/apis/batch/v1/namespaces/${ns}/jobs` },
  { kind: 'PodDisruptionBudget', path: (ns) => `/apis/policy/v1/namespaces/${ns}/poddisruptionbudgets` },
  { kind: 'VolumeSnapshot', path: (ns) => `/apis/snapshot.storage.k8s.io/v1/namespaces/${ns}/volumesnapshots` },
];

const plural = (kind: string) => (KINDS.includes(kind as never) ? `${kind.toLowerCase()}s` : kind);

/** The first place where `live` lacks or differs from what `want` says (undefined: `want` is contained in `live`). */
export function firstDifference(want: unknown, live: unknown, path = ''): string | undefined {
  // The API server leaves out a field at its zero value (Go's omitempty): rendered false, "", [] or {} is the same as absent.
  if (live === undefined && (want === false || want === '' || (Array.isArray(want) && !want.length) || (want !== null && typeof want === 'object' && !Object.keys(want).length))) return undefined;
  if (want === null || typeof want !== 'object') {
    const scalar = typeof live === 'string' || typeof live === 'number' || typeof live === 'boolean' ? String(live) : undefined;
    if (want === live || (scalar !== undefined && String(want) === scalar)) return undefined;
    return `${path || '.'}: rendered ${JSON.stringify(want)}, live ${JSON.stringify(live)}`;
  }
  if (Array.isArray(want)) {
    if (!Array.isArray(live) || live.length !== want.length) return `${path}: rendered ${want.length} items, live ${Array.isArray(live) ? `${live.length} items` : JSON.stringify(live)}`;
    for (let i = 0; i < want.length; i++) {
      const d = firstDifference(want[i], live[i], `${path}[${i}]`);
      if (d) return d;
    }
    return undefined;
  }
  if (live === null || typeof live !== 'object' || Array.isArray(live)) return `${path}: rendered an object, live ${JSON.stringify(live)}`;
  for (const [k, v] of Object.entries(want)) {
    const d = firstDifference(v, (live as Record<string, unknown>)[k], `${path}.${k}`);
    if (d) return d;
  }
  return undefined;
}

/** What of a rendered object kiln applies and the server keeps as given: all but metadata's server-set fields. */
function appliedFields(o: K8sObject): Record<string, unknown> {
  const { metadata, ...rest } = o as Any;
  return { ...rest, metadata: { ...(metadata.labels ? { labels: metadata.labels } : {}), ...(metadata.annotations ? { annotations: metadata.annotations } : {}) } };
}

/** "DirectoryService ns/name not found": what a resource says while it waits for another. */
const WAITING_FOR = /^(\w+) ([a-z0-9-]+)\/([a-z0-9-]+) not found$/;

const cond = (o: Any, type: string): Condition | undefined => o?.status?.conditions?.find((c: Condition) => c.type === type);

async function listAll(client: KubeClient, path: string): Promise<Any[]> {
  return (await client.request<{ items: Any[] }>('GET', path)).items;
}

/**
 * For a resource left in progress: its StatefulSet's status and its pods, as the API server has them now,
 * so a failure tells kiln's view (the resource's status) from the cluster's (the StatefulSet controller, the kubelet).
 */
async function membersEvidence(client: KubeClient, ns: string, name: string): Promise<string> {
  try {
    const sts = (await client.get({ apiVersion: 'apps/v1', kind: 'StatefulSet', namespace: ns, name })) as Any;
    const pods = (await listAll(client, `/api/v1/namespaces/${ns}/pods`)).filter((p: Any) => p.metadata.name.startsWith(`${name}-`));
    const podLines = pods.map(
      (p: Any) =>
        `${p.metadata.name} ${p.status?.phase ?? '-'} ready=${(p.status?.conditions ?? []).find((c: Condition) => c.type === 'Ready')?.status ?? '-'} rev=${p.metadata.labels?.['controller-revision-hash'] ?? '-'}${p.metadata.deletionTimestamp ? ' deleting' : ''}`,
    );
    return `; StatefulSet generation ${sts.metadata.generation} status ${JSON.stringify(sts.status)}; pods ${JSON.stringify(podLines)}`;
  } catch (err) {
    return `; no StatefulSet ${ns}/${name} (${(err as Error).message.slice(0, 120)})`;
  }
}

export async function checkConsistency(deps: { client: KubeClient; layout: SoakLayout; postgres: PostgresServer; slapd: SlapdServer; runId: string; bareRepo: string }): Promise<ConsistencyResult> {
  const { client, layout, postgres, slapd } = deps;
  const findings: string[] = [];
  const stalled: ConsistencyResult['stalled'] = [];
  const waiting: ConsistencyResult['waiting'] = [];
  const waits: { id: string; dependency: string; message: string }[] = [];
  let resources = 0;
  let ready = 0;
  let children = 0;
  /** uid -> resource, and ns/kind/name -> resource, for the orphan look-up. */
  const byUid = new Map<string, Any>();
  const byName = new Map<string, Any>();
  /** uid -> names of the children its render has now. */
  const rendered = new Map<string, Set<string>>();
  const databases: Any[] = [];
  const services: Any[] = [];

  const gitResources: Any[] = [];
  for (const ns of [...layout.namespaces, layout.gitNamespace]) {
    for (const kind of ns === layout.gitNamespace ? GIT_KINDS : KINDS) {
      for (const o of await listAll(client, `/apis/kiln.dev/v1alpha1/namespaces/${ns}/${plural(kind)}`)) {
        resources++;
        const id = `${kind} ${ns}/${o.metadata.name}`;
        byUid.set(o.metadata.uid, o);
        byName.set(`${ns}/${kind}/${o.metadata.name}`, o);
        const ks = kstatus(o);
        const r = cond(o, 'Ready');
        const s = cond(o, 'Stalled');
        if (ks.status === 'Terminating') {
          findings.push(`${id}: still terminating (finalizers ${JSON.stringify(o.metadata.finalizers)}); conditions ${JSON.stringify(o.status?.conditions ?? [])}`);
          continue;
        }
        const current = (c: Condition | undefined) => c && ((c as { observedGeneration?: number }).observedGeneration ?? o.metadata.generation) === o.metadata.generation;
        if (r?.status === 'True' && current(r) && ks.status === 'Current') ready++;
        else if (s?.status === 'True' && ks.status === 'Failed') {
          if (!s.reason || !s.message) findings.push(`${id}: Stalled without a reason or message: ${JSON.stringify(s)}`);
          stalled.push({ resource: id, reason: s.reason ?? '', message: s.message ?? '' });
        } else if (ks.status === 'InProgress' && r?.reason === 'Waiting' && WAITING_FOR.test(r.message ?? '')) {
          const [, depKind, depNs, depName] = WAITING_FOR.exec(r.message!)!;
          waits.push({ id, dependency: `${depNs}/${depKind}/${depName}`, message: r.message! });
        } else {
          findings.push(
            `${id}: neither Ready (for generation ${o.metadata.generation}) nor Stalled (kstatus ${ks.status}: ${ks.message}); conditions ${JSON.stringify((o.status?.conditions ?? []).map((c: Condition) => `${c.type}=${c.status} ${c.reason ?? ''}: ${c.message ?? ''}`))}${await membersEvidence(client, ns, o.metadata.name)}`,
          );
        }
        if (kind === 'PostgresDatabase') databases.push(o);
        if (kind === 'DirectoryService' && ns !== layout.gitNamespace) services.push(o);
        if (ns === layout.gitNamespace) {
          gitResources.push(o);
          continue;
        }
        if (kind === 'PostgresDatabase' || kind === 'ConfigMapSync') continue; // the agent's, and copies checked below
        const v = validate(o);
        if (!v.ok) {
          findings.push(`${id}: the live resource does not validate: ${JSON.stringify(v.errors)}`);
          continue;
        }
        // With what its render reads of the namespace's other kiln resources (a CacheCluster, its DataGrids), as the controller renders it.
        const reads = kindDefinition(kind)?.reads ?? [];
        const related: Any[] = [];
        for (const k of reads)
          related.push(...(await listAll(client, `/apis/kiln.dev/v1alpha1/namespaces/${ns}/${k.toLowerCase()}s`)).map((x: Any) => ({ ...x, apiVersion: 'kiln.dev/v1alpha1', kind: k })));
        const want = render(v.resource, contextFromObjects(v.resource, related));
        rendered.set(o.metadata.uid, new Set(want.map((c) => `${c.kind}/${c.metadata.name}`)));
        // A Stalled resource's children are what kiln could apply before it stopped: only a Ready one must equal its render.
        if (r?.status !== 'True') continue;
        const inventory = (o.status?.inventory ?? []).map((i: { kind: string; name: string }) => `${i.kind}/${i.name}`).sort();
        const names = want.map((c) => `${c.kind}/${c.metadata.name}`).sort();
        if (JSON.stringify(inventory) !== JSON.stringify(names)) findings.push(`${id}: status.inventory ${JSON.stringify(inventory)} is not the render ${JSON.stringify(names)}`);
        for (const c of want) {
          const path = CHILD_PATHS.find((p) => p.kind === c.kind)?.path(ns);
          if (!path) {
            findings.push(`${id}: renders a ${c.kind}, which the soak does not know how to read`);
            continue;
          }
          children++;
          let live: Any;
          try {
            live = await client.request('GET', `${path}/${c.metadata.name}`);
          } catch (err) {
            findings.push(`${id}: rendered ${c.kind}/${c.metadata.name} is not in the cluster (${(err as Error).message})`);
            continue;
          }
          const owner = (live.metadata.ownerReferences ?? []).find((x: Any) => x.controller);
          if (owner?.uid !== o.metadata.uid) findings.push(`${id}: ${c.kind}/${c.metadata.name} is controlled by ${JSON.stringify(owner)}, not by uid ${o.metadata.uid}`);
          const d = firstDifference(appliedFields(c), live);
          if (d) findings.push(`${id}: ${c.kind}/${c.metadata.name} differs from its render at ${d}`);
        }
      }
    }
  }

  for (const w of waits) {
    if (byName.has(w.dependency)) findings.push(`${w.id}: says "${w.message}", but that resource exists`);
    else waiting.push({ resource: w.id, message: w.message });
  }

  // ConfigMapSync: the copy in the target equals the source; no copy where no sync is.
  for (const ns of layout.namespaces) {
    const target = layout.targets[ns]!;
    const source = (await client.request('GET', `/api/v1/namespaces/${ns}/configmaps/settings`)) as Any;
    const sync = byName.get(`${ns}/ConfigMapSync/sync-a`);
    const copies = (await listAll(client, `/api/v1/namespaces/${target}/configmaps`)).filter((c) => c.metadata.labels?.['kiln.dev/owner-kind'] === 'ConfigMapSync');
    if (sync && cond(sync, 'Ready')?.status === 'True') {
      const copy = copies.find((c) => c.metadata.name === 'settings');
      if (!copy) findings.push(`ConfigMapSync ${ns}/sync-a: Ready but no copy in ${target}`);
      else if (JSON.stringify(copy.data) !== JSON.stringify(source.data))
        findings.push(`ConfigMapSync ${ns}/sync-a: copy in ${target} holds ${JSON.stringify(copy.data)}, source ${JSON.stringify(source.data)}`);
    }
    for (const c of copies) {
      const ownerNs = c.metadata.labels['kiln.dev/owner-namespace'];
      const owner = byName.get(`${ownerNs}/ConfigMapSync/${c.metadata.labels['kiln.dev/owner-name']}`);
      if (!owner) findings.push(`orphan: ConfigMap ${target}/${c.metadata.name} copied for ConfigMapSync ${ownerNs}/${c.metadata.labels['kiln.dev/owner-name']}, which is gone`);
    }
  }

  // Orphans: a child whose kiln owner is gone (GC missed it) or whose owner no longer renders it (not pruned).
  for (const ns of layout.namespaces) {
    for (const p of CHILD_PATHS) {
      for (const o of await listAll(client, p.path(ns))) {
        const ref = (o.metadata.ownerReferences ?? []).find((x: Any) => String(x.apiVersion).startsWith('kiln.dev/'));
        if (!ref) continue;
        // A claim GC has deleted stays until kubernetes.io/pvc-protection is removed, by a controller this control plane does not run.
        if (o.metadata.deletionTimestamp && (o.metadata.finalizers ?? []).every((x: string) => x === 'kubernetes.io/pvc-protection')) continue;
        const owner = byUid.get(ref.uid);
        const what = `${p.kind} ${ns}/${o.metadata.name}`;
        if (!owner) findings.push(`orphan: ${what} is owned by ${ref.kind}/${ref.name} uid ${ref.uid}, which is gone`);
        else if (rendered.has(ref.uid) && p.kind !== 'Secret' && !rendered.get(ref.uid)!.has(`${p.kind}/${o.metadata.name}`))
          findings.push(`orphan: ${what} is owned by ${ref.kind}/${ref.name} but no longer in its render (not pruned)`);
      }
    }
  }

  findings.push(...checkRepository(deps.bareRepo, layout.gitNamespace, gitResources));
  // Git mode applies nothing: an object here means another kiln controller (one watching every namespace, say a test's on a shared cluster) serves the soak's resources too, and the soak's verdict is not about its own processes alone.
  for (const p of CHILD_PATHS) {
    for (const o of await listAll(client, p.path(layout.gitNamespace))) {
      const ref = (o.metadata.ownerReferences ?? []).find((x: Any) => String(x.apiVersion).startsWith('kiln.dev/'));
      if (ref)
        findings.push(
          `interference: ${p.kind} ${layout.gitNamespace}/${o.metadata.name} was applied for ${ref.kind}/${ref.name} in the git-mode namespace: a kiln controller other than the soak's serves these namespaces`,
        );
    }
  }

  // PostgreSQL: each database resource's database and role exist; nothing is left of a deleted one.
  const want = new Map(databases.map((d) => [d.spec.name as string, d]));
  const prefix = `s_${deps.runId}_`;
  const have = new Set(
    (await postgres.sql(`SELECT datname FROM pg_database WHERE datname LIKE '${prefix}%'`))
      .split('\n')
      .map((s) => s.trim())
      .filter(Boolean),
  );
  const roles = new Set(
    (await postgres.sql(`SELECT rolname FROM pg_roles WHERE rolname LIKE '${prefix}%'`))
      .split('\n')
      .map((s) => s.trim())
      .filter(Boolean),
  );
  for (const [name, d] of want) {
    if (cond(d, 'DatabaseReady')?.status !== 'True') {
      findings.push(`PostgresDatabase ${d.metadata.namespace}/${d.metadata.name}: DatabaseReady is not True: ${JSON.stringify(cond(d, 'DatabaseReady'))}`);
      continue;
    }
    if (!have.has(name)) findings.push(`PostgresDatabase ${d.metadata.namespace}/${d.metadata.name}: database ${name} is not in PostgreSQL`);
    if (!roles.has(d.spec.owner ?? name)) findings.push(`PostgresDatabase ${d.metadata.namespace}/${d.metadata.name}: role ${d.spec.owner ?? name} is not in PostgreSQL`);
  }
  for (const name of have) if (!want.has(name)) findings.push(`PostgreSQL: database ${name} remains after its PostgresDatabase (reclaimPolicy Delete) was deleted`);
  for (const name of roles) if (!want.has(name)) findings.push(`PostgreSQL: role ${name} remains after its PostgresDatabase (reclaimPolicy Delete) was deleted`);

  // slapd: each DirectoryService's account binds with the password in its Secret.
  for (const ds of services) {
    const id = `DirectoryService ${ds.metadata.namespace}/${ds.metadata.name}`;
    const synced = cond(ds, 'PasswordsSynced');
    if (synced?.status !== 'True') {
      findings.push(`${id}: PasswordsSynced is not True: ${JSON.stringify(synced)}`);
      continue;
    }
    const dn = directoryAccount(ds.metadata.namespace, ds.metadata.name);
    const secretName = ds.spec.passwords[dn]?.secretName;
    try {
      const secret = (await client.request('GET', `/api/v1/namespaces/${ds.metadata.namespace}/secrets/${secretName}`)) as Any;
      const pw = Buffer.from(secret.data['account.pw'], 'base64').toString();
      if (!(await slapd.canBind(dn, pw))) findings.push(`${id}: ${dn} does not bind with the password in Secret ${secretName}`);
    } catch (err) {
      findings.push(`${id}: Secret ${secretName}: ${(err as Error).message}`);
    }
  }
  return { ok: findings.length === 0, resources, ready, stalled, waiting, children, findings };
}

/**
 * Git mode: each resource's status names a commit on main and the revision of
 * its render; main's manifest for it is that render; no directory is left for
 * a resource that is gone.
 */
function checkRepository(bare: string, ns: string, live: Any[]): string[] {
  const findings: string[] = [];
  const git = (...args: string[]) => plainGit(bare, args);
  const dir = `clusters/soak/${ns}`;
  const files = git('ls-tree', '-r', '--name-only', 'main')
    .split('\n')
    .filter((f) => f.startsWith(`${dir}/`) && f.endsWith('/manifest.yaml'));
  const expected = new Set<string>();
  for (const o of live) {
    const id = `${o.kind} ${ns}/${o.metadata.name} (git mode)`;
    const file = `${dir}/${o.kind.toLowerCase()}/${o.metadata.name}/manifest.yaml`;
    expected.add(file);
    if (cond(o, 'Ready')?.status !== 'True') continue; // reported above, unless Stalled with a reason
    const v = validate(o);
    if (!v.ok) continue;
    const want = render(v.resource, contextFromObjects(v.resource, live));
    const revision = `sha256:${digest(want)}`;
    if (o.status?.revision !== revision) findings.push(`${id}: status.revision ${o.status?.revision} is not its render's ${revision}`);
    const commit = o.status?.commit as string | undefined;
    try {
      if (!commit) throw new Error('no status.commit');
      git('merge-base', '--is-ancestor', commit, 'main');
    } catch (err) {
      findings.push(`${id}: status.commit ${commit} is not on main (${(err as Error).message.split('\n')[0]})`);
    }
    if (!files.includes(file)) {
      findings.push(`${id}: Ready, but main has no ${file}`);
      continue;
    }
    const docs = parseAllDocuments(git('show', `main:${file}`))
      .map((d) => d.toJSON())
      .filter(Boolean);
    const names = (xs: Any[]) =>
      xs
        .map((x) => `${x.kind}/${x.metadata.name}`)
        .sort()
        .join(' ');
    if (names(docs) !== names(want)) findings.push(`${id}: ${file} holds ${names(docs)}, the render ${names(want)}`);
    for (const w of want) {
      const d = docs.find((x) => x.kind === w.kind && x.metadata.name === w.metadata.name);
      const diff = d && firstDifference(w, d);
      if (diff) findings.push(`${id}: ${file}: ${w.kind}/${w.metadata.name} differs from its render at ${diff}`);
    }
  }
  for (const f of files) if (!expected.has(f)) findings.push(`orphan: ${f} is on main, but its resource is gone`);
  return findings;
}
