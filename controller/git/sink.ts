/**
 * Git mode's wiring: the repository writer (gitops/repo.ts) and the batcher
 * (gitops/batcher.ts) built from the controller's options, started once this
 * replica leads, and closed (pending changes flushed) when it stops.
 *
 * - `branch` is where Flux or Argo CD read from. With `reviewBranch`, kiln
 *   pushes there instead, starting it from `branch` when it does not exist yet,
 *   and opens or updates the pull request into `branch` (`pullRequests`).
 * - Credentials: `auth`, else KILN_GIT_TOKEN (authFromEnv), else none (a local
 *   path, file://, ssh with the pod's key). The token is handed to the writer
 *   only, which sends it as an http.extraHeader and scrubs it from messages.
 * - After start, resources the repository holds that no longer exist in the
 *   watched namespaces are deleted from it (the controller may have missed
 *   their deletion while it was down).
 */
import { createHash } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { K8sObject, KilnResource } from '../../kinds/types.js';
import { GitBatcher, type FlushReport, type ResourceResult } from '../../gitops/batcher.js';
import { checkLayoutOptions, normalizeBasePath, type LayoutOptions, type RenderedResource, type ResourceRef } from '../../gitops/layout.js';
import { authFromEnv, displayUrl, GitRepoWriter, type GitAuth, type GitIdentity } from '../../gitops/repo.js';
import type { Log } from '../../lib/log.js';
import { parseYamlStream } from '../../lib/yaml.js';
import type { PullRequestProvider } from '../../gitops/pull-request.js';

export interface GitSinkOptions {
  /** Repository URL (https, ssh, file:// or a local path). Credentials in an https URL are taken out of it. */
  repo: string;
  /** The branch Flux / Argo CD consume. */
  branch: string;
  /** Push to this branch instead (review mode); it starts from `branch`. */
  reviewBranch?: string;
  /** Directory kiln owns in the repository (default `clusters`). */
  basePath?: string;
  /** Directory of this cluster under the base path (default `default`). */
  cluster?: string;
  /**
   * A shard's name (lib/shard.ts shardDirectorySuffix of --watch-label-selector): the shard writes
   * under `<basePath>-<shard>` and owns that directory alone. Each writer owns everything under its
   * base path (start-up prunes it, a rebase writes its tree back), so shards sharing one would
   * delete each other's files.
   */
  shard?: string;
  /** The local clone (default: a directory under the system's temporary directory, one per repository and branch). */
  workDir?: string;
  /** Author of kiln's commits (default: the committer, kiln <noreply@kiln.dev>). */
  author?: GitIdentity;
  committer?: GitIdentity;
  /** Token for an https remote, or where to read the current one (a rotated file); default: authFromEnv(), i.e. KILN_GIT_TOKEN. */
  auth?: GitAuth | (() => GitAuth | undefined);
  /** Accept a plain http:// repository (the token and manifests travel unencrypted). */
  allowInsecureHttp?: boolean;
  /** Let start-up delete more than half of the cluster's resources from the repository (MASS_DELETE_SHARE). */
  allowMassDelete?: boolean;
  /**
   * The cluster's identity (kube-system's UID, kubeSystemUid()), checked
   * against and written to `<basePath>/<cluster>/.kiln-cluster` at start.
   */
  clusterIdentity?: () => Promise<string | undefined>;
  /** Quiet time after the last change before a commit (default 2000 ms). */
  debounceMs?: number;
  /** Longest wait after the first change of a batch (default 30000 ms). */
  maxWaitMs?: number;
  /** Push attempts in all when other writers race kiln (default 10). */
  maxPushAttempts?: number;
  retryDelayMs?: { base: number; max: number };
  /** Backoff before a resource whose commit or push failed is tried again (default 1 s doubling to 60 s). */
  failureBackoffMs?: { base: number; max: number };
  /** The renderer (default kinds/render.ts); tests replace it to provoke what no chart renders. */
  render?: (resource: KilnResource) => K8sObject[];
  /** Called after every flush that had work (metrics, tests). */
  onFlush?: (report: FlushReport) => void;
  /** Review mode: opens or updates the pull request from the review branch into `branch` after each push. */
  pullRequests?: PullRequestProvider;
  /** The Flux Kustomization that applies this directory (`--flux`): the manager follows it (controller/git/flux.ts). */
  flux?: { namespace: string; name: string };
  /** Called after each push (after the pull request is brought up to date); a failure is logged, the push stands. */
  onPushed?: (report: FlushReport) => Promise<void>;
}

