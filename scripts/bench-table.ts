/** Writes the benchmark table in README.md from bench/results/*.json (npm run bench:table). */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';

const START = '<!-- bench:start -->';
const END = '<!-- bench:end -->';
const root = new URL('..', import.meta.url);
const file = new URL('bench/results/render.json', root);
if (!existsSync(file)) throw new Error('run npm run bench:render first');
const r = JSON.parse(readFileSync(file, 'utf8')) as {
  date: string;
  machine: { cores: number; cpu: string; node: string; outputOn: string };
  rows: { resources: number; tool: string; seconds: number | null; resourcesPerSecond: number | null; peakRssMiB: number | null; speedupVsCdk8s: number | null; note: string }[];
  perResourceCostRatioLargeToSmall: number | null;
  memoryVsCount?: { resources: number; peakRssMiB: number | null; seconds: number | null }[];
  memoryGrowthLargeToSmall?: number | null;
};
const lines = [
  START,
  `Offline render (\`npm run bench:render\`), ${r.date.slice(0, 10)}, ${r.machine.cores} cores (${r.machine.cpu}), Node ${r.machine.node}; whole processes, output on ${r.machine.outputOn === '/dev/shm' ? 'tmpfs' : r.machine.outputOn} unless the row says disk. Mixed resources of every kind; cdk8s synth runs the same charts in one App, as cdk8s apps usually do (up to 10,000). Targets: 1,000 in at most 0.3 s and at least 8x cdk8s synth; 100,000 in at most 15 s with a peak RSS of at most 400 MiB, flat in the count beyond a few thousand.`,
  '',
  '| resources | tool | seconds | resources/s | peak RSS (MiB) | vs cdk8s synth | note |',
  '|---:|---|---:|---:|---:|---:|---|',
  ...r.rows.map(
    (x) => `| ${x.resources} | ${x.tool} | ${x.seconds ?? '-'} | ${x.resourcesPerSecond ?? '-'} | ${x.peakRssMiB ?? '-'} | ${x.speedupVsCdk8s ? `${x.speedupVsCdk8s}x` : '-'} | ${x.note} |`,
  ),
  '',
  `Per-resource cost at the largest count divided by that at the smallest: ${r.perResourceCostRatioLargeToSmall} (1.0 is linear; below 1 the fixed start-up cost is being spread).`,
  ...(r.memoryVsCount?.length
    ? [
        '',
        `kiln synth's peak RSS by input size (growth from the first count of 5,000 or more to the largest: ${r.memoryGrowthLargeToSmall ?? '-'}x):`,
        '',
        `| resources | ${r.memoryVsCount.map((m) => m.resources).join(' | ')} |`,
        `|---|${r.memoryVsCount.map(() => '---:').join('|')}|`,
        `| peak RSS (MiB) | ${r.memoryVsCount.map((m) => m.peakRssMiB ?? '-').join(' | ')} |`,
        `| seconds | ${r.memoryVsCount.map((m) => m.seconds ?? '-').join(' | ')} |`,
      ]
    : []),
  ...applyTable(),
  ...replicasTable(),
  ...gitTable(),
  ...agentTable(),
  END,
];

/** One controller's converge in bench/results/apply.json's comparison. */
interface Comparison {
  controller: string;
  convergeSeconds: number;
  floorSeconds: number;
  ratioToFloor: number;
  ownCpuMsPerResource: number;
  apiServerCpuSeconds: number;
  requests: number;
  writes: number;
  peakRssMiB: number | null;
  resyncWrites: number;
  resyncRequests: number;
  resyncSeconds: number;
}

