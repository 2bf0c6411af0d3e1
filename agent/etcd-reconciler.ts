/**
 * EtcdCluster: the agent owns what only the etcd API can do. The chart
 * renders a StatefulSet without replicas; the agent
 * - bootstraps: writes the ConfigMap `<name>-members` with the seed member
 *   `<name>-0` (state new) and scales the StatefulSet to 1;
 * - grows one member at a time: MemberAdd as a learner (a learner does not
 *   count towards the quorum, so adding never lowers fault tolerance, even
 *   from 1 to 2), the ConfigMap rewritten with every member (state existing),
 *   the StatefulSet scaled by one, and MemberPromote once the learner has
 *   caught up;
 * - shrinks one member at a time: MemberRemove of the highest ordinal, then
 *   the StatefulSet scaled down by one. Removing first keeps every remaining
 *   member up (the removed one stops itself); scaling first would leave a
 *   cluster of N with one member down, which for N=2 has no quorum.
 * - replaces a member that stays unreachable past --etcd-replace-after (its
 *   data directory lost, or its volume): MemberRemove; the next look adds the
 *   free ordinal again (learner, same peer URL) and deletes its pod and claim,
 *   so the StatefulSet recreates them and the member starts empty.
 * It changes membership only while every member answers, and never removes a
 * member that would leave fewer than a quorum of the others healthy.
 * - rolls a template change (OnDelete): one pod at a time, followers first
 *   and the leader last, each only once every member is healthy again.
 * Status: members (id, name, leader, version, healthy, dbSize) and the
 * condition MembersHealthy; Ready stays the controller's (StatefulSet rollout
 * at spec.size members).
 */
