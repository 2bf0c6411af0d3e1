/**
 * A hostile "PostgreSQL server" on loopback speaking just enough of the wire
 * protocol (v3) to test what a client does with it: it answers SSLRequest
 * with N, then after the startup message either asks for the password in
 * cleartext or as MD5, or lets the client in (trust) and then never answers
 * a query. It records every message the client sends after the startup.
 */
import net from 'node:net';

export type FakeMode = 'cleartext' | 'md5' | 'hang';

export interface FakeMessage {
  type: string;
  body: Buffer;
}

export interface FakePostgres {
  host: string;
  port: number;
  /** Connections accepted. */
  connections: number;
  /** Messages received after the startup message, in order. */
  messages: FakeMessage[];
  /** PasswordMessages ('p') received: what a client sent as its password. */
  passwords(): string[];
  close(): Promise<void>;
}

const SSL_REQUEST = 80877103;
const GSSENC_REQUEST = 80877104;

function authRequest(code: number, extra = Buffer.alloc(0)): Buffer {
  const b = Buffer.alloc(9 + extra.length);
  b.write('R', 0);
  b.writeInt32BE(8 + extra.length, 1);
  b.writeInt32BE(code, 5);
  extra.copy(b, 9);
  return b;
}

const READY_FOR_QUERY = Buffer.from([0x5a, 0, 0, 0, 5, 0x49]); // 'Z', len 5, 'I'

export async function startFakePostgres(mode: FakeMode): Promise<FakePostgres> {
  const sockets = new Set<net.Socket>();
  const fake: FakePostgres = {
    host: '127.0.0.1',
    port: 0,
    connections: 0,
    messages: [],
    passwords: () => fake.messages.filter((m) => m.type === 'p').map((m) => m.body.toString('utf8').replace(/\0$/, '')),
    close: () =>
      new Promise((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
  const server = net.createServer((socket) => {
    fake.connections++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    let buf = Buffer.alloc(0);
    let started = false;
    socket.on('data', (chunk) => {
      buf = Buffer.concat([buf, chunk]);
      for (;;) {
        if (!started) {
          if (buf.length < 8) return;
          const len = buf.readInt32BE(0);
          if (buf.length < len) return;
          const code = buf.readInt32BE(4);
          buf = buf.subarray(len);
          if (code === SSL_REQUEST || code === GSSENC_REQUEST) {
            socket.write('N');
            continue;
          }
          started = true;
          if (mode === 'cleartext') socket.write(authRequest(3));
          else if (mode === 'md5') socket.write(authRequest(5, Buffer.from([1, 2, 3, 4])));
          else socket.write(Buffer.concat([authRequest(0), READY_FOR_QUERY]));
          continue;
        }
        if (buf.length < 5) return;
        const len = buf.readInt32BE(1);
        if (buf.length < 1 + len) return;
        fake.messages.push({ type: String.fromCharCode(buf[0]!), body: Buffer.from(buf.subarray(5, 1 + len)) });
        buf = buf.subarray(1 + len);
        // Whatever comes (a password, a query): no answer, ever.
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  fake.port = (server.address() as net.AddressInfo).port;
  return fake;
}
