import { test } from 'node:test';
import assert from 'node:assert/strict';
import { executeFast, planFast } from '../../src/engine/patching/fastExecutor';
import { preparePatching } from '../../src/engine/patching/runPatching';
import { type PatchSlot, planSweep } from '../../src/engine/patching/sweeps';
import type { ResolvedSpec, SweepName } from '../../src/protocol/spec';
import { randomModel, seededInts } from '../helpers/models';

// The fast executor's plan, beyond its values (which every engine test checks against the naive loop and
// the reference): patches start where they first change something, and small groups share runs.

const FIRST_DIFF = 5;

async function plan(sweep: SweepName, nPos: number) {
  const m = await randomModel({ nLayers: 3, nHeads: 2, dModel: 16, dVocab: 40, nCtx: 64, seed: 11 });
  const rnd = seededInts(3);
  const pairs = [0, 1].map(() => {
    const clean = Array.from({ length: nPos }, () => rnd(0, 40));
    // Identical up to FIRST_DIFF: every activation there is the same in both runs.
    const corrupted = clean.map((t, i) => (i === FIRST_DIFF || i === nPos - 3 ? (t + 1) % 40 : t));
    return { clean, corrupted, answer: 1, wrong: 2 };
  });
  const spec: ResolvedSpec = { name: 't', metric: 'logit_diff', sweeps: [sweep], prependBos: false, pairs } as unknown as ResolvedSpec;
  const { problem, positions } = await preparePatching(m.model, spec);
  const slots = planSweep(sweep, m.model.cfg, positions).slots;
  return {
    fast: planFast(
      problem,
      slots.map((s) => [s]),
    ),
    slots,
    problem,
    model: m.model,
  };
}

test('a patch over every position starts at the first position where its source differs from the run', async () => {
  const { fast, slots } = await plan('attn_head_all_pos_every', 12);
  assert.ok(fast.chunks.length > 0);
  for (const chunk of fast.chunks) assert.equal(chunk.p, FIRST_DIFF, 'no run starts before the prompts differ');
  const running = fast.chunks.reduce((a, c) => a + c.members.length, 0);
  assert.equal(running + fast.unchanged.length, slots.length);
});

test('groups of patches too small for a good batch share a run from the earliest start, within bounds', async () => {
  const nPos = 40;
  const { fast, slots } = await plan('resid_pre', nPos);
  const starts = new Set(slots.filter((_, i) => !fast.unchanged.includes(i)).map((s) => s.pos!));
  assert.ok(fast.chunks.length < starts.size, `${fast.chunks.length} runs for ${starts.size} starting positions`);
  for (const chunk of fast.chunks) {
    for (const i of chunk.members) {
      const own = slots[i]!.pos!;
      assert.ok(own >= chunk.p, 'a patch never runs from after its own start');
      assert.ok(4 * (own - chunk.p) <= nPos - own, 'extra positions at most a quarter of its own');
    }
  }
});

test('a block projects to queries, keys and values only the tokens whose input differs from the run', async () => {
  const nPos = 12;
  const projected = async (sweep: SweepName, pick: (s: PatchSlot) => boolean) => {
    const { slots, problem, model } = await plan(sweep, nPos);
    const seen: [number, number[]][] = [];
    const real = model.blockSuffixCapture.bind(model);
    model.blockSuffixCapture = (layer, resid, past, patches, opts) => {
      // Without runQkv the block projects every token.
      seen.push([layer, opts.runQkv ? [...opts.runQkv.rows] : Array.from({ length: resid.shape[0]! * resid.shape[1]! }, (_, k) => k)]);
      return real(layer, resid, past, patches, opts);
    };
    try {
      await executeFast(problem, [[slots.find(pick)!]], {});
    } finally {
      model.blockSuffixCapture = real;
    }
    return seen;
  };
  // Two pairs, suffix positions 7..11 (S = 5): token (pair i, position 7 + t) is i * 5 + t.
  const every = Array.from({ length: 10 }, (_, k) => k);
  // A residual vector patched at position 7 of layer 1: only that position's input differs there; the
  // next block's input differs at every later position (attention carries it).
  assert.deepEqual(await projected('resid_pre', (s) => s.layer === 1 && s.pos === 7), [
    [1, [0, 5]],
    [2, every],
  ]);
  // A head's output at position 7 of layer 0: nothing before it in that block differs, the block changes
  // only position 7's output, so the next block projects that position alone.
  assert.deepEqual(await projected('attn_head_out_by_pos', (s) => s.layer === 0 && s.pos === 7 && s.head === 0), [
    [0, []],
    [1, [0, 5]],
    [2, every],
  ]);
});
