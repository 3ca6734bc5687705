// `sluice manifest`: prints the install (or, with --uninstall, the clean-up) for a cluster.
import { manifestObjects, renderManifest, uninstallObjects } from '../deploy/manifest.js';
import { manifestOptions, type ManifestFlags } from '../deploy/options.js';

const INSTALL_HEADER = `sluice: the install for a cluster (\`sluice manifest\`; deploy/README.md explains each setting).
kubectl apply -f THIS; then stop istio-init from writing iptables rules (README, "Install on a cluster").`;
const UNINSTALL_HEADER = `sluice: removes every link, pin and map from every node (\`sluice manifest --uninstall\`).
First: kubectl -n NAMESPACE delete daemonset sluice --wait. Then apply this, wait for
kubectl -n NAMESPACE rollout status daemonset/sluice-uninstall, and delete the install.`;

export function runManifest(flags: ManifestFlags & { uninstall?: boolean }): void {
  const o = manifestOptions(flags);
  const text = flags.uninstall ? renderManifest(uninstallObjects(o), UNINSTALL_HEADER) : renderManifest(manifestObjects(o), INSTALL_HEADER);
  process.stdout.write(text);
}
