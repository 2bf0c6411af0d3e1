/**
 * The API server's audit log, read as it grows: one entry per request
 * (auditID), for the identities the policy logs. Benchmarks count requests per
 * controller with it; the sharding tests prove from it who wrote what, when.
 */
import { closeSync, existsSync, openSync, readSync, statSync } from 'node:fs';
import { toYamlStream } from '../../lib/yaml.js';

export interface AuditEvent {
  auditID: string;
  stage: string;
  verb: string;
  user?: { username?: string };
  userAgent?: string;
  objectRef?: { resource?: string; subresource?: string; namespace?: string; name?: string };
  requestURI?: string;
  responseStatus?: { code?: number };
  requestReceivedTimestamp: string;
  stageTimestamp: string;
}

export interface ApiRequest {
  user: string;
  userAgent?: string;
  verb: string;
  endpoint: string;
  object?: string;
  at: number;
  code?: number;
  latencyMs?: number;
}

/**
 * kube-apiserver's flags for a log this class reads: every request, written before the answer
 * (blocking), never rotated. `--audit-log-maxsize=0` is not "no limit": the logger (lumberjack)
 * takes 0 as its default, 100 MB, and a 10,000-resource benchmark writes more than that.
 */
export function auditArgs(file: string, policyFile: string): string[] {
  return [`--audit-log-path=${file}`, `--audit-policy-file=${policyFile}`, '--audit-log-mode=blocking', '--audit-log-maxsize=1000000'];
}

export class AuditLog {
  readonly requests = new Map<string, ApiRequest>();
  private offset = 0;
  private rest = '';
  private lastNew = new Map<string, number>();

  constructor(readonly file: string) {}

  static policy(users: string[]): string {
    // ResponseStarted marks a watch as soon as it is open; ResponseComplete ends every request.
    return toYamlStream([
      {
        apiVersion: 'audit.k8s.io/v1',
        kind: 'Policy',
        omitStages: ['RequestReceived'],
        rules: [{ level: 'Metadata', users }, { level: 'None' }],
      },
    ]);
  }

  /** Reads what was appended since the last call. */
  poll(): void {
    if (!existsSync(this.file)) return;
    // A rotated log starts again from nothing: what was read so far would be counted from the wrong place.
    if (statSync(this.file).size < this.offset) throw new Error(`the audit log ${this.file} was rotated: start the API server with auditArgs() (no rotation)`);
    const fd = openSync(this.file, 'r');
    try {
      const buf = Buffer.alloc(1 << 20);
      for (;;) {
        const n = readSync(fd, buf, 0, buf.length, this.offset);
        if (n <= 0) break;
        this.offset += n;
        const lines = (this.rest + buf.toString('utf8', 0, n)).split('\n');
        this.rest = lines.pop()!;
        for (const line of lines) if (line.trim()) this.add(JSON.parse(line) as AuditEvent);
      }
    } finally {
      closeSync(fd);
    }
  }

  private add(e: AuditEvent): void {
    const seen = this.requests.get(e.auditID);
    const latency = (r: ApiRequest) => {
      if (e.stage === 'ResponseComplete' && r.verb !== 'watch') r.latencyMs = Date.parse(e.stageTimestamp) - r.at;
    };
    if (seen) {
      if (e.responseStatus?.code !== undefined) seen.code = e.responseStatus.code;
      latency(seen);
      return;
    }
    const user = e.user?.username ?? '?';
    const r = e.objectRef;
    const endpoint = r?.resource ? `${r.resource}${r.subresource ? `/${r.subresource}` : ''}` : (e.requestURI ?? '?').split('?')[0]!;
    const at = Date.parse(e.requestReceivedTimestamp);
    const object = r?.name ? `${r.namespace ?? ''}/${r.name}` : undefined;
    const req: ApiRequest = { user, userAgent: e.userAgent, verb: e.verb, endpoint, object, at, code: e.responseStatus?.code };
    latency(req);
    this.requests.set(e.auditID, req);
    this.lastNew.set(user, Math.max(this.lastNew.get(user) ?? 0, at));
  }

  /** Wall-clock ms of the last request `user` sent (0: none yet). */
  lastRequestAt(user: string): number {
    return this.lastNew.get(user) ?? 0;
  }

  select(user: string, from = -Infinity, to = Infinity): ApiRequest[] {
    return [...this.requests.values()].filter((r) => r.user === user && r.at >= from && r.at < to);
  }
}
