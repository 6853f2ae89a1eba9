/** The panel's pure parts (message validation, CSV, cell descriptions), in Node. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sweepCsv } from '../../webview/csv';
import { describeCell, exactValue, notices, tokenText } from '../../src/presentation/resultText';
import { parseHostMessage, parseState, parseSweep } from '../../webview/messages';
import { makeResult, SWEEPS } from './fixtures';

function quietly<T>(fn: () => T): { value: T; warnings: number } {
  const warn = console.warn;
  let warnings = 0;
  console.warn = () => {
    warnings++;
  };
  try {
    return { value: fn(), warnings };
  } finally {
    console.warn = warn;
  }
}

test('host messages: valid ones pass, anything else is undefined with one warning', () => {
  assert.deepEqual(parseHostMessage({ type: 'highlightPosition', pos: 3 }), { type: 'highlightPosition', pos: 3 });
  assert.deepEqual(parseHostMessage({ type: 'highlightPosition', pos: null }), { type: 'highlightPosition', pos: null });
  assert.deepEqual(parseHostMessage({ type: 'requestPng' }), { type: 'requestPng' });
  for (const bad of [
    null,
    'showResult',
    [],
    {},
    { type: 7 },
    { type: 'nope' },
    { type: 'highlightPosition' },
    { type: 'highlightPosition', pos: 1.5 },
    { type: 'highlightPosition', pos: -1 },
    { type: 'showResult', resultPath: '', result: makeResult() },
    { type: 'showResult', resultPath: 'a', result: { ...makeResult(), name: 3 } },
    { type: 'showResult', resultPath: 'a', result: { ...makeResult(), status: 'weird' } },
    { type: 'showResult', resultPath: 'a', result: { ...makeResult(), baselines: { clean: 'x', corrupted: 1 } } },
  ]) {
    const r = quietly(() => parseHostMessage(bad));
    assert.equal(r.value, undefined, JSON.stringify(bad));
    assert.equal(r.warnings, 1, JSON.stringify(bad));
  }
});

test('showResult: sweeps in order, null (an index the model lacks) kept, unreadable sweeps dropped and reported', () => {
  const result = makeResult({
    sweeps: {
      resid_pre: { ...SWEEPS.resid_pre, values: SWEEPS.resid_pre.values.map((v) => (Number.isNaN(v) ? null : v)) },
      resid_mid: { shape: [2, 5], axes: ['layer'], values: [] },
      block_every: SWEEPS.block_every,
    },
  });
  const r = quietly(() => parseHostMessage({ type: 'showResult', resultPath: '/r.json', result }));
  assert.equal(r.warnings, 1);
  const m = r.value;
  assert.ok(m && m.type === 'showResult');
  assert.deepEqual(m.shown.sweeps, ['resid_pre', 'block_every']);
  assert.equal(m.shown.result.sweeps.resid_pre?.values[7], null);
  assert.equal(m.shown.plot, undefined);
  // A colour scale the host kept for the run comes along when it is one; otherwise it is ignored with a warning.
  const kept = parseHostMessage({ type: 'showResult', resultPath: '/r.json', result: makeResult(), plot: { zmax: 'clean' } });
  assert.ok(kept?.type === 'showResult' && kept.shown.plot?.zmax === 'clean');
  const bad = quietly(() => parseHostMessage({ type: 'showResult', resultPath: '/r.json', result: makeResult(), plot: { zmax: 'max' } }));
  assert.ok(bad.value?.type === 'showResult' && bad.value.shown.plot === undefined);
  assert.equal(bad.warnings, 1);
  assert.deepEqual(m.shown.tokens, ['<|endoftext|>', 'When', ' Mary', ' and', ' John']);
  assert.equal(m.shown.problems.length, 1);
  assert.match(m.shown.problems[0], /resid_mid/);
});

test('sweeps: shape, axes and value count must agree', () => {
  assert.equal(typeof parseSweep({ shape: [2, 2], axes: ['layer', 'pos'], values: [1, 2, 3] }), 'string');
  assert.equal(typeof parseSweep({ shape: [2, -1], axes: ['layer', 'pos'], values: [] }), 'string');
  assert.equal(typeof parseSweep({ shape: [2, 1], axes: ['layer', 'pos'], values: [1, '2'] }), 'string');
  assert.equal(typeof parseSweep({ shape: [1 << 12, 1 << 12], axes: ['a', 'b'], values: [] }), 'string');
  assert.deepEqual(parseSweep({ shape: [1, 2], axes: ['layer', 'pos'], values: [1, 2] }), { shape: [1, 2], axes: ['layer', 'pos'], values: [1, 2] });
});

test('saved state', () => {
  assert.deepEqual(parseState({ resultPath: '/a', sweep: 'resid_pre' }), { resultPath: '/a', sweep: 'resid_pre' });
  assert.deepEqual(parseState({ resultPath: '/a', sweep: 3 }), { resultPath: '/a' });
  assert.equal(parseState(undefined), undefined);
  assert.equal(parseState({ sweep: 'resid_pre' }), undefined);
});

test('CSV: long form, exact values, component names, quoting', () => {
  const csv = sweepCsv({ shape: [2, 1, 2], axes: ['component', 'layer', 'pos'], values: [0.1 + 0.2, -1e-12, NaN, null], components: ['a,b', 'c"d'] });
  // An index the model does not have is an empty field (pandas reads NaN), not a measured value.
  assert.equal(csv, 'component,layer,pos,value\n"a,b",0,0,0.30000000000000004\n"a,b",0,1,-1e-12\n"c""d",0,0,NaN\n"c""d",0,1,\n');
});

test('cell descriptions and notices', () => {
  const s = SWEEPS.attn_head_out_by_pos;
  assert.equal(describeCell(s, ['a', ' Mary'], [1, 1, 2], 0.1234567), 'layer 1, pos 1 (␣Mary), head 2: 0.1234567');
  assert.equal(describeCell(s, [], [0, 3, 0], NaN), 'layer 0, pos 3, head 0: NaN');
  assert.equal(tokenText(' a\n\tb\u0001'), '␣a↵⇥b\\x01');
  assert.equal(exactValue(1 / 3), '0.3333333333333333');
  const r = makeResult();
  assert.deepEqual(notices({ ...r, metric: 'normalized_logit_diff', baselines: { clean: 1, corrupted: 1 } }).length, 1);
  assert.deepEqual(notices(r), []);
  assert.match(notices({ ...r, status: 'cancelled', message: 'by the user' })[0], /cancelled: by the user/);
});

test('showResult: direction and ablation pass through, an ablation run has no corrupted baseline, unknown values are reported', () => {
  const ok = parseHostMessage({ type: 'showResult', resultPath: 'a', result: { ...makeResult(), direction: 'noising', ablation: 'mean', baselines: { clean: 2 } } });
  assert.ok(ok && ok.type === 'showResult');
  assert.equal(ok.shown.result.direction, 'noising');
  assert.equal(ok.shown.result.ablation, 'mean');
  assert.deepEqual(ok.shown.result.baselines, { clean: 2 });
  assert.deepEqual(ok.shown.problems, []);
  const odd = parseHostMessage({ type: 'showResult', resultPath: 'a', result: { ...makeResult(), direction: 'sideways' } });
  assert.ok(odd && odd.type === 'showResult');
  assert.equal(odd.shown.result.direction, undefined);
  assert.match(odd.shown.problems.join(' '), /direction could not be read/);
});

test('showResult: patch sets pass through in order; an unreadable one is left out and reported', () => {
  const sets = [
    { name: 'name movers', components: ['L1H2', 'L0H1'], value: 0.73 },
    { name: 'not run', components: ['L0.resid_pre@IO'], value: null },
  ];
  const ok = parseHostMessage({ type: 'showResult', resultPath: 'a', result: { ...makeResult(), patchSets: sets } });
  assert.ok(ok && ok.type === 'showResult');
  assert.deepEqual(ok.shown.result.patchSets, sets);
  assert.deepEqual(ok.shown.problems, []);
  const odd = parseHostMessage({
    type: 'showResult',
    resultPath: 'a',
    result: { ...makeResult(), patchSets: [sets[0], { name: 'x', components: 'L1H2', value: 1 }, { name: 'y', components: [], value: '1' }] },
  });
  assert.ok(odd && odd.type === 'showResult');
  assert.deepEqual(odd.shown.result.patchSets, [sets[0]]);
  assert.match(odd.shown.problems.join(' '), /Some patch sets could not be read/);
  const none = parseHostMessage({ type: 'showResult', resultPath: 'a', result: makeResult() });
  assert.ok(none && none.type === 'showResult' && none.shown.result.patchSets === undefined);
});
