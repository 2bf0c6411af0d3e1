/**
 * Commit batching for git mode: changes to resources (rendered upserts and
 * deletions, keyed Kind/namespace/name, with their generation) are collected
 * and flushed as one commit after a debounce window (default 2 s after the
 * last change, at most 30 s after the first). A flush writes the whole tree
 * of every resource the batcher knows (gitops/layout.ts), so the result never
 * depends on how changes were grouped; when that tree did not change there is
 * no commit. The commit message names every resource whose files changed,
 * with its generation, and `<basePath>/hydrator.metadata` describes the batch
 * with the field names of Argo CD's source hydrator and GitOps Promoter.
 *
 * The batcher starts from the tree already in the repository, so a restart
 * followed by one change does not drop the other resources' directories; a
 * full resync can name every resource still present with retain().
 *
 * Each upsert()/delete() resolves, once its batch is flushed, with the commit
 * it landed in: the pushed commit that holds its rendered content (or its
 * removal). A rendered Secret with data is refused: nothing of that resource
 * is written (its previous directory, if any, stays as it was).
 */
import type { Log } from '../lib/log.js';
import { recordGitCommit, recordGitPush } from '../lib/metrics.js';
import {
  checkLayoutOptions,
  clusterDir,
  clusterMarkerPath,
  dirKey,
  metadataPath,
  parseManifestPath,
  refFromManifest,
  refKey,
  renderManifest,
  resourceDir,
  treeFromManifests,
  type LayoutOptions,
  type Refusal,
  type RenderedResource,
  type ResourceRef,
} from './layout.js';
import { displayUrl, GitWriterError, type GitIdentity, type GitRepoWriter } from './repo.js';

export interface BatcherOptions {
  writer: GitRepoWriter;
  /** The layout; its base path must be the writer's. */
  layout: LayoutOptions;
  /** Author of kiln's commits (default: the writer's committer, kiln). */
  author?: GitIdentity;
  /**
   * This cluster's identity (the kube-system namespace's UID), kept in
   * `<basePath>/<cluster>/.kiln-cluster`: a directory marked with another
   * identity is refused (start() rejects, naming both).
   */
  clusterIdentity?: string;
  /** `repoURL` in hydrator.metadata: where the desired state comes from (default: the repository's URL, without credentials). */
  repoURL?: string;
  /** `drySha` in hydrator.metadata, when the desired state has a revision of its own. */
  drySha?: () => string | undefined;
  /** Quiet time after the last change before a flush (default 2000 ms). */
  debounceMs?: number;
  /** Longest wait after the first change of a batch (default 30000 ms). */
  maxWaitMs?: number;
  /** Called after every flush that had work (for status, metrics). */
  onFlush?: (report: FlushReport) => void;
  /**
   * Runs after a successful push and before the batch's callers hear of it,
   * e.g. to open or update a pull request whose URL their status should carry.
   * A failure is logged and recorded in the report; the batch stays committed.
   */
  afterPush?: (report: FlushReport) => Promise<void>;
  log?: Log;
  now?: () => Date;
}

export type ChangeAction = 'upsert' | 'delete';

/** What happened to one resource's change. */
export interface ResourceResult extends ResourceRef {
  generation?: number;
  action: ChangeAction;
  /**
   * committed: its rendered content (or its removal) is in the pushed commit `sha`.
   * refused: not written (a Secret with data, a name that cannot be a path).
   * failed: the commit or push failed; `reason` says why. The content is kept and goes with the next flush.
   */
  state: 'committed' | 'refused' | 'failed';
  sha?: string;
  /** Whether this batch changed the resource's files (false: the tree already held them). */
  changed?: boolean;
  reason?: string;
  /** refused: why, as a code (the message is `reason`). */
  refusal?: Refusal;
  /** Something kiln refused and repaired on the way (a symbolic link where its files go), for the resource's status. */
  warning?: string;
}

