// `sluice validate`: every pod's policy or its errors; exit 1 when anything is rejected.
import { loadPolicies } from './load.js';

export async function runValidate(opts: { source: string; config?: string; json?: boolean; kubeconfig?: string }): Promise<number> {
  const { results, sourceErrors } = await loadPolicies(opts.source, opts.config, opts.kubeconfig ? { kubeconfig: opts.kubeconfig } : {});
  if (opts.json) {
    console.log(JSON.stringify({ sourceErrors, pods: results }, (_k, v) => (v instanceof Error && 'toJSON' in v ? (v as { toJSON(): unknown }).toJSON() : v), 2));
  } else {
    for (const err of sourceErrors) console.log(`source error: ${err}`);
    for (const r of results) {
      const name = `${r.pod.namespace}/${r.pod.name}`;
      if (r.status === 'captured') console.log(`${name}: captured\n${indent(JSON.stringify(r.policy, null, 2))}`);
      else if (r.status === 'uncaptured') console.log(`${name}: not captured (${r.reason})`);
      else console.log(`${name}: REJECTED\n${r.errors.map((e) => `  - ${e.message}`).join('\n')}`);
      for (const w of r.warnings) console.log(`  warning: ${w}`);
    }
  }
  const rejected = results.filter((r) => r.status === 'rejected').length;
  if (!opts.json) console.log(`${results.length} pods: ${rejected} rejected, ${sourceErrors.length} source errors`);
  return rejected > 0 || sourceErrors.length > 0 ? 1 : 0;
}

function indent(text: string): string {
  return text.replace(/^/gm, '  ');
}
