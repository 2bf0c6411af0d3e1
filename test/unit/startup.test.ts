/**
 * waitForApiServer (kube/startup.ts): what counts as "the API server
 * answered", and how a start-up that never gets an answer ends. Local HTTP
 * servers stand for a server that refuses, answers 503, answers 401, or never
 * answers; the real API server is the integration tests' (test/integration/startup.test.ts).
 */
import { createServer, type Server } from 'node:http';
import { createServer as createTcpServer, type Server as TcpServer, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { KubeClient } from '../../kube/client.js';
import { StartupTimeoutError, waitForApiServer } from '../../kube/startup.js';

const servers: (Server | TcpServer)[] = [];
const sockets: Socket[] = [];
afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
});

async function listen<T extends Server | TcpServer>(s: T): Promise<number> {
  servers.push(s);
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  return (s.address() as { port: number }).port;
}

/** An HTTP server answering the n-th request with statuses[n] (the last one from then on). */
async function answering(statuses: number[]): Promise<{ client: KubeClient; paths: string[] }> {
  const paths: string[] = [];
  const port = await listen(
    createServer((req, res) => {
      const status = statuses[Math.min(paths.length, statuses.length - 1)]!;
      paths.push(req.url!);
      res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(status === 200 ? { major: '1', minor: '34' } : { kind: 'Status', code: status, message: `status ${status}` }));
    }),
  );
  return { client: new KubeClient({ server: `http://127.0.0.1:${port}` }, { qps: 0 }), paths };
}

describe('waitForApiServer', () => {
  it('resolves at the first answer: GET /version', async () => {
    const { client, paths } = await answering([200]);
    await waitForApiServer(client, 5);
    expect(paths).toEqual(['/version']);
  });

  it('retries while the server answers 503 or 429 (starting, or a proxy without a backend)', async () => {
    const { client, paths } = await answering([503, 429, 502, 200]);
    await waitForApiServer(client, 10);
    expect(paths).toHaveLength(4);
  });

  it('a 401 or 403 is an answer: credentials and rights are for the informers to report', async () => {
    for (const status of [401, 403, 404]) {
      const { client, paths } = await answering([status]);
      await waitForApiServer(client, 5);
      expect(paths, String(status)).toHaveLength(1);
    }
  });

  it('nothing listening: StartupTimeoutError after the timeout, saying the server and the refusal', async () => {
    const port = await listen(createTcpServer());
    await new Promise((r) => servers.pop()!.close(r)); // closed again: connections are refused
    const client = new KubeClient({ server: `https://127.0.0.1:${port}` }, { qps: 0 });
    const started = performance.now();
    const err = await waitForApiServer(client, 1.5).catch((e: unknown) => e);
    const took = performance.now() - started;
    expect(err).toBeInstanceOf(StartupTimeoutError);
    expect((err as Error).message).toBe(`cannot reach the API server at https://127.0.0.1:${port} within 1.5 s: connect ECONNREFUSED 127.0.0.1:${port}`);
    expect(took).toBeGreaterThanOrEqual(1_490);
    expect(took).toBeLessThan(2_500);
  });

  it('a server that accepts but never answers: the timeout still holds', async () => {
    const port = await listen(createTcpServer((s) => sockets.push(s)));
    const client = new KubeClient({ server: `http://127.0.0.1:${port}` }, { qps: 0 });
    const started = performance.now();
    const err = await waitForApiServer(client, 1).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StartupTimeoutError);
    expect((err as Error).message).toMatch(/within 1 s: no answer \(timed out\)$/);
    expect(performance.now() - started).toBeLessThan(2_000);
  });

  it('the last 503 is what the message says when the server never gets past it', async () => {
    const { client, paths } = await answering([503]);
    const err = await waitForApiServer(client, 1).catch((e: unknown) => e);
    expect((err as Error).message).toMatch(/within 1 s: HTTP 503 status 503$/);
    expect(paths.length).toBeGreaterThan(1);
    expect(paths.length).toBeLessThan(10); // backoff, not a busy loop
  });
});
