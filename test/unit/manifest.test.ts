// `sluice manifest`: the checked-in deploy/*.yaml are its output, every object passes the
// Kubernetes API schema (kubernetes-models), and the DaemonSet says what the daemon needs.
import test from 'ava';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { DaemonSet, type IDaemonSet } from 'kubernetes-models/apps/v1/DaemonSet';
import { Namespace } from 'kubernetes-models/v1/Namespace';
import { ServiceAccount } from 'kubernetes-models/v1/ServiceAccount';
import { ClusterRole, type IClusterRole } from 'kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRole';
import { ClusterRoleBinding, type IClusterRoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRoleBinding';
import { parseAllDocuments } from 'yaml';
import { DAEMON_CAPABILITIES, HOST_CGROUP, HOST_PROC, manifestObjects, uninstallObjects, type ManifestObject } from '../../src/deploy/manifest.js';
import { DEFAULT_IMAGE, ManifestError, manifestOptions } from '../../src/deploy/options.js';
import { SluiceError } from '../../src/errors.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

function sluice(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], { cwd: ROOT }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

/** The typed model for each kind the manifest holds; a new kind fails until it is added. */
const MODELS: Record<string, new (data: never) => { validate(): void }> = {
  Namespace,
  ServiceAccount,
  ClusterRole,
  ClusterRoleBinding,
  DaemonSet,
};

function validate(obj: { kind?: string }): void {
  const Model = MODELS[obj.kind ?? ''];
  if (!Model) throw new Error(`no model for kind ${obj.kind}`);
  new Model(structuredClone(obj) as never).validate();
}

const defaults = manifestOptions({});
const byKind = <T>(objs: ManifestObject[], kind: string) => objs.find((o) => o.kind === kind) as T;
const daemon = (objs = manifestObjects(defaults)) => byKind<IDaemonSet>(objs, 'DaemonSet');
const container = (ds: IDaemonSet) => ds.spec!.template.spec!.containers[0]!;

for (const [file, args] of [
  ['deploy/sluice.yaml', ['manifest']],
  ['deploy/sluice-uninstall.yaml', ['manifest', '--uninstall']],
] as const) {
  test(`${file} is exactly what \`sluice ${args.join(' ')}\` prints`, async (t) => {
    const r = await sluice([...args]);
    t.is(r.code, 0, r.stderr);
    t.is(readFileSync(`${ROOT}${file}`, 'utf8'), r.stdout, `regenerate: npx sluice ${args.join(' ')} > ${file}`);
  });

  test(`every object of ${file} validates against the Kubernetes API schema`, (t) => {
    const docs = parseAllDocuments(readFileSync(`${ROOT}${file}`, 'utf8')).map((d) => d.toJS() as ManifestObject);
    t.true(docs.length >= 2);
    for (const obj of docs) t.notThrows(() => validate(obj), `${obj.kind} ${obj.metadata?.name}`);
  });
}

test('the schema check fails a broken object, so the test above can fail', (t) => {
  const ds = structuredClone(daemon());
  (container(ds).securityContext!.capabilities!.add as unknown[]) = [21];
  t.throws(() => validate(ds), { message: /capabilities\/add\/0 must be string/ });
  const noImage = structuredClone(daemon());
  delete (container(noImage) as { name?: string }).name;
  t.throws(() => validate(noImage), { message: /name/ });
  t.throws(() => validate({ kind: 'Deployment' }), { message: /no model for kind Deployment/ });
});

test('RBAC: get, list and watch on pods and Istio sidecars, nothing more, bound to the daemon', (t) => {
  const objs = manifestObjects(defaults);
  t.deepEqual(
    byKind<IClusterRole>(objs, 'ClusterRole').rules,
    [
      { apiGroups: [''], resources: ['pods'], verbs: ['get', 'list', 'watch'] },
      { apiGroups: ['networking.istio.io'], resources: ['sidecars'], verbs: ['get', 'list', 'watch'] },
    ],
  );
  const binding = byKind<IClusterRoleBinding>(objs, 'ClusterRoleBinding');
  t.deepEqual(binding.subjects, [{ kind: 'ServiceAccount', name: 'sluice', namespace: 'sluice' }]);
  t.is(daemon(objs).spec!.template.spec!.serviceAccountName, 'sluice');
});

test('the DaemonSet runs `node` directly with the kubernetes source, the node name and host paths', (t) => {
  const ds = daemon();
  const c = container(ds);
  t.deepEqual(c.command, ['node', '/app/bin/sluice.js'], 'node itself: npx does not pass SIGTERM on');
  t.deepEqual(c.args, [
    'run', '--source', 'kubernetes', '--node', '$(NODE_NAME)', '--proc-root', HOST_PROC, '--cgroup', HOST_CGROUP,
    '--bpffs', '/sys/fs/bpf/sluice', '--listen', '127.0.0.1:15099', '--lookup-socket', '/run/sluice/lookup.sock',
  ]);
  t.deepEqual(c.env, [{ name: 'NODE_NAME', valueFrom: { fieldRef: { fieldPath: 'spec.nodeName' } } }]);
  const pod = ds.spec!.template.spec!;
  t.true(pod.hostNetwork);
  t.true(pod.hostPID);
  t.is(pod.priorityClassName, 'system-node-critical');
  t.deepEqual(pod.tolerations, [{ operator: 'Exists' }], 'every node, whatever its taints');
  // Every path the daemon is told about is a mount of the matching host path.
  const mounts = new Map(c.volumeMounts!.map((m) => [m.mountPath, m]));
  const hostPathOf = (mountPath: string) => pod.volumes!.find((v) => v.name === mounts.get(mountPath)?.name)?.hostPath?.path;
  t.is(hostPathOf('/sys/fs/bpf'), '/sys/fs/bpf');
  t.is(mounts.get('/sys/fs/bpf')!.mountPropagation, 'HostToContainer', 'a bpffs the init container mounts on the host reaches the daemon');
  t.is(hostPathOf(HOST_PROC), '/proc');
  t.is(hostPathOf(HOST_CGROUP), '/sys/fs/cgroup');
  t.is(hostPathOf('/run/sluice'), '/run/sluice', 'the lookup socket is on the node, for proxies to mount');
  t.deepEqual(ds.spec!.updateStrategy, { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 1, maxSurge: 0 } });
});