export interface FlushReport {
  /** The pushed commit that holds the batch (the branch's tip), if any. */
  sha?: string;
  /** The commit this flush made, before any rebase (undefined when the tree did not change). */
  commit?: string;
  subject?: string;
  /** Resources whose files this flush changed. */
  changed: ResourceRef[];
  results: ResourceResult[];
  push?: { attempts: number; rebased: number; rewritten: number };
  error?: string;
  /** afterPush failed (the commit is pushed regardless). */
  afterPushError?: string;
}

interface Entry {
  ref: ResourceRef;
  content: string;
  generation?: number;
}

type Change = { action: 'upsert'; resource: RenderedResource } | { action: 'delete'; ref: ResourceRef; generation?: number };

interface Queued {
  change: Change;
  waiters: ((r: ResourceResult) => void)[];
}

interface Described {
  ref: ResourceRef;
  generation?: number;
  verb: 'add' | 'update' | 'delete';
}

const byKey = (a: Described, b: Described): number => (refKey(a.ref) < refKey(b.ref) ? -1 : refKey(a.ref) > refKey(b.ref) ? 1 : 0);

function line(d: Described): string {
  const gen = d.generation !== undefined ? ` generation ${d.generation}` : '';
  return `${d.verb} ${d.ref.kind} ${d.ref.namespace}/${d.ref.name}${gen}`;
}

export class GitBatcher {
  private readonly writer: GitRepoWriter;
  private readonly layout: LayoutOptions;
  private readonly author: GitIdentity;
  private readonly repoURL: string;
  private readonly debounceMs: number;
  private readonly maxWaitMs: number;
  private readonly log: Log;
  private readonly now: () => Date;
  private readonly state = new Map<string, Entry>();
  private pending = new Map<string, Queued>();
  /** Changes committed but not pushed when a flush failed: named again in the next commit. */
  private readonly unpublished = new Map<string, Described>();
  private needsSync = false;
  /** Links and submodules the repository held under the base path at the last sync: never read, replaced by kiln's files. */
  private irregular = new Map<string, string>();
  private firstAt: number | undefined;
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<unknown> = Promise.resolve();
  private closed = false;

  constructor(private readonly options: BatcherOptions) {
    this.writer = options.writer;
    this.layout = checkLayoutOptions(options.layout);
    if (this.layout.basePath !== options.writer.basePath) throw new Error(`layout base path ${this.layout.basePath} is not the writer's (${options.writer.basePath})`);
    this.author = options.author ?? options.writer.committer;
    this.repoURL = options.repoURL ?? displayUrl(options.writer.url);
    this.debounceMs = options.debounceMs ?? 2000;
    this.maxWaitMs = Math.max(options.maxWaitMs ?? 30_000, this.debounceMs);
    this.log = options.log ?? (() => undefined);
    this.now = options.now ?? (() => new Date());
  }

  /** Syncs the clone and starts from the resources already in the repository. */
  static async start(options: BatcherOptions): Promise<GitBatcher> {
    const b = new GitBatcher(options);
    await b.load();
    return b;
  }

  private async load(): Promise<void> {
    await this.writer.sync();
    this.irregular = new Map(this.writer.irregularEntries());
    this.checkIdentity();
    this.state.clear();
    for (const path of this.writer.listFiles(clusterDir(this.layout))) {
      const ref = parseManifestPath(this.layout, path);
      const content = ref && this.writer.readFile(path);
      if (!ref || content === undefined) continue;
      const named = refFromManifest(content);
      const full = named && dirKey(named) === dirKey(ref) ? named : ref;
      this.state.set(dirKey(full), { ref: full, content });
    }
    this.log('info', 'git batcher loaded the tree', { resources: this.state.size, path: clusterDir(this.layout) });
  }

  /** Throws when the cluster's directory is marked as another cluster's (two clusters, or a wrong kube context, with one --cluster). */
  private checkIdentity(): void {
    const mine = this.options.clusterIdentity;
    if (!mine) return;
    const path = clusterMarkerPath(this.layout);
    const marked = this.writer.readFile(path)?.trim();
    if (marked === undefined || marked === mine) return;
    throw new GitWriterError(
      `${clusterDir(this.layout)} belongs to cluster ${JSON.stringify(marked.slice(0, 64))} (${path}), but this controller runs against cluster ${mine} (the kube-system namespace's UID): refusing to write it; check --cluster and the kube context`,
      'failed',
    );
  }

