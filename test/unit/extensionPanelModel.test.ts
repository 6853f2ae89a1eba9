import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type PatchResult, RESULT_FORMAT } from '../../src/protocol/result';
import { patchTogetherSpec, pngFromDataUrl, positionAtOffset, sweepCsv, tokenRangesAt, validateWebviewMessage, validateWebviewState } from '../../src/extension/panelModel';

test('webview messages: known types with well-typed fields pass, anything else is refused with a reason', () => {
  const ok = (m: unknown) => {
    const v = validateWebviewMessage(m);
    assert.ok(v.ok, `refused ${JSON.stringify(m)}: ${v.ok ? '' : v.reason}`);
    return v.message;
  };
  const no = (m: unknown, why: RegExp) => {
    const v = validateWebviewMessage(m);
    assert.ok(!v.ok && why.test(v.reason), `accepted or wrong reason for ${JSON.stringify(m)}: ${JSON.stringify(v)}`);
  };
  assert.deepEqual(ok({ type: 'ready' }), { type: 'ready' });
  assert.deepEqual(ok({ type: 'hoverPosition', pos: 3, extra: '<img src=x onerror=alert(1)>' }), { type: 'hoverPosition', pos: 3 });
  assert.deepEqual(ok({ type: 'hoverPosition', pos: null }), { type: 'hoverPosition', pos: null });
  assert.deepEqual(ok({ type: 'selectSweep', sweep: 'block_every' }), { type: 'selectSweep', sweep: 'block_every' });
  // Path patching's heatmap is a result sweep the spec's "sweeps" cannot name.
  assert.deepEqual(ok({ type: 'selectSweep', sweep: 'path_patching' }), { type: 'selectSweep', sweep: 'path_patching' });
  assert.deepEqual(ok({ type: 'exportCsv', sweep: 'resid_pre', csv: 'a,b\n' }), { type: 'exportCsv', sweep: 'resid_pre', csv: 'a,b\n' });
  assert.equal(ok({ type: 'exportPng', sweep: 'resid_pre', dataUrl: 'data:image/png;base64,AAAA' }).type, 'exportPng');
  no(null, /not an object/);
  no([], /not an object/);
  no('ready', /not an object/);
  no({ type: 'runCommand', command: 'rm -rf' }, /unknown message type/);
  no({ type: 'hoverPosition', pos: -1 }, /pos/);
  no({ type: 'hoverPosition', pos: 1.5 }, /pos/);
  no({ type: 'hoverPosition', pos: '3' }, /pos/);
  no({ type: 'hoverPosition' }, /pos/);
  no({ type: 'selectSweep', sweep: '__proto__' }, /sweep/);
  no({ type: 'exportPng', sweep: 'resid_pre', dataUrl: 'file:///etc/passwd' }, /PNG data/);
  no({ type: 'exportPng', sweep: 'resid_pre', dataUrl: 'data:text/html;base64,AAAA' }, /PNG data/);
  no({ type: 'exportCsv', sweep: 'resid_pre', csv: 42 }, /csv/);
  no({ type: 'exportCsv', sweep: 'nope', csv: '' }, /sweep/);
  // A colour-scale choice is kept for the run: only the three known settings, checked as the spec checks them.
  assert.deepEqual(ok({ type: 'plotChoice', plot: { center: 'zero', zmin: -1, zmax: 'clean' } }), { type: 'plotChoice', plot: { center: 'zero', zmin: -1, zmax: 'clean' } });
  assert.deepEqual(ok({ type: 'plotChoice', plot: null }), { type: 'plotChoice', plot: null });
  no({ type: 'plotChoice', plot: { zmin: 2, zmax: 1 } }, /plot\.zmin \(2\) must be below plot\.zmax/);
  no({ type: 'plotChoice', plot: { center: 'middle' } }, /plot\.center/);
  no({ type: 'plotChoice', plot: { zmin: 0, __proto__: { polluted: true }, extra: 1 } }, /unknown key "extra"/);
  no({ type: 'plotChoice' }, /plotChoice\.plot/);
});

test('"Patch together": component names only, repeats merged, bounded; the spec again with one set in place of its sweeps', () => {
  const ok = validateWebviewMessage({ type: 'patchTogether', components: ['L1H2', 'L0.resid_pre@3', 'L1H2'] });
  assert.deepEqual(ok, { ok: true, message: { type: 'patchTogether', components: ['L1H2', 'L0.resid_pre@3'] } });
  for (const components of [[], ['L1H2', 'rm -rf /'], 'L1H2', [3], Array.from({ length: 1001 }, (_, i) => `L${i}H0`)]) {
    const v = validateWebviewMessage({ type: 'patchTogether', components });
    assert.ok(!v.ok && /patchTogether\.components is not a list of 1 to 1000 component names/.test(v.reason), JSON.stringify(components).slice(0, 80));
  }
  const result = {
    name: 'ioi',
    spec: {
      name: 'ioi',
      model: 'gpt2',
      metric: 'logit_diff',
      sweeps: ['resid_pre'],
      dataset: 'ioi.jsonl',
      method: 'atp',
      verify_top: 3,
      direction: 'noising',
      patch_sets: [{ name: 'old', components: ['L0H0'] }],
    },
  } as unknown as PatchResult;
  assert.deepEqual(patchTogetherSpec(result, ['L1H2', 'L0.resid_pre@IO']), {
    name: 'ioi-together',
    model: 'gpt2',
    metric: 'logit_diff',
    dataset: 'ioi.jsonl',
    direction: 'noising',
    patch_sets: [{ name: '2 selected cells', components: ['L1H2', 'L0.resid_pre@IO'] }],
  });
});