/** bench/results/apply.json, when it exists. */
function applyTable(): string[] {
  const f = new URL('bench/results/apply.json', root);
  if (!existsSync(f)) return [];
  const a = JSON.parse(readFileSync(f, 'utf8')) as {
    date: string;
    settings: { resources: number; qps: number; concurrency: number; controllerNodeArgs?: string[]; controllerEnv?: Record<string, string> };
    rows: { phase: string; seconds: number | null; requests: number; writes: number; peakRssMiB: number | null }[];
    scale?: Record<
      string,
      {
        date: string;
        settings?: { controlPlanePerController?: boolean };
        rows: { phase: string; seconds: number | null; requests: number; writes: number; peakRssMiB: number | null }[];
        comparison?: Comparison[];
      }
    >;
    details?: { convergeFloor?: { cpuSecondsOutsideController: number; cores: number; seconds: number } };
    comparison?: Comparison[];
  };
  const floor = a.details?.convergeFloor;
  const kubectlRow = a.rows.find((x) => x.phase.startsWith('kubectl'));
  const env = Object.entries(a.settings.controllerEnv ?? {})
    .map(([k, v]) => `${k}=${v}`)
    .join(' ');
  const nodeArgs = a.settings.controllerNodeArgs?.length ? `, started as the install's Deployment starts it: ${env ? `${env} ` : ''}node ${a.settings.controllerNodeArgs.join(' ')}` : '';
  const scaleRows = Object.entries(a.scale ?? {}).flatMap(([n, sc]) =>
    sc.rows
      .filter((x) => !x.phase.startsWith('kubectl'))
      .map((x) => ({
        ...x,
        phase: `${x.phase} (${Number(n).toLocaleString('en')} resources, ${sc.date.slice(0, 10)}, no kubectl baseline${sc.settings?.controlPlanePerController ? ', a control plane of its own' : ''})`,
      })),
  );
  const comparisons = [
    ...(a.comparison ?? []).map((c) => ({ ...c, resources: a.settings.resources })),
    ...Object.entries(a.scale ?? {}).flatMap(([n, sc]) => (sc.comparison ?? []).map((c) => ({ ...c, resources: Number(n) }))),
  ];
  return [
    '',
    `Apply mode (\`npm run bench:apply\`), ${a.date.slice(0, 10)}: ${a.settings.resources} DirectoryServices (4 objects each) against the local control plane, by kubectl (one \`apply --server-side\` of the rendered objects, for reference), a Go operator on controller-runtime doing kiln's job object for object (bench/peer-operator: the same children and status, an Event per resource) and kiln; each controller alone in a namespace of its own, --concurrency ${a.settings.concurrency} (MaxConcurrentReconciles for the Go peer), ${a.settings.qps > 0 ? `--qps ${a.settings.qps}` : 'no client-side request limit (both defaults)'}; kiln${nodeArgs}. Targets: kiln converges no later than the Go peer and within 1.2x its floor, uses no more CPU per resource than the Go peer, 0 writes on resync, at most 190 MiB and no more than the Go peer at 10,000 resources.`,
    '',
    '| phase | seconds | API requests | writes | peak RSS (MiB) |',
    '|---|---:|---:|---:|---:|',
    ...[...a.rows, ...scaleRows].map((x) => `| ${x.phase} | ${x.seconds ?? '-'} | ${x.requests} | ${x.writes} | ${x.peakRssMiB ?? '-'} |`),
    ...(comparisons.length
      ? [
          '',
          'Each converge against its floor (the CPU seconds the control plane and the creating client used during it, over the cores: the soonest a controller sending the same requests at no CPU cost of its own could finish):',
          '',
          '| resources | controller | converge (s) | floor (s) | x floor | own CPU (ms per resource) | API server CPU (s) | requests | writes | peak RSS (MiB) | resync after restart: writes / requests / s |',
          '|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|',
          ...comparisons.map(
            (c) =>
              `| ${c.resources} | ${c.controller} | ${c.convergeSeconds} | ${c.floorSeconds} | ${c.ratioToFloor} | ${c.ownCpuMsPerResource} | ${c.apiServerCpuSeconds} | ${c.requests} | ${c.writes} | ${c.peakRssMiB ?? '-'} | ${c.resyncWrites} / ${c.resyncRequests} / ${c.resyncSeconds} |`,
          ),
        ]
      : []),
    ...(floor
      ? [
          '',
          `Converge floor on this machine: while kiln converged, the control plane and the kubectl creating the resources used ${floor.cpuSecondsOutsideController} CPU seconds; over ${floor.cores} cores that is ${floor.seconds} s, the soonest a controller sending the same requests could be done even if it used no CPU itself (kubectl baseline ${kubectlRow?.seconds ?? '-'} s).`,
        ]
      : []),
  ];
}
const readmeUrl = new URL('README.md', root);
const readme = readFileSync(readmeUrl, 'utf8');
const a = readme.indexOf(START);
const b = readme.indexOf(END);
writeFileSync(readmeUrl, readme.slice(0, a) + lines.join('\n') + readme.slice(b + END.length));
console.log('README.md: benchmark table updated');