  /** Resources currently in the tree (as the batcher will write it). */
  resources(): ResourceRef[] {
    return [...this.state.values()].map((e) => e.ref);
  }

  /** Changes waiting for the next flush. */
  get pendingCount(): number {
    return this.pending.size;
  }

  /** The manifest the tree holds for a resource (committed, or to be pushed with the next flush), if any. */
  manifest(ref: ResourceRef): string | undefined {
    return this.state.get(dirKey(ref))?.content;
  }

  /** A resource and what it renders to now; resolves when its batch is flushed. */
  upsert(resource: RenderedResource): Promise<ResourceResult> {
    return this.enqueue({ action: 'upsert', resource });
  }

  /** A resource that is gone: its directory is removed. */
  delete(ref: ResourceRef & { generation?: number }): Promise<ResourceResult> {
    return this.enqueue({ action: 'delete', ref: { kind: ref.kind, namespace: ref.namespace, name: ref.name }, generation: ref.generation });
  }

  /** After a full list of the resources that exist: deletes every other one from the tree. */
  retain(present: Iterable<ResourceRef>): Promise<ResourceResult[]> {
    const keep = new Set([...present].map(dirKey));
    for (const q of this.pending.values()) if (q.change.action === 'upsert') keep.add(dirKey(q.change.resource));
    return Promise.all([...this.state.values()].filter((e) => !keep.has(dirKey(e.ref))).map((e) => this.delete(e.ref)));
  }

  private enqueue(change: Change): Promise<ResourceResult> {
    if (this.closed) return Promise.reject(new Error('git batcher is closed'));
    const ref = change.action === 'upsert' ? change.resource : change.ref;
    const key = dirKey(ref);
    return new Promise((resolve) => {
      const queued = this.pending.get(key);
      if (queued) {
        queued.change = change;
        queued.waiters.push(resolve);
      } else {
        this.pending.set(key, { change, waiters: [resolve] });
      }
      const now = Date.now();
      this.firstAt ??= now;
      const due = Math.min(now + this.debounceMs, this.firstAt + this.maxWaitMs);
      if (this.timer) clearTimeout(this.timer);
      this.timer = setTimeout(
        () => {
          this.flush().catch((err: unknown) => this.log('error', 'git flush failed', { error: this.writer.scrub(String(err)) }));
        },
        Math.max(0, due - now),
      );
    });
  }

