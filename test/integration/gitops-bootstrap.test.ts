/**
 * `kiln gitops bootstrap --flux` and `--argocd` on the real API server: each
 * output applies (server-side, for real, in a fresh namespace) to a cluster
 * that has only that tool's CRDs, and the other tool's output does not.
 *
 * Flux's CRDs are the real ones, from the source-controller and
 * kustomize-controller Go modules (config/crd/bases, fetched with `go mod
 * download` like the control plane's own modules). Argo CD's module is ~58 MB
 * for one file, so its Application CRD is a small stand-in written here with
 * the real one's group, names, scope, version and the schema of every field
 * kiln prints (its required fields included); kubectl's strict field
 * validation refuses any field the schema does not have.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { connectControlPlane, type ControlPlaneClient } from '../harness/connect.js';
import { ROOT, suffix } from './install-support.js';

const FLUX_MODULES = {
  source: { module: 'github.com/fluxcd/source-controller', version: 'v1.9.6', crd: 'config/crd/bases/source.toolkit.fluxcd.io_gitrepositories.yaml' },
  kustomize: { module: 'github.com/fluxcd/kustomize-controller', version: 'v1.9.6', crd: 'config/crd/bases/kustomize.toolkit.fluxcd.io_kustomizations.yaml' },
};
const FLUX_CRDS = ['gitrepositories.source.toolkit.fluxcd.io', 'kustomizations.kustomize.toolkit.fluxcd.io'];
const ARGO_CRDS = ['applications.argoproj.io'];

/** Argo CD's Application CRD, cut down to what kiln prints (field names and required lists as in argoproj/argo-cd manifests/crds/application-crd.yaml). */
const APPLICATION_CRD = {
  apiVersion: 'apiextensions.k8s.io/v1',
  kind: 'CustomResourceDefinition',
  metadata: { name: 'applications.argoproj.io' },
  spec: {
    group: 'argoproj.io',
    names: { kind: 'Application', listKind: 'ApplicationList', plural: 'applications', singular: 'application', shortNames: ['app', 'apps'] },
    scope: 'Namespaced',
    versions: [
      {
        name: 'v1alpha1',
        served: true,
        storage: true,
        subresources: {},
        schema: {
          openAPIV3Schema: {
            type: 'object',
            required: ['metadata', 'spec'],
            properties: {
              apiVersion: { type: 'string' },
              kind: { type: 'string' },
              metadata: { type: 'object' },
              spec: {
                type: 'object',
                required: ['destination', 'project'],
                properties: {
                  project: { type: 'string' },
                  destination: { type: 'object', properties: { name: { type: 'string' }, namespace: { type: 'string' }, server: { type: 'string' } } },
                  source: {
                    type: 'object',
                    required: ['repoURL'],
                    properties: { repoURL: { type: 'string' }, path: { type: 'string' }, targetRevision: { type: 'string' }, chart: { type: 'string' } },
                  },
                  syncPolicy: {
                    type: 'object',
                    properties: {
                      automated: { type: 'object', properties: { allowEmpty: { type: 'boolean' }, enabled: { type: 'boolean' }, prune: { type: 'boolean' }, selfHeal: { type: 'boolean' } } },
                      syncOptions: { type: 'array', items: { type: 'string' } },
                    },
                  },
                },
              },
              status: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true },
            },
          },
        },
      },
    ],
  },
};

let cp: ControlPlaneClient;
const id = suffix();
const fluxNs = `kiln-bootstrap-flux-${id}`;
const argoNs = `kiln-bootstrap-argocd-${id}`;
const scratch = mkdtempSync(join(tmpdir(), 'kiln-bootstrap-'));
const REPO = 'https://git.example.com/platform/deploy.git';

/** The module's directory in the Go module cache (downloaded once, then reused). */
function goModuleDir(module: string, version: string): string {
  const r = spawnSync('go', ['mod', 'download', '-json', `${module}@${version}`], {
    cwd: scratch,
    encoding: 'utf8',
    timeout: 300_000,
    env: { ...process.env, GOFLAGS: '-mod=mod', GO111MODULE: 'on' },
  });
  const info = JSON.parse(r.stdout || '{}') as { Dir?: string; Error?: string };
  if (!info.Dir) throw new Error(`go mod download ${module}@${version}: ${info.Error ?? r.stderr}`);
  return info.Dir;
}

