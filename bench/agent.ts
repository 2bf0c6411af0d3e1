/**
 * Runtime-agent benchmark against real servers: the control plane
 * (test/harness), PostgreSQL 15 and slapd from Debian's packages.
 *
 *  1. baseline: what a user would script by hand, one psql-like session
 *     (node-postgres) sending CREATE ROLE + CREATE DATABASE for N databases,
 *     one after another; and the same over --concurrency sessions at once,
 *     the most this server gives any client (its CREATE DATABASE throughput
 *     bounds every figure below);
 *  2. kiln: N PostgresDatabase resources created at once; for each, the time
 *     from its creation (the API server's answer) until the agent's informer
 *     sees it DatabaseReady;
 *     and N more created one by one at --rate per second (steady arrival),
 *     measured the same way;
 *  3. password rotation: a DirectoryService entry's Secret is changed R
 *     times; for each, the time until a bind with the new value succeeds
 *     (polled every 10 ms); its ceiling, measured before the agent starts: a
 *     script (ldapts) doing the directory's part of a rotation R times on
 *     another entry, as the agent does it (an admin connection binds and sends
 *     Password Modify; a second connection binds with the new value).
 *
 * Each kiln row that has a ceiling carries its ratio to it (ratioToCeiling:
 * burst total seconds over the PostgreSQL ceiling's; rotation p50 over the
 * LDAP ceiling's p50).
 *
 * The agent runs in this process with the flags below. Prints a table and
 * writes bench/results/agent.json.
 *
 *   npm run bench:agent [-- --count 100 --rotations 20 --concurrency 4 --qps 0 --burst 30]
 */
import { appendFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { BerWriter, Client as LdapClient } from 'ldapts';
import pg from 'pg';
import { Agent } from '../agent/agent.js';
import { KubeClient } from '../kube/client.js';
import { Informer, type KubeObject } from '../kube/informer.js';
import { loadKubeConfig } from '../kube/kubeconfig.js';
import { defaultCrdPaths, ensureBinaries, startControlPlane, type ControlPlane } from '../test/harness/controlplane.js';
import { startPostgres, type PostgresServer } from '../test/harness/postgres.js';
import { startSlapd, type SlapdServer } from '../test/harness/slapd.js';
import { flags } from './args.js';

const flag = flags().get;
const count = Number(flag('count', '100'));
const rotations = Number(flag('rotations', '20'));
const concurrency = Number(flag('concurrency', '4'));
const qps = Number(flag('qps', '0'));
const burst = Number(flag('burst', '30'));
/** Resources per second in the steady-arrival case. */
const rate = Number(flag('rate', '5'));
/** Development: the agent's log lines go to this file. */
const logFile = flag('log', '');
const NS = 'bench-agent';
const SUFFIX = 'dc=kiln,dc=test';
const ACCOUNT = `uid=svc,ou=admins,${SUFFIX}`;
/** The entry the LDAP ceiling script rotates: not in any DirectoryService, so the agent leaves it alone. */
const CEILING_ACCOUNT = `uid=ceiling,ou=admins,${SUFFIX}`;

const log = (msg: string) => process.stderr.write(`[bench:agent] ${msg}\n`);
const round = (n: number, d = 2) => Math.round(n * 10 ** d) / 10 ** d;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
function stats(ms: number[]) {
  const s = [...ms].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
  return { n: s.length, p50Ms: round(at(0.5), 0), p95Ms: round(at(0.95), 0), maxMs: round(s[s.length - 1]!, 0) };
}

let cp: ControlPlane | undefined;
let server: PostgresServer | undefined;
let ldap: SlapdServer | undefined;
let agent: Agent | undefined;

/** N x CREATE ROLE + CREATE DATABASE over `sessions` connections; the time of the n-th finish is its latency. */
async function baseline(prefix: string, sessions: number): Promise<{ seconds: number; perDatabaseMs: number; latency: ReturnType<typeof stats> }> {
  const clients = await Promise.all(
    Array.from({ length: sessions }, async () => {
      const c = new pg.Client({ host: server!.host, port: server!.port, user: 'postgres', password: server!.password, database: 'postgres' });
      await c.connect();
      return c;
    }),
  );
  const done: number[] = [];
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    clients.map(async (c) => {
      for (let i = next++; i < count; i = next++) {
        await c.query(`CREATE ROLE ${prefix}_${i} LOGIN`);
        await c.query(`CREATE DATABASE ${prefix}_${i} OWNER ${prefix}_${i}`);
        done.push(performance.now() - t0);
      }
    }),
  );
  const seconds = (performance.now() - t0) / 1000;
  await Promise.all(clients.map((c) => c.end()));
  return { seconds: round(seconds), perDatabaseMs: round((seconds * 1000) / count, 0), latency: stats(done) };
}