  /** Flushes now (after any flush in progress). */
  flush(): Promise<FlushReport> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    const run = this.flushing.then(() => this.flushNow());
    this.flushing = run.catch(() => undefined);
    return run;
  }

  /** Flushes what is pending and stops taking changes. */
  async close(): Promise<void> {
    this.closed = true;
    await this.flush();
  }

  private apply(change: Change): { result?: Omit<ResourceResult, 'state'> & { state: 'refused'; reason: string; refusal: Refusal } } {
    if (change.action === 'delete') {
      this.state.delete(dirKey(change.ref));
      return {};
    }
    const r = change.resource;
    const ref = { kind: r.kind, namespace: r.namespace, name: r.name };
    let outcome: ReturnType<typeof renderManifest>;
    try {
      outcome = renderManifest(r);
    } catch (err) {
      outcome = { ok: false, reason: `cannot write its objects as YAML: ${err instanceof Error ? err.message : String(err)}`, refusal: 'NotCommittable' };
    }
    if (!outcome.ok) return { result: { ...ref, generation: r.generation, action: 'upsert', state: 'refused', reason: outcome.reason, refusal: outcome.refusal } };
    const key = dirKey(r);
    if (outcome.empty) this.state.delete(key);
    else this.state.set(key, { ref, content: outcome.content, generation: r.generation });
    return {};
  }

  /** For each resource of the batch whose path held a link (or submodule) the flush replaced: what to tell its owner. */
  private linkWarnings(batch: Queued[]): Map<string, string> {
    const out = new Map<string, string>();
    if (this.irregular.size === 0) return out;
    for (const q of batch) {
      const ref = q.change.action === 'upsert' ? q.change.resource : q.change.ref;
      const dir = resourceDir(this.layout, ref);
      const hits = [...this.irregular].filter(([p]) => p === dir || p.startsWith(`${dir}/`) || dir.startsWith(`${p}/`));
      if (hits.length === 0) continue;
      const what = hits.map(([p, mode]) => `${p} (git mode ${mode})`).join(', ');
      out.set(dirKey(ref), `the repository held ${what} where kiln's files go: kiln did not read it and replaced it with its own files`);
    }
    return out;
  }

  private message(changed: Described[], unchanged: number): { subject: string; body: string } {
    const c = this.layout.cluster;
    let subject: string;
    if (changed.length === 0) {
      subject = `kiln: restore the rendered tree of ${c}`;
    } else if (changed.length === 1) {
      const d = changed[0]!;
      subject = `kiln: ${d.verb} ${d.ref.namespace}/${d.ref.name} (${d.ref.kind}${d.generation !== undefined ? `, generation ${d.generation}` : ''}) in ${c}`;
    } else {
      const count = (v: Described['verb']): number => changed.filter((d) => d.verb === v).length;
      const parts = (['add', 'update', 'delete'] as const).filter((v) => count(v) > 0).map((v) => `${count(v)} ${v === 'add' ? 'added' : v === 'update' ? 'updated' : 'deleted'}`);
      subject = `kiln: ${changed.length} resources in ${c} (${parts.join(', ')})`;
    }
    const lines = changed.map(line);
    if (unchanged > 0) lines.push('', `${unchanged} more resource${unchanged === 1 ? '' : 's'} in this batch rendered unchanged.`);
    return { subject, body: lines.join('\n') };
  }

  private metadata(subject: string, body: string, changed: Described[]): string {
    const author = this.author;
    const drySha = this.options.drySha?.();
    const doc = {
      ...(drySha ? { drySha } : {}),
      repoURL: this.repoURL,
      author: `${author.name} <${author.email}>`,
      date: this.now().toISOString(),
      subject,
      body,
      kiln: {
        cluster: this.layout.cluster,
        path: clusterDir(this.layout),
        resources: changed.map((d) => ({
          kind: d.ref.kind,
          namespace: d.ref.namespace,
          name: d.ref.name,
          ...(d.generation !== undefined ? { generation: d.generation } : {}),
          action: d.verb,
          path: resourceDir(this.layout, d.ref),
        })),
      },
    };
    return `${JSON.stringify(doc, null, 2)}\n`;
  }

  private async flushNow(): Promise<FlushReport> {
    const batch = [...this.pending.values()];
    this.pending = new Map();
    this.firstAt = undefined;
    if (batch.length === 0 && !this.writer.hasUnpushed() && !this.needsSync) return { changed: [], results: [] };

    const started = Date.now();
    const previous = new Map(this.state);
    const refused = new Map<string, ResourceResult>();
    for (const q of batch) {
      const { result } = this.apply(q.change);
      if (result) refused.set(dirKey(result), result);
    }

    // What changed in this batch, against the tree before it.
    const described = new Map<string, Described>(this.unpublished);
    let unchanged = 0;
    const changedKeys = new Set<string>();
    for (const q of batch) {
      const ref = q.change.action === 'upsert' ? q.change.resource : q.change.ref;
      const key = dirKey(ref);
      if (refused.has(key)) continue;
      const before = previous.get(key);
      const after = this.state.get(key);
      const generation = q.change.action === 'upsert' ? q.change.resource.generation : q.change.generation;
      if (before?.content === after?.content) {
        if (!described.has(key)) unchanged++;
        continue;
      }
      changedKeys.add(key);
      const name = { kind: ref.kind, namespace: ref.namespace, name: ref.name };
      described.set(key, { ref: name, generation, verb: !after ? 'delete' : before || this.unpublished.get(key)?.verb === 'update' ? 'update' : 'add' });
    }
    for (const key of this.unpublished.keys()) changedKeys.add(key);
    const changed = [...described.values()].sort(byKey);

    const report: FlushReport = { changed: changed.map((d) => d.ref), results: [] };
    let failure: string | undefined;
    let warnings = new Map<string, string>();
    let pushing = false;
    try {
      if (this.needsSync) {
        await this.writer.sync();
        this.irregular = new Map(this.writer.irregularEntries());
        this.needsSync = false;
      }
      const files = treeFromManifests(this.layout, this.state.values());
      const metaPath = metadataPath(this.layout);
      const committedMeta = this.writer.readFile(metaPath);
      if (committedMeta !== undefined) files.set(metaPath, committedMeta);
      const markerPath = clusterMarkerPath(this.layout);
      const marker = this.options.clusterIdentity ? `${this.options.clusterIdentity}\n` : this.writer.readFile(markerPath);
      if (marker !== undefined) files.set(markerPath, marker);
      const { changed: treeChanged } = await this.writer.writeTree(files, this.layout.basePath);
      if (treeChanged) {
        const { subject, body } = this.message(changed, unchanged);
        files.set(metaPath, this.metadata(subject, body, changed));
        await this.writer.writeTree(files, this.layout.basePath);
        report.subject = subject;
        report.commit = await this.writer.commit(`${subject}\n\n${body}`, this.author);
        recordGitCommit();
      }
      report.sha = await this.writer.head();
      if (this.writer.hasUnpushed()) {
        pushing = true;
        const pushed = await this.writer.push();
        pushing = false;
        recordGitPush('success');
        report.sha = pushed.sha;
        report.push = { attempts: pushed.attempts, rebased: pushed.rebased, rewritten: pushed.rewritten };
      }
      this.unpublished.clear();
      warnings = this.linkWarnings(batch);
      this.irregular.clear();
      if (report.push && this.options.afterPush) {
        try {
          await this.options.afterPush(report);
        } catch (err) {
          report.afterPushError = this.writer.scrub(err instanceof Error ? err.message : String(err));
          this.log('warn', 'after-push step failed', { error: report.afterPushError });
        }
      }
    } catch (err) {
      if (pushing) recordGitPush('error');
      failure = err instanceof GitWriterError ? err.message : this.writer.scrub(err instanceof Error ? err.message : String(err));
      report.error = failure;
      // Start again from the remote next time, and name these changes in that commit.
      this.needsSync = true;
      for (const d of changed) this.unpublished.set(dirKey(d.ref), d);
      this.log('error', 'git flush failed', { error: failure, resources: changed.length });
    }

    for (const q of batch) {
      const ref = q.change.action === 'upsert' ? q.change.resource : q.change.ref;
      const key = dirKey(ref);
      const generation = q.change.action === 'upsert' ? q.change.resource.generation : q.change.generation;
      const base = { kind: ref.kind, namespace: ref.namespace, name: ref.name, generation, action: q.change.action };
      const result: ResourceResult =
        refused.get(key) ??
        (failure
          ? { ...base, state: 'failed', reason: failure }
          : { ...base, state: 'committed', sha: report.sha, changed: changedKeys.has(key), ...(warnings.has(key) ? { warning: warnings.get(key) } : {}) });
      report.results.push(result);
      for (const w of q.waiters) w(result);
    }
    if (!failure) {
      this.log('info', report.commit ? 'git batch committed' : 'git batch: tree unchanged, no commit', {
        changes: batch.length,
        changed: changed.length,
        refused: refused.size,
        sha: report.sha ?? null,
        ms: Date.now() - started,
        ...(report.push ? { pushAttempts: report.push.attempts, rebased: report.push.rebased, rewritten: report.push.rewritten } : {}),
      });
    }
    this.options.onFlush?.(report);
    return report;
  }
}
