// `sluice manifest`: the whole install as Kubernetes objects, and as one multi-document
// YAML. Pure: options in, objects out. deploy/README.md says why each setting is there.
import type { IContainer } from 'kubernetes-models/v1/Container';
import type { IDaemonSet } from 'kubernetes-models/apps/v1/DaemonSet';
import type { INamespace } from 'kubernetes-models/v1/Namespace';
import type { IServiceAccount } from 'kubernetes-models/v1/ServiceAccount';
import type { IClusterRole } from 'kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRole';
import type { IClusterRoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRoleBinding';
import type { IVolume } from 'kubernetes-models/v1/Volume';
import { stringify } from 'yaml';
import type { ManifestOptions } from './options.js';

/**
 * The daemon's capabilities, measured (test/kernel/capabilities.test.ts): CAP_SYS_ADMIN
 * loads and attaches the programs (it implies CAP_BPF and CAP_PERFMON) and is what setns(2)
 * into a pod's netns needs; CAP_SYS_PTRACE opens /proc/PID/ns/net of pod processes, which
 * run with other uids and capabilities; CAP_NET_ADMIN reads a pod's nat table (istio-init's
 * ISTIO_* chains, the double-capture check) and brings `lo` up for --accelerate's live
 * sockmap check, which CAP_SYS_ADMIN does not cover.
 */
export const DAEMON_CAPABILITIES = ['SYS_ADMIN', 'SYS_PTRACE', 'NET_ADMIN'] as const;
/** nsenter into the host's mount namespace (open /proc/1/ns/mnt, setns) to mount bpffs. */
export const MOUNT_BPFFS_CAPABILITIES = ['SYS_ADMIN', 'SYS_CHROOT', 'SYS_PTRACE'] as const;
/** In the pod: the host's /proc and cgroup2 mount. */
export const HOST_PROC = '/host/proc';
export const HOST_CGROUP = '/host/cgroup';

const NAME = 'sluice';
const labels = (component: string) => ({ 'app.kubernetes.io/name': NAME, 'app.kubernetes.io/component': component });

export type ManifestObject = INamespace | IServiceAccount | IClusterRole | IClusterRoleBinding | IDaemonSet;

function namespace(o: ManifestOptions): INamespace {
  return {
    apiVersion: 'v1',
    kind: 'Namespace',
    metadata: {
      name: o.namespace,
      // hostNetwork, hostPID and hostPath are allowed only at the privileged level.
      labels: { 'app.kubernetes.io/name': NAME, 'pod-security.kubernetes.io/enforce': 'privileged', 'istio-injection': 'disabled' },
    },
  };
}

function rbac(o: ManifestOptions): [IServiceAccount, IClusterRole, IClusterRoleBinding] {
  const read = ['get', 'list', 'watch'];
  return [
    { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: NAME, namespace: o.namespace, labels: labels('daemon') } },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRole',
      metadata: { name: NAME, labels: labels('daemon') },
      rules: [
        { apiGroups: [''], resources: ['pods'], verbs: read },
        { apiGroups: ['networking.istio.io'], resources: ['sidecars'], verbs: read },
      ],
    },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRoleBinding',
      metadata: { name: NAME, labels: labels('daemon') },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: NAME },
      subjects: [{ kind: 'ServiceAccount', name: NAME, namespace: o.namespace }],
    },
  ];
}

const hostPath = (name: string, path: string, type: 'Directory' | 'DirectoryOrCreate'): IVolume => ({ name, hostPath: { path, type } });

/** Writes under /sys/fs/bpf and mount(2) are denied by the runtimes' default AppArmor profile. */
const UNCONFINED = { appArmorProfile: { type: 'Unconfined' as const }, seLinuxOptions: { type: 'spc_t', level: 's0' } };

/** Runs once per pod start: mounts bpffs on the host when the node has none, so pins outlive the pod. */
function mountBpffs(o: ManifestOptions): IContainer {
  return {
    name: 'mount-bpffs',
    image: o.image,
    command: ['nsenter', `--mount=${HOST_PROC}/1/ns/mnt`, '--', 'sh', '-c', 'mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf'],
    securityContext: { ...UNCONFINED, runAsUser: 0, capabilities: { drop: ['ALL'], add: [...MOUNT_BPFFS_CAPABILITIES] } },
    volumeMounts: [{ name: 'host-proc', mountPath: HOST_PROC, readOnly: true }],
    resources: { requests: { cpu: '10m', memory: '16Mi' }, limits: { memory: '64Mi' } },
  };
}

function probeHost(o: ManifestOptions): string {
  const h = o.listen.host.replace(/^\[|\]$/g, '');
  return h === '0.0.0.0' ? '127.0.0.1' : h === '::' ? '::1' : h;
}

