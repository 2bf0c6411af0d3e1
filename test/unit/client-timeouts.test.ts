/**
 * KubeClient's request timeout and its keep-alive pool after a partition,
 * against a plain HTTP server behind the fault proxy (the real kube-apiserver
 * behind the same proxy: test/integration/faults-apiserver.test.ts).
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KubeClient, RequestTimeoutError } from '../../kube/client.js';
import { startFaultProxy, type FaultProxy } from '../harness/fault-proxy.js';

let server: http.Server;
let proxy: FaultProxy;

beforeAll(async () => {
  server = http.createServer((_req, res) => res.end(JSON.stringify({ major: '1', minor: '34' })));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  proxy = await startFaultProxy({ host: '127.0.0.1', port: (server.address() as AddressInfo).port });
});
afterAll(async () => {
  await proxy.close();
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});

describe('KubeClient timeouts', () => {
  it('a request to a silent server fails after requestTimeoutMs naming it; the dead idle connections are closed, so the next request after the partition opens a new one', async () => {
    const client = new KubeClient({ server: proxy.url('http') }, { qps: 0, requestTimeoutMs: 300 });
    try {
      // Five idle keep-alive connections in the pool.
      await Promise.all([1, 2, 3, 4, 5].map(() => client.request('GET', '/version')));
      const before = proxy.accepted;
      expect(before).toBe(5);
      proxy.setFault({ kind: 'blackhole' }, { existing: true });
      const started = Date.now();
      const err = await client.request('GET', '/version').then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(RequestTimeoutError);
      expect((err as Error).message).toBe('GET /version: no answer within 0.3 s (request timeout; connection closed)');
      expect(Date.now() - started).toBeLessThan(2000);
      // The partition ends for new connections only: the pooled ones stay dead.
      proxy.setFault({ kind: 'none' });
      expect(await client.request('GET', '/version')).toEqual({ major: '1', minor: '34' });
      expect(proxy.accepted).toBe(before + 1);
    } finally {
      await client.close();
      proxy.setFault({ kind: 'none' });
    }
  });

  it("the caller's own signal still wins, and is not reported as a timeout", async () => {
    const client = new KubeClient({ server: proxy.url('http') }, { qps: 0, requestTimeoutMs: 5000 });
    proxy.setFault({ kind: 'blackhole' });
    try {
      const err = await client.request('GET', '/version', { signal: AbortSignal.timeout(200) }).then(
        () => undefined,
        (e: unknown) => e as Error,
      );
      expect(err).toBeDefined();
      expect(err).not.toBeInstanceOf(RequestTimeoutError);
    } finally {
      await client.close();
      proxy.setFault({ kind: 'none' });
    }
  });
});
