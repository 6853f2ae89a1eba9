/**
 * The seed notebook's second model from the hub: `attn-only-2l` resolves to NeelNanda/Attn_Only_2L512W_C4_Code,
 * whose config.json names its tokenizer's repo. Against the local hub server: the download takes the config
 * and model_final.pth from the model's repo and the tokenizer files from the tokenizer's, and the notebook's
 * induction experiment (examples/induction-demo.patch.json, without the sweeps an attention-only model has
 * no hook for) runs on it, equal to the float64 reference.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { after, before, test } from 'node:test';
import { resolveModelDir } from '../../src/engine/model/hub';
import { ModelCache } from '../../src/engine/modelLoader';
import { resolveSpec } from '../../src/engine/patching/resolveSpec';
import { runSpec } from '../../src/engine/runSpec';
import type { PatchResult } from '../../src/protocol/result';
import type { PatchSpec } from '../../src/protocol/spec';
import { parseSpecText } from '../../src/spec/parseSpec';
import { makeTmpDir } from '../helpers/checkpoint';
import { writeNeoxStyleTokenizer, writeRandomTlCheckpoint } from '../helpers/checkpoints/transformerLens';
import { startHubServer, type HubServer } from '../helpers/hubServer';
import { loadTestModel, maxAbsDiff } from '../helpers/models';
import type { RefActivation } from '../helpers/reference';
import { referenceSweep } from '../helpers/referencePatching';

const MODEL_REPO = 'NeelNanda/Attn_Only_2L512W_C4_Code';
const TOKENIZER_REPO = 'NeelNanda/gpt-neox-tokenizer-digits';
const EXAMPLE = resolve(__dirname, '../../examples/induction-demo.patch.json');

let root: string;
let hub: HubServer;

before(async () => {
  root = makeTmpDir('hub-tl');
  // The notebook's token range is [100, 10000): the random model's vocabulary covers it, as attn-only-2l's 48262 does.
  writeRandomTlCheckpoint(join(root, MODEL_REPO), { nLayers: 2, nHeads: 4, dModel: 16, dVocab: 10000, nCtx: 48, seed: 5, attnOnly: true, tokenizerName: TOKENIZER_REPO });
  writeNeoxStyleTokenizer(join(root, TOKENIZER_REPO));
  hub = await startHubServer(root);
});

after(() => hub.close());

test('attn-only-2l downloads from its repo and its tokenizer from the repo its config names', async () => {
  const cache = makeTmpDir('hub-tl-cache');
  const dir = await resolveModelDir('attn-only-2l', { endpoint: hub.endpoint, cacheDir: cache });
  assert.deepEqual(readdirSync(dir).sort(), ['.complete', 'config.json', 'model_final.pth', 'tokenizer.json', 'tokenizer_config.json']);
  const fetched = hub.requests.map((r) => r.path.replace(/\/resolve\/main\//, ' '));
  for (const f of ['config.json', 'model_final.pth']) assert.ok(fetched.includes(`/${MODEL_REPO} ${f}`), `${f} from the model's repo`);
  for (const f of ['tokenizer.json', 'tokenizer_config.json']) assert.ok(fetched.includes(`/${TOKENIZER_REPO} ${f}`), `${f} from the tokenizer's repo`);
  assert.deepEqual(readFileSync(join(dir, 'model_final.pth')), readFileSync(join(root, MODEL_REPO, 'model_final.pth')));
  const before = hub.requests.length;
  assert.equal(await resolveModelDir('attn-only-2l', { endpoint: hub.endpoint, cacheDir: cache }), dir);
  assert.equal(hub.requests.length, before, 'the second time, from the cache without the network');
});

test("the notebook's induction experiment runs on attn-only-2l from the hub and equals the reference", async () => {
  const cacheDir = makeTmpDir('hub-tl-run');
  const out = makeTmpDir('hub-tl-out');
  const spec = JSON.parse(readFileSync(EXAMPLE, 'utf8')) as PatchSpec;
  const sweeps = spec.sweeps!.filter((s) => s !== 'block_every');
  const specText = JSON.stringify({ ...spec, sweeps });
  const models = new ModelCache();
  try {
    const outcome = await runSpec({ runId: 'r', specFile: EXAMPLE, specText, model: 'attn-only-2l', outDir: out, device: 'cpu', hubEndpoint: hub.endpoint, cacheDir }, { models });
    const result = JSON.parse(readFileSync(outcome.resultPath, 'utf8')) as PatchResult;
    assert.equal(result.status, 'done');
    assert.deepEqual(Object.keys(result.sweeps), sweeps);
    // BOS + A + A, with BOS the tokenizer's <|endoftext|>.
    assert.equal(result.tokens[0]!.clean.ids.length, 41);
    assert.equal(result.tokens[0]!.clean.strings[0], '<|endoftext|>');

    const loaded = (await models.peek())!;
    const m = await loadTestModel(loaded.dir);
    const resolved = resolveSpec(parseSpecText(specText, EXAMPLE), loaded.tokenizer, m.cfg, { file: EXAMPLE, text: specText });
    // answer_logprob with targets: mean over rows and targets of log softmax(logits[row, pos])[token].
    const metric = (logits: RefActivation) => {
      const [, P, V] = logits.shape as [number, number, number];
      let sum = 0;
      let count = 0;
      resolved.pairs.forEach((pair, b) => {
        for (const t of pair.targets!) {
          const row = logits.data.subarray((b * P + t.pos) * V, (b * P + t.pos + 1) * V);
          const max = row.reduce((a, x) => Math.max(a, x), -Infinity);
          const lse = max + Math.log(row.reduce((a, x) => a + Math.exp(x - max), 0));
          sum += row[t.token]! - lse;
          count++;
        }
      });
      return sum / count;
    };
    // The per-head sweep the induction story is read from (the float64 reference is slow on 4 × 41 tokens
    // and a 10,000-token vocabulary; every sweep's agreement is tested on smaller models elsewhere).
    const want = referenceSweep(
      m.ref,
      resolved.pairs.map((p) => p.clean),
      resolved.pairs.map((p) => p.corrupted),
      'attn_head_out_all_pos',
      metric,
    );
    const d = maxAbsDiff(result.sweeps.attn_head_out_all_pos!.values, want.values);
    assert.ok(d <= 1e-4, `attn_head_out_all_pos: max abs diff ${d}`);
  } finally {
    await models.release();
  }
});