async function databases(admin: KubeClient, prefix: string, perSecond?: number): Promise<{ seconds: number; latency: ReturnType<typeof stats>; writes: number }> {
  const readyAt = new Map<string, number>();
  const watcher = new Informer(admin, { apiVersion: 'kiln.dev/v1alpha1', kind: 'PostgresDatabase', namespace: NS, resyncSeconds: 0 });
  watcher.on((_e, o: KubeObject) => {
    const c = (o.status as { conditions?: { type: string; status: string }[] } | undefined)?.conditions?.find((x) => x.type === 'DatabaseReady');
    if (c?.status === 'True' && !readyAt.has(o.metadata.name)) readyAt.set(o.metadata.name, performance.now());
  });
  await watcher.start();
  const createdAt = new Map<string, number>();
  const writesBefore = agent!.client.writes();
  const t0 = performance.now();
  const create = async (i: number) => {
    const name = `${prefix}-${i}`;
    await admin.create({ apiVersion: 'kiln.dev/v1alpha1', kind: 'PostgresDatabase', metadata: { name, namespace: NS }, spec: { instance: 'pg', name: `${prefix}_${i}` } } as never);
    createdAt.set(name, performance.now());
  };
  if (perSecond) {
    for (let i = 0; i < count; i++) {
      void create(i);
      await sleep(1000 / perSecond);
    }
  } else {
    await Promise.all(Array.from({ length: count }, (_, i) => create(i)));
  }
  const mine = () => [...readyAt.keys()].filter((n) => n.startsWith(`${prefix}-`)).length;
  while (mine() < count || createdAt.size < count) {
    if (performance.now() - t0 > 300_000) throw new Error(`only ${mine()} of ${count} DatabaseReady after 300 s`);
    await sleep(20);
  }
  const seconds = (Math.max(...[...createdAt.keys()].map((n) => readyAt.get(n)!)) - t0) / 1000;
  watcher.stop();
  return { seconds: round(seconds), latency: stats([...createdAt].map(([n, t]) => readyAt.get(n)! - t)), writes: agent!.client.writes() - writesBefore };
}

async function canBind(dn: string, password: string): Promise<boolean> {
  const c = new LdapClient({ url: ldap!.url, connectTimeout: 2000, timeout: 2000 });
  try {
    await c.bind(dn, password);
    return true;
  } catch {
    return false;
  } finally {
    await c.unbind().catch(() => {});
  }
}

/** RFC 3062 Password Modify, as agent/directory.ts sends it: userIdentity and newPasswd. */
function passwordModify(dn: string, password: string): Buffer {
  const w = new BerWriter();
  w.startSequence();
  w.writeString(dn, 0x80);
  w.writeString(password, 0x82);
  w.endSequence();
  return w.buffer;
}

/** A script's rotation: admin connection, bind, Password Modify; then the same bind check as rotation()'s, R times. */
async function ldapCeiling(): Promise<ReturnType<typeof stats>> {
  const samples: number[] = [];
  for (let i = 0; i < rotations; i++) {
    const value = `ceiling-${i}-${Math.random().toString(36).slice(2)}`;
    const t0 = performance.now();
    const c = new LdapClient({ url: ldap!.url, connectTimeout: 2000, timeout: 2000 });
    try {
      await c.bind(ldap!.adminDn, ldap!.adminPassword);
      await c.exop('1.3.6.1.4.1.4203.1.11.1', passwordModify(CEILING_ACCOUNT, value));
    } finally {
      await c.unbind().catch(() => {});
    }
    while (!(await canBind(CEILING_ACCOUNT, value))) {
      if (performance.now() - t0 > 30_000) throw new Error(`ceiling rotation ${i} not done after 30 s`);
      await sleep(10);
    }
    samples.push(performance.now() - t0);
    await sleep(200);
  }
  return stats(samples);
}

async function rotation(admin: KubeClient): Promise<ReturnType<typeof stats>> {
  const samples: number[] = [];
  for (let i = 0; i < rotations; i++) {
    const value = `rotated-${i}-${Math.random().toString(36).slice(2)}`;
    const t0 = performance.now();
    await admin.request('PATCH', `/api/v1/namespaces/${NS}/secrets/svc-password`, { body: { data: { password: Buffer.from(value).toString('base64') } }, contentType: 'application/merge-patch+json' });
    while (!(await canBind(ACCOUNT, value))) {
      if (performance.now() - t0 > 30_000) throw new Error(`rotation ${i} not done after 30 s`);
      await sleep(10);
    }
    samples.push(performance.now() - t0);
    await sleep(200);
  }
  return stats(samples);
}

