import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RunQueue } from '../../src/extension/runQueue';

function deferred<T>() {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

test('runs one at a time, in order, later ones shown as queued', async () => {
  const q = new RunQueue<string>();
  const log: string[] = [];
  const gates = [deferred<string>(), deferred<string>(), deferred<string>()];
  const runs = gates.map((g, i) =>
    q.enqueue({
      label: `run ${i}`,
      run: () => {
        log.push(`start ${i}`);
        return g.promise;
      },
      cancel: () => {},
    }),
  );
  assert.deepEqual(
    q.entries().map((e) => [e.label, e.state]),
    [
      ['run 0', 'running'],
      ['run 1', 'queued'],
      ['run 2', 'queued'],
    ],
  );
  assert.deepEqual(log, ['start 0']);
  gates[0]!.resolve('a');
  assert.equal(await runs[0]!.result, 'a');
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(log, ['start 0', 'start 1']);
  assert.equal(q.running()?.label, 'run 1');
  gates[1]!.resolve('b');
  gates[2]!.resolve('c');
  assert.deepEqual(await Promise.all(runs.map((r) => r.result)), ['a', 'b', 'c']);
  assert.deepEqual(q.entries(), []);
});

test('cancelling a queued run removes it; cancelling the running one asks it to stop', async () => {
  const q = new RunQueue<string>();
  const cancelled: string[] = [];
  const first = deferred<string>();
  const a = q.enqueue({ label: 'a', run: () => first.promise, cancel: (id) => cancelled.push(id) });
  const b = q.enqueue({ label: 'b', run: async () => 'b ran', cancel: () => {} });
  const c = q.enqueue({ label: 'c', run: async () => 'c ran', cancel: () => {} });
  assert.equal(q.cancel(b.id), 'queued');
  assert.equal(await b.result, undefined);
  assert.deepEqual(
    q.entries().map((e) => e.label),
    ['a', 'c'],
  );
  // No id: the running run.
  assert.equal(q.cancel(), 'running');
  assert.deepEqual(cancelled, [a.id]);
  first.resolve('a stopped');
  assert.equal(await a.result, 'a stopped');
  assert.equal(await c.result, 'c ran');
  assert.equal(q.cancel('nope'), undefined);
  assert.equal(q.cancel(), undefined);
});

test('a failing run rejects its own promise and the next one still runs; listeners hear every change', async () => {
  const q = new RunQueue<string>();
  let changes = 0;
  q.onDidChange(() => changes++);
  q.onDidChange(() => {
    throw new Error('a broken view');
  });
  const bad = q.enqueue({ label: 'bad', run: () => Promise.reject(new Error('boom')), cancel: () => {} });
  const throws = q.enqueue({
    label: 'throws',
    run: () => {
      throw new Error('sync');
    },
    cancel: () => {},
  });
  const good = q.enqueue({ label: 'good', run: async () => 'ok', cancel: () => {} });
  await assert.rejects(bad.result, /boom/);
  await assert.rejects(throws.result, /sync/);
  assert.equal(await good.result, 'ok');
  assert.ok(changes >= 6, `changes: ${changes}`);
});