import type { KubeObject } from '../kube/informer.js';
import { isNotFound } from '../kube/client.js';
import type { NamespacedName, Reconciler, Result } from '../kube/reconcile.js';
import type { StatusWriter } from '../kube/status.js';
import type { AgentContext } from './context.js';
import { rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { EtcdError, hexId, memberAdd, memberList, memberPromote, memberRemove, memberStatus, snapshot, type EtcdMember, type EtcdTarget, type EtcdTls } from './etcd.js';
import { errorMessage } from './redact.js';
import { secretValue } from './secrets.js';
import { condition, FIELD_MANAGER } from './status.js';
import { etcdMemberName, etcdMemberOrdinal, INITIAL_CLUSTER_ENV, INITIAL_CLUSTER_STATE_ENV, membersConfigMapName } from '../kinds/etcd-cluster/names.js';

export type EtcdCluster = KubeObject & {
  apiVersion?: string;
  kind?: string;
  spec: { size?: number; version?: string; tls?: { peerSecret?: string; clientSecret?: string } };
};

export const MEMBERS_HEALTHY = 'MembersHealthy';
/** etcd allows at most this many members; the schema allows 9. */
const MAX_MEMBERS = 9;

export interface EtcdOptions {
  /** A started member unreachable this long is replaced (remove, add, empty volume). */
  replaceAfterMs: number;
  /** How soon to look again while membership changes. */
  stepMs: number;
  /** How often a settled cluster is checked. */
  steadyMs: number;
  timeoutMs: number;
  /** Where the snapshot before a version change is written; none: no snapshot is taken. */
  snapshotDir?: string;
  /** The largest snapshot kept (etcd's recommended backend quota is 8 GiB). */
  maxSnapshotBytes: number;
}

export const DEFAULT_ETCD_OPTIONS: EtcdOptions = { replaceAfterMs: 300_000, stepMs: 2_000, steadyMs: 30_000, timeoutMs: 5_000, maxSnapshotBytes: 8 * 1024 ** 3 };

interface LastSnapshot {
  name: string;
  size: number;
  revision: number;
  time: string;
  version: string;
}

interface MemberView {
  member: EtcdMember;
  ordinal: number | undefined;
  healthy: boolean;
  leader: boolean;
  version: string;
  dbSize: number;
  error?: string;
}

type StatefulSet = KubeObject & { spec?: { replicas?: number }; status?: { updateRevision?: string }; metadata: KubeObject['metadata'] & { labels?: Record<string, string> } };
type Pod = KubeObject & { metadata: KubeObject['metadata'] & { labels?: Record<string, string> } };
/** The StatefulSet controller's label on each pod: the revision of the template it was made from. */
const REVISION_LABEL = 'controller-revision-hash';
type ConfigMap = KubeObject & { data?: Record<string, string>; metadata: KubeObject['metadata'] & { ownerReferences?: { uid: string }[] } };

const quorum = (n: number) => Math.floor(n / 2) + 1;
const DNS_LABEL_RE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

export class EtcdReconciler implements Reconciler<NamespacedName> {
  /** When each member (by cluster key and member id) was first seen unreachable. */
  private readonly downSince = new Map<string, number>();

  constructor(
    private readonly ctx: AgentContext,
    private readonly status: StatusWriter,
    private readonly opts: EtcdOptions = DEFAULT_ETCD_OPTIONS,
  ) {}

  async reconcile({ namespace, name }: NamespacedName): Promise<Result> {
    const { ctx, opts } = this;
    const ec = ctx.caches.get('EtcdCluster', namespace, name) as EtcdCluster | undefined;
    if (!ec || ec.metadata.deletionTimestamp) return {};
    // Both become host names and API paths: the API server admitted them, this is a second fence.
    if (!DNS_LABEL_RE.test(namespace) || !DNS_LABEL_RE.test(name) || name.length > 52) return {};
    const gen = ec.metadata.generation;
    const size = Math.min(Math.max(ec.spec.size ?? 3, 1), MAX_MEMBERS);
    const tlsOn = { client: !!ec.spec.tls?.clientSecret, peer: !!ec.spec.tls?.peerSecret };
    // The agent's status is applied whole each time (server-side apply drops what a write leaves out): the last snapshot rides along.
    let lastSnapshot = (this.status.current(ec) as { lastSnapshot?: LastSnapshot } | undefined)?.lastSnapshot;
    const report = async (ok: boolean, reason: string, message: string, members?: MemberView[]) => {
      await this.status.write(ec, {
        ...(members ? { members: members.map(statusMember) } : {}),
        ...(lastSnapshot ? { lastSnapshot } : {}),
        conditions: [condition(MEMBERS_HEALTHY, ok, reason, message, gen)],
      });
    };

    let tls: EtcdTls | undefined;
    if (ec.spec.tls?.clientSecret) {
      const s = ctx.caches.get('Secret', namespace, ec.spec.tls.clientSecret);
      const [ca, cert, key] = ['ca.crt', 'tls.crt', 'tls.key'].map((k) => secretValue(s, k));
      if (!ca || !cert || !key) {
        await report(false, 'SecretMissing', `spec.tls.clientSecret: Secret ${ec.spec.tls.clientSecret} needs ca.crt, tls.crt and tls.key`);
        return { requeueAfterMs: opts.steadyMs };
      }
      tls = { ca, cert, key };
    }
    const target = (ordinal: number): EtcdTarget => ({ url: ctx.endpoints.etcdMember(namespace, name, ordinal, tlsOn).client, tls, timeoutMs: opts.timeoutMs });
    const peerUrl = (ordinal: number) => ctx.endpoints.etcdMember(namespace, name, ordinal, tlsOn).peer;

    const sts = await this.get<StatefulSet>('apps/v1', 'StatefulSet', namespace, name);
    if (!sts) {
      await report(false, 'WaitingForStatefulSet', `StatefulSet ${name} is not there yet (the controller applies it)`);
      return { requeueAfterMs: opts.stepMs };
    }
    if (sts.metadata.labels?.['app.kubernetes.io/managed-by'] !== 'kiln' || sts.metadata.labels?.['app.kubernetes.io/instance'] !== name) {
      await report(false, 'NotOwned', `StatefulSet ${name} is not kiln's (labels app.kubernetes.io/managed-by=kiln, app.kubernetes.io/instance=${name}): the agent does not scale it`);
      return { requeueAfterMs: opts.steadyMs };
    }
    const replicas = sts.spec?.replicas ?? 1;
    const cmName = membersConfigMapName(name);
    const cm = await this.get<ConfigMap>('v1', 'ConfigMap', namespace, cmName);
    if (cm && !cm.metadata.ownerReferences?.some((o) => o.uid === ec.metadata.uid)) {
      await report(false, 'NotOwned', `ConfigMap ${cmName} exists and is not this EtcdCluster's: the agent does not adopt it`);
      return { requeueAfterMs: opts.steadyMs };
    }

    if (!cm) {
      // Bootstrap: one seed member; the others are added one at a time once it answers.
      await this.writeMembers(ec, { [INITIAL_CLUSTER_ENV]: `${etcdMemberName(name, 0)}=${peerUrl(0)}`, [INITIAL_CLUSTER_STATE_ENV]: 'new' }, undefined);
      if (replicas !== 1) await this.scale(namespace, name, 1);
      ctx.events.normal(ec, 'Bootstrapping', `seed member ${etcdMemberName(name, 0)} (state new)`);
      await report(false, 'Bootstrapping', `seed member ${etcdMemberName(name, 0)} starting`);
      return { requeueAfterMs: opts.stepMs };
    }

    // The membership, from the first member that answers (linearizable, so only one in a quorum does).
    let members: EtcdMember[] | undefined;
    const errors: string[] = [];
    for (let i = 0; i < Math.max(replicas, 1) && !members; i++) {
      try {
        members = await memberList(target(i));
      } catch (err) {
        errors.push(`${etcdMemberName(name, i)}: ${errorMessage(err)}`);
      }
    }
    if (!members || members.length === 0) {
      await report(false, 'NoQuorum', `no member answered the member list: ${errors.join('; ').slice(0, 2000)}`);
      return { requeueAfterMs: opts.stepMs };
    }
    // A member kiln did not add (its peer URL is none of the member URLs kiln gives): never touched, nothing changes.
    const views = await Promise.all(members.map((m) => this.view(m, name, peerUrl, target)));
    const foreign = views.filter((v) => v.ordinal === undefined);
    if (foreign.length > 0) {
      await report(
        false,
        'ForeignMember',
        `members kiln did not add: ${foreign.map((v) => `${hexId(v.member.id)} ${v.member.peerURLs.join(' ')}`).join(', ')}; the agent changes no membership`,
        views,
      );
      return { requeueAfterMs: opts.steadyMs };
    }
    views.sort((a, b) => a.ordinal! - b.ordinal!);
    const n = views.length;
    const top = views[n - 1]!.ordinal!;
    const key = `${namespace}/${name}`;

    // The pods read the membership when they start: keep the ConfigMap equal to it.
    const initialCluster = views.map((v) => `${etcdMemberName(name, v.ordinal!)}=${v.member.peerURLs[0]}`).join(',');
    if (cm.data?.[INITIAL_CLUSTER_ENV] !== initialCluster || cm.data?.[INITIAL_CLUSTER_STATE_ENV] !== 'existing') {
      await this.writeMembers(ec, { [INITIAL_CLUSTER_ENV]: initialCluster, [INITIAL_CLUSTER_STATE_ENV]: 'existing' }, cm);
    }
    // Every member needs its pod: a member added just before the agent stopped gets it now.
    if (replicas < top + 1) await this.scale(namespace, name, top + 1);

    const started = views.filter((v) => v.member.name !== '');
    const unhealthy = views.filter((v) => !v.healthy);
    const now = Date.now();
    for (const v of views) {
      const k = `${key}/${v.member.id}`;
      if (v.healthy || v.member.name === '') this.downSince.delete(k);
      else if (!this.downSince.has(k)) this.downSince.set(k, now);
    }

    // A version change: a snapshot of the cluster as it runs comes first, once per running version. etcd moves its
    // cluster version (the storage format) only once every member runs the new one, so a snapshot taken while the
    // first member restarts is still in the old format.
    const running = lowestVersion(views.filter((v) => v.healthy).map((v) => v.version));
    if (opts.snapshotDir && running && ec.spec.version && ec.spec.version !== running && lastSnapshot?.version !== running) {
      const from = views.find((v) => v.leader && v.healthy) ?? views.find((v) => v.healthy)!;
      const taken = await this.takeSnapshot(ec, target(from.ordinal!), running, opts.snapshotDir);
      lastSnapshot = taken;
      ctx.events.normal(ec, 'SnapshotTaken', `before the change to ${ec.spec.version}: ${taken.name} (${taken.size} bytes, revision ${taken.revision}) from ${etcdMemberName(name, from.ordinal!)}`);
      ctx.task('EtcdCluster', 'snapshot', 'success');
    }

    // A voting member down for longer than --etcd-replace-after: replace it, if the others keep a quorum without it.
    const voters = views.filter((v) => !v.member.isLearner);
    const healthyVoters = voters.filter((v) => v.healthy).length;
    const lost = started.find((v) => !v.healthy && now - (this.downSince.get(`${key}/${v.member.id}`) ?? now) >= opts.replaceAfterMs);
    if (lost && unhealthy.length === 1 && healthyVoters >= quorum(voters.length - 1) && n > 1) {
      return this.replace(ec, lost, target(views.find((v) => v.healthy)!.ordinal!), views, report);
    }

    if (unhealthy.length > 0) {
      const msg = unhealthy.map((v) => `${etcdMemberName(name, v.ordinal!)}${v.member.name === '' ? ' (added, not started)' : ''}: ${v.error ?? 'unhealthy'}`).join('; ');
      await report(false, 'MembersUnhealthy', `${n - unhealthy.length}/${n} members healthy; waiting before any membership change: ${msg}`, views);
      return { requeueAfterMs: opts.stepMs };
    }
    const healthy = target(views.find((v) => v.leader)?.ordinal ?? views[0]!.ordinal!);

    // A learner that has started and answers: promote it (etcd refuses until it has caught up; the next look retries).
    const learner = views.find((v) => v.member.isLearner);
    if (learner) {
      try {
        await memberPromote(healthy, learner.member.id);
        ctx.events.normal(ec, 'MemberPromoted', `${etcdMemberName(name, learner.ordinal!)} is a voting member`);
        ctx.task('EtcdCluster', 'promote', 'success');
      } catch (err) {
        await report(false, 'CatchingUp', `learner ${etcdMemberName(name, learner.ordinal!)} not promoted yet: ${errorMessage(err)}`, views);
      }
      return { requeueAfterMs: opts.stepMs / 2 };
    }

    if (n < size) {
      // The lowest free ordinal: the next one up, or one a replaced member left.
      let next = 0;
      while (views.some((v) => v.ordinal === next)) next++;
      const pod = etcdMemberName(name, next);
      ctx.log('info', 'etcd member add', { cluster: key, member: pod, via: healthy.url });
      let added: EtcdMember;
      try {
        added = await memberAdd(healthy, peerUrl(next), true);
      } catch (err) {
        // etcd refuses a change until every voting member has been connected for 5 s (just after a promotion or removal).
        if (!(err instanceof EtcdError) || !/unhealthy cluster/.test(err.message)) throw err;
        await report(false, 'Scaling', `waiting to add ${pod}: ${err.message}`, views);
        return { requeueAfterMs: opts.stepMs };
      }
      const all = [...views.map((v) => `${etcdMemberName(name, v.ordinal!)}=${v.member.peerURLs[0]}`), `${pod}=${peerUrl(next)}`].join(',');
      await this.writeMembers(ec, { [INITIAL_CLUSTER_ENV]: all, [INITIAL_CLUSTER_STATE_ENV]: 'existing' }, await this.get<ConfigMap>('v1', 'ConfigMap', namespace, cmName));
      if (next < replicas) {
        // Its pod is there with the data of the member it replaces, whose ID is gone: it starts again on an empty volume.
        await this.deleteIfThere('v1', 'PersistentVolumeClaim', namespace, `data-${pod}`);
        await this.deleteIfThere('v1', 'Pod', namespace, pod);
      } else await this.scale(namespace, name, next + 1);
      ctx.events.normal(ec, 'MemberAdded', `${pod} (${hexId(added.id)}) added as a learner; ${n + 1}/${size} members`);
      ctx.task('EtcdCluster', 'add', 'success');
      await report(false, 'Scaling', `adding ${pod}: ${n + 1}/${size} members`, views);
      return { requeueAfterMs: opts.stepMs };
    }
    if (n > size) {
      const leaving = views[n - 1]!;
      ctx.log('info', 'etcd member remove', { cluster: key, member: etcdMemberName(name, leaving.ordinal!), via: healthy.url });
      await memberRemove(healthy, leaving.member.id);
      // The highest member goes; its pod is the StatefulSet's last.
      await this.scale(namespace, name, leaving.ordinal!);
      this.downSince.delete(`${key}/${leaving.member.id}`);
      ctx.events.normal(ec, 'MemberRemoved', `${etcdMemberName(name, leaving.ordinal!)} (${hexId(leaving.member.id)}) removed; ${n - 1}/${size} members`);
      ctx.task('EtcdCluster', 'remove', 'success');
      await report(false, 'Scaling', `removed ${etcdMemberName(name, leaving.ordinal!)}: ${n - 1}/${size} members`, views.slice(0, n - 1));
      return { requeueAfterMs: opts.stepMs };
    }
    if (replicas !== n) await this.scale(namespace, name, n);
    const leaders = views.filter((v) => v.leader).length;
    if (leaders !== 1) {
      await report(false, 'NoLeader', `${n}/${size} members answer, but ${leaders} report being the leader`, views);
      return { requeueAfterMs: opts.stepMs };
    }
    const rolling = await this.roll(ec, sts, views, (reason, message) => report(false, reason, message, views));
    if (rolling) return rolling;
    await report(true, 'MembersHealthy', `${n}/${size} members healthy`, views);
    return { requeueAfterMs: opts.steadyMs };
  }

  /**
   * A changed pod template (a version, resources): the chart's OnDelete strategy leaves the pods to the agent,
   * which restarts them one at a time, only while every member is healthy (the caller checked) and no pod is
   * missing or going, followers first and the leader last (one election, not one per member). Returns the next
   * look while a roll is under way, undefined when every pod runs the StatefulSet's update revision.
   */
  private async roll(ec: EtcdCluster, sts: StatefulSet, views: MemberView[], report: (reason: string, message: string) => Promise<void>): Promise<Result | undefined> {
    const { namespace, name } = ec.metadata as { namespace: string; name: string };
    const updateRevision = sts.status?.updateRevision;
    if (!updateRevision) return undefined;
    const pods = await Promise.all(views.map((v) => this.get<Pod>('v1', 'Pod', namespace, etcdMemberName(name, v.ordinal!))));
    const waiting = views.find((_v, i) => !pods[i] || pods[i].metadata.deletionTimestamp);
    if (waiting) {
      await report('Rolling', `waiting for ${etcdMemberName(name, waiting.ordinal!)}'s pod to come back before the next member restarts`);
      return { requeueAfterMs: this.opts.stepMs };
    }
    const old = views.filter((_v, i) => pods[i]!.metadata.labels?.[REVISION_LABEL] !== updateRevision);
    if (old.length === 0) return undefined;
    // A second fence behind the admission rule: etcd moves one minor version at a time and never back.
    const running = lowestVersion(views.map((v) => v.version));
    const refused = running && ec.spec.version ? versionChangeRefused(running, ec.spec.version) : undefined;
    if (refused) {
      await report('VersionRefused', `spec.version: ${refused}; no member is restarted`);
      return { requeueAfterMs: this.opts.steadyMs };
    }
    const next = [...old].reverse().find((v) => !v.leader) ?? old[0]!;
    const pod = etcdMemberName(name, next.ordinal!);
    this.ctx.log('info', 'etcd member restart', { cluster: `${namespace}/${name}`, member: pod, revision: updateRevision, leader: next.leader });
    await this.deleteIfThere('v1', 'Pod', namespace, pod);
    const done = views.length - old.length;
    this.ctx.events.normal(ec, 'MemberRestarted', `${pod} restarted with the new pod template (${done + 1}/${views.length}); the next waits until every member is healthy`);
    this.ctx.task('EtcdCluster', 'restart', 'success');
    await report('Rolling', `restarting ${pod} with the new pod template: ${done}/${views.length} members updated`);
    return { requeueAfterMs: this.opts.stepMs };
  }

  private async replace(
    ec: EtcdCluster,
    lost: MemberView,
    healthy: EtcdTarget,
    views: MemberView[],
    report: (ok: boolean, reason: string, message: string, members?: MemberView[]) => Promise<void>,
  ): Promise<Result> {
    const { ctx } = this;
    const { namespace, name } = ec.metadata as { namespace: string; name: string };
    const pod = etcdMemberName(name, lost.ordinal!);
    ctx.log('info', 'etcd member replace: removing', { cluster: `${namespace}/${name}`, member: pod, id: hexId(lost.member.id), via: healthy.url });
    await memberRemove(healthy, lost.member.id);
    this.downSince.delete(`${namespace}/${name}/${lost.member.id}`);
    // The next look adds it again as a learner (the lowest free ordinal) and gives its pod an empty volume.
    ctx.events.warning(ec, 'MemberReplaced', `${pod} (${hexId(lost.member.id)}) was unreachable for ${this.opts.replaceAfterMs / 1000} s: removed, to be added again with an empty volume`);
    ctx.task('EtcdCluster', 'replace', 'success');
    await report(false, 'Replacing', `replacing ${pod}: it was unreachable for ${this.opts.replaceAfterMs / 1000} s (${lost.error ?? 'unhealthy'})`, views);
    return { requeueAfterMs: this.opts.stepMs };
  }

  /** Streams a snapshot into the directory (a temporary name until it is complete), its name saying whose and when. */
  private async takeSnapshot(ec: EtcdCluster, from: EtcdTarget, version: string, dir: string): Promise<LastSnapshot> {
    const { namespace, name } = ec.metadata as { namespace: string; name: string };
    const status = await memberStatus(from);
    const time = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
    const file = `${namespace}.${name}.${time.replace(/[-:]/g, '')}.rev${status.revision || '0'}.db`;
    const partial = path.join(dir, `.${file}.partial`);
    try {
      const size = await snapshot(from, partial, this.opts.maxSnapshotBytes);
      await rename(partial, path.join(dir, file));
      return { name: file, size, revision: Number(status.revision) || 0, time, version };
    } catch (err) {
      await rm(partial, { force: true });
      throw err;
    }
  }

  private async view(m: EtcdMember, name: string, peerUrl: (i: number) => string, target: (i: number) => EtcdTarget): Promise<MemberView> {
    // Which of kiln's members it is: by the peer URL kiln registered (names are empty until a member starts).
    let ordinal: number | undefined;
    for (let i = 0; i < MAX_MEMBERS && ordinal === undefined; i++) if (m.peerURLs.includes(peerUrl(i))) ordinal = i;
    if (ordinal !== undefined && m.name !== '' && etcdMemberOrdinal(name, m.name) !== ordinal) ordinal = undefined;
    const base = { member: m, ordinal, healthy: false, leader: false, version: '', dbSize: 0 };
    if (ordinal === undefined || m.name === '') return { ...base, error: m.name === '' ? 'not started' : undefined };
    try {
      const s = await memberStatus(target(ordinal));
      if (s.memberId !== m.id) return { ...base, error: `answers as member ${hexId(s.memberId)}` };
      return {
        ...base,
        healthy: s.errors.length === 0 && s.leader !== '0' && s.leader !== '',
        leader: s.leader === m.id,
        version: s.version,
        dbSize: s.dbSize,
        error: s.errors.join('; ') || undefined,
      };
    } catch (err) {
      return { ...base, error: err instanceof EtcdError ? err.message : errorMessage(err) };
    }
  }

  private async get<T>(apiVersion: string, kind: string, namespace: string, name: string): Promise<T | undefined> {
    try {
      return await this.ctx.client.get<T>({ apiVersion, kind, namespace, name });
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  private async deleteIfThere(apiVersion: string, kind: string, namespace: string, name: string): Promise<void> {
    try {
      await this.ctx.client.delete({ apiVersion, kind, namespace, name });
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }

  private async scale(namespace: string, name: string, replicas: number): Promise<void> {
    // As kiln-agent, so the StatefulSet's managedFields say who sets replicas.
    await this.ctx.client.request('PATCH', `/apis/apps/v1/namespaces/${encodeURIComponent(namespace)}/statefulsets/${encodeURIComponent(name)}/scale`, {
      query: { fieldManager: FIELD_MANAGER },
      body: { spec: { replicas } },
      contentType: 'application/merge-patch+json',
    });
  }

  /** The members ConfigMap, owned by the EtcdCluster (deleted with it); a change carries the version read. */
  private async writeMembers(ec: EtcdCluster, data: Record<string, string>, live: ConfigMap | undefined): Promise<void> {
    const { namespace, name } = ec.metadata as { namespace: string; name: string };
    if (!live) {
      await this.ctx.client.request('POST', `/api/v1/namespaces/${encodeURIComponent(namespace)}/configmaps`, {
        query: { fieldManager: FIELD_MANAGER },
        body: {
          apiVersion: 'v1',
          kind: 'ConfigMap',
          metadata: {
            name: membersConfigMapName(name),
            namespace,
            labels: { 'app.kubernetes.io/managed-by': 'kiln-agent', 'app.kubernetes.io/instance': name, 'app.kubernetes.io/name': 'etcd' },
            ownerReferences: [{ apiVersion: ec.apiVersion ?? 'kiln.dev/v1alpha1', kind: 'EtcdCluster', name, uid: ec.metadata.uid!, controller: true, blockOwnerDeletion: true }],
          },
          data,
        },
      });
      return;
    }
    await this.ctx.client.request('PATCH', `/api/v1/namespaces/${encodeURIComponent(namespace)}/configmaps/${encodeURIComponent(membersConfigMapName(name))}`, {
      query: { fieldManager: FIELD_MANAGER },
      body: { metadata: { resourceVersion: live.metadata.resourceVersion }, data },
      contentType: 'application/merge-patch+json',
    });
  }
}

/** The lowest of etcd versions `3.<minor>.<patch>` (what a cluster in a roll still runs), or undefined. */
export function lowestVersion(versions: string[]): string | undefined {
  const parsed = versions.map((v) => ({ v, n: /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(v) })).filter((x) => x.n);
  parsed.sort((a, b) => Number(a.n![1]) - Number(b.n![1]) || Number(a.n![2]) - Number(b.n![2]) || Number(a.n![3]) - Number(b.n![3]));
  return parsed[0]?.v;
}

/** Why etcd would not take the change from `running` to `wanted` (a minor downgrade, or more than one minor up), or undefined. */
export function versionChangeRefused(running: string, wanted: string): string | undefined {
  const minor = (v: string) => /^3\.(\d{1,3})\.\d{1,3}$/.exec(v)?.[1];
  const from = minor(running);
  const to = minor(wanted);
  if (from === undefined || to === undefined) return `cannot compare ${running} and ${wanted}`;
  if (Number(to) < Number(from)) return `the members run ${running}: etcd cannot go back to ${wanted}'s minor version`;
  if (Number(to) > Number(from) + 1) return `the members run ${running}: etcd upgrades one minor version at a time, not to ${wanted}`;
  return undefined;
}

function statusMember(v: MemberView) {
  return { id: hexId(v.member.id), name: v.member.name, leader: v.leader, version: v.version, healthy: v.healthy, dbSize: v.dbSize };
}
