/**
 * Static sharding (issue #21 item 1), what needs no cluster: the selector's checks, the shard's name
 * (its Lease, its git-mode directory), the flags, and `kiln install --shards`.
 */
import { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { addRuntimeOptions, runtimeSettings } from '../../cli/runtime-options.js';
import { installObjects, shardsProblem } from '../../install/install.js';
import { leaseRules } from '../../install/rbac.js';
import type { K8sObject } from '../../kinds/types.js';
import { checkWatchSelector, shardDirectorySuffix, shardName } from '../../lib/shard.js';
import { GitSink } from '../../controller/git/sink.js';

function parse(args: string[], leaseName = 'kiln-controller') {
  const cmd = new Command('controller').exitOverride().configureOutput({ writeErr: () => {}, writeOut: () => {} });
  addRuntimeOptions(cmd, { leaseName });
  cmd.action(() => {});
  cmd.parse(args, { from: 'user' });
  return runtimeSettings(cmd);
}

describe('--watch-label-selector', () => {
  it('takes the API server syntax', () => {
    expect(checkWatchSelector('kiln.dev/shard=shard1')).toBe('kiln.dev/shard=shard1');
    expect(checkWatchSelector('!kiln.dev/shard')).toBe('!kiln.dev/shard');
    expect(checkWatchSelector('kiln.dev/shard in (a,b), team=x')).toBe('kiln.dev/shard in (a,b), team=x');
  });

  it.each([
    ['bad selector', /invalid label selector "bad selector": cannot read "bad selector"/],
    ['', /empty/],
    ['app.kubernetes.io/instance=db', /"app.kubernetes.io\/instance" cannot select a shard: kiln sets the app.kubernetes.io\/ labels/],
    ['!applyset.kubernetes.io/part-of', /applyset.kubernetes.io\/ labels are kiln's ApplySet membership/],
    ['kiln.dev/shard=a,kiln.dev/owner-name=x', /kiln.dev\/owner-\* labels/],
  ])('refuses %j, naming it and why', (selector, message) => {
    expect(() => checkWatchSelector(selector)).toThrow(message);
  });

  it('a wrong one stops the flags at parse time (commander: exit 2), naming the selector', () => {
    expect(() => parse(['--watch-label-selector', 'bad selector'])).toThrow(/argument 'bad selector' is invalid\. invalid label selector "bad selector"/);
  });

  it('names one Lease per shard unless --leader-election-id is given', () => {
    expect(parse(['--leader-elect']).leaderElection?.name).toBe('kiln-controller');
    expect(parse(['--leader-elect', '--watch-label-selector', 'kiln.dev/shard=shard1']).leaderElection?.name).toBe('kiln-controller-shard1');
    expect(parse(['--leader-elect', '--watch-label-selector', 'kiln.dev/shard==shard1']).leaderElection?.name).toBe('kiln-controller-shard1');
    expect(parse(['--leader-elect', '--watch-label-selector', '!kiln.dev/shard'], 'kiln-agent').leaderElection?.name).toBe('kiln-agent-unsharded');
    // Any other selector: a hash of it (stable, and a valid Lease name whatever the selector holds).
    const other = parse(['--leader-elect', '--watch-label-selector', 'kiln.dev/shard in (a,b)']).leaderElection?.name;
    expect(other).toMatch(/^kiln-controller-[0-9a-f]{10}$/);
    expect(parse(['--leader-elect', '--watch-label-selector', 'kiln.dev/shard in (a,b)']).leaderElection?.name).toBe(other);
    expect(parse(['--leader-elect', '--watch-label-selector', 'kiln.dev/shard=Upper_Case']).leaderElection?.name).toMatch(/^kiln-controller-[0-9a-f]{10}$/);
    expect(parse(['--leader-elect', '--watch-label-selector', 'kiln.dev/shard=unsharded']).leaderElection?.name).toMatch(/^kiln-controller-[0-9a-f]{10}$/);
    expect(parse(['--leader-elect', '--watch-label-selector', 'kiln.dev/shard=a', '--leader-election-id', 'mine']).leaderElection?.name).toBe('mine');
    expect(parse(['--watch-label-selector', 'kiln.dev/shard=a']).watchLabelSelector).toBe('kiln.dev/shard=a');
    expect(parse([]).watchLabelSelector).toBeUndefined();
  });

  it('git mode: a shard writes under <base-path>-<shard>, the unsharded rest keeps <base-path>', () => {
    expect(shardName('kiln.dev/shard=a')).toBe('a');
    expect(shardDirectorySuffix('kiln.dev/shard=a')).toBe('a');
    expect(shardDirectorySuffix('!kiln.dev/shard')).toBeUndefined();
    const log = () => undefined;
    const sink = (shard?: string) => new GitSink({ repo: '/nonexistent/repo.git', branch: 'main', basePath: 'deploy/clusters', cluster: 'prod', shard }, log);
    expect(sink('a').layout).toEqual({ basePath: 'deploy/clusters-a', cluster: 'prod' });
    expect(sink().layout).toEqual({ basePath: 'deploy/clusters', cluster: 'prod' });
    // Two shards on one machine never share a clone.
    expect(sink('a').writer.workDir).not.toBe(sink('b').writer.workDir);
    expect(sink('a').writer.workDir).not.toBe(sink().writer.workDir);
  });
});

describe('kiln install --shards', () => {
  const find = (objs: K8sObject[], kind: string, name: string) => objs.find((o) => o.kind === kind && o.metadata.name === name) as any; // eslint-disable-line @typescript-eslint/no-explicit-any
  const argsOf = (d: any): string[] => d.spec.template.spec.containers[0].args; // eslint-disable-line @typescript-eslint/no-explicit-any
  const flag = (args: string[], name: string) => (args.includes(name) ? args[args.indexOf(name) + 1] : undefined);

  it('renders one controller and agent Deployment per shard, and the main ones take the unlabelled rest', () => {
    const objs = installObjects({ mode: 'apply', version: '1.2.3', shards: ['shard1', 'shard2'], crds: 'skip' });
    const deployments = objs.filter((o) => o.kind === 'Deployment').map((o) => o.metadata.name);
    expect(deployments).toEqual(['kiln-agent', 'kiln-agent-shard1', 'kiln-agent-shard2', 'kiln-controller', 'kiln-controller-shard1', 'kiln-controller-shard2']);
    for (const c of ['controller', 'agent']) {
      const main = argsOf(find(objs, 'Deployment', `kiln-${c}`));
      expect(flag(main, '--watch-label-selector')).toBe('!kiln.dev/shard');
      expect(flag(main, '--leader-election-id')).toBe(`kiln-${c}`);
      for (const shard of ['shard1', 'shard2']) {
        const d = find(objs, 'Deployment', `kiln-${c}-${shard}`);
        const args = argsOf(d);
        expect(args).toContain('--leader-elect');
        expect(flag(args, '--watch-label-selector')).toBe(`kiln.dev/shard=${shard}`);
        expect(flag(args, '--leader-election-id')).toBe(`kiln-${c}-${shard}`);
        expect(args.filter((a) => a === '--watch-label-selector')).toHaveLength(1);
        // Same identity, own pods: no two Deployments select one pod, each has its metrics Service.
        expect(d.spec.template.spec.serviceAccountName).toBe(`kiln-${c}`);
        expect(d.spec.selector.matchLabels['app.kubernetes.io/component']).toBe(`${c}-${shard}`);
        expect(d.spec.template.metadata.labels['app.kubernetes.io/component']).toBe(`${c}-${shard}`);
        expect(find(objs, 'Service', `kiln-${c}-${shard}-metrics`).spec.selector['app.kubernetes.io/component']).toBe(`${c}-${shard}`);
      }
      expect(find(objs, 'Deployment', `kiln-${c}`).spec.selector.matchLabels['app.kubernetes.io/component']).toBe(c);
      // One Role: the main Lease and every shard's, nothing else.
      expect(find(objs, 'Role', `kiln-${c}-leader-election`).rules).toEqual(leaseRules(`kiln-${c}`, `kiln-${c}-shard1`, `kiln-${c}-shard2`).map((r) => r.rule));
      expect(find(objs, 'Role', `kiln-${c}-leader-election`).rules[1].resourceNames).toEqual([`kiln-${c}`, `kiln-${c}-shard1`, `kiln-${c}-shard2`]);
    }
    expect(objs.filter((o) => o.kind === 'ServiceAccount').map((o) => o.metadata.name)).toEqual(['kiln-agent', 'kiln-controller']);
  });

  it('without --shards, nothing changes: no selector, one Deployment per component', () => {
    const objs = installObjects({ mode: 'apply', version: '1.2.3', crds: 'skip' });
    expect(objs.filter((o) => o.kind === 'Deployment').map((o) => o.metadata.name)).toEqual(['kiln-agent', 'kiln-controller']);
    for (const d of objs.filter((o) => o.kind === 'Deployment')) expect(argsOf(d)).not.toContain('--watch-label-selector');
    expect(installObjects({ mode: 'apply', version: '1.2.3', crds: 'skip', shards: [] })).toEqual(objs);
  });

  it('a namespace-scoped install: the shards run there too, and the Lease Role there names theirs', () => {
    const objs = installObjects({ mode: 'apply', version: '1', namespace: 'team', watchNamespaces: ['team'], shards: ['s'] });
    const args = argsOf(find(objs, 'Deployment', 'kiln-controller-s'));
    expect(flag(args, '--namespace')).toBe('team');
    expect(flag(args, '--watch-label-selector')).toBe('kiln.dev/shard=s');
    expect(find(objs, 'Role', 'kiln-controller-leader-election').rules[1].resourceNames).toEqual(['kiln-controller', 'kiln-controller-s']);
    expect(objs.filter((o) => o.kind.startsWith('Cluster'))).toEqual([]);
  });

  it('git mode and --no-agent: the git controller is sharded, and no agent is rendered', () => {
    const git = { repo: 'https://git.example.com/deploy.git', branch: 'main', cluster: 'prod', tokenSecret: 'kiln-git' };
    const objs = installObjects({ mode: 'git', version: '1', git, shards: ['a'], agent: false, crds: 'skip' });
    expect(objs.filter((o) => o.kind === 'Deployment').map((o) => o.metadata.name)).toEqual(['kiln-controller', 'kiln-controller-a']);
    const args = argsOf(find(objs, 'Deployment', 'kiln-controller-a'));
    expect(flag(args, '--mode')).toBe('git');
    expect(flag(args, '--watch-label-selector')).toBe('kiln.dev/shard=a');
    expect(find(objs, 'Deployment', 'kiln-controller-a').spec.template.spec.volumes.map((v: { name: string }) => v.name)).toContain('git-token');
  });

  it.each([
    [['Shard1'], /"Shard1" is not a shard name/],
    [['a_b'], /"a_b" is not a shard name/],
    [['-a'], /not a shard name/],
    [['a', 'a'], /"a" is given twice/],
    [['unsharded'], /"unsharded" is the name of the resources without the kiln.dev\/shard label/],
    [['x'.repeat(40)], /too long: kiln-controller-x+-metrics would be 63|too long/],
  ])('refuses shards %j', (shards, message) => {
    expect(shardsProblem(shards, 'kiln')).toMatch(message);
    expect(() => installObjects({ mode: 'apply', version: '1', shards, crds: 'skip' })).toThrow(message);
  });

  it('accepts the longest shard name that fits', () => {
    const longest = 'x'.repeat(63 - 'kiln-controller--metrics'.length);
    expect(shardsProblem([longest], 'kiln')).toBeUndefined();
    expect(shardsProblem([longest + 'x'], 'kiln')).toMatch(/too long/);
  });
});