function bootstrap(args: string[]): { status: number | null; stdout: string; stderr: string } {
  return spawnSync(process.execPath, [join(ROOT, 'bin/kiln.js'), 'gitops', 'bootstrap', '--repo', REPO, ...args], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
}

async function removeCrds(names: string[]): Promise<void> {
  await cp.kubectlOk(['delete', 'crd', ...names, '--ignore-not-found', '--wait=true', '--timeout=60s'], { timeoutMs: 90_000 });
}

async function apply(yaml: string, dryRun = false): Promise<{ code: number; stdout: string; stderr: string }> {
  const r = await cp.kubectl(['apply', '--server-side', '--field-manager', 'kiln-bootstrap-test', ...(dryRun ? ['--dry-run=server'] : []), '-f', '-'], { input: yaml });
  return { code: r.code, stdout: r.stdout, stderr: r.stderr };
}

beforeAll(async () => {
  cp = connectControlPlane(inject('controlPlane'));
  // Neither tool's CRDs to begin with (a run cut short may have left some).
  await removeCrds([...FLUX_CRDS, ...ARGO_CRDS]);
  for (const ns of [fluxNs, argoNs]) await cp.kubectlOk(['create', 'namespace', ns]);
}, 180_000);

afterAll(async () => {
  await cp?.kubectl(['delete', 'namespace', fluxNs, argoNs, '--wait=false']);
  if (cp) await removeCrds([...FLUX_CRDS, ...ARGO_CRDS]).catch(() => undefined);
  rmSync(scratch, { recursive: true, force: true });
}, 120_000);

describe("kiln gitops bootstrap output on a cluster with one tool's CRDs", () => {
  it("--flux applies where only Flux's CRDs (the real ones) exist; --argocd does not", async () => {
    const files = Object.values(FLUX_MODULES).map(({ module, version, crd }) => join(goModuleDir(module, version), crd));
    await cp.installCrds(files);
    const flux = bootstrap(['--flux', '--namespace', fluxNs, '--cluster', 'prod', '--secret-ref', 'deploy-key']);
    expect(flux.status, flux.stderr).toBe(0);
    const dry = await apply(flux.stdout, true);
    expect(dry.code, dry.stderr).toBe(0);
    const real = await apply(flux.stdout);
    expect(real.code, real.stderr).toBe(0);
    expect(real.stderr).toBe(''); // no warning: every field is one Flux's schema has
    expect(real.stdout.trim().split('\n').sort()).toEqual([
      'gitrepository.source.toolkit.fluxcd.io/kiln-prod serverside-applied',
      'kustomization.kustomize.toolkit.fluxcd.io/kiln-prod serverside-applied',
    ]);
    const ks = JSON.parse(await cp.kubectlOk(['get', 'kustomization.kustomize.toolkit.fluxcd.io', 'kiln-prod', '-n', fluxNs, '-o', 'json'])) as { spec: Record<string, unknown> };
    expect(ks.spec).toMatchObject({ path: './clusters/prod', prune: true, sourceRef: { kind: 'GitRepository', name: 'kiln-prod' } });
    const repo = JSON.parse(await cp.kubectlOk(['get', 'gitrepository.source.toolkit.fluxcd.io', 'kiln-prod', '-n', fluxNs, '-o', 'json'])) as { spec: Record<string, unknown> };
    expect(repo.spec).toMatchObject({ url: REPO, ref: { branch: 'main' }, secretRef: { name: 'deploy-key' } });
    // Argo CD's output needs Argo CD's CRD: not here.
    const argo = bootstrap(['--argocd', '--argocd-namespace', fluxNs, '--cluster', 'prod']);
    expect(argo.status, argo.stderr).toBe(0);
    const refused = await apply(argo.stdout, true);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/no matches for kind "Application" in version "argoproj\.io\/v1alpha1"/);
  }, 300_000);

  it("--argocd applies where only Argo CD's Application CRD exists; --flux does not", async () => {
    await removeCrds(FLUX_CRDS);
    const crdFile = join(scratch, 'application-crd.json');
    writeFileSync(crdFile, JSON.stringify(APPLICATION_CRD));
    await cp.installCrds([crdFile]);
    const argo = bootstrap(['--argocd', '--argocd-namespace', argoNs, '--cluster', 'prod', '--project', 'platform']);
    expect(argo.status, argo.stderr).toBe(0);
    const dry = await apply(argo.stdout, true);
    expect(dry.code, dry.stderr).toBe(0);
    const real = await apply(argo.stdout);
    expect(real.code, real.stderr).toBe(0);
    expect(real.stderr).toBe('');
    expect(real.stdout.trim()).toBe('application.argoproj.io/kiln-prod serverside-applied');
    const app = JSON.parse(await cp.kubectlOk(['get', 'application.argoproj.io', 'kiln-prod', '-n', argoNs, '-o', 'json'])) as { spec: Record<string, unknown> };
    expect(app.spec).toEqual({
      project: 'platform',
      source: { repoURL: REPO, targetRevision: 'main', path: 'clusters/prod' },
      destination: { server: 'https://kubernetes.default.svc' },
      syncPolicy: { automated: { prune: true, selfHeal: true } },
    });
    const flux = bootstrap(['--flux', '--namespace', argoNs, '--cluster', 'prod']);
    expect(flux.status, flux.stderr).toBe(0);
    const refused = await apply(flux.stdout, true);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/no matches for kind "(GitRepository|Kustomization)"/);
  }, 300_000);

  it('with neither flag prints nothing to apply and exits 2 naming both', () => {
    const r = bootstrap(['--cluster', 'prod']);
    expect(r.status).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain('--flux');
    expect(r.stderr).toContain('--argocd');
  });
});
