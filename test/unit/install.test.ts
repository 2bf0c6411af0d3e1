import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { installObjects, type InstallOptions } from '../../install/install.js';
import { AGENT_RULES, clusterRules, CONTROLLER_APPLY_RULES, CONTROLLER_GIT_RULES, FLUX_RULES, leaseRules, TOKEN_RULES } from '../../install/rbac.js';
import type { K8sObject } from '../../kinds/types.js';
import { fromYaml, parseYamlStream } from '../../lib/yaml.js';

const root = join(import.meta.dirname, '..', '..');
const git = { repo: 'https://git.example.com/platform/deploy.git', branch: 'main', cluster: 'prod', tokenSecret: 'kiln-git' };
const apply = (o: Partial<InstallOptions> = {}) => installObjects({ mode: 'apply', version: '1.2.3', ...o });
const find = (objs: K8sObject[], kind: string, name: string) => objs.find((o) => o.kind === kind && o.metadata.name === name) as any; // eslint-disable-line @typescript-eslint/no-explicit-any
const helpOf = (command: string) => execFileSync(process.execPath, [join(root, 'bin/kiln.js'), command, '--help'], { encoding: 'utf8' });

describe('install manifests', () => {
  it('hold the CRDs exactly as crds/ has them, then the namespace, identities, RBAC and Deployments, in apply order', () => {
    const objs = apply();
    const crdFiles = readdirSync(join(root, 'crds'))
      .filter((f) => f.endsWith('.yaml'))
      .sort();
    const crds = objs.filter((o) => o.kind === 'CustomResourceDefinition');
    expect(crds.map((c) => c.metadata.name).sort()).toEqual(crdFiles.map((f) => (fromYaml(readFileSync(join(root, 'crds', f), 'utf8')) as K8sObject).metadata.name).sort());
    for (const f of crdFiles) {
      const want = fromYaml(readFileSync(join(root, 'crds', f), 'utf8')) as K8sObject;
      expect(find(objs, 'CustomResourceDefinition', want.metadata.name)).toEqual(want);
    }
    expect(objs.map((o) => `${o.kind}/${o.metadata.name}`).filter((k) => !k.startsWith('CustomResourceDefinition/'))).toEqual([
      'Namespace/kiln-system',
      'ServiceAccount/kiln-agent',
      'ServiceAccount/kiln-controller',
      'ClusterRole/kiln-agent',
      'ClusterRole/kiln-controller',
      'ClusterRole/kiln-controller-serviceaccount-tokens',
      'ClusterRoleBinding/kiln-agent',
      'ClusterRoleBinding/kiln-controller',
      'Role/kiln-agent-leader-election',
      'Role/kiln-controller-leader-election',
      'RoleBinding/kiln-agent-leader-election',
      'RoleBinding/kiln-controller-leader-election',
      'Service/kiln-agent-metrics',
      'Service/kiln-controller-metrics',
      'Deployment/kiln-agent',
      'Deployment/kiln-controller',
    ]);
    expect(objs.filter((o) => o.kind === 'Secret')).toEqual([]);
  });

  it('are deterministic', () => {
    expect(JSON.stringify(apply())).toBe(JSON.stringify(apply()));
    expect(JSON.stringify(installObjects({ mode: 'git', version: '1', git }))).toBe(JSON.stringify(installObjects({ mode: 'git', version: '1', git })));
  });

  it('RBAC: no wildcard, Secrets for the agent only, the git-mode controller touches no rendered kind', () => {
    for (const rules of [CONTROLLER_APPLY_RULES, CONTROLLER_GIT_RULES, AGENT_RULES]) {
      for (const { rule } of rules) {
        for (const v of [...rule.apiGroups, ...rule.resources, ...rule.verbs]) expect(v).not.toContain('*');
        expect(rule.verbs.length).toBeGreaterThan(0);
      }
      expect(new Set(rules.map((r) => r.id)).size).toBe(rules.length);
    }
    const secretsIn = (rules: typeof AGENT_RULES) => rules.some((r) => r.rule.resources.includes('secrets'));
    expect(secretsIn(CONTROLLER_APPLY_RULES)).toBe(false);
    expect(secretsIn(CONTROLLER_GIT_RULES)).toBe(false);
    expect(secretsIn(AGENT_RULES)).toBe(true);
    expect(CONTROLLER_GIT_RULES.flatMap((r) => r.rule.apiGroups)).toEqual(['kiln.dev', 'kiln.dev', '', '']);
    // Claims are never pruned.
    expect(CONTROLLER_APPLY_RULES.find((r) => r.rule.resources.includes('persistentvolumeclaims'))!.rule.verbs).not.toContain('delete');
    const objs = installObjects({ mode: 'git', version: '1', git });
    expect(find(objs, 'ClusterRole', 'kiln-controller').rules).toEqual(CONTROLLER_GIT_RULES.map((r) => r.rule));
    const lease = find(objs, 'Role', 'kiln-controller-leader-election');
    expect(lease.metadata.namespace).toBe('kiln-system');
    expect(lease.rules).toEqual([
      { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['create'] },
      { apiGroups: ['coordination.k8s.io'], resources: ['leases'], resourceNames: ['kiln-controller'], verbs: ['get', 'update'] },
    ]);
  });

  it('TokenRequest only per namespace: no cluster-wide binding grants serviceaccounts/token; --token-namespace binds it there', () => {
    const tokens = (rules: { resources: string[] }[]) => rules.some((r) => r.resources.includes('serviceaccounts/token'));
    for (const rules of [CONTROLLER_APPLY_RULES, CONTROLLER_GIT_RULES, AGENT_RULES]) expect(tokens(rules.map((r) => r.rule))).toBe(false);
    expect(TOKEN_RULES.map((r) => r.rule)).toEqual([{ apiGroups: [''], resources: ['serviceaccounts/token'], verbs: ['create'] }]);
    const plain = apply();
    const bound = plain.filter((o) => o.kind === 'ClusterRoleBinding').map((b) => (b as any).roleRef.name); // eslint-disable-line @typescript-eslint/no-explicit-any
    expect(bound).not.toContain('kiln-controller-serviceaccount-tokens');
    for (const name of bound) expect(tokens(find(plain, 'ClusterRole', name).rules)).toBe(false);
    expect(plain.filter((o) => o.kind === 'RoleBinding' && o.metadata.name === 'kiln-controller-serviceaccount-tokens')).toEqual([]);
    const objs = apply({ tokenNamespaces: ['team-b', 'team-a', 'team-b'] });
    const bindings = objs.filter((o) => o.kind === 'RoleBinding' && o.metadata.name === 'kiln-controller-serviceaccount-tokens') as any[]; // eslint-disable-line @typescript-eslint/no-explicit-any
    expect(bindings.map((b) => b.metadata.namespace)).toEqual(['team-a', 'team-b']);
    for (const b of bindings) {
      expect(b.roleRef).toEqual({ apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'kiln-controller-serviceaccount-tokens' });
      expect(b.subjects).toEqual([{ kind: 'ServiceAccount', name: 'kiln-controller', namespace: 'kiln-system' }]);
    }
    // Git mode requests no token at all.
    expect(installObjects({ mode: 'git', version: '1', git, tokenNamespaces: ['team-a'] }).filter((o) => o.metadata.name.includes('serviceaccount-tokens'))).toEqual([]);
  });

  it('agentNamespaces: the agent serves only them and its Secret rights are bound there only', () => {
    const secrets = (rules: { resources: string[] }[]) => rules.some((r) => r.resources.includes('secrets'));
    // Default: every namespace, Secret rights in the cluster-wide ClusterRole.
    expect(secrets(find(apply(), 'ClusterRole', 'kiln-agent').rules)).toBe(true);
    const objs = apply({ agentNamespaces: ['shop', 'billing', 'shop'] });
    expect(secrets(find(objs, 'ClusterRole', 'kiln-agent').rules)).toBe(false);
    expect(find(objs, 'ClusterRole', 'kiln-agent-secrets').rules).toEqual(AGENT_RULES.filter((r) => r.id === 'secrets').map((r) => r.rule));
    const bindings = objs.filter((o) => o.kind === 'RoleBinding' && o.metadata.name === 'kiln-agent-secrets') as any[]; // eslint-disable-line @typescript-eslint/no-explicit-any
    expect(bindings.map((b) => b.metadata.namespace)).toEqual(['billing', 'shop']);
    for (const b of bindings) expect(b.subjects).toEqual([{ kind: 'ServiceAccount', name: 'kiln-agent', namespace: 'kiln-system' }]);
    expect(objs.filter((o) => o.kind === 'ClusterRoleBinding' && (o as any).roleRef.name === 'kiln-agent-secrets')).toEqual([]); // eslint-disable-line @typescript-eslint/no-explicit-any
    const args = find(objs, 'Deployment', 'kiln-agent').spec.template.spec.containers[0].args as string[];
    expect(args.slice(args.indexOf('--namespace'), args.indexOf('--namespace') + 2)).toEqual(['--namespace', 'billing,shop']);
  });

  it('omitRules drops a rule or one verb of it', () => {
    const objs = apply({ omitRules: ['controller-apply:jobs', 'controller-apply:core-children:delete', 'agent:secrets'] });
    const rules = find(objs, 'ClusterRole', 'kiln-controller').rules as { resources: string[]; verbs: string[] }[];
    expect(rules.some((r) => r.resources.includes('jobs'))).toBe(false);
    expect(rules.find((r) => r.resources.includes('services'))!.verbs).toEqual(['create', 'get', 'list', 'patch', 'watch']);
    expect((find(objs, 'ClusterRole', 'kiln-agent').rules as { resources: string[] }[]).some((r) => r.resources.includes('secrets'))).toBe(false);
  });

  it('Deployments: non-root, read-only root filesystem, no privilege escalation, no capabilities, /tmp, probes, resources', () => {
    for (const objs of [apply(), installObjects({ mode: 'git', version: '1', git })]) {
      for (const name of ['kiln-controller', 'kiln-agent']) {
        const d = find(objs, 'Deployment', name);
        const pod = d.spec.template.spec;
        const c = pod.containers[0];
        expect(pod.serviceAccountName).toBe(name);
        expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } });
        expect(c.securityContext).toEqual({ allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, runAsNonRoot: true, privileged: false, capabilities: { drop: ['ALL'] } });
        expect(c.volumeMounts).toContainEqual({ name: 'tmp', mountPath: '/tmp' });
        expect(pod.volumes).toContainEqual({ name: 'tmp', emptyDir: { sizeLimit: '1Gi' } });
        expect(c.livenessProbe.httpGet).toEqual({ path: '/healthz', port: 'health', scheme: 'HTTP' });
        expect(c.readinessProbe.httpGet).toEqual({ path: '/readyz', port: 'health', scheme: 'HTTP' });
        expect(c.ports).toEqual([
          { name: 'metrics', containerPort: 8080, protocol: 'TCP' },
          { name: 'health', containerPort: 8081, protocol: 'TCP' },
        ]);
        expect(c.resources.requests.cpu).toBeDefined();
        expect(c.resources.requests.memory).toBeDefined();
        expect(c.resources.limits.memory).toBeDefined();
        // kubebuilder's flags: replicas stand by on the Lease; the ports the Service and probes name.
        expect(c.args).toEqual(expect.arrayContaining(['--leader-elect', '--leader-election-namespace', 'kiln-system', '--log-level', 'info']));
        expect(c.args.join(' ')).toContain('--metrics-bind-address :8080 --health-probe-bind-address :8081');
      }
    }
    expect(find(apply({ image: 'registry.example.com/kiln:1.2.3' }), 'Deployment', 'kiln-controller').spec.template.spec.containers[0].image).toBe('registry.example.com/kiln:1.2.3');
    expect(find(apply(), 'Deployment', 'kiln-controller').spec.template.spec.containers[0].image).toBe('kiln:1.2.3');
  });

  it('git mode: repository settings as flags, the token as a file from a Secret the operator creates', () => {
    const objs = installObjects({ mode: 'git', version: '1', git: { ...git, basePath: 'clusters', cluster: 'prod-eu', review: true, authScheme: 'Bearer' } });
    const pod = find(objs, 'Deployment', 'kiln-controller').spec.template.spec;
    const c = pod.containers[0];
    expect(c.args).toEqual(
      expect.arrayContaining(['controller', '--mode', 'git', '--repo', git.repo, '--branch', 'main', '--cluster', 'prod-eu', '--git-token-file', '/var/run/secrets/kiln/git/token', '--review']),
    );
    expect(pod.volumes).toContainEqual({ name: 'git-token', secret: { secretName: 'kiln-git', defaultMode: 0o440, items: [{ key: 'token', path: 'token' }] } });
    expect(c.volumeMounts).toContainEqual({ name: 'git-token', mountPath: '/var/run/secrets/kiln/git', readOnly: true });
    expect(c.env).toContainEqual({ name: 'KILN_GIT_AUTH_SCHEME', value: 'Bearer' });
    expect(JSON.stringify(objs.filter((o) => o.kind !== 'CustomResourceDefinition'))).not.toMatch(/password|ghp_|glpat-/i);
    expect(() => installObjects({ mode: 'git', version: '1' })).toThrow(/repository URL, branch and cluster name/);
  });

  it('git mode --flux: the Kustomization as a flag; read and fetch rights in its namespace only, never cluster-wide', () => {
    const flux = (rules: { apiGroups: string[] }[]) => rules.some((r) => r.apiGroups.some((g) => g.endsWith('.fluxcd.io')));
    expect(flux(CONTROLLER_GIT_RULES.map((r) => r.rule))).toBe(false);
    const objs = installObjects({ mode: 'git', version: '1', git: { ...git, flux: 'flux-system/kiln-prod' } });
    expect(find(objs, 'Deployment', 'kiln-controller').spec.template.spec.containers[0].args).toEqual(expect.arrayContaining(['--flux', 'flux-system/kiln-prod']));
    for (const b of objs.filter((o) => o.kind === 'ClusterRoleBinding') as any[]) expect(flux(find(objs, 'ClusterRole', b.roleRef.name).rules)).toBe(false); // eslint-disable-line @typescript-eslint/no-explicit-any
    expect(find(objs, 'ClusterRole', 'kiln-controller-flux').rules).toEqual([
      { apiGroups: ['kustomize.toolkit.fluxcd.io'], resources: ['kustomizations'], verbs: ['get', 'list', 'watch'] },
      { apiGroups: ['source.toolkit.fluxcd.io'], resources: ['gitrepositories'], verbs: ['patch'] },
    ]);
    const bindings = objs.filter((o) => o.kind === 'RoleBinding' && o.metadata.name === 'kiln-controller-flux');
    expect(bindings.map((b) => b.metadata.namespace)).toEqual(['flux-system']);
    expect(objs.some((o) => o.metadata.name === 'kiln-controller-flux' && o.kind === 'ClusterRoleBinding')).toBe(false);
    expect(() => installObjects({ mode: 'git', version: '1', git: { ...git, flux: 'flux-system' } })).toThrow(/--flux must be <namespace>\/<kustomization>/);
  });

  it('every flag a Deployment passes is a flag of its command', () => {
    const objs = installObjects({
      mode: 'git',
      version: '1',
      git: { ...git, review: true, pullRequestApi: 'none', author: 'a <a@x>', committer: 'c <c@x>', debounceMs: 1, maxWaitMs: 2, flux: 'flux-system/kiln-prod' },
    });
    for (const [name, command] of [
      ['kiln-controller', 'controller'],
      ['kiln-agent', 'agent'],
    ] as const) {
      const help = helpOf(command);
      for (const arg of find(objs, 'Deployment', name).spec.template.spec.containers[0].args as string[]) {
        if (arg.startsWith('--')) expect(help, `${command} ${arg}`).toContain(arg);
      }
    }
    for (const arg of find(apply(), 'Deployment', 'kiln-controller').spec.template.spec.containers[0].args as string[]) {
      if (arg.startsWith('--')) expect(helpOf('controller')).toContain(arg);
    }
  });

  it('no Deployment passes a deprecated flag', () => {
    const objs = [...apply(), ...installObjects({ mode: 'git', version: '1', git: { ...git, review: true } })];
    for (const [name, command] of [
      ['kiln-controller', 'controller'],
      ['kiln-agent', 'agent'],
    ] as const) {
      const help = helpOf(command);
      const deprecated = [...help.slice(help.indexOf('Deprecated options')).matchAll(/^ {2}(--[\w-]+)/gm)].map((m) => m[1]);
      expect(deprecated, command).toEqual(expect.arrayContaining(['--no-leader-elect', '--metrics-port', '--health-port']));
      for (const d of objs.filter((o) => o.kind === 'Deployment' && o.metadata.name === name)) {
        const args = (d as unknown as { spec: { template: { spec: { containers: { args: string[] }[] } } } }).spec.template.spec.containers[0]!.args;
        expect(
          args.filter((a) => deprecated.includes(a)),
          name,
        ).toEqual([]);
      }
    }
  });

  it('kiln install prints them; --crds skip|only, --no-agent, --name', () => {
    const run = (...args: string[]) => parseYamlStream(execFileSync(process.execPath, [join(root, 'bin/kiln.js'), 'install', ...args], { encoding: 'utf8' })).map((d) => d.value as K8sObject);
    const all = run();
    expect(all.map((o) => `${o.kind}/${o.metadata.name}`)).toEqual(apply({ version: JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).version }).map((o) => `${o.kind}/${o.metadata.name}`));
    expect(run('--crds', 'only').every((o) => o.kind === 'CustomResourceDefinition')).toBe(true);
    expect(run('--crds', 'skip', '--no-agent').map((o) => o.kind)).not.toContain('CustomResourceDefinition');
    expect(run('--crds', 'skip', '--no-agent').map((o) => o.metadata.name)).not.toContain('kiln-agent');
    const named = run('--crds', 'skip', '--name', 'k2', '--namespace', 'other');
    expect(find(named, 'Deployment', 'k2-controller').metadata.namespace).toBe('other');
    expect(find(named, 'Deployment', 'k2-controller').spec.template.spec.containers[0].args).toEqual(
      expect.arrayContaining(['--leader-election-id', 'k2-controller', '--leader-election-namespace', 'other']),
    );
  });

  describe('namespace-scoped (watchNamespaces, kiln install --namespaced -n)', () => {
    const CLUSTER_SCOPED = ['CustomResourceDefinition', 'Namespace', 'ClusterRole', 'ClusterRoleBinding'];
    const rulesOf = (o: K8sObject) => (o as unknown as { rules: unknown[] }).rules;
    const argsOf = (objs: K8sObject[], name: string) => find(objs, 'Deployment', name).spec.template.spec.containers[0].args as string[];

    it('apply mode: a Role and RoleBinding per watched namespace from the same rule lists, the Lease in the install namespace, nothing cluster-scoped', () => {
      const objs = apply({ namespace: 'kiln-ops', watchNamespaces: ['team-b', 'team-a', 'team-b'], tokenNamespaces: ['team-a'] });
      expect(objs.filter((o) => CLUSTER_SCOPED.includes(o.kind))).toEqual([]);
      expect(objs.map((o) => `${o.kind}/${o.metadata.namespace}/${o.metadata.name}`)).toEqual([
        'ServiceAccount/kiln-ops/kiln-agent',
        'ServiceAccount/kiln-ops/kiln-controller',
        'Role/kiln-ops/kiln-agent-leader-election',
        'Role/kiln-ops/kiln-controller-leader-election',
        'Role/team-a/kiln-agent',
        'Role/team-a/kiln-controller',
        'Role/team-a/kiln-controller-serviceaccount-tokens',
        'Role/team-b/kiln-agent',
        'Role/team-b/kiln-controller',
        'RoleBinding/kiln-ops/kiln-agent-leader-election',
        'RoleBinding/kiln-ops/kiln-controller-leader-election',
        'RoleBinding/team-a/kiln-agent',
        'RoleBinding/team-a/kiln-controller',
        'RoleBinding/team-a/kiln-controller-serviceaccount-tokens',
        'RoleBinding/team-b/kiln-agent',
        'RoleBinding/team-b/kiln-controller',
        'Service/kiln-ops/kiln-agent-metrics',
        'Service/kiln-ops/kiln-controller-metrics',
        'Deployment/kiln-ops/kiln-agent',
        'Deployment/kiln-ops/kiln-controller',
      ]);
      // The very lists the cluster-wide install binds: a rule added there is granted here too.
      for (const ns of ['team-a', 'team-b']) {
        const role = (n: string) => objs.find((o) => o.kind === 'Role' && o.metadata.namespace === ns && o.metadata.name === n)!;
        expect(rulesOf(role('kiln-controller'))).toEqual(CONTROLLER_APPLY_RULES.map((r) => r.rule));
        expect(rulesOf(role('kiln-agent'))).toEqual(AGENT_RULES.map((r) => r.rule));
      }
      expect(rulesOf(objs.find((o) => o.kind === 'Role' && o.metadata.name === 'kiln-controller-serviceaccount-tokens')!)).toEqual(TOKEN_RULES.map((r) => r.rule));
      expect(rulesOf(objs.find((o) => o.kind === 'Role' && o.metadata.name === 'kiln-controller-leader-election')!)).toEqual(leaseRules('kiln-controller').map((r) => r.rule));
      const bindings = objs.filter((o) => o.kind === 'RoleBinding') as unknown as { metadata: { name: string }; roleRef: unknown; subjects: unknown }[];
      for (const b of bindings) {
        expect(b.roleRef).toEqual({ apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: b.metadata.name });
        expect(b.subjects).toEqual([{ kind: 'ServiceAccount', name: b.metadata.name.startsWith('kiln-agent') ? 'kiln-agent' : 'kiln-controller', namespace: 'kiln-ops' }]);
      }
      for (const name of ['kiln-controller', 'kiln-agent']) expect(argsOf(objs, name)).toEqual(expect.arrayContaining(['--namespace', 'team-a,team-b', '--leader-election-namespace', 'kiln-ops']));
      // omitRules works on the Roles as on the ClusterRoles.
      const without = apply({ watchNamespaces: ['team-a'], omitRules: ['controller-apply:jobs'] });
      expect(JSON.stringify(rulesOf(without.find((o) => o.kind === 'Role' && o.metadata.name === 'kiln-controller')!))).not.toContain('"jobs"');
    });

    it('git mode: the cluster identity in a Role in kube-system (a GET of a Namespace is authorized in it), Flux in its namespace', () => {
      const objs = installObjects({ mode: 'git', version: '1', agent: false, git: { ...git, flux: 'flux-system/kiln' }, watchNamespaces: ['team-a'] });
      expect(objs.filter((o) => CLUSTER_SCOPED.includes(o.kind))).toEqual([]);
      const role = (ns: string, n: string) => rulesOf(objs.find((o) => o.kind === 'Role' && o.metadata.namespace === ns && o.metadata.name === n)!);
      const identity = CONTROLLER_GIT_RULES.filter((r) => r.id === 'cluster-identity');
      expect(role('team-a', 'kiln-controller')).toEqual(CONTROLLER_GIT_RULES.filter((r) => r.id !== 'cluster-identity').map((r) => r.rule));
      expect(role('kube-system', 'kiln-controller-cluster-identity')).toEqual(identity.map((r) => r.rule));
      expect(role('flux-system', 'kiln-controller-flux')).toEqual(FLUX_RULES.map((r) => r.rule));
      expect(argsOf(objs, 'kiln-controller')).toEqual(expect.arrayContaining(['--namespace', 'team-a']));
      // Every rule of the cluster-wide form is granted somewhere.
      const granted = objs.filter((o) => o.kind === 'Role').flatMap((o) => rulesOf(o));
      for (const r of clusterRules('controller-git')) expect(granted).toContainEqual(r.rule);
    });

    it('refuses what it cannot render: CRDs, --agent-namespace, a token namespace it does not watch', () => {
      expect(() => apply({ watchNamespaces: ['a'], crds: 'include' })).toThrow(/no CRDs.*--crds only/);
      expect(apply({ watchNamespaces: ['a'], crds: 'only' }).every((o) => o.kind === 'CustomResourceDefinition')).toBe(true);
      expect(() => apply({ watchNamespaces: ['a'], agentNamespaces: ['a'] })).toThrow(/--agent-namespace/);
      expect(() => apply({ watchNamespaces: ['a'], tokenNamespaces: ['b'] })).toThrow(/--token-namespace b: not watched/);
    });

    it('kiln install --namespaced -n: runs in the first -n unless --namespace, says what it leaves out; -n alone and --crds include are refused', () => {
      const kiln = (...args: string[]) => execFileSync(process.execPath, [join(root, 'bin/kiln.js'), 'install', ...args], { encoding: 'utf8' });
      const text = kiln('--namespaced', '-n', 'team-a', '-n', 'team-b');
      expect(text).toMatch(/^# kiln, namespace-scoped.*watches team-a, team-b; runs in team-a/);
      expect(text).toContain('kiln install --crds only');
      const objs = parseYamlStream(text).map((d) => d.value as K8sObject);
      expect(objs.filter((o) => CLUSTER_SCOPED.includes(o.kind))).toEqual([]);
      expect(find(objs, 'Deployment', 'kiln-controller').metadata.namespace).toBe('team-a');
      expect(
        find(
          parseYamlStream(kiln('--namespaced', '-n', 'team-a', '--namespace', 'ops')).map((d) => d.value as K8sObject),
          'Deployment',
          'kiln-agent',
        ).metadata.namespace,
      ).toBe('ops');
      const fails = (...args: string[]) => {
        try {
          kiln(...args);
        } catch (err) {
          return (err as { status: number; stderr: string }).stderr;
        }
        throw new Error(`kiln install ${args.join(' ')} succeeded`);
      };
      expect(fails('-n', 'team-a')).toMatch(/add --namespaced/);
      expect(fails('--namespaced')).toMatch(/needs the namespaces to watch/);
      expect(fails('--namespaced', '-n', 'a', '--crds', 'include')).toMatch(/no CRDs/);
      expect(fails('--namespaced', '-n', 'a', '--token-namespace', 'b')).toMatch(/--token-namespace b/);
    });
  });
});