/** `Name <email>` -> identity. */
export function parseIdentity(text: string): GitIdentity {
  const m = /^\s*([^<>]+?)\s*<([^<>\s]+)>\s*$/.exec(text);
  if (!m) throw new Error(`expected "Name <email>" (got ${JSON.stringify(text)})`);
  return { name: m[1]!, email: m[2]! };
}

/** A token read from a file (a mounted Secret), with the scheme and user name from the environment as authFromEnv takes them. */
export function authFromFile(path: string, env: NodeJS.ProcessEnv = process.env): GitAuth {
  const token = readFileSync(path, 'utf8').trim();
  if (!token) throw new Error(`the token file ${path} is empty`);
  const scheme = env['KILN_GIT_AUTH_SCHEME'];
  return { token, scheme: scheme === 'Bearer' ? 'Bearer' : 'Basic', username: env['KILN_GIT_USERNAME'] || undefined };
}

/**
 * The token in a file, read again whenever the file changes (a rotated Secret
 * or a kubelet-projected token): a stat per network command, a read per change.
 */
export function authFromFileWatched(path: string, env: NodeJS.ProcessEnv = process.env): () => GitAuth {
  let seen: { key: string; auth: GitAuth } | undefined;
  return () => {
    const st = statSync(path);
    const key = `${st.ino}:${st.size}:${st.mtimeMs}`;
    if (seen?.key !== key) seen = { key, auth: authFromFile(path, env) };
    return seen.auth;
  };
}

/**
 * Start-up deletes what the repository holds for this cluster and the cluster
 * does not: more than this share of it at once is refused unless allowed
 * (a wrong kube context, or a second cluster with the same --cluster, would
 * otherwise empty the directory and Flux would prune the workloads).
 */
export const MASS_DELETE_SHARE = 0.5;

/** Why start-up must not delete `stale` of the `total` resources the cluster's directory holds, if it must not. */
export function massDeleteProblem(stale: readonly ResourceRef[], total: number, where: string): string | undefined {
  if (stale.length === 0 || stale.length <= total * MASS_DELETE_SHARE) return undefined;
  const names = stale
    .slice(0, 5)
    .map((r) => `${r.kind}/${r.namespace}/${r.name}`)
    .join(', ');
  return (
    `start-up would delete ${stale.length} of the ${total} resources under ${where} (${names}${stale.length > 5 ? ', ...' : ''}), which this cluster does not have: ` +
    'refusing; check --cluster and the kube context, or pass --allow-mass-delete if they are really gone'
  );
}

/**
 * The cluster's identity for the marker: the kube-system namespace's UID (it
 * lives as long as the cluster). Without the right to read it (RBAC: get on
 * namespaces/kube-system) the marker is not checked, said once in the log; the
 * start-up mass-delete guard still holds.
 */
export async function kubeSystemUid(get: (ref: { apiVersion: string; kind: string; name: string }) => Promise<{ metadata?: { uid?: string } }>, log: Log): Promise<string | undefined> {
  try {
    return (await get({ apiVersion: 'v1', kind: 'Namespace', name: 'kube-system' })).metadata?.uid;
  } catch (err) {
    log('warn', "git mode: cannot read the kube-system namespace (the cluster's identity): the cluster marker is not checked; grant get on namespaces/kube-system", {
      error: err instanceof Error ? err.message : String(err),
    });
    return undefined;
  }
}

