import { spawn } from 'node:child_process';
import { readdirSync, writeFileSync } from 'node:fs';
import { defaultCrdPaths, ensureBinaries, startControlPlane } from '../test/harness/controlplane.js';
import { toYamlStream } from '../lib/yaml.js';
const N = Number(process.argv[2] ?? 3000);
const cp = await startControlPlane({ binDir: await ensureBinaries(), crdPaths: defaultCrdPaths(), controllerManager: false });
await cp.kubectlOk(['create', 'namespace', 'b']);
const ds = (i: number) => ({ apiVersion: 'kiln.dev/v1alpha1', kind: 'DirectoryService', metadata: { name: `ds-${String(i).padStart(5, '0')}`, namespace: 'b' }, spec: {
  replicas: 3, image: 'registry.example.com/forgerock/ds:7.5.1', resources: { requests: { cpu: '1', memory: '3Gi' }, limits: { memory: '3Gi' } },
  env: [{ name: 'DS_JAVA_ARGS', value: '-XX:MaxRAMPercentage=75' }], storage: { size: '100Gi', storageClassName: 'fast', volumeSnapshotClassName: 'csi-snapshots' },
  secrets: { masterKeypair: 'ds-master-keypair', sslKeypair: 'ds-ssl-keypair', truststore: 'ds-truststore' },
  passwords: { 'uid=admin': { secretName: 'ds-passwords', key: 'dirmanager.pw' }, 'uid=am-config,ou=admins,ou=am-config': { secretName: 'am-passwords', key: 'am-config.pw', create: true } }, scheduling: { tolerateDedicatedNodes: true, antiAffinity: 'soft' }, service: { type: 'ClusterIP' } } });
writeFileSync('/tmp/ds.yaml', toYamlStream(Array.from({ length: N }, (_, i) => ds(i)) as never));
const start = () => spawn(process.execPath, ['--max-semi-space-size=2', '--optimize-for-size', '--heapsnapshot-signal=SIGUSR2', '/work/main/build/cli/kiln.js', 'controller', '--kubeconfig', cp.kubeconfig, '-n', 'b', '--no-leader-elect', '--qps', '200', '--burst', '200', '--health-port', '0', '--metrics-port', '0', '--log-level', 'warn'], { stdio: 'inherit', cwd: '/tmp/heap' });
let ctrl = start();
await cp.kubectlOk(['apply', '--server-side', '--field-manager=bench', '-f', '/tmp/ds.yaml'], { timeoutMs: 600_000 });
const ready = async () => Number((await cp.kubectlOk(['-n', 'b', 'get', 'directoryservices', '-o', 'jsonpath={range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\\n"}{end}'])).split('\n').filter((l) => l === 'True').length);
while ((await ready()) < N) await new Promise((r) => setTimeout(r, 3000));
await new Promise((r) => setTimeout(r, 5000));
ctrl.kill('SIGUSR2');
await new Promise((r) => setTimeout(r, 20000));
ctrl.kill();
if (process.argv[3] === 'restart') {
  await new Promise((r) => setTimeout(r, 2000));
  ctrl = start();
  await new Promise((r) => setTimeout(r, 25000));
  ctrl.kill('SIGUSR2');
  await new Promise((r) => setTimeout(r, 20000));
  ctrl.kill();
}
console.log(readdirSync('/tmp/heap'));
await cp.stop();
