// One informer: client-node's ListWatch (list, then watch from the list's resourceVersion,
// re-list after 410 Gone) plus what it leaves to the caller: restart after an error with
// exponential backoff and jitter, bookmarks, and whether the cache is in sync.
/* eslint-disable @typescript-eslint/no-explicit-any -- Watch's own callback types */
import { ListWatch, Watch, type KubeConfig, type KubernetesListObject, type KubernetesObject } from '@kubernetes/client-node';
import type { ObjectList } from './api.js';

export interface InformerOptions<T> {
  kubeconfig: KubeConfig;
  /** The watch path, e.g. `/api/v1/pods`. */
  path: string;
  list: () => Promise<ObjectList<T>>;
  fieldSelector?: string;
  onChange: () => void;
  onError: (error: unknown, retryInMs: number) => void;
  /** Every watch event by type (ADDED, MODIFIED, DELETED, BOOKMARK, ERROR), for metrics. */
  onEvent?: (type: string) => void;
  backoff?: { baseMs: number; maxMs: number };
}

/** client-node's Watch, telling when a watch stream opened and which events it carried. */
class TrackingWatch extends Watch {
  constructor(kubeconfig: KubeConfig, private readonly onOpen: () => void, private readonly onEvent: (type: string) => void) {
    super(kubeconfig);
  }

  override async watch(path: string, query: Record<string, string | number | boolean | undefined>, callback: (phase: string, apiObj: any, watchObj?: any) => void, done: (err: any) => void): Promise<AbortController> {
    let failed = false;
    const controller = await super.watch(path, query, (phase, obj, raw) => {
      this.onEvent(phase);
      callback(phase, obj, raw);
    }, (err) => {
      if (err) failed = true;
      done(err);
    });
    // super.watch resolves once the response is in: a 200 unless done() already failed.
    if (!failed) this.onOpen();
    return controller;
  }
}

export class Informer<T> {
  // ListWatch only reads metadata (name, namespace, resourceVersion) of what it caches.
  private readonly lw: ListWatch<KubernetesObject>;
  private listed = false;
  private healthy = false;
  private lastHealthyMs = Date.now();
  private failures = 0;
  private retry: NodeJS.Timeout | null = null;
  private stopped = false;

  constructor(private readonly opts: InformerOptions<T>) {
    const list = async () => {
      const result = await opts.list();
      // ListWatch fills its cache right after this resolves; report once it has.
      setImmediate(() => {
        this.listed = true;
        this.markHealthy();
        opts.onChange();
      });
      return result as unknown as KubernetesListObject<KubernetesObject>;
    };
    // allowWatchBookmarks: the server then sends BOOKMARK events that keep the
    // resourceVersion fresh, so a reconnect rarely needs a full re-list.
    const watch = new TrackingWatch(opts.kubeconfig, () => this.markHealthy(), (type) => {
      this.markHealthy();
      opts.onEvent?.(type);
    });
    this.lw = new ListWatch(`${opts.path}?allowWatchBookmarks=true`, watch, list, false, undefined, opts.fieldSelector);
    const changed = () => {
      this.markHealthy();
      if (this.listed) opts.onChange();
    };
    this.lw.on('add', changed);
    this.lw.on('update', changed);
    this.lw.on('delete', changed);
    this.lw.on('error', (e) => this.failed(e));
  }

  start(): void {
    this.stopped = false;
    void this.lw.start();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.retry) clearTimeout(this.retry);
    await this.lw.stop();
  }

  /** The first list is done: the cache holds the cluster's state (maybe stale). */
  get synced(): boolean {
    return this.listed;
  }

  /** Seconds since the API server last answered, 0 while the watch is up. */
  get staleSeconds(): number {
    return this.healthy ? 0 : Math.round((Date.now() - this.lastHealthyMs) / 1000);
  }

  list(): T[] {
    return this.lw.list() as unknown as T[];
  }

  private markHealthy(): void {
    this.healthy = true;
    this.failures = 0;
    this.lastHealthyMs = Date.now();
  }

  private failed(error: unknown): void {
    if (this.healthy) this.lastHealthyMs = Date.now();
    this.healthy = false;
    if (this.stopped) return;
    const { baseMs, maxMs } = this.opts.backoff ?? { baseMs: 500, maxMs: 30_000 };
    const ceiling = Math.min(maxMs, baseMs * 2 ** Math.min(this.failures, 16));
    this.failures += 1;
    // Full jitter between half and all of the ceiling, so a node fleet does not
    // reconnect in step after an API server restart.
    const delay = Math.round(ceiling / 2 + Math.random() * (ceiling / 2));
    this.opts.onError(error, delay);
    this.retry = setTimeout(() => {
      this.retry = null;
      if (!this.stopped) void this.lw.start();
    }, delay);
    this.retry.unref();
  }
}
