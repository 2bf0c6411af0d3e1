/**
 * The fault-injection proxy of test/harness/fault-proxy.ts, in front of a
 * plain echo server on loopback: each fault as a new connection sees it and
 * as a connection already open sees it.
 */
import net from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startFaultProxy, type FaultProxy } from '../harness/fault-proxy.js';

let echo: net.Server;
let echoPort: number;
const serverSockets = new Set<net.Socket>();
let serverAccepted = 0;
let proxy: FaultProxy;

beforeAll(async () => {
  echo = net.createServer((s) => {
    serverAccepted++;
    serverSockets.add(s);
    s.on('close', () => serverSockets.delete(s));
    s.on('error', () => {});
    s.on('data', (d) => s.write(`echo:${d.toString()}`));
  });
  echoPort = await new Promise<number>((r) => echo.listen(0, '127.0.0.1', () => r((echo.address() as net.AddressInfo).port)));
});
afterAll(() => new Promise((r) => echo.close(r)));
afterEach(async () => proxy?.close());

type Outcome = { kind: 'data'; text: string } | { kind: 'end' } | { kind: 'error'; code?: string } | { kind: 'silent' };

/** Connect through the proxy. */
function connect(p: FaultProxy): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: p.host, port: p.port, allowHalfOpen: true }, () => resolve(s));
    s.once('error', reject);
  });
}

/** Send `text` and report the first thing that happens within `ms`. */
function exchange(s: net.Socket, text: string, ms = 300): Promise<Outcome> {
  return new Promise((resolve) => {
    const done = (o: Outcome) => {
      clearTimeout(timer);
      s.off('data', onData).off('end', onEnd).off('error', onError);
      resolve(o);
    };
    const onData = (d: Buffer) => done({ kind: 'data', text: String(d) });
    const onEnd = () => done({ kind: 'end' });
    const onError = (e: NodeJS.ErrnoException) => done({ kind: 'error', code: e.code });
    const timer = setTimeout(() => done({ kind: 'silent' }), ms);
    s.on('data', onData).on('end', onEnd).on('error', onError);
    if (!s.destroyed && !s.writableEnded) s.write(text, () => {});
  });
}

describe('fault proxy', () => {
  it('forwards both ways unchanged with no fault, and counts connections', async () => {
    proxy = await startFaultProxy({ host: '127.0.0.1', port: echoPort });
    expect(proxy.url('https')).toBe(`https://127.0.0.1:${proxy.port}`);
    const s = await connect(proxy);
    expect(await exchange(s, 'hi')).toEqual({ kind: 'data', text: 'echo:hi' });
    expect(proxy.accepted).toBe(1);
    s.destroy();
  });

  it('delay: answers arrive, late and in order', async () => {
    proxy = await startFaultProxy({ host: '127.0.0.1', port: echoPort });
    proxy.setFault({ kind: 'delay', ms: 400 });
    const s = await connect(proxy);
    const started = Date.now();
    expect(await exchange(s, 'slow', 200)).toEqual({ kind: 'silent' });
    const got = await exchange(s, '', 2000);
    expect(got).toEqual({ kind: 'data', text: 'echo:slow' });
    // Both directions are delayed: about twice the delay.
    expect(Date.now() - started).toBeGreaterThanOrEqual(750);
    s.destroy();
  });

  it('blackhole: a new connection is accepted and never answered; the server is not asked; healing delivers what was held', async () => {
    proxy = await startFaultProxy({ host: '127.0.0.1', port: echoPort });
    const before = serverAccepted;
    proxy.setFault({ kind: 'blackhole' });
    const s = await connect(proxy);
    expect(await exchange(s, 'anyone?', 500)).toEqual({ kind: 'silent' });
    expect(serverAccepted).toBe(before);
    proxy.setFault({ kind: 'none' }, { existing: true });
    expect(await exchange(s, '', 2000)).toEqual({ kind: 'data', text: 'echo:anyone?' });
    s.destroy();
  });

  it('blackhole with existing: an open connection goes silent both ways, even when the server closes', async () => {
    proxy = await startFaultProxy({ host: '127.0.0.1', port: echoPort });
    const s = await connect(proxy);
    expect(await exchange(s, 'a')).toEqual({ kind: 'data', text: 'echo:a' });
    proxy.setFault({ kind: 'blackhole' }, { existing: true });
    expect(await exchange(s, 'b', 400)).toEqual({ kind: 'silent' });
    for (const ss of serverSockets) ss.destroy();
    expect(await exchange(s, 'c', 400)).toEqual({ kind: 'silent' });
    s.destroy();
  });

  it('reset: a new connection is reset; existing ones are reset with RST', async () => {
    proxy = await startFaultProxy({ host: '127.0.0.1', port: echoPort });
    const open = await connect(proxy);
    expect(await exchange(open, 'x')).toEqual({ kind: 'data', text: 'echo:x' });

    proxy.setFault({ kind: 'reset' });
    const fresh = await new Promise<Outcome>((resolve) => {
      const s = net.connect({ host: proxy.host, port: proxy.port });
      s.on('error', (e: NodeJS.ErrnoException) => resolve({ kind: 'error', code: e.code }));
      s.on('end', () => resolve({ kind: 'end' }));
      s.on('connect', () => s.write('hello?'));
    });
    expect(fresh).toEqual({ kind: 'error', code: 'ECONNRESET' });
    // The open connection is untouched by a fault for new ones.
    expect(await exchange(open, 'y')).toEqual({ kind: 'data', text: 'echo:y' });

    const reset = exchange(open, '', 2000);
    proxy.setFault({ kind: 'reset' }, { existing: true });
    expect(await reset).toEqual({ kind: 'error', code: 'ECONNRESET' });
    expect(proxy.open).toBe(0);
  });

  it('half-close: the client sees end of stream while its own side stays writable', async () => {
    proxy = await startFaultProxy({ host: '127.0.0.1', port: echoPort });
    proxy.setFault({ kind: 'half-close' });
    const s = await connect(proxy);
    expect(await exchange(s, 'is anyone there', 1000)).toEqual({ kind: 'end' });
    expect(s.writable).toBe(true);
    s.destroy();

    proxy.setFault({ kind: 'none' });
    const open = await connect(proxy);
    expect(await exchange(open, 'q')).toEqual({ kind: 'data', text: 'echo:q' });
    const ended = exchange(open, '', 2000);
    proxy.setFault({ kind: 'half-close' }, { existing: true });
    expect(await ended).toEqual({ kind: 'end' });
    open.destroy();
  });

  it('none after a fault: new connections work again', async () => {
    proxy = await startFaultProxy({ host: '127.0.0.1', port: echoPort });
    proxy.setFault({ kind: 'blackhole' });
    const stuck = await connect(proxy);
    proxy.setFault({ kind: 'none' });
    const s = await connect(proxy);
    expect(await exchange(s, 'back')).toEqual({ kind: 'data', text: 'echo:back' });
    expect(await exchange(stuck, 'still?', 300)).toEqual({ kind: 'silent' });
    expect(proxy.accepted).toBe(2);
    s.destroy();
    stuck.destroy();
  });
});
