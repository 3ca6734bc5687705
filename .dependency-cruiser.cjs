// The layers of src/, written down once (see README: policy <- sources <- daemon <- cli,
// the data plane beside). test/unit/layering.test.ts runs this and fails on a violation.
// src/errors.ts and src/system/ are the neutral bottom every layer may use.
const layer = (names) => `^src/(${names.join('|')})/`;

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'policy-is-pure',
      comment: 'src/policy imports nothing above it',
      severity: 'error',
      from: { path: layer(['policy']) },
      to: { path: layer(['sources', 'daemon', 'cli', 'bpf', 'dataplane', 'lab', 'demo', 'deploy', 'system']) },
    },
    {
      name: 'sources-on-policy',
      comment: 'src/sources builds on src/policy only',
      severity: 'error',
      from: { path: layer(['sources']) },
      to: { path: layer(['daemon', 'cli', 'bpf', 'dataplane', 'lab', 'demo', 'deploy']) },
    },
    {
      name: 'daemon-below-cli',
      comment: 'src/daemon uses sources, policy and the dataplane seam; the CLI wires src/bpf in',
      severity: 'error',
      from: { path: layer(['daemon']) },
      to: { path: layer(['cli', 'bpf', 'lab', 'demo', 'deploy']) },
    },
    {
      name: 'dataplane-seam',
      comment: 'src/dataplane is the interface both sides import: it imports neither',
      severity: 'error',
      from: { path: layer(['dataplane']) },
      to: { path: layer(['sources', 'daemon', 'cli', 'bpf', 'lab', 'demo', 'deploy']) },
    },
    {
      name: 'bpf-beside',
      comment: 'src/bpf implements the dataplane: policy, dataplane and errors, never the daemon, sources or CLI',
      severity: 'error',
      from: { path: layer(['bpf']) },
      to: { path: layer(['daemon', 'sources', 'cli', 'lab', 'demo', 'deploy']) },
    },
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
