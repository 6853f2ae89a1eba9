/**
 * A Llama-family model from a local stand-in for the Hugging Face hub, as a user names it: an alias, a
 * repo holding a sharded bfloat16 checkpoint and its tokenizer files, downloaded and run from text.
 */
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { ModelCache } from '../../src/engine/modelLoader';
import { resolveSpec } from '../../src/engine/patching/resolveSpec';
import { makeTmpDir } from '../helpers/checkpoint';
import { writeRandomLlamaCheckpoint } from '../helpers/checkpoints/llama';
import { type HubServer, startHubServer } from '../helpers/hubServer';
import { BYTE_LEVEL_SPECIALS, familyTokenizerVocab, writeFamilyTokenizer } from '../helpers/tokenizers';

let hub: HubServer;

before(async () => {
  const root = makeTmpDir('llama-hub');
  const repo = join(root, 'HuggingFaceTB', 'SmolLM2-135M');
  writeRandomLlamaCheckpoint(repo, {
    arch: 'llama',
    nLayers: 2,
    nHeads: 4,
    nKvHeads: 2,
    dModel: 16,
    dMlp: 24,
    dVocab: familyTokenizerVocab('llama3'),
    nCtx: 64,
    seed: 8,
    tied: true,
    dtype: 'BF16',
    shards: 2,
  });
  writeFamilyTokenizer(repo, 'llama3');
  hub = await startHubServer(root);
});

after(() => hub.close());

test("'smollm2-135m' downloads config, tokenizer files, index and shards, then runs a text prompt with its BOS", async () => {
  const models = new ModelCache();
  const cacheDir = makeTmpDir('llama-hub-cache');
  const loaded = await models.get({ source: 'smollm2-135m', settings: { hubEndpoint: hub.endpoint, cacheDir, device: 'cpu' } });
  assert.deepEqual(readdirSync(loaded.dir).sort(), [
    '.complete',
    'config.json',
    'model-00001-of-00002.safetensors',
    'model-00002-of-00002.safetensors',
    'model.safetensors.index.json',
    'tokenizer.json',
    'tokenizer_config.json',
  ]);
  assert.ok(
    hub.requests.some((r) => r.path === '/HuggingFaceTB/SmolLM2-135M/resolve/main/config.json'),
    'the alias names the hub repo',
  );
  const cfg = loaded.model.cfg;
  assert.deepEqual([cfg.architecture, cfg.weightsDtype, cfg.nKvHeads, cfg.tiedEmbeddings], ['llama', 'BF16', 2, true]);
  const spec = resolveSpec(
    { metric: 'logit_diff', sweeps: ['resid_pre'], pairs: [{ clean: 'Alice gave Bob a drink', corrupted: 'Alice gave Mary a drink', answer: ' Alice', wrong: ' Bob' }] },
    loaded.tokenizer,
    cfg,
    { file: 'x.patch.json' },
  );
  assert.equal(spec.pairs[0]!.clean[0], BYTE_LEVEL_SPECIALS.first, '<|begin_of_text|> first');
  const out = await loaded.model.forward([spec.pairs[0]!.clean]);
  assert.ok(out.logits.data.every(Number.isFinite));
  await models.release();
});
