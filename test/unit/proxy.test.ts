/**
 * The tunnels kube/proxy.ts opens, through small real proxies on
 * loopback: HTTP CONNECT with Proxy-Authorization, SOCKS5 with and without
 * username/password, and a proxy that refuses.
 */
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openTunnel } from '../../kube/proxy.js';

let echo: net.Server;
let echoPort: number;
const listen = (s: net.Server) => new Promise<number>((r) => s.listen(0, '127.0.0.1', () => r((s.address() as net.AddressInfo).port)));

beforeAll(async () => {
  echo = net.createServer((s) => s.on('data', (d) => s.write(`echo:${d.toString()}`)));
  echoPort = await listen(echo);
});
afterAll(() => echo.close());

async function roundTrip(socket: NodeJS.ReadWriteStream & { end(): void }): Promise<string> {
  const got = new Promise<string>((r) => socket.once('data', (d) => r(String(d))));
  socket.write('hi');
  const answer = await got;
  socket.end();
  return answer;
}

describe('openTunnel', () => {
  it('HTTP CONNECT, with the proxy credentials from the URL in Proxy-Authorization', async () => {
    const heads: string[] = [];
    const proxy = net.createServer((c) =>
      c.once('data', (head) => {
        heads.push(String(head));
        const [, host, port] = /^CONNECT ([^:]+):(\d+)/.exec(String(head))!;
        if (!String(head).includes(`Proxy-Authorization: Basic ${Buffer.from('u:p@ss').toString('base64')}`)) return void c.end('HTTP/1.1 407 Proxy Authentication Required\r\n\r\n');
        const up = net.connect(Number(port), host, () => {
          c.write('HTTP/1.1 200 Connection Established\r\n\r\n');
          up.pipe(c).pipe(up);
        });
      }),
    );
    const port = await listen(proxy);
    try {
      expect(await roundTrip(await openTunnel(new URL(`http://u:p%40ss@127.0.0.1:${port}`), '127.0.0.1', echoPort))).toBe('echo:hi');
      expect(heads[0]).toMatch(new RegExp(`^CONNECT 127\\.0\\.0\\.1:${echoPort} HTTP/1\\.1\\r\\nHost: 127\\.0\\.0\\.1:${echoPort}\\r\\n`));
      await expect(openTunnel(new URL(`http://127.0.0.1:${port}`), '127.0.0.1', echoPort)).rejects.toThrow(/refused CONNECT 127\.0\.0\.1:\d+: HTTP\/1\.1 407 Proxy Authentication Required/);
    } finally {
      proxy.close();
    }
  });

  it('SOCKS5: no authentication, username/password, and a refusal', async () => {
    const seen: { auth?: string; host: string; port: number }[] = [];
    const proxy = net.createServer((c) => {
      let stage = 0;
      let auth: string | undefined;
      c.on('data', function onData(d: Buffer) {
        if (stage === 0) {
          const methods = [...d.subarray(2, 2 + d[1]!)];
          stage = methods.includes(2) ? 1 : 2;
          c.write(Buffer.from([5, methods.includes(2) ? 2 : 0]));
        } else if (stage === 1) {
          const ul = d[1]!;
          auth = `${d.subarray(2, 2 + ul).toString()}:${d.subarray(3 + ul, 3 + ul + d[2 + ul]!).toString()}`;
          stage = 2;
          c.write(Buffer.from([1, auth === 'kiln:pw' ? 0 : 1]));
        } else {
          c.off('data', onData);
          const type = d[3];
          const host = type === 1 ? [...d.subarray(4, 8)].join('.') : String(d.subarray(5, 5 + d[4]!));
          const portAt = type === 1 ? 8 : 5 + d[4]!;
          const port = d.readUInt16BE(portAt);
          seen.push({ auth, host, port });
          if (host === 'refused.example') return void c.end(Buffer.from([5, 5, 0, 1, 0, 0, 0, 0, 0, 0]));
          const up = net.connect(port, '127.0.0.1', () => {
            c.write(Buffer.from([5, 0, 0, 1, 127, 0, 0, 1, 0, 0]));
            up.pipe(c).pipe(up);
          });
        }
      });
    });
    const port = await listen(proxy);
    try {
      expect(await roundTrip(await openTunnel(new URL(`socks5://127.0.0.1:${port}`), '127.0.0.1', echoPort))).toBe('echo:hi');
      expect(await roundTrip(await openTunnel(new URL(`socks5://kiln:pw@127.0.0.1:${port}`), 'api.example', echoPort))).toBe('echo:hi');
      expect(seen).toEqual([
        { host: '127.0.0.1', port: echoPort },
        { auth: 'kiln:pw', host: 'api.example', port: echoPort },
      ]);
      await expect(openTunnel(new URL(`socks5://kiln:wrong@127.0.0.1:${port}`), 'api.example', echoPort)).rejects.toThrow('SOCKS5 proxy refused the username and password');
      await expect(openTunnel(new URL(`socks5://127.0.0.1:${port}`), 'refused.example', 443)).rejects.toThrow('SOCKS5 proxy refused CONNECT refused.example:443 (reply 5)');
    } finally {
      proxy.close();
    }
  });
});