try {
  log('servers: control plane, PostgreSQL 15, slapd');
  const binDir = await ensureBinaries();
  cp = await startControlPlane({ binDir, crdPaths: defaultCrdPaths(), controllerManager: false });
  server = await startPostgres();
  ldap = await startSlapd({
    accounts: [
      { dn: ACCOUNT, password: 'initial-value' },
      { dn: CEILING_ACCOUNT, password: 'initial-value' },
    ],
  });
  const kc = loadKubeConfig({ kubeconfig: cp.kubeconfig });
  const admin = new KubeClient(kc, { qps: 0 });
  await cp.kubectlOk(['create', 'namespace', NS]);
  await cp.kubectlOk(['-n', NS, 'create', 'secret', 'generic', 'pg-superuser', `--from-literal=password=${server.password}`]);
  await cp.kubectlOk(['-n', NS, 'create', 'secret', 'generic', 'ds-admin', `--from-literal=password=${ldap.adminPassword}`]);
  await cp.kubectlOk(['-n', NS, 'create', 'secret', 'generic', 'svc-password', '--from-literal=password=initial-value']);
  await cp.kubectlOk(['apply', '--server-side', '-f', '-'], {
    input: JSON.stringify({
      apiVersion: 'v1',
      kind: 'List',
      items: [
        { apiVersion: 'kiln.dev/v1alpha1', kind: 'PostgresInstance', metadata: { name: 'pg', namespace: NS }, spec: { superuserSecret: { name: 'pg-superuser' } } },
        {
          apiVersion: 'kiln.dev/v1alpha1',
          kind: 'DirectoryService',
          metadata: { name: 'ds', namespace: NS },
          spec: { image: 'ds:7', passwords: { [`uid=admin,${SUFFIX}`]: { secretName: 'ds-admin' }, [ACCOUNT]: { secretName: 'svc-password' } } },
        },
      ],
    }),
  });

  log(`baseline: ${count} x CREATE ROLE + CREATE DATABASE in one session, then over ${concurrency} sessions`);
  const base = await baseline('base', 1);
  const parallel = await baseline('par', concurrency);
  log(`LDAP ceiling: ${rotations} rotations by a script`);
  const ldapTop = await ldapCeiling();

  log(`agent: concurrency ${concurrency}, qps ${qps}, burst ${burst}`);
  agent = new Agent({
    kc,
    namespaces: [NS],
    concurrency,
    qps,
    burst,
    passwordIntervalSeconds: 300,
    databaseCheckSeconds: 10,
    endpoints: { [`PostgresInstance/${NS}/pg`]: `${server.host}:${server.port}`, [`DirectoryService/${NS}/ds`]: ldap.url },
    log: logFile ? (level, msg, fields) => appendFileSync(logFile, `${level} ${msg} ${JSON.stringify(fields ?? {})}\n`) : () => {},
  });
  await agent.start();
  await sleep(1000);

  log(`kiln: ${count} PostgresDatabase resources at once`);
  const kiln = await databases(admin, 'burst');
  log(`kiln: ${count} PostgresDatabase resources, ${rate} per second`);
  const steady = await databases(admin, 'steady', rate);
  log(`rotation: ${rotations} Secret changes`);
  const rot = await rotation(admin);
  const ratio = (a: number, b: number) => (b > 0 ? round(a / b, 2) : null);
  const burstRatio = ratio(kiln.seconds, parallel.seconds);
  const rotationRatio = ratio(rot.p50Ms, ldapTop.p50Ms);

  const result = {
    date: new Date().toISOString(),
    machine: { cores: cpus().length, cpu: cpus()[0]?.model ?? '', node: process.version, loadavg: loadavg().map((l) => round(l)) },
    settings: { databases: count, rate, rotations, concurrency, qps, burst, databaseCheckSeconds: 10, postgres: '15 (Debian), fsync off', ldap: 'OpenLDAP slapd 2.5 (Debian), ldap://' },
    rows: [
      {
        case: `psql-style script: ${count} CREATE ROLE + CREATE DATABASE, one session, sequential`,
        seconds: base.seconds,
        p50Ms: base.perDatabaseMs,
        p95Ms: null,
        maxMs: null,
        note: 'no Secret, no status, no retry',
        ratioToCeiling: null,
      },
      {
        case: `the same over ${concurrency} sessions at once (the server's ceiling; latency = start of the script to that database)`,
        seconds: parallel.seconds,
        ...parallel.latency,
        note: 'no Secret, no status, no retry',
        ratioToCeiling: null,
      },
      {
        case: `kiln agent: ${count} PostgresDatabase created at once -> DatabaseReady`,
        seconds: kiln.seconds,
        ...kiln.latency,
        note: `per resource, creation to DatabaseReady; ${kiln.writes} API writes`,
        ratioToCeiling: burstRatio,
      },
      {
        case: `kiln agent: ${count} PostgresDatabase created ${rate} per second -> DatabaseReady`,
        seconds: steady.seconds,
        ...steady.latency,
        note: `per resource, creation to DatabaseReady; ${steady.writes} API writes`,
        ratioToCeiling: null,
      },
      {
        case: `ldapts script: password rotation, admin bind + Password Modify -> bind works (${rotations} times; the directory's ceiling for the row below)`,
        seconds: null,
        ...ldapTop,
        note: 'no Secret, no watch, no status',
        ratioToCeiling: null,
      },
      {
        case: `kiln agent: password rotation, Secret change -> bind works (${rotations} times)`,
        seconds: null,
        ...rot,
        note: 'watch-driven, no polling interval',
        ratioToCeiling: rotationRatio,
      },
    ],
    ratios: {
      note: 'kiln over the same work done by a script against the same server in the same run: the burst total seconds (and p50) over the PostgreSQL ceiling row (as many sessions as the agent has workers) and over the one-session row, rotation p50 and p95 over the ldapts script row',
      burstSecondsToPostgresCeiling: burstRatio,
      burstP50ToPostgresCeiling: ratio(kiln.latency.p50Ms, parallel.latency.p50Ms),
      // The agent runs one operation per instance at a time (agent/instance-gate.ts): the one-session script is the like-for-like row.
      burstSecondsToOneSession: ratio(kiln.seconds, base.seconds),
      rotationP50ToLdapCeiling: rotationRatio,
      rotationP95ToLdapCeiling: ratio(rot.p95Ms, ldapTop.p95Ms),
    },
    targets: {
      serverCanMeetBurst: parallel.latency.maxMs <= 2000,
      databaseReadyWithin2sBurst: kiln.latency.maxMs <= 2000,
      databaseReadyWithin2sSteady: steady.latency.maxMs <= 2000,
      rotationWithin2s: rot.maxMs <= 2000,
    },
  };
  writeFileSync(new URL('results/agent.json', import.meta.url), `${JSON.stringify(result, null, 2)}\n`);
  console.log(
    `\nRuntime agent, ${result.date.slice(0, 10)}, ${result.machine.cores} cores, load ${result.machine.loadavg.join(' ')}; agent --concurrency ${concurrency} --qps ${qps} --burst ${burst}\n`,
  );
  console.log('| case | total s | p50 ms | p95 ms | max ms | x ceiling | note |\n|---|---:|---:|---:|---:|---:|---|');
  for (const r of result.rows) console.log(`| ${r.case} | ${r.seconds ?? '-'} | ${r.p50Ms ?? '-'} | ${r.p95Ms ?? '-'} | ${r.maxMs ?? '-'} | ${r.ratioToCeiling ?? '-'} | ${r.note} |`);
  console.log(
    `\nx ceiling: the burst's total ${kiln.seconds} s over the PostgreSQL ceiling's ${parallel.seconds} s (${concurrency} sessions, as the agent's concurrency; ${result.ratios.burstSecondsToOneSession}x the one-session script's ${base.seconds} s); rotation p50 ${rot.p50Ms} ms over the ldapts script's ${ldapTop.p50Ms} ms (p95: ${result.ratios.rotationP95ToLdapCeiling}x)`,
  );
  const verdict = (ok: boolean) => (ok ? 'met' : 'MISSED');
  console.log(
    `\ntargets: each database ready within 2 s: ${verdict(result.targets.databaseReadyWithin2sBurst)} for ${count} at once (the server alone, ${concurrency} sessions: ${verdict(result.targets.serverCanMeetBurst)}), ${verdict(result.targets.databaseReadyWithin2sSteady)} at ${rate}/s; rotation within 2 s: ${verdict(result.targets.rotationWithin2s)}`,
  );
} finally {
  await agent?.stop().catch(() => {});
  await ldap?.destroy().catch(() => {});
  await server?.destroy().catch(() => {});
  await cp?.stop().catch(() => {});
}