/** One clone per repository and branch under the temporary directory. */
export function defaultWorkDir(repo: string, branch: string): string {
  const id = createHash('sha256')
    .update(`${displayUrl(repo)}\n${branch}`)
    .digest('hex')
    .slice(0, 16);
  return join(tmpdir(), 'kiln-git', id);
}

export class GitSink {
  readonly layout: LayoutOptions;
  readonly writer: GitRepoWriter;
  /** The branch pushed to (the review branch in review mode). */
  readonly pushBranch: string;
  private batcher: GitBatcher | undefined;
  private closed = false;
  /** Review mode: the pull request carrying kiln's pushed changes, once opened. */
  pullRequestUrl: string | undefined;
  private readonly ancestry = new Map<string, Promise<boolean | undefined>>();
  private readonly fetchedFor = new Set<string>();

  constructor(
    readonly options: GitSinkOptions,
    private readonly log: Log,
  ) {
    const basePath = options.basePath ?? 'clusters';
    this.layout = checkLayoutOptions({ basePath: options.shard ? `${normalizeBasePath(basePath)}-${options.shard}` : basePath, cluster: options.cluster ?? 'default' });
    this.pushBranch = options.reviewBranch ?? options.branch;
    this.writer = new GitRepoWriter({
      url: options.repo,
      branch: this.pushBranch,
      baseBranch: options.reviewBranch ? options.branch : undefined,
      // Shards on one machine need clones of their own: each writes its own directory.
      workDir: options.workDir ?? defaultWorkDir(options.repo, options.shard ? `${this.pushBranch}\n${options.shard}` : this.pushBranch),
      basePath: this.layout.basePath,
      auth: options.auth ?? authFromEnv(),
      allowInsecureHttp: options.allowInsecureHttp,
      committer: options.committer,
      maxPushAttempts: options.maxPushAttempts,
      retryDelayMs: options.retryDelayMs,
      log,
    });
  }

  /** Where kiln writes, for logs: never a credential. */
  describe(): Record<string, unknown> {
    return {
      repo: this.writer.url,
      branch: this.pushBranch,
      ...(this.options.reviewBranch ? { reviewOf: this.options.branch } : {}),
      path: `${this.layout.basePath}/${this.layout.cluster}`,
      workDir: this.writer.workDir,
    };
  }

  /**
   * Syncs the clone and loads the tree; then deletes from it every resource
   * of a watched namespace (all when `namespaces` is empty) that is not in
   * `present`. The deletions go with the first batch.
   */
  async start(present: ResourceRef[], namespaces: string[], identity?: string): Promise<void> {
    if (this.batcher) return;
    const clusterIdentity = identity ?? (await this.options.clusterIdentity?.());
    const batcher = await GitBatcher.start({
      writer: this.writer,
      layout: this.layout,
      author: this.options.author,
      clusterIdentity,
      debounceMs: this.options.debounceMs,
      maxWaitMs: this.options.maxWaitMs,
      onFlush: this.options.onFlush,
      afterPush: async (report) => {
        if (this.options.pullRequests && this.options.reviewBranch) await this.ensurePullRequest(report);
        await this.options.onPushed?.(report);
      },
      log: this.log,
    });
    const watched = new Set(namespaces);
    const inTree = batcher.resources();
    const keep = [...present, ...inTree.filter((r) => watched.size > 0 && !watched.has(r.namespace))];
    const keys = new Set(keep.map((r) => `${r.kind.toLowerCase()}/${r.namespace}/${r.name}`));
    const stale = inTree.filter((r) => !keys.has(`${r.kind.toLowerCase()}/${r.namespace}/${r.name}`));
    const problem = this.options.allowMassDelete ? undefined : massDeleteProblem(stale, inTree.length, `${this.layout.basePath}/${this.layout.cluster}`);
    if (problem) {
      await batcher.close().catch(() => undefined);
      throw new Error(problem);
    }
    this.batcher = batcher;
    this.batcher.retain(keep).then(
      (results) => {
        const gone = results.filter((r) => r.state === 'committed' && r.changed);
        if (gone.length > 0) this.log('info', 'removed resources that no longer exist from the repository', { resources: gone.map((r) => `${r.kind}/${r.namespace}/${r.name}`) });
      },
      (err: unknown) => this.log('warn', 'could not remove stale resources from the repository', { error: this.scrub(err) }),
    );
  }

