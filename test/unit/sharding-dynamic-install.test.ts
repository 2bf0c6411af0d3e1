/** kiln install --sharding dynamic: what the controller's Deployment runs and the Leases it may use. */
import { describe, expect, it } from 'vitest';
import { installObjects } from '../../install/install.js';
import { leaseRules, ringLeaseRules } from '../../install/rbac.js';
import type { K8sObject } from '../../kinds/types.js';

type Any = any; // eslint-disable-line @typescript-eslint/no-explicit-any
const find = (objs: K8sObject[], kind: string, name: string) => objs.find((o) => o.kind === kind && o.metadata.name === name) as Any;
const argsOf = (d: Any): string[] => d.spec.template.spec.containers[0].args as string[];

describe('kiln install --sharding dynamic', () => {
  it('runs every controller replica as a ring member (no --leader-elect), the ring named after the controller', () => {
    const objs = installObjects({ mode: 'apply', version: '1.2.3', crds: 'skip', replicas: 3, sharding: 'dynamic' });
    const controller = find(objs, 'Deployment', 'kiln-controller');
    expect(controller.spec.replicas).toBe(3);
    const args = argsOf(controller);
    expect(args).not.toContain('--leader-elect');
    expect(args).not.toContain('--leader-election-id');
    expect(args.slice(args.indexOf('--sharding'), args.indexOf('--sharding') + 4)).toEqual(['--sharding', 'dynamic', '--sharding-ring', 'kiln-controller']);
    expect(args[args.indexOf('--leader-election-namespace') + 1]).toBe('kiln-system');
    // The ring's Leases have names no rule can know in advance: every Lease of the install's namespace, and only there.
    const role = find(objs, 'Role', 'kiln-controller-leader-election');
    expect(role.metadata.namespace).toBe('kiln-system');
    expect(role.rules).toEqual(ringLeaseRules('kiln-controller').map((r) => r.rule));
    expect(role.rules[1]).toEqual({ apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['delete', 'get', 'list', 'update', 'watch'] });
    // The agent is not sharded dynamically: it keeps its leader election and its one named Lease.
    expect(argsOf(find(objs, 'Deployment', 'kiln-agent'))).toContain('--leader-elect');
    expect(find(objs, 'Role', 'kiln-agent-leader-election').rules).toEqual(leaseRules('kiln-agent').map((r) => r.rule));
  });

  it('is refused with git mode, with --shards, and where the ring name would be too long', () => {
    const git = { repo: 'https://git.example.com/x.git', branch: 'main', cluster: 'c' };
    expect(() => installObjects({ mode: 'git', version: '1', crds: 'skip', git, sharding: 'dynamic' })).toThrow(/for apply mode/);
    expect(() => installObjects({ mode: 'apply', version: '1', crds: 'skip', shards: ['a'], sharding: 'dynamic' })).toThrow(/choose one/);
    expect(() => installObjects({ mode: 'apply', version: '1', crds: 'skip', name: 'x'.repeat(40), sharding: 'dynamic' })).toThrow(/longer than 40 characters/);
  });
});
