/**
 * `--flux <namespace>/<name>`: git mode follows the Flux Kustomization that
 * applies kiln's directory.
 *
 * - After each push to the branch Flux reads, kiln asks Flux to fetch at once
 *   (the `reconcile.fluxcd.io/requestedAt` annotation on the Kustomization's
 *   GitRepository, which is what `flux reconcile source git` writes), so a
 *   change reaches the cluster in seconds rather than at the next interval.
 *   In review mode kiln pushes to the review branch, which Flux does not read:
 *   nothing to ask then.
 * - The Kustomization's status is cached (a watch of its namespace); when it
 *   changes, every resource is reconciled again and its status says whether
 *   Flux applied its commit (gitops/flux.ts).
 * Flux not installed yet (its API not served) is not an error: the watch is
 * tried again every 30 s, and statuses say kiln is waiting for Flux.
 */
import { fluxVerdict, type FluxRef, type FluxVerdict, type KustomizationStatus } from '../../gitops/flux.js';

export { parseFluxRef, type FluxRef } from '../../gitops/flux.js';
import type { KubeApi } from '../../kube/client.js';
import { Informer, type KubeObject } from '../../kube/informer.js';
import { registerKind } from '../../kube/resources.js';
import type { Log } from '../../lib/log.js';

export const KUSTOMIZATION = { apiVersion: 'kustomize.toolkit.fluxcd.io/v1', kind: 'Kustomization' };
const GIT_REPOSITORY = { apiVersion: 'source.toolkit.fluxcd.io/v1', kind: 'GitRepository' };
const REQUESTED_AT = 'reconcile.fluxcd.io/requestedAt';
registerKind(KUSTOMIZATION.apiVersion, KUSTOMIZATION.kind, { plural: 'kustomizations', namespaced: true });
registerKind(GIT_REPOSITORY.apiVersion, GIT_REPOSITORY.kind, { plural: 'gitrepositories', namespaced: true });
type Kustomization = KubeObject & { spec?: { sourceRef?: { kind?: string; name?: string; namespace?: string } }; status?: KustomizationStatus };

export class FluxFollower {
  private informer: Informer | undefined;
  private retry: NodeJS.Timeout | undefined;
  private stopped = false;
  readonly display: string;

  constructor(
    private readonly client: KubeApi,
    readonly ref: FluxRef,
    private readonly log: Log,
    /** Called when the Kustomization (its status) changes. */
    private readonly onChange: () => void,
  ) {
    this.display = `${ref.namespace}/${ref.name}`;
  }

  start(): void {
    if (this.stopped || this.informer) return;
    const inf = new Informer(this.client, { ...KUSTOMIZATION, namespace: this.ref.namespace, resyncSeconds: 0, log: this.log });
    inf.on((_event, obj) => {
      if (obj.metadata.name === this.ref.name) this.onChange();
    });
    this.informer = inf;
    inf.start().then(
      () => this.onChange(),
      (err: unknown) => {
        inf.stop();
        this.informer = undefined;
        if (this.stopped) return;
        this.log('warn', 'git mode: cannot watch the Flux Kustomization; trying again in 30 s', { kustomization: this.display, error: err instanceof Error ? err.message : String(err) });
        this.retry = setTimeout(() => this.start(), 30_000);
      },
    );
  }

  stop(): void {
    this.stopped = true;
    if (this.retry) clearTimeout(this.retry);
    this.informer?.stop();
  }

  private get kustomization(): Kustomization | undefined {
    return this.informer?.get(this.ref.namespace, this.ref.name);
  }

  /** What Flux did with `commit`. */
  verdict(commit: string, isAncestor: (a: string, b: string) => Promise<boolean | undefined>): Promise<FluxVerdict> {
    const k = this.kustomization;
    return fluxVerdict(commit, k?.status, isAncestor, this.display);
  }

  /** Asks Flux to fetch the Kustomization's source now; failures are logged, never thrown (the interval still applies). */
  async requestFetch(): Promise<void> {
    const source = this.kustomization?.spec?.sourceRef;
    if (!source?.name || (source.kind && source.kind !== 'GitRepository')) return;
    const ref = { ...GIT_REPOSITORY, namespace: source.namespace ?? this.ref.namespace, name: source.name };
    try {
      await this.client.mergePatch(ref, { metadata: { annotations: { [REQUESTED_AT]: new Date().toISOString() } } });
    } catch (err) {
      this.log('warn', 'git mode: could not ask Flux to fetch', { gitRepository: `${ref.namespace}/${ref.name}`, error: err instanceof Error ? err.message : String(err) });
    }
  }
}