test('restored webview state is checked too', () => {
  assert.deepEqual(validateWebviewState({ resultPath: '/ws/.patchlens/runs/a.result.json', sweep: 'resid_pre' }), {
    resultPath: '/ws/.patchlens/runs/a.result.json',
    sweep: 'resid_pre',
  });
  assert.deepEqual(validateWebviewState({ resultPath: '/ws/a.result.json', sweep: 'nope' }), { resultPath: '/ws/a.result.json' });
  assert.equal(validateWebviewState({ resultPath: '/etc/passwd' }), undefined);
  assert.equal(validateWebviewState(undefined), undefined);
  assert.equal(validateWebviewState({ resultPath: 42 }), undefined);
});

test('PNG data is accepted only when it is a PNG', () => {
  const png = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13]);
  assert.deepEqual(pngFromDataUrl(`data:image/png;base64,${png.toString('base64')}`), png);
  assert.equal(pngFromDataUrl(`data:image/png;base64,${Buffer.from('<svg/>').toString('base64')}`), undefined);
});

// "Alice: Hi" as clean, "Bob: Hi" as corrupted, at document offsets 100 and 200, BOS first.
const RESULT: PatchResult = {
  format: RESULT_FORMAT,
  name: 'r',
  status: 'done',
  createdAt: '2025-01-01T00:00:00Z',
  spec: { metric: 'logit_diff', sweeps: ['resid_pre', 'attn_head_out_all_pos'] },
  source: '/ws/x.patch.json',
  model: { id: 'm', config: { nLayers: 2, nHeads: 2, dModel: 4, dHead: 2, dMlp: 8, dVocab: 10, nCtx: 8 }, dtype: 'float32', provider: 'cpu', weightProcessing: 'none' },
  engine: { version: '0', mode: 'fast', seconds: 0 },
  metric: 'logit_diff',
  tokens: [
    {
      clean: { ids: [0, 1, 2, 3], strings: ['<|endoftext|>', 'Alice', ':', ' Hi'], ranges: [null, [100, 105], [105, 106], [106, 109]] },
      corrupted: { ids: [0, 4, 2, 3], strings: ['<|endoftext|>', 'Bob', ':', ' Hi'], ranges: [null, [200, 203], [203, 204], [204, 207]] },
    },
  ],
  baselines: { clean: 1, corrupted: 0 },
  sweeps: {
    resid_pre: { shape: [2, 4], axes: ['layer', 'pos'], values: [0, 0.5, 1, NaN, -1, 0.25, 0, 2] },
    attn_head_out_all_pos: { shape: [2, 2], axes: ['layer', 'head'], values: [1, 2, 3, 4] },
  },
};

test('a heatmap position maps to its token in both prompts, and a cursor offset back to the position', () => {
  assert.deepEqual(tokenRangesAt(RESULT, 1), [
    [100, 105],
    [200, 203],
  ]);
  assert.deepEqual(tokenRangesAt(RESULT, 3), [
    [106, 109],
    [204, 207],
  ]);
  assert.deepEqual(tokenRangesAt(RESULT, 0), []);
  assert.deepEqual(tokenRangesAt(RESULT, 9), []);
  assert.equal(positionAtOffset(RESULT, 102), 1);
  assert.equal(positionAtOffset(RESULT, 201), 1);
  assert.equal(positionAtOffset(RESULT, 105), 2);
  // Just after the last character of a token (the cursor at a string's end).
  assert.equal(positionAtOffset(RESULT, 109), 3);
  assert.equal(positionAtOffset(RESULT, 50), null);
});

test('CSV of a sweep is laid out as its heatmap', () => {
  const csv = sweepCsv(RESULT, 'resid_pre').trim().split('\n');
  assert.equal(csv.length, 3);
  assert.equal(csv[1]!.split(',').slice(2).join(','), '0,0.5,1,NaN');
  assert.equal(csv[2]!.split(',').slice(2).join(','), '-1,0.25,0,2');
  assert.equal(csv[1]!.split(',')[1], 'L0');
  assert.equal(sweepCsv(RESULT, 'attn_head_out_all_pos').trim().split('\n').length, 3);
  assert.throws(() => sweepCsv(RESULT, 'mlp_out'), /no sweep mlp_out/);
});
