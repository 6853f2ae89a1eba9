/**
 * One run at a time per window: the engine holds one model, and two sweeps in parallel would only
 * fight for the same cores. Later runs wait here, visible (as 'queued') in the runs view.
 */

export type QueueState = 'queued' | 'running';

export interface QueueEntry {
  readonly id: string;
  readonly label: string;
  readonly state: QueueState;
  readonly enqueuedAt: number;
}

export interface QueueTask<T> {
  readonly label: string;
  readonly run: (id: string) => Promise<T>;
  /** Asked to stop while running; the run's promise still settles (with whatever the run reports). */
  readonly cancel: (id: string) => void;
}

export interface Queued<T> {
  readonly id: string;
  /** The run's value; undefined when it was cancelled before it started. */
  readonly result: Promise<T | undefined>;
}

interface Item<T> {
  entry: { id: string; label: string; state: QueueState; enqueuedAt: number };
  task: QueueTask<T>;
  resolve: (v: T | undefined) => void;
  reject: (e: unknown) => void;
}

export class RunQueue<T> {
  private readonly items: Item<T>[] = [];
  private readonly listeners = new Set<() => void>();
  private nextId = 1;

  constructor(private readonly idPrefix = 'run') {}

  enqueue(task: QueueTask<T>): Queued<T> {
    const id = `${this.idPrefix}-${Date.now().toString(36)}-${this.nextId++}`;
    const result = new Promise<T | undefined>((resolve, reject) => {
      this.items.push({ entry: { id, label: task.label, state: 'queued', enqueuedAt: Date.now() }, task, resolve, reject });
    });
    this.changed();
    this.pump();
    return { id, result };
  }

  entries(): QueueEntry[] {
    return this.items.map((i) => ({ ...i.entry }));
  }

  running(): QueueEntry | undefined {
    const i = this.items[0];
    return i?.entry.state === 'running' ? { ...i.entry } : undefined;
  }

  /** Cancels a run (default: the running one). Returns what it was, or undefined when there is no such run. */
  cancel(id?: string): QueueState | undefined {
    const index = id === undefined ? (this.items[0]?.entry.state === 'running' ? 0 : -1) : this.items.findIndex((i) => i.entry.id === id);
    const item = this.items[index];
    if (!item) return undefined;
    if (item.entry.state === 'running') {
      item.task.cancel(item.entry.id);
      return 'running';
    }
    this.items.splice(index, 1);
    item.resolve(undefined);
    this.changed();
    return 'queued';
  }

  onDidChange(listener: () => void): { dispose(): void } {
    this.listeners.add(listener);
    return { dispose: () => this.listeners.delete(listener) };
  }

  private changed(): void {
    for (const l of [...this.listeners]) {
      try {
        l();
      } catch {
        /* a view's refresh failing must not stop the queue */
      }
    }
  }

  private pump(): void {
    const head = this.items[0];
    if (!head || head.entry.state === 'running') return;
    head.entry.state = 'running';
    this.changed();
    let p: Promise<T>;
    try {
      p = head.task.run(head.entry.id);
    } catch (e) {
      p = Promise.reject(e);
    }
    // Off the list before the caller hears the result, so what it sees next is the queue after this run.
    const done = () => {
      this.items.splice(this.items.indexOf(head), 1);
      this.changed();
    };
    p.then(
      (v) => {
        done();
        head.resolve(v);
      },
      (e: unknown) => {
        done();
        head.reject(e);
      },
    ).finally(() => this.pump());
  }
}
