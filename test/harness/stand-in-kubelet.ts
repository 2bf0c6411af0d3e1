/**
 * The test control plane has no node, so no pod ever runs. This stands in for
 * the kubelet's one part kiln's statuses depend on: it writes pod status, as a
 * kubelet does once containers start. Every pod in the cluster becomes Running
 * and Ready; a pod a Job owns runs to Succeeded (the job controller then
 * completes the Job). The StatefulSet and job controllers in
 * kube-controller-manager do the rest from those pod statuses, exactly as on a
 * real cluster.
 *
 * A namespace labelled `kiln.dev/stand-in-kubelet=manual` is left alone: a test
 * there drives pods itself with setPodReady()/setPodSucceeded()/setPodFailed().
 * The node tests (test/node/) run a real kubelet instead (./node.ts); the
 * integration tests keep this stand-in, whose pods' images do not exist.
 */
import { request, type RequestOptions } from 'node:https';
import { readFileSync } from 'node:fs';
import type { ControlPlaneInfo } from './controlplane.js';

export const MANUAL_LABEL = 'kiln.dev/stand-in-kubelet';

interface Pod {
  metadata: { name: string; namespace: string; resourceVersion?: string; deletionTimestamp?: string; ownerReferences?: { kind: string }[] };
  status?: { phase?: string; conditions?: { type: string; status: string }[] };
}

