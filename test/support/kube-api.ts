// A stand-in Kubernetes API server over node:http that speaks the real list/watch protocol:
// lists carry a resourceVersion, watches stream newline-delimited events from it (chunked),
// bookmarks on request, 410 Gone for a compacted resourceVersion, and faults on demand:
// 500s, dropped watch connections, a stopped server.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

type Obj = { metadata: { name: string; namespace?: string; resourceVersion?: string; [k: string]: unknown }; [k: string]: unknown };
type Resource = 'pods' | 'sidecars';
interface Event {
  rv: number;
  resource: Resource;
  type: 'ADDED' | 'MODIFIED' | 'DELETED';
  object: Obj;
}
interface WatchConn {
  resource: Resource;
  node: string | null;
  res: ServerResponse;
  bookmarks: boolean;
}

export class KubeApiDouble {
  private rv = 1000;
  private readonly store: Record<Resource, Map<string, Obj>> = { pods: new Map(), sidecars: new Map() };
  private readonly log: Event[] = [];
  private compactedBelow = 0;
  private readonly watches = new Set<WatchConn>();
  private readonly sockets = new Set<Socket>();
  private server: Server | null = null;
  port = 0;
  private failing: number | null = null;
  /** Sidecar versions served under networking.istio.io. */
  sidecarVersions: string[] = ['v1'];
  /** Every request's method and URL, in order. */
  readonly requests: string[] = [];

  async start(port = this.port): Promise<void> {
    this.server = createServer((req, res) => this.handle(req, res));
    this.server.on('connection', (s) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
    await new Promise<void>((resolve) => this.server!.listen(port, '127.0.0.1', resolve));
    this.port = (this.server.address() as { port: number }).port;
  }

  /** Stops listening and cuts every connection, like an API server that went away. */
  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    this.watches.clear();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
    this.server = null;
  }

  /** Answer every request with this status while set; open watches are cut at once. */
  set failWith(code: number | null) {
    this.failing = code;
    if (code !== null) this.dropWatches();
  }

  get failWith(): number | null {
    return this.failing;
  }

  /** The server's current resourceVersion. */
  get resourceVersion(): number {
    return this.rv;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** A kubeconfig naming this server, as `insecure-skip-tls-verify` allows for http://. */
  writeKubeconfig(dir: string): string {
    const path = join(dir, 'kubeconfig');
    writeFileSync(path, [
      'apiVersion: v1', 'kind: Config', 'current-context: double',
      'clusters:', `- name: double`, '  cluster:', `    server: ${this.url}`, '    insecure-skip-tls-verify: true',
      'users:', '- name: double', '  user:', '    token: test-token',
      'contexts:', '- name: double', '  context:', '    cluster: double', '    user: double', '',
    ].join('\n'));
    return path;
  }

  upsert(resource: Resource, object: Obj): void {
    const key = `${object.metadata.namespace ?? ''}/${object.metadata.name}`;
    const type = this.store[resource].has(key) ? 'MODIFIED' : 'ADDED';
    const stored = structuredClone(object);
    stored.metadata.resourceVersion = String(++this.rv);
    this.store[resource].set(key, stored);
    this.emit({ rv: this.rv, resource, type, object: stored });
  }

  remove(resource: Resource, namespace: string, name: string): void {
    const key = `${namespace}/${name}`;
    const old = this.store[resource].get(key);
    if (!old) return;
    this.store[resource].delete(key);
    const object = { ...structuredClone(old), metadata: { ...old.metadata, resourceVersion: String(++this.rv) } };
    this.emit({ rv: this.rv, resource, type: 'DELETED', object });
  }

  /** A BOOKMARK at the current resourceVersion on every watch that asked for them. */
  bookmark(): void {
    for (const w of this.watches) {
      if (w.bookmarks) this.write(w, { type: 'BOOKMARK', object: { kind: w.resource === 'pods' ? 'Pod' : 'Sidecar', metadata: { resourceVersion: String(this.rv) } } });
    }
  }

  /** Forget history: a watch from an older resourceVersion now gets 410 Gone. */
  compact(): void {
    this.compactedBelow = this.rv;
  }

  /** Cuts every open watch stream (the client must reconnect). */
  dropWatches(): void {
    for (const w of this.watches) w.res.socket?.destroy();
    this.watches.clear();
  }

  watchCount(resource?: Resource): number {
    return [...this.watches].filter((w) => !resource || w.resource === resource).length;
  }

  private emit(e: Event): void {
    this.log.push(e);
    for (const w of this.watches) if (w.resource === e.resource && matches(e.object, w.node)) this.write(w, { type: e.type, object: e.object });
  }

  private write(w: WatchConn, event: unknown): void {
    w.res.write(`${JSON.stringify(event)}\n`);
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    this.requests.push(`${req.method} ${req.url}`);
    const url = new URL(req.url ?? '/', this.url);
    if (this.failing !== null) {
      return json(res, this.failing, status(this.failing, 'InternalError', 'the API double was told to fail'));
    }
    const resource = route(url.pathname, this.sidecarVersions);
    if (!resource) return json(res, 404, status(404, 'NotFound', `the server could not find the requested resource ${url.pathname}`));
    const selector = url.searchParams.get('fieldSelector');
    const node = selector?.startsWith('spec.nodeName=') ? selector.slice('spec.nodeName='.length) : null;
    if (url.searchParams.get('watch') !== 'true') {
      const items = [...this.store[resource].values()].filter((o) => matches(o, node));
      return json(res, 200, { kind: resource === 'pods' ? 'PodList' : 'SidecarList', apiVersion: 'v1', metadata: { resourceVersion: String(this.rv) }, items });
    }
    const from = Number(url.searchParams.get('resourceVersion') || this.rv);
    res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
    res.flushHeaders(); // as an API server does: the client sees the watch open at once
    const w: WatchConn = { resource, node, res, bookmarks: url.searchParams.get('allowWatchBookmarks') === 'true' };
    if (from < this.compactedBelow) {
      this.write(w, { type: 'ERROR', object: status(410, 'Expired', `too old resource version: ${from} (${this.compactedBelow})`) });
      res.end();
      return;
    }
    for (const e of this.log) if (e.rv > from && e.resource === resource && matches(e.object, node)) this.write(w, { type: e.type, object: e.object });
    this.watches.add(w);
    res.on('close', () => this.watches.delete(w));
  }
}

function route(path: string, sidecarVersions: string[]): Resource | null {
  if (path === '/api/v1/pods') return 'pods';
  const m = /^\/apis\/networking\.istio\.io\/([^/]+)\/sidecars$/.exec(path);
  return m && sidecarVersions.includes(m[1]!) ? 'sidecars' : null;
}

function matches(o: Obj, node: string | null): boolean {
  return node === null || (o.spec as { nodeName?: string } | undefined)?.nodeName === node;
}

function status(code: number, reason: string, message: string) {
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code };
}

function json(res: ServerResponse, code: number, body: unknown): void {
  res.writeHead(code, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}
