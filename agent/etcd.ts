/**
 * A small client of etcd's gRPC gateway (JSON over HTTP/1.1 on the client
 * URLs, `/v3/...`): membership, member status, snapshots, and key puts for
 * tests. The server is the tenant's (its image is theirs): every request has a
 * deadline, every answer a size bound, and a snapshot a byte bound; uint64
 * fields arrive as decimal strings and are kept as strings (member IDs do not
 * fit a double).
 */
import { createWriteStream } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { pipeline } from 'node:stream/promises';
import { Transform } from 'node:stream';

export interface EtcdTls {
  ca: string;
  cert: string;
  key: string;
}

export interface EtcdTarget {
  /** A client URL, e.g. https://db-0.db.ns.svc:2379. */
  url: string;
  tls?: EtcdTls;
  /** Per request. Default 5 s. */
  timeoutMs?: number;
}

export interface EtcdMember {
  /** uint64, decimal. */
  id: string;
  /** Empty until the member has started. */
  name: string;
  peerURLs: string[];
  clientURLs: string[];
  isLearner: boolean;
}

export interface EtcdStatus {
  memberId: string;
  leader: string;
  version: string;
  dbSize: number;
  raftIndex: string;
  revision: string;
  errors: string[];
  isLearner: boolean;
}

/** An answer that is not JSON of the expected shape, or an error status from etcd. */
export class EtcdError extends Error {}

/** Plenty for a member list of etcd's limit and a status; a hostile server cannot make the agent buffer more. */
const MAX_ANSWER_BYTES = 1 << 20;

const str = (v: unknown): string => (typeof v === 'string' ? v : typeof v === 'number' ? String(v) : '');
const strings = (v: unknown): string[] => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string').slice(0, 16) : []);

/** The member ID as etcdctl prints it (hexadecimal). */
export const hexId = (id: string): string => {
  try {
    return BigInt(id).toString(16);
  } catch {
    return '';
  }
};

function send(target: EtcdTarget, path: string, body: unknown, onResponse: (res: http.IncomingMessage) => Promise<unknown>): Promise<unknown> {
  const url = new URL(path, target.url);
  const timeoutMs = target.timeoutMs ?? 5_000;
  const payload = JSON.stringify(body);
  const lib = url.protocol === 'https:' ? https : http;
  return new Promise((resolve, reject) => {
    const req = lib.request(
      url,
      {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) },
        timeout: timeoutMs,
        agent: false,
        ...(target.tls ? { ca: target.tls.ca, cert: target.tls.cert, key: target.tls.key } : {}),
      },
      (res) => void onResponse(res).then(resolve, reject),
    );
    // The whole exchange, not just idle time: a server that trickles bytes is cut off too.
    const deadline = setTimeout(() => req.destroy(new EtcdError(`${url.origin}${path}: no answer within ${timeoutMs / 1000} s`)), timeoutMs);
    req.on('close', () => clearTimeout(deadline));
    req.on('timeout', () => req.destroy(new EtcdError(`${url.origin}${path}: no answer within ${timeoutMs / 1000} s`)));
    req.on('error', (err) => reject(err instanceof EtcdError ? err : new EtcdError(`${url.origin}${path}: ${err.message}`)));
    req.end(payload);
  });
}

async function readJson(res: http.IncomingMessage, where: string): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of res as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_ANSWER_BYTES) {
      res.destroy();
      throw new EtcdError(`${where}: answer larger than ${MAX_ANSWER_BYTES} bytes`);
    }
    chunks.push(chunk);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw new EtcdError(`${where}: HTTP ${res.statusCode}, not JSON`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new EtcdError(`${where}: HTTP ${res.statusCode}, not a JSON object`);
  const o = parsed as Record<string, unknown>;
  if (res.statusCode !== 200) throw new EtcdError(`${where}: HTTP ${res.statusCode}: ${str(o['message'] ?? o['error']).slice(0, 500)}`);
  return o;
}

export async function etcdCall(target: EtcdTarget, path: string, body: unknown): Promise<Record<string, unknown>> {
  return (await send(target, path, body, (res) => readJson(res, path))) as Record<string, unknown>;
}

function member(v: unknown): EtcdMember {
  const m = (typeof v === 'object' && v !== null ? v : {}) as Record<string, unknown>;
  return { id: str(m['ID']), name: str(m['name']).slice(0, 253), peerURLs: strings(m['peerURLs']), clientURLs: strings(m['clientURLs']), isLearner: m['isLearner'] === true };
}

const members = (o: Record<string, unknown>): EtcdMember[] => (Array.isArray(o['members']) ? o['members'].slice(0, 64).map(member) : []);