test('the daemon is not privileged: it drops every capability and adds back the measured three', (t) => {
  const c = container(daemon());
  t.like(c.securityContext, { privileged: false, runAsUser: 0, readOnlyRootFilesystem: true });
  t.deepEqual(c.securityContext!.capabilities, { drop: ['ALL'], add: [...DAEMON_CAPABILITIES] });
  t.deepEqual([...DAEMON_CAPABILITIES], ['SYS_ADMIN', 'SYS_PTRACE', 'NET_ADMIN']);
  for (const init of daemon().spec!.template.spec!.initContainers!) t.not(init.securityContext?.privileged, true, init.name);
});

test('probes reach the loopback listener the kubelet shares with a hostNetwork pod', (t) => {
  const c = container(daemon());
  t.deepEqual(c.livenessProbe!.httpGet, { host: '127.0.0.1', port: 15099, path: '/healthz' });
  t.deepEqual(c.readinessProbe!.httpGet, { host: '127.0.0.1', port: 15099, path: '/readyz' });
  t.deepEqual(c.startupProbe!.httpGet, { host: '127.0.0.1', port: 15099, path: '/healthz' });
  const wide = container(daemon(manifestObjects(manifestOptions({ listen: '0.0.0.0:9099' }))));
  t.deepEqual(wide.livenessProbe!.httpGet, { host: '127.0.0.1', port: 9099, path: '/healthz' }, 'a wildcard listener is probed on loopback');
  t.true(wide.args!.includes('0.0.0.0:9099'));
});

test('--image, --namespace and run flags reach every object that names them', (t) => {
  const o = manifestOptions({ image: 'registry.example/sluice@sha256:' + 'a'.repeat(64), namespace: 'mesh-system', maxPods: '1024', resync: '2.5', accelerate: true });
  const objs = manifestObjects(o);
  for (const obj of objs) if (obj.kind !== 'Namespace' && obj.kind !== 'ClusterRole' && obj.kind !== 'ClusterRoleBinding') t.is(obj.metadata!.namespace, 'mesh-system', obj.kind);
  t.is(byKind<IClusterRoleBinding>(objs, 'ClusterRoleBinding').subjects![0]!.namespace, 'mesh-system');
  const ds = daemon(objs);
  for (const c of [...ds.spec!.template.spec!.initContainers!, container(ds)]) t.is(c.image, o.image, c.name);
  t.deepEqual(container(ds).args!.slice(-5), ['--max-pods', '1024', '--resync', '2.5', '--accelerate']);
  for (const obj of objs) t.notThrows(() => validate(obj));
});

test('the uninstall DaemonSet runs `sluice uninstall` on every node against the same pins', (t) => {
  const ds = byKind<IDaemonSet>(uninstallObjects(manifestOptions({ bpffs: '/sys/fs/bpf/other' })), 'DaemonSet');
  const init = ds.spec!.template.spec!.initContainers![0]!;
  t.deepEqual([...init.command!, ...init.args!], ['node', '/app/bin/sluice.js', 'uninstall', '--bpffs', '/sys/fs/bpf/other']);
  t.deepEqual(ds.spec!.template.spec!.tolerations, [{ operator: 'Exists' }]);
  t.false(ds.spec!.template.spec!.automountServiceAccountToken, 'it needs no API access');
});

test('bad flags are refused with exit 2, naming the flag and the fix', async (t) => {
  for (const [flags, re] of [
    [{ bpffs: '/tmp/pins' }, /--bpffs "\/tmp\/pins": must be a plain absolute path under \/sys\/fs\/bpf\//],
    [{ bpffs: '/sys/fs/bpf/../x' }, /--bpffs/],
    [{ lookupSocket: '/var/run/x.sock' }, /--lookup-socket/],
    [{ namespace: 'Sluice' }, /--namespace "Sluice": is not a Kubernetes namespace name/],
    [{ image: 'a b' }, /--image/],
    [{ listen: 'localhost:1' }, /--listen/],
    [{ maxPods: '0' }, /--max-pods/],
    [{ resync: '0.01' }, /--resync/],
    [{ hostCgroup: 'sys/fs/cgroup' }, /--host-cgroup/],
  ] as const) {
    const err = t.throws(() => manifestOptions(flags), { instanceOf: ManifestError, message: re });
    t.true(err instanceof SluiceError && err.exitCode === 2 && Boolean(err.hint));
  }
  const r = await sluice(['manifest', '--namespace', 'Bad_NS']);
  t.is(r.code, 2);
  t.regex(r.stderr, /--namespace "Bad_NS".*\n  hint: /);
  t.is(r.stdout, '');
});

test("the default image's tag is the package version", (t) => {
  const { version } = JSON.parse(readFileSync(`${ROOT}package.json`, 'utf8')) as { version: string };
  t.is(DEFAULT_IMAGE, `localhost/sluice:${version}`);
});
