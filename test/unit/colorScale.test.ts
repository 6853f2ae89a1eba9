/** The colour scale shared by the panel, the PNG export and the demo: defaults per metric, `plot` settings, colours. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { colorScale, fractionText, NAN_COLOR, rampColor, scaleColor, scalePosition, sweepScale } from '../../src/presentation/colorScale';
import type { ColorScale } from '../../src/presentation/colorScale';
import { placedTicks } from '../../src/presentation/colorBar';

const tick = (s: ColorScale, kind: string): number | undefined => s.ticks.find((t) => t.kind === kind)?.value;
const isWhite = ([r, g, b]: number[]): boolean => r >= 240 && g >= 240 && b >= 240;
const RED_END = rampColor(1);
const BLUE_END = rampColor(-1);

test('normalized_logit_diff: white at 0 (the corrupted baseline), ends ±max(1, max |v|), baselines at 1 and 0', () => {
  const s = colorScale({ metric: 'normalized_logit_diff', baselines: { clean: 3.2, corrupted: -0.4 }, values: [0.2, 0.9, -0.3, null, NaN] });
  assert.equal(s.kind, 'diverging');
  assert.deepEqual([s.zmin, s.center, s.zmax], [-1, 0, 1]);
  assert.equal(s.redEnd, 'zmax');
  assert.deepEqual(s.baselines, { none: 0, noneName: 'corrupted', full: 1, fullName: 'clean' });
  assert.equal(tick(s, 'clean'), 1);
  assert.equal(tick(s, 'corrupted'), 0);
  assert.deepEqual(s.ticks.find((t) => t.kind === 'clean')?.label, 'clean 1');
  assert.deepEqual(s.ticks.find((t) => t.kind === 'corrupted')?.label, 'corrupted 0');
  // A value past the clean behaviour widens both ends; nothing is clipped.
  const wide = colorScale({ metric: 'normalized_logit_diff', baselines: { clean: 1, corrupted: 0 }, values: [1.7, -0.2] });
  assert.deepEqual([wide.zmin, wide.zmax], [-1.7, 1.7]);
  assert.deepEqual(wide.clipped, { below: 0, above: 0 });
  assert.deepEqual(wide.notes, []);
  assert.ok(isWhite(scaleColor(s, 0)!));
  assert.deepEqual(scaleColor(s, 1), RED_END);
  assert.deepEqual(scaleColor(s, -1), BLUE_END);
});

for (const metric of ['logit_diff', 'answer_logprob', 'answer_prob'] as const) {
  test(`${metric}: white at the corrupted baseline, full red at the clean one, symmetric, widened to every value`, () => {
    const b = metric === 'answer_logprob' ? { clean: -4.2e-6, corrupted: -11.1 } : metric === 'answer_prob' ? { clean: 0.8, corrupted: 0.1 } : { clean: 3, corrupted: -1 };
    const d = b.clean - b.corrupted;
    const values = [b.corrupted, b.corrupted + d / 2, b.clean, b.corrupted - d / 4];
    const s = colorScale({ metric, baselines: b, values });
    assert.equal(s.center, b.corrupted);
    assert.equal(s.neutral, b.corrupted);
    assert.ok(Math.abs(s.zmax - b.clean) < 1e-12 && Math.abs(s.zmin - (b.corrupted - d)) < 1e-12, `${s.zmin} … ${s.zmax}`);
    assert.equal(s.redEnd, 'zmax');
    assert.equal(tick(s, 'clean'), b.clean);
    assert.equal(tick(s, 'corrupted'), b.corrupted);
    // An unchanged cell is white, full restoration full red, half of it half-way.
    assert.ok(isWhite(scaleColor(s, b.corrupted)!));
    assert.deepEqual(scaleColor(s, b.clean), RED_END);
    assert.ok(Math.abs(scalePosition(s, b.corrupted + d / 2) - 0.5) < 1e-9);
    assert.ok(Math.abs(scalePosition(s, b.corrupted - d / 4) + 0.25) < 1e-9);
    assert.equal(fractionText(s, b.corrupted + d / 2), '50% of clean');
    // Values past the clean baseline, or further below than it is above, widen their own side; none is clipped.
    const past = colorScale({ metric, baselines: b, values: [...values, b.clean + d, b.corrupted - 3 * d] });
    assert.ok(Math.abs(past.zmax - (b.corrupted + 2 * d)) < 1e-9 && Math.abs(past.zmin - (b.corrupted - 3 * d)) < 1e-9);
    assert.deepEqual(past.clipped, { below: 0, above: 0 });
    assert.deepEqual(scaleColor(past, b.corrupted - 3 * d), BLUE_END);
    assert.deepEqual(scaleColor(past, b.clean + d), RED_END);
    // Worse than corrupted (confidently wrong) widens the blue side only: full restoration stays full red.
    const worse = colorScale({ metric, baselines: b, values: [...values, b.corrupted - 2 * d] });
    assert.deepEqual(scaleColor(worse, b.clean), RED_END);
    assert.deepEqual(scaleColor(worse, b.corrupted - 2 * d), BLUE_END);
    assert.ok(Math.abs(scalePosition(worse, b.corrupted - d) + 0.5) < 1e-9);
  });
}

test('a clean baseline below the corrupted one puts red at the low end', () => {
  const s = colorScale({ metric: 'logit_diff', baselines: { clean: -2, corrupted: 1 }, values: [0, -2] });
  assert.equal(s.redEnd, 'zmin');
  assert.deepEqual([s.zmin, s.zmax], [-2, 4]);
  assert.deepEqual(scaleColor(s, -2), RED_END);
  assert.deepEqual(scaleColor(s, 4), BLUE_END);
});

test('kl_divergence: sequential from 0 (red, the clean distribution) to pale at the corrupted KL', () => {
  const s = colorScale({ metric: 'kl_divergence', baselines: { clean: 0, corrupted: 2.5 }, values: [0.1, 2.5, 1.2, null] });
  assert.equal(s.kind, 'sequential');
  assert.deepEqual([s.zmin, s.zmax], [0, 2.5]);
  assert.equal(s.redEnd, 'zmin');
  assert.equal(s.center, 2.5);
  assert.equal(s.neutral, 2.5);
  assert.deepEqual(scaleColor(s, 0), RED_END);
  assert.ok(isWhite(scaleColor(s, 2.5)!));
  assert.ok(scalePosition(s, 1.25) > 0.49 && scalePosition(s, 1.25) < 0.51);
  assert.equal(tick(s, 'clean'), 0);
  assert.equal(tick(s, 'corrupted'), 2.5);
  assert.match(s.legend, /^Red: KL divergence from the clean run 0, the clean behaviour restored; pale: the corrupted run's 2\.5 or more/);
  // A patch that makes things worse than the corrupted run extends the pale end.
  const worse = colorScale({ metric: 'kl_divergence', baselines: { clean: 0, corrupted: 2.5 }, values: [4] });
  assert.equal(worse.zmax, 4);
  assert.deepEqual(worse.clipped, { below: 0, above: 0 });
  // A centre turns it diverging, red still towards 0.
  const div = colorScale({ metric: 'kl_divergence', baselines: { clean: 0, corrupted: 2.5 }, values: [0.1], plot: { center: 'corrupted' } });
  assert.equal(div.kind, 'diverging');
  assert.equal(div.redEnd, 'zmin');
  assert.deepEqual([div.zmin, div.center, div.zmax], [0, 2.5, 5]);
});

test("the seed notebook's settings: normalized logit difference with zmin -1, zmax 1", () => {
  const s = colorScale({ metric: 'normalized_logit_diff', baselines: { clean: 3, corrupted: 1 }, values: [0.5, 1.4, -1.2], plot: { zmin: -1, zmax: 1 } });
  assert.deepEqual([s.zmin, s.center, s.zmax], [-1, 0, 1]);
  // Fixed ends may clip: counted, marked on the bar's end labels, and said.
  assert.deepEqual(s.clipped, { below: 1, above: 1 });
  assert.deepEqual(
    s.ticks.filter((t) => t.kind === 'end').map((t) => t.label),
    ['≥ 1', '≤ -1'],
  );
  assert.equal(s.notes.length, 1);
  assert.match(s.notes[0]!, /^2 cells lie beyond the colour range: 1 below -1 \(lowest -1\.2\), 1 above 1 \(highest 1\.4\)/);
  assert.deepEqual(scaleColor(s, 1.4), RED_END);
});

test("the seed notebook's settings: the induction metric with zmax = the clean baseline", () => {
  const b = { clean: -4.2e-6, corrupted: -11.1 };
  const s = colorScale({ metric: 'answer_logprob', baselines: b, values: [-11.1, -10.8, -5e-6], plot: { zmax: 'clean' } });
  assert.equal(s.zmax, b.clean);
  assert.equal(s.center, b.corrupted);
  assert.ok(Math.abs(s.zmin - (2 * b.corrupted - b.clean)) < 1e-9);
  // The notebook's own reading, midpoint 0 and zmax = clean.
  const z = colorScale({ metric: 'answer_logprob', baselines: b, values: [-11.1, -5e-6], plot: { center: 'zero', zmax: 'clean' } });
  assert.equal(z.center, 0);
  assert.ok(z.notes[0]?.includes('plot.zmax ("clean" = -4.20e-6) is below the centre (0); automatic ends used'), z.notes.join());
  assert.deepEqual([z.zmin, z.zmax], [-11.1, 11.1]);
});

test('plot settings: centre, ends, baselines by name, conflicts and missing baselines', () => {
  const b = { clean: 2, corrupted: -1 };
  const zero = colorScale({ metric: 'logit_diff', baselines: b, values: [0.5], plot: { center: 'zero' } });
  assert.deepEqual([zero.zmin, zero.center, zero.zmax], [-2, 0, 2]);
  assert.equal(tick(zero, 'center'), 0);
  const num = colorScale({ metric: 'logit_diff', baselines: b, values: [0.5], plot: { center: 0.5, zmin: 'corrupted', zmax: 'clean' } });
  assert.deepEqual([num.zmin, num.center, num.zmax], [-1, 0.5, 2]);
  // Asymmetric ends: each side runs from the centre to its own end.
  assert.ok(Math.abs(scalePosition(num, 1.25) - 0.5) < 1e-9);
  assert.ok(Math.abs(scalePosition(num, -0.25) + 0.5) < 1e-9);
  const flipped = colorScale({ metric: 'logit_diff', baselines: b, values: [0.5], plot: { zmin: 'clean', zmax: 'corrupted' } });
  assert.match(flipped.notes[0]!, /plot\.zmin \("clean" = 2\) is not below plot\.zmax \("corrupted" = -1\); automatic ends used/);
  const failed = colorScale({ metric: 'logit_diff', values: [0.5, -2], plot: { center: 'corrupted', zmax: 'clean' } });
  assert.deepEqual([failed.zmin, failed.center, failed.zmax], [-2, 0, 2]);
  assert.equal(failed.notes.length, 2);
  assert.equal(failed.baselines, undefined);
  assert.match(failed.legend, /^White: 0; red above it, blue below/);
  // No values and no baselines: still a usable scale.
  const empty = colorScale({ metric: 'logit_diff', values: [null, NaN] });
  assert.deepEqual([empty.zmin, empty.zmax], [-1, 1]);
  assert.deepEqual(scaleColor(empty, NaN), NAN_COLOR);
  assert.equal(scaleColor(empty, null), null);
});

test("sweepScale: the spec's plot, the panel's override, unusable settings set aside and said", () => {
  const result = { metric: 'normalized_logit_diff', baselines: { clean: 2, corrupted: 1 }, spec: { plot: { zmin: -0.5, zmax: 0.5 } } };
  assert.deepEqual([sweepScale(result, [0.2]).zmin, sweepScale(result, [0.2]).zmax], [-0.5, 0.5]);
  assert.equal(sweepScale(result, [0.2], { zmax: 2 }).zmax, 2);
  const bad = sweepScale({ ...result, spec: { plot: { zmin: 'lowest' } } }, [0.2]);
  assert.deepEqual([bad.zmin, bad.zmax], [-1, 1]);
  assert.match(bad.notes[0]!, /^The plot settings are set aside \(plot\.zmin is "lowest"; use a number, "clean", "corrupted" or "auto"\)\.$/);
});

test('colour bar labels: baselines first, then the ends, none closer than a line', () => {
  const s = colorScale({ metric: 'answer_logprob', baselines: { clean: -4.2e-6, corrupted: -11.1 }, values: [-11.1, -5e-6] });
  // The clean baseline sits at the top end: its name replaces the end's value there.
  assert.deepEqual(
    placedTicks(s, 200).map((t) => t.label),
    ['clean -4.20e-6', 'corrupted -11.1', '-22.2'],
  );
  assert.deepEqual(
    placedTicks(s, 10).map((t) => t.label),
    ['clean -4.20e-6'],
  );
  // The demo's BB baselines: corrupted + (clean − corrupted) rounds below clean; the clean tick must stay.
  const bb = colorScale({ metric: 'answer_logprob', baselines: { clean: -4.188387690194274e-6, corrupted: -29.87011469847559 }, values: [-29.87011469847559] });
  assert.ok(bb.zmax >= -4.188387690194274e-6);
  assert.deepEqual(
    placedTicks(bb, 200).map((t) => t.label),
    ['clean -4.19e-6', 'corrupted -29.9', '-59.7'],
  );
});

test('noising: white at the clean baseline (no effect), full red at the corrupted one; ticks named by run; fractions towards corrupted', () => {
  const s = colorScale({ metric: 'logit_diff', baselines: { clean: 4, corrupted: -2 }, direction: 'noising', values: [4, 1, -2] });
  assert.equal(s.center, 4);
  assert.equal(s.neutral, 4);
  assert.equal(s.redEnd, 'zmin');
  assert.equal(scaleColor(s, 4)!.join(), rampColor(0).join());
  assert.equal(scaleColor(s, -2)!.join(), rampColor(1).join());
  assert.deepEqual(
    s.ticks.filter((t) => t.kind === 'clean' || t.kind === 'corrupted').map((t) => t.label),
    ['clean 4', 'corrupted -2'],
  );
  assert.equal(fractionText(s, 1), '50% to corrupted');
  assert.match(s.legend, /White: the clean baseline: the patch changes nothing\. Red: towards the corrupted baseline/);
  // The normalized metric of a noising run is 0 at the clean run and 1 at the corrupted one.
  const n = colorScale({ metric: 'normalized_logit_diff', baselines: { clean: 4, corrupted: -2 }, direction: 'noising', values: [0, 0.5, 1] });
  assert.deepEqual(n.baselines, { none: 0, noneName: 'clean', full: 1, fullName: 'corrupted' });
  assert.equal(n.redEnd, 'zmax');
  // KL when noising: 0 at the clean run (pale), the corrupted run's divergence red.
  const kl = colorScale({ metric: 'kl_divergence', baselines: { clean: 0, corrupted: 3 }, direction: 'noising', values: [0, 1, 3] });
  assert.equal(kl.kind, 'sequential');
  assert.equal(scaleColor(kl, 0)!.join(), rampColor(0).join());
  assert.equal(scaleColor(kl, 3)!.join(), rampColor(1).join());
});

test('an ablation has only the clean baseline: white there, red the way that breaks the behaviour; a "corrupted" setting says it is missing', () => {
  const s = colorScale({ metric: 'logit_diff', baselines: { clean: 3 }, ablation: 'mean', values: [3, 1, 3.5] });
  assert.equal(s.center, 3);
  assert.equal(s.redEnd, 'zmin');
  assert.equal(fractionText(s, 1), undefined);
  assert.equal(s.zmin, 1);
  assert.ok(s.zmax >= 5, 'symmetric about the clean baseline');
  assert.match(s.legend, /Red: the way the mean ablation breaks the behaviour/);
  const kl = colorScale({ metric: 'kl_divergence', baselines: { clean: 0 }, ablation: 'zero', values: [0, 2] });
  assert.equal(scaleColor(kl, 2)!.join(), rampColor(1).join());
  const bad = colorScale({ metric: 'logit_diff', baselines: { clean: 3 }, ablation: 'zero', values: [1], plot: { zmax: 'corrupted' } });
  assert.match(bad.notes.join(' '), /plot\.zmax is "corrupted", but this run has no corrupted baseline/);
});