/** bench/results/apply-replicas.json, when it exists. */
function replicasTable(): string[] {
  const f = new URL('bench/results/apply-replicas.json', root);
  if (!existsSync(f)) return [];
  const g = JSON.parse(readFileSync(f, 'utf8')) as {
    date: string;
    settings: { resources: number; replicas: number; concurrencyPerReplica: number };
    rows: {
      configuration: string;
      replica: string;
      resources: number;
      convergeSeconds: number;
      requests: number;
      writes: number;
      idleRssMiB: number;
      peakRssMiB: number;
      ofSingle: number;
      aboveIdleMiB: number;
      aboveIdleOfSingle: number;
    }[];
    sharded: { rebalance?: { killed: string; resources: number; leaseDurationSeconds: number; firstTakeoverSeconds: number; allTakenOverSeconds: number } };
    peakRssTarget: { ratio: number; met: boolean };
    aboveIdle?: { ratio: number };
  };
  const rb = g.sharded.rebalance;
  return [
    '',
    `Scaling out (\`npm run bench:apply -- --replicas ${g.settings.replicas}\`), ${g.date.slice(0, 10)}: ${g.settings.resources} DirectoryServices converged by one kiln controller and by ${g.settings.replicas} replicas with \`--sharding dynamic\`, each configuration on a fresh control plane, --concurrency ${g.settings.concurrencyPerReplica} per replica. Target: each of the ${g.settings.replicas} at most 0.5x the single replica's peak RSS: ${g.peakRssTarget.met ? 'met' : 'missed'} (${g.peakRssTarget.ratio}x). Idle = RSS with no resource yet (code and empty caches: what every process pays); above idle = what sharding divides${g.aboveIdle ? ` (${g.aboveIdle.ratio}x at most)` : ''}.`,
    '',
    '| configuration | replica | resources | converge (s) | requests | writes | idle RSS (MiB) | peak RSS (MiB) | x single | above idle (MiB) | x single |',
    '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...g.rows.map(
      (x) =>
        `| ${x.configuration} | ${x.replica} | ${x.resources} | ${x.convergeSeconds} | ${x.requests} | ${x.writes} | ${x.idleRssMiB} | ${x.peakRssMiB} | ${x.ofSingle} | ${x.aboveIdleMiB} | ${x.aboveIdleOfSingle} |`,
    ),
    ...(rb
      ? [
          '',
          `Rebalance: ${rb.killed} (not the assigner) killed with ${rb.resources} resources; the first was taken over ${rb.firstTakeoverSeconds} s after the kill (its Lease lasts ${rb.leaseDurationSeconds} s from its last renewal, which came up to a retry period before the kill), the last after ${rb.allTakenOverSeconds} s (each moved resource re-applies its objects, whose shard label changed).`,
        ]
      : []),
  ];
}