export async function memberList(t: EtcdTarget): Promise<EtcdMember[]> {
  // linearizable: a follower cut off from the leader must not answer with a stale list.
  return members(await etcdCall(t, '/v3/cluster/member/list', { linearizable: true }));
}

export async function memberAdd(t: EtcdTarget, peerURL: string, isLearner: boolean): Promise<EtcdMember> {
  const o = await etcdCall(t, '/v3/cluster/member/add', { peerURLs: [peerURL], isLearner });
  return member(o['member']);
}

export async function memberRemove(t: EtcdTarget, id: string): Promise<void> {
  await etcdCall(t, '/v3/cluster/member/remove', { ID: id });
}

export async function memberPromote(t: EtcdTarget, id: string): Promise<void> {
  await etcdCall(t, '/v3/cluster/member/promote', { ID: id });
}

export async function memberStatus(t: EtcdTarget): Promise<EtcdStatus> {
  const o = await etcdCall(t, '/v3/maintenance/status', {});
  const header = (typeof o['header'] === 'object' && o['header'] !== null ? o['header'] : {}) as Record<string, unknown>;
  const dbSize = Number(str(o['dbSize']));
  return {
    memberId: str(header['member_id']),
    revision: str(header['revision']),
    leader: str(o['leader']),
    version: str(o['version']).slice(0, 32),
    dbSize: Number.isFinite(dbSize) ? dbSize : 0,
    raftIndex: str(o['raftIndex']),
    errors: strings(o['errors']),
    isLearner: o['isLearner'] === true,
  };
}

const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');

export async function put(t: EtcdTarget, key: string, value: string): Promise<void> {
  await etcdCall(t, '/v3/kv/put', { key: b64(key), value: b64(value) });
}

/** Values of the keys starting with `prefix` (for tests: bounded by MAX_ANSWER_BYTES). */
export async function rangePrefix(t: EtcdTarget, prefix: string): Promise<Map<string, string>> {
  const start = Buffer.from(prefix, 'utf8');
  const end = Buffer.from(start);
  end[end.length - 1]!++;
  const o = await etcdCall(t, '/v3/kv/range', { key: start.toString('base64'), range_end: end.toString('base64') });
  const out = new Map<string, string>();
  for (const kv of Array.isArray(o['kvs']) ? o['kvs'] : []) {
    const k = kv as { key?: string; value?: string };
    out.set(Buffer.from(k.key ?? '', 'base64').toString('utf8'), Buffer.from(k.value ?? '', 'base64').toString('utf8'));
  }
  return out;
}

/**
 * Streams a snapshot of the member's backend into `file`: the gateway sends
 * one JSON object per line, `{"result":{"remaining_bytes":..,"blob":"<base64>"}}`.
 * Stops at `maxBytes` (the file is then incomplete and the call rejects).
 */
export async function snapshot(t: EtcdTarget, file: string, maxBytes: number, timeoutMs = 300_000): Promise<number> {
  let written = 0;
  await send({ ...t, timeoutMs }, '/v3/maintenance/snapshot', {}, async (res) => {
    if (res.statusCode !== 200) {
      await readJson(res, '/v3/maintenance/snapshot');
      throw new EtcdError(`/v3/maintenance/snapshot: HTTP ${res.statusCode}`);
    }
    let pending = '';
    const MAX_LINE = 16 << 20;
    const decode = new Transform({
      transform(chunk: Buffer, _enc, done) {
        pending += chunk.toString('latin1');
        if (pending.length > MAX_LINE) return done(new EtcdError('/v3/maintenance/snapshot: a chunk larger than 16 MiB'));
        let nl: number;
        try {
          while ((nl = pending.indexOf('\n')) >= 0) {
            const line = pending.slice(0, nl).trim();
            pending = pending.slice(nl + 1);
            if (line) this.push(blob(line));
          }
        } catch (err) {
          return done(err as Error);
        }
        done();
      },
      flush(done) {
        try {
          if (pending.trim()) this.push(blob(pending.trim()));
          done();
        } catch (err) {
          done(err as Error);
        }
      },
    });
    const blob = (line: string): Buffer => {
      const o = JSON.parse(line) as { result?: { blob?: string }; error?: { message?: string } };
      if (o.error) throw new EtcdError(`/v3/maintenance/snapshot: ${str(o.error.message).slice(0, 500)}`);
      const b = Buffer.from(o.result?.blob ?? '', 'base64');
      written += b.length;
      if (written > maxBytes) throw new EtcdError(`/v3/maintenance/snapshot: larger than ${maxBytes} bytes`);
      return b;
    };
    await pipeline(res, decode, createWriteStream(file, { mode: 0o600 }));
  });
  return written;
}