function call<T>(info: ControlPlaneInfo, method: string, path: string, body?: unknown, contentType = 'application/merge-patch+json'): Promise<T> {
  const opts: RequestOptions = {
    method,
    headers: { authorization: `Bearer ${info.adminToken}`, accept: 'application/json', ...(body ? { 'content-type': contentType } : {}) },
    ca: readFileSync(info.caFile),
    timeout: 10_000,
  };
  return new Promise((resolve, reject) => {
    const req = request(new URL(path, info.server), opts, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        if ((res.statusCode ?? 0) >= 300) reject(Object.assign(new Error(`${method} ${path}: ${res.statusCode} ${text.slice(0, 300)}`), { status: res.statusCode }));
        else resolve(text ? (JSON.parse(text) as T) : (undefined as T));
      });
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${path}: timed out`)));
    req.on('error', reject);
    if (body) req.end(JSON.stringify(body));
    else req.end();
  });
}

const stamp = () => new Date().toISOString().replace(/\.\d+Z$/, 'Z');

function runningStatus(ready: boolean) {
  const t = stamp();
  const c = (type: string, status: boolean) => ({ type, status: status ? 'True' : 'False', lastTransitionTime: t });
  return {
    status: {
      phase: 'Running',
      startTime: t,
      conditions: [c('PodScheduled', true), c('Initialized', true), c('ContainersReady', ready), c('Ready', ready)],
    },
  };
}

/** What the kubelet writes when the pod's containers run (ready or not). */
export function setPodReady(info: ControlPlaneInfo, namespace: string, name: string, ready = true): Promise<unknown> {
  return call(info, 'PATCH', `/api/v1/namespaces/${namespace}/pods/${name}/status`, runningStatus(ready));
}

/** What the kubelet writes when every container exited 0 (restartPolicy Never/OnFailure). */
export function setPodSucceeded(info: ControlPlaneInfo, namespace: string, name: string): Promise<unknown> {
  const t = stamp();
  return call(info, 'PATCH', `/api/v1/namespaces/${namespace}/pods/${name}/status`, {
    status: { phase: 'Succeeded', startTime: t, conditions: [{ type: 'Ready', status: 'False', reason: 'PodCompleted', lastTransitionTime: t }] },
  });
}

/** What the kubelet writes when a container exited non-zero and will not be restarted. */
export function setPodFailed(info: ControlPlaneInfo, namespace: string, name: string): Promise<unknown> {
  const t = stamp();
  return call(info, 'PATCH', `/api/v1/namespaces/${namespace}/pods/${name}/status`, {
    status: { phase: 'Failed', startTime: t, conditions: [{ type: 'Ready', status: 'False', reason: 'PodFailed', lastTransitionTime: t }] },
  });
}

export interface StandInKubelet {
  stop(): void;
}

/**
 * Watches every pod and makes it run (see the file comment); with `namespace`, only that namespace's
 * pods, whatever its label (a test that drives members one by one lets go of them this way).
 */
export function startStandInKubelet(info: ControlPlaneInfo, log: (msg: string) => void = () => undefined, namespace?: string): StandInKubelet {
  const podsPath = namespace ? `/api/v1/namespaces/${namespace}/pods` : '/api/v1/pods';
  let stopped = false;
  let current: ReturnType<typeof request> | undefined;
  const manual = new Map<string, Promise<boolean>>();
  const done = new Set<string>();

  const isManual = (ns: string) => {
    let p = manual.get(ns);
    if (!p) {
      p = call<{ metadata: { labels?: Record<string, string> } }>(info, 'GET', `/api/v1/namespaces/${ns}`)
        .then((n) => n.metadata.labels?.[MANUAL_LABEL] === 'manual')
        .catch(() => false);
      manual.set(ns, p);
    }
    return p;
  };

  const only = namespace;
  const handle = async (pod: Pod) => {
    const { namespace, name, deletionTimestamp } = pod.metadata;
    if (deletionTimestamp || stopped) return;
    const phase = pod.status?.phase;
    const ownedByJob = pod.metadata.ownerReferences?.some((o) => o.kind === 'Job');
    const readyNow = pod.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True');
    if (ownedByJob ? phase === 'Succeeded' || phase === 'Failed' : phase === 'Running' && readyNow) return;
    if (!only && (await isManual(namespace))) return;
    const key = `${namespace}/${name}/${pod.metadata.resourceVersion}`;
    if (done.has(key)) return;
    done.add(key);
    try {
      if (ownedByJob) await setPodSucceeded(info, namespace, name);
      else await setPodReady(info, namespace, name);
    } catch (err) {
      if ((err as { status?: number }).status === 404) return;
      // Under a loaded CI run a status write can time out; the periodic sync below tries again, as a kubelet's would.
      done.delete(key);
      log(`stand-in kubelet: ${(err as Error).message}`);
    }
  };

  const watch = (resourceVersion: string) => {
    const req = request(
      new URL(`${podsPath}?watch=1&allowWatchBookmarks=true&resourceVersion=${resourceVersion}`, info.server),
      {
        headers: { authorization: `Bearer ${info.adminToken}`, accept: 'application/json' },
        ca: readFileSync(info.caFile),
      },
      (res) => {
        let buf = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          buf += chunk;
          let nl;
          while ((nl = buf.indexOf('\n')) >= 0) {
            const line = buf.slice(0, nl);
            buf = buf.slice(nl + 1);
            if (!line.trim()) continue;
            const ev = JSON.parse(line) as { type: string; object: Pod };
            if (ev.type === 'ADDED' || ev.type === 'MODIFIED') void handle(ev.object);
            if (ev.type === 'BOOKMARK' || ev.type === 'ADDED' || ev.type === 'MODIFIED') resourceVersion = ev.object.metadata.resourceVersion ?? resourceVersion;
            if (ev.type === 'ERROR') resourceVersion = ''; // expired: list again
          }
        });
        res.on('end', () => restart(resourceVersion));
        res.on('error', () => restart(''));
      },
    );
    req.on('error', () => restart(''));
    req.end();
    current = req;
  };

  const restart = (resourceVersion: string) => {
    if (stopped) return;
    setTimeout(() => (resourceVersion ? watch(resourceVersion) : void list()), resourceVersion ? 0 : 1_000);
  };

  const list = async () => {
    try {
      const pods = await call<{ metadata: { resourceVersion: string }; items: Pod[] }>(info, 'GET', podsPath);
      for (const p of pods.items) void handle(p);
      watch(pods.metadata.resourceVersion);
    } catch (err) {
      log(`stand-in kubelet: list failed: ${(err as Error).message}`);
      restart('');
    }
  };
  void list();
  // A kubelet syncs every pod periodically, not only on watch events: a status write that failed,
  // or an event a broken watch lost, is made good within this period.
  const sync = setInterval(() => {
    call<{ items: Pod[] }>(info, 'GET', podsPath)
      .then((pods) => {
        for (const p of pods.items) void handle(p);
      })
      .catch((err: Error) => log(`stand-in kubelet: periodic list failed: ${err.message}`));
  }, 20_000);
  sync.unref();

  return {
    stop() {
      stopped = true;
      clearInterval(sync);
      current?.destroy();
    },
  };
}