  get started(): boolean {
    return this.batcher !== undefined && !this.closed;
  }

  private get active(): GitBatcher {
    if (!this.batcher) throw new Error('the git sink is not started');
    if (this.closed) throw new Error('the git sink is closed');
    return this.batcher;
  }

  upsert(resource: RenderedResource): Promise<ResourceResult> {
    return this.active.upsert(resource);
  }

  delete(ref: ResourceRef & { generation?: number }): Promise<ResourceResult> {
    return this.active.delete(ref);
  }

  /** Commits and pushes what is pending now (tests, shutdown). */
  async flush(): Promise<FlushReport | undefined> {
    return this.batcher?.flush();
  }

  /**
   * Whether the tree kiln committed (or will push with the next flush) holds `obj` among the objects
   * of `ref`'s manifest, by apiVersion, kind, namespace and name.
   */
  holds(ref: ResourceRef, obj: Pick<K8sObject, 'apiVersion' | 'kind' | 'metadata'>): boolean {
    const content = this.batcher?.manifest(ref);
    if (content === undefined) return false;
    return parseYamlStream(content).some(({ value }) => {
      const o = value as Partial<K8sObject> | null;
      return (
        o?.apiVersion === obj.apiVersion && o.kind === obj.kind && o.metadata?.name === obj.metadata.name && (o.metadata?.namespace ?? ref.namespace) === (obj.metadata.namespace ?? ref.namespace)
      );
    });
  }

  /** Changes waiting for the next commit. */
  get pendingCount(): number {
    return this.batcher?.pendingCount ?? 0;
  }

  /** Flushes what is pending and stops taking changes. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.batcher?.close();
  }

  /** Stops taking changes without flushing (leadership lost: another replica writes now). */
  abandon(): void {
    this.closed = true;
  }

  private async ensurePullRequest(report: FlushReport): Promise<void> {
    const provider = this.options.pullRequests!;
    const title = `kiln: rendered manifests for ${this.layout.basePath}/${this.layout.cluster}`;
    const body = [
      `kiln pushes the rendered manifests of cluster \`${this.layout.cluster}\` to \`${this.pushBranch}\`; merging this pull request hands them to \`${this.options.branch}\`.`,
      '',
      `Last batch: ${report.subject ?? 'no change'} (${report.sha ?? 'unknown commit'}).`,
    ].join('\n');
    const pr = await provider.ensurePullRequest({ head: this.pushBranch, base: this.options.branch, title, body });
    if (pr.url !== this.pullRequestUrl) this.log('info', pr.created ? 'opened pull request' : 'pull request open', { url: pr.url, number: pr.number });
    this.pullRequestUrl = pr.url;
  }

  /**
   * Whether commit `a` is `b` or an ancestor of it (undefined: not known).
   * Asked for every resource of a batch with the same pair, so answers are
   * kept; `b` missing from the clone is fetched once per commit.
   */
  isAncestor(a: string, b: string): Promise<boolean | undefined> {
    const key = `${a}..${b}`;
    const known = this.ancestry.get(key);
    if (known) return known;
    if (this.ancestry.size > 4096) this.ancestry.clear();
    const fetchBranch = this.fetchedFor.has(b) ? undefined : this.options.branch;
    this.fetchedFor.add(b);
    if (this.fetchedFor.size > 1024) this.fetchedFor.clear();
    const answer = this.writer.isAncestor(a, b, fetchBranch);
    // An unknown answer is asked again next time (the commit may be fetched by then).
    this.ancestry.set(key, answer);
    void answer.then((v) => v === undefined && this.ancestry.delete(key));
    return answer;
  }

  /** A message safe to log or write into a status: no credential. */
  scrub(err: unknown): string {
    return this.writer.scrub(err instanceof Error ? err.message : String(err));
  }
}
