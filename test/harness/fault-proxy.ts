/**
 * A TCP proxy on loopback that sits between a client under test and a real
 * server and can misbehave on command, so tests can show what a component
 * does when the network does: answers arrive late (delay), never arrive
 * (blackhole: the connection is accepted and then silent, the case timeouts
 * exist for), the peer resets (RST), or the peer closes its side only
 * (half-close). Bytes pass through unchanged, so TLS and every protocol work
 * through it as they would directly.
 *
 * A fault applies to connections accepted after setFault(); with
 * `existing: true` it also hits the connections already open, which is how a
 * partition of a long-lived connection (a watch, a pooled database session)
 * looks.
 */
import net from 'node:net';

export type Fault = { kind: 'none' } | { kind: 'delay'; ms: number } | { kind: 'blackhole' } | { kind: 'reset' } | { kind: 'half-close' };

export interface FaultProxy {
  readonly host: string;
  readonly port: number;
  readonly url: (scheme: string) => string;
  setFault(f: Fault, opts?: { existing?: boolean }): void;
  /** connections accepted so far */
  readonly accepted: number;
  /** connections open now (client side not yet closed) */
  readonly open: number;
  close(): Promise<void>;
}

interface Link {
  client: net.Socket;
  upstream?: net.Socket;
  fault: Fault;
  /** When the last delayed chunk in each direction is due, so delayed chunks keep their order. */
  due: { up: number; down: number };
  /** Chunks held back while the link is blackholed (a partition loses no bytes: TCP would retransmit them). */
  held: { up: Buffer[]; down: Buffer[] };
  upstreamEnded: boolean;
  clientEnded: boolean;
}

export async function startFaultProxy(target: { host: string; port: number }): Promise<FaultProxy> {
  let current: Fault = { kind: 'none' };
  let accepted = 0;
  const links = new Set<Link>();

  const connectUpstream = (link: Link) => {
    if (link.upstream || link.client.destroyed) return;
    const up = net.connect({ host: target.host, port: target.port, allowHalfOpen: true });
    link.upstream = up;
    up.setNoDelay(true);
    up.on('data', (d) => forward(link, 'down', d));
    up.on('end', () => {
      link.upstreamEnded = true;
      if (link.fault.kind === 'none' || link.fault.kind === 'delay') endAfter(link, 'down');
    });
    up.on('error', () => {});
    up.on('close', () => {
      // A silent link hides the server's going away, as a partition would.
      if (link.fault.kind !== 'blackhole' && link.fault.kind !== 'half-close') link.client.destroy();
    });
    for (const d of link.held.up.splice(0)) up.write(d);
    if (link.clientEnded) up.end();
  };

  /** End the far side once every delayed chunk in that direction has gone. */
  const endAfter = (link: Link, dir: 'up' | 'down') => {
    const wait = Math.max(0, link.due[dir] - Date.now());
    const finish = () => (dir === 'down' ? link.client.end() : link.upstream?.end());
    if (wait) setTimeout(finish, wait).unref();
    else finish();
  };

  const write = (link: Link, dir: 'up' | 'down', d: Buffer) => {
    const to = dir === 'up' ? link.upstream : link.client;
    if (!to || to.destroyed || to.writableEnded) {
      if (dir === 'up' && !to) link.held.up.push(d);
      return;
    }
    const from = dir === 'up' ? link.client : link.upstream!;
    if (!to.write(d)) {
      from.pause();
      to.once('drain', () => from.resume());
    }
  };

  const forward = (link: Link, dir: 'up' | 'down', d: Buffer) => {
    const f = link.fault;
    switch (f.kind) {
      case 'none':
        if (link.due[dir] > Date.now()) return delayed(link, dir, d, 0);
        return write(link, dir, d);
      case 'delay':
        return delayed(link, dir, d, f.ms);
      case 'blackhole':
        link.held[dir].push(d);
        return;
      case 'half-close':
        // The client's side toward the server still works; nothing comes back.
        if (dir === 'up') write(link, dir, d);
        return;
      case 'reset':
        return;
    }
  };

  const delayed = (link: Link, dir: 'up' | 'down', d: Buffer, ms: number) => {
    const at = Math.max(Date.now() + ms, link.due[dir]);
    link.due[dir] = at;
    setTimeout(() => write(link, dir, d), at - Date.now()).unref();
  };

  const apply = (link: Link, f: Fault) => {
    const was = link.fault;
    link.fault = f;
    switch (f.kind) {
      case 'reset':
        if (!link.client.destroyed) link.client.resetAndDestroy();
        if (link.upstream && !link.upstream.destroyed) link.upstream.resetAndDestroy();
        return;
      case 'half-close':
        link.client.end();
        return;
      case 'blackhole':
        return;
      case 'none':
      case 'delay':
        if (was.kind === 'blackhole') {
          // The partition heals: what was held back arrives, in order.
          if (!link.upstream) connectUpstream(link);
          else for (const d of link.held.up.splice(0)) forward(link, 'up', d);
          for (const d of link.held.down.splice(0)) forward(link, 'down', d);
          if (link.upstreamEnded) endAfter(link, 'down');
          if (link.upstream?.destroyed) link.client.destroy();
        }
        return;
    }
  };

  const server = net.createServer({ allowHalfOpen: true }, (client) => {
    accepted++;
    const link: Link = { client, fault: current, due: { up: 0, down: 0 }, held: { up: [], down: [] }, upstreamEnded: false, clientEnded: false };
    links.add(link);
    client.setNoDelay(true);
    client.on('error', () => {});
    client.on('close', () => {
      links.delete(link);
      link.upstream?.destroy();
    });
    client.on('end', () => {
      link.clientEnded = true;
      if (link.fault.kind === 'none' || link.fault.kind === 'delay' || link.fault.kind === 'half-close') endAfter(link, 'up');
      // The client has gone: nobody will read this link again.
      if (link.fault.kind !== 'none' && link.fault.kind !== 'delay') client.destroy();
    });
    client.on('data', (d) => forward(link, 'up', d));
    switch (current.kind) {
      case 'reset':
        client.resetAndDestroy();
        return;
      case 'blackhole':
        // Accepted, then silence: the server is not even asked.
        return;
      case 'half-close':
        connectUpstream(link);
        client.end();
        return;
      default:
        connectUpstream(link);
    }
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as net.AddressInfo).port;

  return {
    host: '127.0.0.1',
    port,
    url: (scheme: string) => `${scheme}://127.0.0.1:${port}`,
    setFault(f, opts) {
      current = f;
      if (opts?.existing) for (const link of [...links]) apply(link, f);
    },
    get accepted() {
      return accepted;
    },
    get open() {
      return links.size;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const link of links) {
          link.client.destroy();
          link.upstream?.destroy();
        }
        server.close(() => resolve());
      }),
  };
}