/** bench/results/git.json, when it exists. */
function gitTable(): string[] {
  const f = new URL('bench/results/git.json', root);
  if (!existsSync(f)) return [];
  const g = JSON.parse(readFileSync(f, 'utf8')) as {
    date: string;
    settings: { resources: number; debounceMs: number; qps: number };
    rows: { phase: string; commits: number; pushAfterLastChangeS: number | null; readyAfterLastChangeS: number | null; statusWrites: number; apiWrites: number }[];
    floor?: { phase: string; filesChanged: number; kilnPushAfterLastChangeS: number; kilnLessDebounceS: number; floorS: number; ratio: number; ratioLessDebounce: number }[];
  };
  return [
    '',
    `Git mode (\`npm run bench:git\`), ${g.date.slice(0, 10)}: ${g.settings.resources} mixed resources into a bare repository on disk, debounce ${g.settings.debounceMs} ms, controller --qps ${g.settings.qps}. Targets: at most 5 commits for 1,000 changed resources, pushed within 10 s of the last change; 0 commits on resync.`,
    '',
    '| phase | commits | pushed after the last change (s) | all Ready after the last change (s) | API writes |',
    '|---|---:|---:|---:|---:|',
    ...g.rows.map((x) => `| ${x.phase} | ${x.commits} | ${x.pushAfterLastChangeS ?? '-'} | ${x.readyAfterLastChangeS ?? '-'} | ${x.apiWrites} |`),
    ...(g.floor?.length
      ? [
          '',
          'Floor: a script publishing the tree kiln pushed (`git add -A && git commit && git push` into an equivalent bare repository on the same disk, the files in place before the clock starts, timed to the same post-receive hook; median of 3).',
          '',
          '| phase | files changed | kiln: last change -> remote (s) | kiln less the debounce (s) | floor (s) | x floor | x floor less the debounce |',
          '|---|---:|---:|---:|---:|---:|---:|',
          ...g.floor.map((x) => `| ${x.phase} | ${x.filesChanged} | ${x.kilnPushAfterLastChangeS} | ${x.kilnLessDebounceS} | ${x.floorS} | ${x.ratio} | ${x.ratioLessDebounce} |`),
        ]
      : []),
  ];
}

/** bench/results/agent.json, when it exists. */
function agentTable(): string[] {
  const f = new URL('bench/results/agent.json', root);
  if (!existsSync(f)) return [];
  const g = JSON.parse(readFileSync(f, 'utf8')) as {
    date: string;
    machine: { loadavg: number[] };
    settings: { databases: number; concurrency: number; qps: number; burst: number; postgres: string; ldap: string };
    rows: { case: string; seconds: number | null; p50Ms: number | null; p95Ms: number | null; maxMs: number | null; ratioToCeiling?: number | null; note: string }[];
  };
  return [
    '',
    `Runtime agent (\`npm run bench:agent\`), ${g.date.slice(0, 10)}: PostgreSQL ${g.settings.postgres}, ${g.settings.ldap}; agent --concurrency ${g.settings.concurrency} --qps ${g.settings.qps} --burst ${g.settings.burst} (its defaults); load average ${g.machine.loadavg.join(' ')} when it finished. Targets: a database ready within 2 s of its resource, a password rotated within 2 s of its Secret changing. The second row is the server's own ceiling for a burst: a script driving PostgreSQL over as many sessions as the agent uses cannot have the last database sooner, so a burst of 100 meets the target only where PostgreSQL creates 50 databases a second.`,
    '',
    '| case | total (s) | p50 (ms) | p95 (ms) | max (ms) | x ceiling | note |',
    '|---|---:|---:|---:|---:|---:|---|',
    ...g.rows.map((x) => `| ${x.case} | ${x.seconds ?? '-'} | ${x.p50Ms ?? '-'} | ${x.p95Ms ?? '-'} | ${x.maxMs ?? '-'} | ${x.ratioToCeiling ?? '-'} | ${x.note} |`),
    '',
    "x ceiling: the burst's total over the PostgreSQL ceiling row (a script over as many sessions as the agent has workers); the rotation's p50 over the ldapts script row (a script doing the directory's part of a rotation as the agent does it).",
  ];
}
