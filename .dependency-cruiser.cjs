// The layers of src/, written down once (see README: policy <- sources <- daemon <- cli,
// the data plane beside). test/unit/layering.test.ts runs this and fails on a violation.
// src/errors.ts and src/system/ are the neutral bottom every layer may use.
const layer = (names) => `^src/(${names.join('|')})/`;
/** Modules of layer `from` may not import any of `to`. */
const rule = (name, comment, from, to) => ({ name, comment, severity: 'error', from: { path: layer([from]) }, to: { path: layer(to) } });

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    rule('policy-is-pure', 'src/policy imports nothing above it', 'policy', ['sources', 'daemon', 'cli', 'bpf', 'dataplane', 'lab', 'demo', 'deploy', 'system']),
    rule('sources-on-policy', 'src/sources builds on src/policy only', 'sources', ['daemon', 'cli', 'bpf', 'dataplane', 'lab', 'demo', 'deploy']),
    rule('daemon-below-cli', 'src/daemon uses sources, policy and the dataplane seam; the CLI wires src/bpf in', 'daemon', ['cli', 'bpf', 'lab', 'demo', 'deploy']),
    rule('dataplane-seam', 'src/dataplane is the interface both sides import: it imports neither', 'dataplane', ['sources', 'daemon', 'cli', 'bpf', 'lab', 'demo', 'deploy']),
    rule('bpf-beside', 'src/bpf implements the dataplane: policy, dataplane and errors, never the daemon, sources or CLI', 'bpf', ['daemon', 'sources', 'cli', 'lab', 'demo', 'deploy']),
    {
      name: 'lab-is-for-demo-and-tests',
      comment: 'production code does not import the lab; only the CLI (demo command), the demo and tests do',
      severity: 'error',
      from: { path: '^src/', pathNot: layer(['cli', 'demo', 'lab']) },
      to: { path: layer(['lab']) },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '^(node_modules|dist)/' },
    tsConfig: { fileName: 'tsconfig.json' },
    tsPreCompilationDeps: true,
  },
};
