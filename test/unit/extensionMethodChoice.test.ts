import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DEFAULT_VERIFY_TOP, defaultMethod, defaultReason, METHOD_CHOICES, methodParams } from '../../src/extension/methodChoice';
import { parseSettings } from '../../src/extension/settings';
import { METHOD_NAMES } from '../../src/protocol/spec';

const choice = (method: string) => METHOD_CHOICES.find((c) => c.method === method)!;

test('the method pick offers every method once, and only AtP* verifies', () => {
  assert.deepEqual(
    METHOD_CHOICES.map((c) => c.method),
    [...METHOD_NAMES],
  );
  assert.deepEqual(
    METHOD_CHOICES.filter((c) => c.verify).map((c) => c.method),
    ['atp_star'],
  );
});

test('the pick starts on the patchlens.method setting, else the spec’s method, else exact patching', () => {
  const setting = (v: unknown) => parseSettings((k) => (k === 'method' ? v : undefined)).method;
  // 'spec' (the setting's default) and a hand-edited wrong value both defer to the spec.
  assert.equal(setting('spec'), undefined);
  assert.equal(setting('fast'), undefined);
  assert.equal(defaultMethod(setting('spec'), undefined), 'exact');
  assert.equal(defaultMethod(setting('spec'), 'atp'), 'atp');
  assert.equal(defaultMethod(setting('atp_star'), 'atp'), 'atp_star');
  assert.equal(defaultMethod(setting('exact'), 'atp_star'), 'exact');
  assert.equal(defaultReason('exact', 'atp'), 'the patchlens.method setting');
  assert.equal(defaultReason(undefined, 'atp'), "the spec's method");
  assert.equal(defaultReason(undefined, undefined), 'the default');
});

test('a choice sends its method; AtP* with verification adds verify_top unless the spec sets its own', () => {
  assert.deepEqual(methodParams(choice('exact'), undefined), { method: 'exact' });
  assert.deepEqual(methodParams(choice('atp'), undefined), { method: 'atp' });
  assert.deepEqual(methodParams(choice('atp'), 5), { method: 'atp' });
  assert.deepEqual(methodParams(choice('atp_star'), undefined), { method: 'atp_star', verifyTop: DEFAULT_VERIFY_TOP });
  assert.deepEqual(methodParams(choice('atp_star'), 3), { method: 'atp_star' });
  assert.deepEqual(methodParams(choice('atp_star'), 0), { method: 'atp_star' });
});
