// The daemon's HTTP API: health, readiness, metrics, pods and lookups.
import { errorText } from '../errors.js';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { DataPlane } from '../dataplane/index.js';
import { lookup } from './lookup.js';
import type { Metrics } from './metrics.js';
import type { SourceStatus } from '../sources/record.js';
import type { PodState } from './reconcile.js';

export interface HttpDeps {
  metrics: Metrics;
  dataPlane(): DataPlane | null;
  /** Programs attached and every pod in the source reconciled (applied or rejected). */
  ready(): boolean;
  pods(): PodState[];
  /** Whether the source is in sync and how stale it is; /readyz says so. */
  source?(): SourceStatus;
}

function send(res: ServerResponse, status: number, body: unknown, type = 'application/json'): void {
  const text = type === 'application/json' ? JSON.stringify(body) + '\n' : String(body);
  res.writeHead(status, { 'content-type': type });
  res.end(text);
}

/**
 * The API has no access control: /v1/pods shows every pod's policy and
 * /v1/original-destination every captured connection. A host that is every address gets
 * a warning that says so.
 */
export function wildcardListenWarning(host: string): string | null {
  if (host !== '' && host !== '0.0.0.0' && host !== '::' && host !== '[::]') return null;
  return `--listen ${host || '0.0.0.0'} binds every address of the node: anyone who reaches the port reads /v1/pods and /v1/original-destination (no access control); listen on 127.0.0.1 unless a firewall guards the port`;
}

export function createHttpServer(deps: HttpDeps): Server {
  return createServer((req: IncomingMessage, res: ServerResponse) => {
    handle(deps, req, res).catch((e) => send(res, 500, { error: errorText(e) }));
  });
}

/** Staleness is reported, not fatal: the kernel keeps the last known policies meanwhile. */
function sourceLine(s: SourceStatus | undefined): string {
  if (!s) return '';
  if (!s.synced) return `source ${s.kind}: not read in full yet\n`;
  return `source ${s.kind}: ${s.staleSeconds === 0 ? 'in sync' : `last answered ${s.staleSeconds} s ago (policies kept)`}\n`;
}

async function handle(deps: HttpDeps, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://sluice');
  if (req.method !== 'GET') return send(res, 405, { error: 'only GET is served' });
  switch (url.pathname) {
    case '/healthz':
      return send(res, 200, 'ok\n', 'text/plain');
    case '/readyz':
      return send(res, deps.ready() ? 200 : 503, `${deps.ready() ? 'ready' : 'not ready'}\n${sourceLine(deps.source?.())}`, 'text/plain');
    case '/metrics':
      return send(res, 200, await deps.metrics.registry.metrics(), deps.metrics.registry.contentType);
    case '/v1/pods':
      return send(res, 200, deps.pods().filter((p) => p.status !== 'uncaptured'));
    case '/v1/original-destination': {
      const dp = deps.dataPlane();
      if (!dp) return send(res, 503, { error: 'data plane not loaded yet' });
      const q = url.searchParams;
      const a = lookup(dp, deps.metrics, 'http', q.get('src') ?? undefined, q.get('dst') ?? undefined, q.get('netns') ?? undefined);
      if (a.kind === 'found') return send(res, 200, { originalDestination: a.originalDestination });
      if (a.kind === 'not_found') return send(res, 404, { error: 'no recorded original destination for that connection' });
      return send(res, 400, { error: a.error });
    }
    default:
      return send(res, 404, { error: `no route ${url.pathname}; see /healthz, /readyz, /metrics, /v1/pods, /v1/original-destination` });
  }
}