function daemonContainer(o: ManifestOptions): IContainer {
  // The kubelet runs in the node's network namespace, like this hostNetwork pod, so an
  // httpGet to the daemon's own (loopback) address reaches it; the default host, the pod
  // IP, is the node IP, where nothing listens.
  const probe = (path: string) => ({ httpGet: { host: probeHost(o), port: o.listen.port, path } });
  const listen = o.listen.host.includes(':') && !o.listen.host.startsWith('[') ? `[${o.listen.host}]` : o.listen.host;
  return {
    name: 'sluice',
    image: o.image,
    // node itself, never npx: npx does not pass SIGTERM on.
    command: ['node', '/app/bin/sluice.js'],
    args: [
      'run', '--source', 'kubernetes', '--node', '$(NODE_NAME)', '--proc-root', HOST_PROC, '--cgroup', HOST_CGROUP,
      '--bpffs', o.bpffs, '--listen', `${listen}:${o.listen.port}`, '--lookup-socket', o.lookupSocket, ...o.runFlags,
    ],
    env: [{ name: 'NODE_NAME', valueFrom: { fieldRef: { fieldPath: 'spec.nodeName' } } }],
    securityContext: {
      ...UNCONFINED,
      runAsUser: 0,
      runAsNonRoot: false,
      privileged: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ['ALL'], add: [...DAEMON_CAPABILITIES] },
    },
    startupProbe: { ...probe('/healthz'), periodSeconds: 2, failureThreshold: 60 },
    livenessProbe: { ...probe('/healthz'), periodSeconds: 10, timeoutSeconds: 5, failureThreshold: 3 },
    readinessProbe: { ...probe('/readyz'), periodSeconds: 5, timeoutSeconds: 5, failureThreshold: 3 },
    resources: { requests: { cpu: '50m', memory: '128Mi' }, limits: { cpu: '1', memory: '512Mi' } },
    volumeMounts: [
      { name: 'bpffs', mountPath: '/sys/fs/bpf', mountPropagation: 'HostToContainer' },
      { name: 'host-cgroup', mountPath: HOST_CGROUP, readOnly: true },
      { name: 'host-proc', mountPath: HOST_PROC, readOnly: true },
      { name: 'run', mountPath: '/run/sluice' },
    ],
  };
}

/** Tolerates every taint, runs first on a node and last off it, like a CNI agent. */
const NODE_DAEMON = {
  hostNetwork: true,
  dnsPolicy: 'ClusterFirstWithHostNet' as const,
  priorityClassName: 'system-node-critical',
  tolerations: [{ operator: 'Exists' as const }],
  nodeSelector: { 'kubernetes.io/os': 'linux' },
};

function daemonSet(o: ManifestOptions): IDaemonSet {
  return {
    apiVersion: 'apps/v1',
    kind: 'DaemonSet',
    metadata: { name: NAME, namespace: o.namespace, labels: labels('daemon') },
    spec: {
      selector: { matchLabels: labels('daemon') },
      // One node at a time, the old daemon gone before the new one starts: the kernel keeps
      // capturing from the pins meanwhile, and the new daemon adopts them. A surge would put
      // two daemons on one bpffs, one port and one socket, and (with the pin lock) the new
      // one could never become ready while the old one waits for it: the rollout would stall.
      updateStrategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 1, maxSurge: 0 } },
      template: {
        metadata: { labels: labels('daemon') },
        spec: {
          ...NODE_DAEMON,
          serviceAccountName: NAME,
          hostPID: true,
          terminationGracePeriodSeconds: 30,
          initContainers: [mountBpffs(o)],
          containers: [daemonContainer(o)],
          volumes: [
            hostPath('bpffs', '/sys/fs/bpf', 'DirectoryOrCreate'),
            hostPath('host-cgroup', o.hostCgroup, 'Directory'),
            hostPath('host-proc', '/proc', 'Directory'),
            hostPath('run', '/run/sluice', 'DirectoryOrCreate'),
          ],
        },
      },
    },
  };
}

/**
 * `sluice manifest --uninstall`: a DaemonSet whose init container runs `sluice uninstall`
 * on every node (measured: unpinning needs no capability, only root's ownership of the
 * pins), then idles, so `kubectl rollout status` says when every node is clean.
 */
function uninstallDaemonSet(o: ManifestOptions): IDaemonSet {
  const l = labels('uninstall');
  return {
    apiVersion: 'apps/v1',
    kind: 'DaemonSet',
    metadata: { name: `${NAME}-uninstall`, namespace: o.namespace, labels: l },
    spec: {
      selector: { matchLabels: l },
      template: {
        metadata: { labels: l },
        spec: {
          ...NODE_DAEMON,
          automountServiceAccountToken: false,
          initContainers: [
            {
              name: 'uninstall',
              image: o.image,
              command: ['node', '/app/bin/sluice.js'],
              args: ['uninstall', '--bpffs', o.bpffs],
              securityContext: { ...UNCONFINED, runAsUser: 0, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } },
              volumeMounts: [{ name: 'bpffs', mountPath: '/sys/fs/bpf', mountPropagation: 'HostToContainer' }],
            },
          ],
          containers: [
            {
              name: 'done',
              image: o.image,
              command: ['sleep', 'infinity'],
              securityContext: { runAsUser: 65534, runAsNonRoot: true, allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } },
              resources: { requests: { cpu: '1m', memory: '8Mi' }, limits: { memory: '16Mi' } },
            },
          ],
          volumes: [hostPath('bpffs', '/sys/fs/bpf', 'Directory')],
        },
      },
    },
  };
}

/** The install, in apply order. */
export function manifestObjects(o: ManifestOptions): ManifestObject[] {
  return [namespace(o), ...rbac(o), daemonSet(o)];
}

export function uninstallObjects(o: ManifestOptions): ManifestObject[] {
  return [namespace(o), uninstallDaemonSet(o)];
}

export function renderManifest(objects: ManifestObject[], header: string): string {
  const comment = header
    .split('\n')
    .map((l) => (l ? `# ${l}` : '#'))
    .join('\n');
  return `${comment}\n${objects.map((obj) => `---\n${stringify(obj, { lineWidth: 0, aliasDuplicateObjects: false })}`).join('')}`;
}
