/**
 * The etcd gateway client against a hostile stand-in server on loopback: an
 * answer too large, a server that never answers or trickles, a snapshot past
 * its bound, and what the agent reads out of member lists and versions.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { EtcdError, hexId, memberList, memberStatus, snapshot } from '../../agent/etcd.js';
import { lowestVersion } from '../../agent/etcd-reconciler.js';
import { Endpoints, parseEndpoint } from '../../agent/context.js';

const servers: http.Server[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) {
    s.closeAllConnections();
    await new Promise((r) => s.close(r));
  }
});

async function serve(handler: http.RequestListener): Promise<string> {
  const s = http.createServer(handler);
  servers.push(s);
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  return `http://127.0.0.1:${(s.address() as AddressInfo).port}`;
}

describe('etcd gateway client bounds', () => {
  it('refuses an answer larger than 1 MiB', async () => {
    const url = await serve((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(`{"members":[${'{"name":"x"},'.repeat(200_000)}{}]}`);
    });
    await expect(memberList({ url, timeoutMs: 5_000 })).rejects.toThrow(/larger than 1048576 bytes/);
  });

  it('gives up on a server that never answers, or trickles, within the deadline', async () => {
    const silent = await serve(() => undefined);
    const t0 = Date.now();
    await expect(memberStatus({ url: silent, timeoutMs: 300 })).rejects.toThrow(EtcdError);
    const trickle = await serve((_req, res) => {
      res.writeHead(200);
      const t = setInterval(() => res.write(' '), 50);
      res.on('close', () => clearInterval(t));
    });
    await expect(memberStatus({ url: trickle, timeoutMs: 300 })).rejects.toThrow(/no answer within 0.3 s/);
    expect(Date.now() - t0).toBeLessThan(3_000);
  });

  it('says what an error status carried, and refuses what is not a JSON object', async () => {
    const url = await serve((req, res) => {
      if (req.url === '/v3/cluster/member/list') {
        res.writeHead(503);
        res.end('{"code":14,"message":"etcdserver: unhealthy cluster"}');
      } else res.end('[1,2]');
    });
    await expect(memberList({ url })).rejects.toThrow(/HTTP 503: etcdserver: unhealthy cluster/);
    await expect(memberStatus({ url })).rejects.toThrow(/not a JSON object/);
  });

  it('keeps member IDs exact (uint64 as strings) and bounds what it keeps', async () => {
    const url = await serve((_req, res) => res.end(JSON.stringify({ members: [{ ID: '18446744073709551615', name: 'a'.repeat(400), peerURLs: Array(40).fill('http://x'), isLearner: true }] })));
    const [m] = await memberList({ url });
    expect(hexId(m!.id)).toBe('ffffffffffffffff');
    expect(m!.name).toHaveLength(253);
    expect(m!.peerURLs).toHaveLength(16);
    expect(m!.isLearner).toBe(true);
    expect(hexId('not a number')).toBe('');
  });

  it('a snapshot stops at its byte bound and a stream error is an error', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'kiln-etcd-snap-'));
    try {
      const chunk = JSON.stringify({ result: { blob: Buffer.alloc(1000, 7).toString('base64') } });
      const url = await serve((req, res) => {
        res.writeHead(200);
        if (req.url === '/v3/maintenance/snapshot') res.end(`${chunk}\n${chunk}\n${chunk}\n`);
      });
      expect(await snapshot({ url }, path.join(dir, 'ok.db'), 3000)).toBe(3000);
      expect((await readFile(path.join(dir, 'ok.db'))).length).toBe(3000);
      await expect(snapshot({ url }, path.join(dir, 'big.db'), 2500)).rejects.toThrow(/larger than 2500 bytes/);
      const broken = await serve((_req, res) => res.end(`${chunk}\n{"error":{"message":"boom"}}\n`));
      await expect(snapshot({ url: broken }, path.join(dir, 'broken.db'), 1 << 20)).rejects.toThrow(/boom/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('etcd endpoints and versions', () => {
  it('--endpoint takes a per-member client and peer URL; without one, the headless Service names', () => {
    const [key, value] = parseEndpoint('EtcdCluster/platform/config-2=http://127.0.0.1:2379,http://127.0.0.1:2380');
    const e = new Endpoints({ [key]: value });
    expect(e.etcdMember('platform', 'config', 2, { client: true, peer: true })).toEqual({ client: 'http://127.0.0.1:2379', peer: 'http://127.0.0.1:2380' });
    expect(e.etcdMember('platform', 'config', 1, { client: true, peer: false })).toEqual({
      client: 'https://config-1.config.platform.svc:2379',
      peer: 'http://config-1.config.platform.svc:2380',
    });
    expect(() => parseEndpoint('EtcdCluster/Bad NS/x=y')).toThrow(/expected/);
  });

  it('the lowest version is numeric, and ignores what is not a version', () => {
    expect(lowestVersion(['3.6.10', '3.6.9', '3.10.0'])).toBe('3.6.9');
    expect(lowestVersion(['', 'garbage', '3.5.21'])).toBe('3.5.21');
    expect(lowestVersion([])).toBeUndefined();
  });
});

describe('the version change the agent rolls', () => {
  it('refuses a minor downgrade and a skipped minor, as etcd does; a patch either way and the next minor pass', async () => {
    const { versionChangeRefused } = await import('../../agent/etcd-reconciler.js');
    expect(versionChangeRefused('3.6.4', '3.6.5')).toBeUndefined();
    expect(versionChangeRefused('3.6.4', '3.6.1')).toBeUndefined();
    expect(versionChangeRefused('3.5.21', '3.6.0')).toBeUndefined();
    expect(versionChangeRefused('3.6.4', '3.5.21')).toMatch(/cannot go back/);
    expect(versionChangeRefused('3.4.30', '3.6.0')).toMatch(/one minor version at a time/);
    expect(versionChangeRefused('3.6.4', 'v3.6.4')).toMatch(/cannot compare/);
  });
});
