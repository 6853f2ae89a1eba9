/** Component names (patch sets, the panel's "patch these together"): grammar, canonical form, schema. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import schema from '../../schemas/patch.schema.json';
import { COMPONENT_PATTERN, componentName, parseComponent } from '../../src/protocol/components';
import { parseSpecText } from '../../src/spec/parseSpec';
import { isUserError } from '../../src/common/userError';
import { cellComponent } from '../../src/presentation/cellComponent';

test('component names parse to layer, head, part and place, and print back canonically', () => {
  assert.deepEqual(parseComponent('L9H6'), { layer: 9, head: 6, part: 'z' });
  assert.deepEqual(parseComponent('L9H6.q'), { layer: 9, head: 6, part: 'q' });
  assert.deepEqual(parseComponent('L10H0.out@END'), { layer: 10, head: 0, part: 'z', at: 'END' });
  assert.deepEqual(parseComponent('L3.mlp_out@14'), { layer: 3, part: 'mlp_out', at: 14 });
  assert.deepEqual(parseComponent('L0.resid_pre@S_1'), { layer: 0, part: 'resid_pre', at: 'S_1' });
  assert.equal(componentName(parseComponent('L10H0.z@END')!), 'L10H0@END');
  assert.equal(componentName(parseComponent('L2H3.k@IO')!), 'L2H3.k@IO');
  for (const bad of ['L3.mlp', 'L01H2', 'H2', 'L1H2.pattern', 'L1H2@', 'L1H2@1x', 'l1h2', 'L1.resid_pre@-1', '']) assert.equal(parseComponent(bad), undefined, bad);
});

test('the schema checks components with the same pattern', () => {
  assert.equal(schema.properties.patch_sets.items.properties.components.items.pattern, COMPONENT_PATTERN);
  assert.deepEqual(Object.keys(schema.properties.patch_sets.items.properties).sort(), ['components', 'name']);
});

test('patch sets in a spec: one located message per mistake', () => {
  const spec = (sets: unknown, extra = {}) =>
    JSON.stringify({ metric: 'logit_diff', pairs: [{ clean: 'a', corrupted: 'b', answer: ' a', wrong: ' b' }], patch_sets: sets, ...extra }, null, 2);
  const message = (text: string) => {
    try {
      parseSpecText(text, 's.patch.json');
    } catch (e) {
      assert.ok(isUserError(e));
      return (e as Error).message;
    }
    return 'ok';
  };
  assert.equal(message(spec([{ name: 'n', components: ['L0H1', 'L1.mlp_out@END'] }])), 'ok');
  assert.match(message(spec([{ name: 'n', components: ['L0 H1'] }])), /^s\.patch\.json:\d+:\d+: patch_sets\[0\]\.components\[0\] is 'L0 H1', not a component; a component is LxHy/);
  assert.match(
    message(
      spec([
        { name: 'n', components: ['L0H1'] },
        { name: 'n', components: ['L0H2'] },
      ]),
    ),
    /patch_sets\[0\] and patch_sets\[1\] are both called 'n'/,
  );
  assert.match(message(spec([{ name: 'n', components: [] }])), /patch_sets\[0\]\.components is empty/);
  assert.match(
    message(JSON.stringify({ metric: 'logit_diff', pairs: [{ clean: 'a', corrupted: 'b', answer: ' a', wrong: ' b' }] })),
    /the spec is missing 'sweeps'; add "sweeps": \["resid_pre"\] \(or "patch_sets"/,
  );
});

test('a heatmap cell names the component it patches; pattern cells have none', () => {
  const s = (axes: string[], extra: object = {}) => ({ shape: axes.map(() => 4), axes, values: [], ...extra });
  assert.equal(cellComponent('resid_pre', s(['layer', 'pos']), [2, 3]), 'L2.resid_pre@3');
  assert.equal(cellComponent('mlp_out', s(['layer', 'label'], { labels: ['IO', 'S1', 'S2', 'END'] }), [1, 3]), 'L1.mlp_out@END');
  assert.equal(cellComponent('attn_head_out_all_pos', s(['layer', 'head']), [1, 2]), 'L1H2');
  assert.equal(cellComponent('attn_head_k_all_pos', s(['layer', 'kv_head']), [1, 0]), 'L1H0.k');
  assert.equal(cellComponent('attn_head_q_by_pos', s(['layer', 'pos', 'head']), [0, 3, 1]), 'L0H1.q@3');
  assert.equal(cellComponent('block_every', s(['component', 'layer', 'pos'], { components: ['resid_pre', 'attn_out', 'mlp_out'] }), [2, 1, 0]), 'L1.mlp_out@0');
  const every = { components: ['output', 'query', 'key', 'value', 'pattern'] };
  assert.equal(cellComponent('attn_head_all_pos_every', s(['component', 'layer', 'head'], every), [3, 0, 1]), 'L0H1.v');
  assert.equal(cellComponent('attn_head_by_pos_every', s(['component', 'layer', 'label', 'head'], { ...every, labels: ['IO'] }), [0, 1, 0, 2]), 'L1H2@IO');
  assert.equal(cellComponent('attn_head_all_pos_every', s(['component', 'layer', 'head'], every), [4, 0, 1]), undefined);
  assert.equal(cellComponent('attn_head_pattern_all_pos', s(['layer', 'head']), [0, 1]), undefined);
  assert.equal(cellComponent('attn_head_pattern_dest_src_pos', s(['layer', 'head', 'dest_pos', 'src_pos']), [0, 1, 2, 1]), undefined);
});
