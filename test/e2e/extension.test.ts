/**
 * End-to-end, in a real VS Code (code-server) with the built .vsix installed: the menus, the selection
 * flow, the heatmap panel and its link to the editor, cancel, and an engine crash. The models are
 * small random GPT-2 checkpoints (with GPT-2's real tokenizer) written into the test workspace, so
 * runs take seconds and nothing is downloaded.
 */
import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, afterEach, before, describe, test } from 'node:test';
import type { Frame, Page } from 'playwright-core';
import type { PatchResult } from '../../src/protocol/result';
import { makeTmpDir, writeRandomGpt2Checkpoint } from '../helpers/checkpoint';
import {
  ARTIFACTS,
  buildVsix,
  enginePids,
  type Host,
  pickMenuItem,
  pickMethod,
  quickPickRows,
  REPO,
  runCommand,
  skipReason,
  startHost,
  step,
  waitFor,
  waitForQuickPickRow,
} from './host';

const skip = skipReason();

const LONG_IDS = (off: number) => Array.from({ length: 40 }, (_, i) => 300 + ((i * 37 + off) % 5000));

describe('PatchLens in a real VS Code host', { skip, timeout: 8 * 60_000 }, () => {
  let host: Host;
  let page: Page;
  let ws: string;
  let runs: string;

  before(async () => {
    const t = Date.now();
    // PATCHLENS_E2E_VSIX tests a given package (a release candidate) instead of building one.
    const vsix = process.env.PATCHLENS_E2E_VSIX ?? buildVsix();
    step(`${process.env.PATCHLENS_E2E_VSIX ? 'using' : 'built'} ${vsix} in ${((Date.now() - t) / 1000).toFixed(1)}s`);
    const dir = makeTmpDir('e2e-run');
    ws = join(dir, 'workspace');
    runs = join(ws, '.patchlens', 'runs');
    mkdirSync(join(ws, '.vscode'), { recursive: true });
    writeRandomGpt2Checkpoint(join(ws, 'model'), { nLayers: 2, nHeads: 4, dModel: 32, dVocab: 50257, nCtx: 128, seed: 1, withTokenizer: true });
    // Big enough that its dest×src sweep takes about a minute: long enough to cancel or kill.
    writeRandomGpt2Checkpoint(join(ws, 'big'), { nLayers: 4, nHeads: 4, dModel: 64, dVocab: 50257, nCtx: 64, seed: 2, withTokenizer: true });
    const example = JSON.parse(readFileSync(join(REPO, 'examples', 'speaker.patch.json'), 'utf8')) as Record<string, unknown>;
    writeFileSync(join(ws, 'speaker.patch.json'), JSON.stringify({ ...example, model: './model' }, null, 2) + '\n');
    writeFileSync(
      join(ws, 'long.patch.json'),
      JSON.stringify(
        {
          name: 'long',
          model: './big',
          metric: 'logit_diff',
          sweeps: ['resid_pre', 'attn_head_pattern_dest_src_pos'],
          pairs: [{ clean_ids: LONG_IDS(0), corrupted_ids: LONG_IDS(1), answer_id: 11, wrong_id: 12 }],
        },
        null,
        2,
      ),
    );
    writeFileSync(join(ws, 'prompts.txt'), 'When Mary and John went to the store, John gave a drink to\nWhen Mary and John went to the store, Mary gave a drink to\n');
    writeFileSync(join(ws, '.vscode', 'settings.json'), JSON.stringify({ 'patchlens.device': 'cpu', 'patchlens.cacheDir': join(dir, 'model-cache') }, null, 2));
    host = await startHost({ vsix, workspace: ws, runDir: join(dir, 'host'), userSettings: { 'git.enabled': false, 'git.openRepositoryInParentFolders': 'never' } });
    page = host.page;
    mkdirSync(ARTIFACTS, { recursive: true });
  });

  // The state at the end of each test, for post-mortems (and to look at).
  let testNo = 0;
  afterEach(async () => {
    testNo++;
    await page?.screenshot({ path: join(ARTIFACTS, `after-test-${testNo}.png`) }).catch(() => {});
  });

  after(async () => {
    if (host?.consoleErrors.length) step(`browser console errors (last 5):\n  ${host.consoleErrors.slice(-5).join('\n  ')}`);
    await host?.close();
  });

  /** The result of run `name` written after `since`, once it exists. */
  function resultAfter(name: string, since: number, timeoutMs = 90_000): Promise<{ path: string; result: PatchResult }> {
    return waitFor(
      `a result of ${name}`,
      () => {
        let files: string[];
        try {
          files = readdirSync(runs).filter((f) => f.endsWith('.result.json'));
        } catch {
          return undefined;
        }
        for (const f of files) {
          try {
            const result = JSON.parse(readFileSync(join(runs, f), 'utf8')) as PatchResult;
            if (result.name === name && Date.parse(result.createdAt) >= since - 1000) return { path: join(runs, f), result };
          } catch {
            /* claimed but not written yet */
          }
        }
        return undefined;
      },
      timeoutMs,
    );
  }

  async function shot(name: string, frame?: Frame): Promise<void> {
    await page.screenshot({ path: join(ARTIFACTS, `${name}.png`) });
    if (frame) {
      const el = await frame.frameElement();
      await el.screenshot({ path: join(ARTIFACTS, `${name}-panel.png`) });
    }
  }

  /** Opens a workspace file through Quick Open, as a user would; it is then the active editor. */
  async function openFile(name: string): Promise<void> {
    const input = page.locator('.quick-input-widget input.input');
    const active = page.locator('.editor-group-container.active .tab.active', { hasText: name });
    for (let attempt = 1; ; attempt++) {
      await page.keyboard.press('Escape');
      // The title bar's search box, not Ctrl+P: a keystroke goes wherever the focus is (maybe a webview).
      await page.locator('.command-center .command-center-center').first().click();
      await input.waitFor({ state: 'visible' });
      await input.fill(name);
      try {
        // The list re-filters after the value changes: accept only a first row that is the file.
        await waitFor(
          `${name} first in Quick Open`,
          async () => ((await input.inputValue()) === name && (await quickPickRows(page).first().innerText()).startsWith(name) ? true : undefined),
          5000,
          100,
        );
        await page.keyboard.press('Enter');
        await active.first().waitFor({ timeout: 5000 });
        // Off the search box, whose tooltip would otherwise cover the editor's title buttons.
        await page.mouse.move(600, 600);
        return;
      } catch (e) {
        if (attempt === 3) throw e;
      }
    }
  }

  /** The webview frame showing run `name` (its title is the run's name). */
  async function panelFor(name: string): Promise<Frame> {
    return waitFor(`the panel of ${name}`, async () => {
      for (const f of page.frames()) {
        try {
          if ((await f.locator('.pl-title').count()) > 0 && (await f.locator('.pl-title').innerText()) === name && (await f.locator('.pl-facets[data-cell-count]').count()) > 0)
            return f;
        } catch {
          /* detached */
        }
      }
      return undefined;
    });
  }

  async function cellCount(frame: Frame): Promise<number> {
    return Number(await frame.locator('.pl-facets').getAttribute('data-cell-count'));
  }

  test('(1) Open Example, then Run Patch File from the explorer context menu: the heatmaps have one cell per index', async () => {
    // The shipped induction example, on the built-in induction-2l model.
    await runCommand(page, 'PatchLens: Open Example');
    await quickPickRows(page).filter({ hasText: 'induction-AB.patch.json' }).first().click();
    await page.locator('.editor-group-container.active .tab.active', { hasText: 'induction-AB.patch.json' }).waitFor();
    const since = Date.now();
    await page.keyboard.press('Control+Shift+E');
    const row = page.locator('.explorer-folders-view .monaco-list-row', { hasText: 'induction-AB.patch.json' });
    await row.waitFor();
    await row.click({ button: 'right' });
    await pickMenuItem(page, 'Run Patch File');
    // The method pick starts on exact patching: the spec names no method and patchlens.method is unset.
    await pickMethod(page);
    const { result } = await resultAfter('induction-AB', since);
    assert.equal(result.attribution, undefined, 'exact patching');
    assert.equal(result.status, 'done');
    assert.equal(result.model.id, 'induction-2l');
    const frame = await panelFor('induction-AB');
    const nPos = result.tokens[0]!.clean.ids.length;
    assert.equal(nPos, 41);
    assert.ok(result.model.config, 'a finished run records its model config');
    const { nLayers, nHeads } = result.model.config;
    // resid_pre is [layer, pos]; the panel starts on the spec's first sweep.
    await waitFor('the resid_pre cells', async () => ((await cellCount(frame)) === nLayers * nPos ? true : undefined), 20_000);
    await frame.selectOption('#pl-sweep', 'attn_head_out_all_pos');
    await waitFor('the attn_head_out_all_pos cells', async () => ((await cellCount(frame)) === nLayers * nHeads ? true : undefined), 20_000);
    await shot('panel-dark', frame);
    // A stacked sweep: one facet per component (out, q, k, v, pattern).
    await frame.selectOption('#pl-sweep', 'attn_head_all_pos_every');
    await waitFor('the attn_head_all_pos_every cells', async () => ((await cellCount(frame)) === 5 * nLayers * nHeads ? true : undefined), 20_000);
    assert.equal(await frame.locator('.pl-facets').getAttribute('data-facet-count'), '5');
    // White at the corrupted baseline, full red at the clean one: the induction head's output, query and
    // pattern restore it all, and lead the strongest effects.
    const labels = (await frame.locator('.pl-colorbar').getAttribute('data-labels')) ?? '';
    assert.match(labels, /^clean -?[\d.e-]+\|corrupted -11\.1\|/);
    const top = await frame.locator('.pl-effect .pl-effect-name').allInnerTexts();
    assert.deepEqual(new Set(top.slice(0, 3)), new Set(['output · L1H2', 'query · L1H2', 'pattern · L1H2']));
    await shot('panel-dark-facets', frame);
  });

  test('a spec run from the editor title button, on a text prompt pair', async () => {
    await openFile('speaker.patch.json');
    const since = Date.now();
    await page.locator('.editor-group-container.active .editor-actions .action-label[aria-label^="Run Patch File"]').first().click();
    await pickMethod(page);
    const { result } = await resultAfter('speaker', since);
    assert.equal(result.status, 'done');
    const frame = await panelFor('speaker');
    const nPos = result.tokens[0]!.clean.ids.length;
    assert.equal(nPos, 21);
    await waitFor('the resid_pre cells', async () => ((await cellCount(frame)) === 2 * nPos ? true : undefined), 20_000);
    await frame.selectOption('#pl-sweep', 'block_every');
    await waitFor('the block_every cells', async () => ((await cellCount(frame)) === 3 * 2 * nPos ? true : undefined), 20_000);
    await frame.selectOption('#pl-sweep', 'resid_pre');
  });

  test('(3) hovering a column decorates its token in the spec, and the cursor highlights the column', async () => {
    const frame = await panelFor('speaker');
    const result = JSON.parse(readFileSync(join(runs, 'speaker.result.json'), 'utf8')) as PatchResult;
    const hoverColumn = async (col: number) => {
      const box = frame.locator('.pl-facet').first();
      const d = await box.evaluate((b) => ({ ...(b as HTMLElement).dataset }));
      const x = Number(d.plotLeft) + ((col + 0.5) * Number(d.plotWidth)) / Number(d.cols);
      const y = Number(d.plotTop) + (0.5 * Number(d.plotHeight)) / Number(d.rows);
      await box.locator('canvas').hover({ position: { x, y } });
    };
    const decorated = () =>
      page
        .locator('.monaco-editor .view-lines span[class*="TextEditorDecorationType"]')
        .evaluateAll((els) => els.filter((e) => getComputedStyle(e).fontWeight === '700').map((e) => e.textContent ?? ''));
    for (const col of [3, 5]) {
      await hoverColumn(col);
      // Position `col` in the clean and in the corrupted prompt (they differ where the prompts do).
      const want = [result.tokens[0]!.clean.strings[col]!, result.tokens[0]!.corrupted!.strings[col]!].sort();
      const got = await waitFor(
        `the decoration of column ${col}`,
        async () => {
          const texts = await decorated();
          // The editor draws spaces as U+00A0.
          const plain = texts.map((t) => t.replace(/\u00a0/g, ' '));
          return JSON.stringify([...plain].sort()) === JSON.stringify(want) ? plain : undefined;
        },
        15_000,
      );
      step(`column ${col}: decorated ${JSON.stringify(got)}`);
    }
    await shot('hover-decoration');

    // The other way: a click on 'Bob' in the clean prompt highlights its column (5).
    await page.mouse.move(0, 0);
    // Leaving the heatmap clears the decoration, which redraws the line: measure it after that.
    await waitFor('the decoration cleared', async () => ((await decorated()).length === 0 ? true : undefined), 15_000);
    const line = page.locator('.monaco-editor .view-line', { hasText: '"clean": "Alice: Hi, Bob!' }).locator(':scope > span');
    const box = await line.boundingBox();
    const text = await line.innerText();
    // Monospace: the character width is the line's width over its length.
    const charW = box!.width / text.length;
    const at = text.indexOf('Bob!') + 1;
    await page.mouse.click(box!.x + (at + 0.5) * charW, box!.y + box!.height / 2);
    await waitFor('the highlighted column', async () => ((await frame.locator('.pl-facets').getAttribute('data-highlight')) === '5' ? true : undefined), 15_000);

    // The strongest-effects list links to the source as the heatmap does: pointing at an entry outlines its token.
    // The entry nearest the prompts' start (past BOS), so the editor need not scroll sideways to show its token.
    const positions = (await frame.locator('.pl-effect').evaluateAll((els) => els.map((e) => Number((e as HTMLElement).dataset.pos || -1)))) as number[];
    const pos = Math.min(...positions.filter((p) => p > 0));
    const entry = frame.locator(`.pl-effect[data-pos="${pos}"]`).first();
    await entry.hover();
    const want = [result.tokens[0]!.clean.strings[pos]!, result.tokens[0]!.corrupted!.strings[pos]!].sort();
    await waitFor(
      `the decoration of the entry's token ${pos}`,
      async () => {
        const plain = (await decorated()).map((t) => t.replace(/\u00a0/g, ' '));
        return JSON.stringify([...plain].sort()) === JSON.stringify(want) ? true : undefined;
      },
      15_000,
    );
    assert.equal(await frame.locator('.pl-facet').first().getAttribute('data-hover-cell'), `${await entry.getAttribute('data-row')},${pos}`);
    await shot('effects-decoration');
  });

  test('"Patch together" on a clicked cell runs the spec again with it as a patch set of one, equal to the cell', async () => {
    const frame = await panelFor('speaker');
    await frame.selectOption('#pl-sweep', 'resid_pre');
    const speaker = JSON.parse(readFileSync(join(runs, 'speaker.result.json'), 'utf8')) as PatchResult;
    const nPos = speaker.tokens[0]!.clean.ids.length;
    // resid_pre is [layer, pos]: the cell of layer 1, position 5 (" Bob").
    const box = frame.locator('.pl-facet').first();
    const d = await box.evaluate((b) => ({ ...(b as HTMLElement).dataset }));
    const x = Number(d.plotLeft) + (5.5 * Number(d.plotWidth)) / Number(d.cols);
    const y = Number(d.plotTop) + (1.5 * Number(d.plotHeight)) / Number(d.rows);
    await box.locator('canvas').click({ position: { x, y } });
    await waitFor('the selected cell', async () => ((await box.getAttribute('data-selected-cells')) === '1' ? true : undefined), 15_000);
    assert.equal(await frame.locator('#pl-selection-note').innerText(), 'L1.resid_pre@5');
    const since = Date.now();
    await frame.click('#pl-patch-together');
    const { result } = await resultAfter('speaker-together', since);
    assert.equal(result.status, 'done');
    assert.deepEqual(Object.keys(result.sweeps), []);
    assert.deepEqual(
      result.patchSets?.map((s) => s.components),
      [['L1.resid_pre@5']],
    );
    const cell = speaker.sweeps.resid_pre!.values[1 * nPos + 5]!;
    assert.ok(Math.abs(result.patchSets![0]!.value! - cell) <= 1e-5, `set ${result.patchSets![0]!.value} vs cell ${cell}`);
    // Its own panel lists the set.
    const together = await waitFor('the panel of speaker-together', async () => {
      for (const f of page.frames()) {
        try {
          if ((await f.locator('.pl-title').count()) > 0 && (await f.locator('.pl-title').innerText()) === 'speaker-together' && (await f.locator('.pl-patch-set').count()) === 1)
            return f;
        } catch {
          /* detached */
        }
      }
      return undefined;
    });
    assert.match(await together.locator('.pl-patch-set').innerText(), /1 selected cell\s+L1\.resid_pre@5\s+-?\d/);
    await shot('patch-together', together);
  });

  test('(2) Patch Selected Prompts on two selected lines asks for the model and answers, then shows the panel', async () => {
    await openFile('prompts.txt');
    const since = Date.now();
    const editor = page.locator('.editor-group-container.active .monaco-editor .view-lines').first();
    await editor.click();
    await page.keyboard.press('Control+A');
    await editor.click({ button: 'right', position: { x: 40, y: 5 } });
    await pickMenuItem(page, 'Patch Selected Prompts');
    // Model: patchlens.model is not set, so a quick pick lists the workspace's checkpoint folders.
    const input = page.locator('.quick-input-widget input.input');
    const rows = quickPickRows(page);
    await rows.filter({ hasText: 'checkpoint folder' }).first().waitFor();
    await input.fill('model');
    await rows
      .filter({ hasText: /^model/ })
      .filter({ hasText: 'checkpoint folder' })
      .first()
      .click();
    // Answer: the box shows how the text is tokenized.
    const message = page.locator('.quick-input-widget .quick-input-message');
    await waitFor('the tokenization of the suggested answer', async () => ((await message.innerText().catch(() => '')).includes('→ 1 token') ? true : undefined), 30_000);
    await input.fill(' Mary');
    const shown = await waitFor(
      'the tokenization of " Mary"',
      async () => {
        const t = await message.innerText().catch(() => '');
        return t.startsWith('" Mary" → 1 token [') ? t : undefined;
      },
      15_000,
    );
    step(`answer box: ${shown}`);
    await shot('answer-box');
    await input.fill('Mary Poppins');
    await waitFor('a multi-token warning', async () => ((await message.innerText().catch(() => '')).includes('must be exactly one token') ? true : undefined), 15_000);
    await input.fill(' Mary');
    await waitFor('" Mary" again', async () => ((await message.innerText().catch(() => '')).startsWith('" Mary" → 1 token') ? true : undefined), 15_000);
    await page.keyboard.press('Enter');
    // Wrong answer: suggested from the other prompt.
    await waitFor('the wrong-answer box', async () => ((await message.innerText().catch(() => '')).startsWith('" John" → 1 token') ? true : undefined), 15_000);
    await page.keyboard.press('Enter');
    // Method: AtP* with its estimates checked by exact patching.
    await shot('method-pick');
    await pickMethod(page, 'AtP* with verification');
    const { result } = await resultAfter('prompts.txt-L1', since);
    assert.equal(result.status, 'done');
    assert.equal(result.attribution?.method, 'atp_star');
    assert.equal(result.attribution?.verifyTop, 10);
    assert.ok(
      result.sweeps.resid_pre?.verification?.cells.some((c) => c.chosen === 'top'),
      'the largest estimates were patched exactly',
    );
    assert.equal(result.source, join(ws, 'prompts.txt'));
    assert.deepEqual(result.spec.pairs?.[0], {
      clean: 'When Mary and John went to the store, John gave a drink to',
      corrupted: 'When Mary and John went to the store, Mary gave a drink to',
      answer: ' Mary',
      wrong: ' John',
    });
    // Token ranges are document offsets: the corrupted prompt is the second line.
    const text = readFileSync(join(ws, 'prompts.txt'), 'utf8');
    const corrupted = result.tokens[0]!.corrupted!;
    const last = corrupted.ranges[corrupted.ranges.length - 1]!;
    assert.equal(text.slice(last[0], last[1]), ' to');
    assert.ok(last[0] > text.indexOf('\n'));
    const frame = await panelFor('prompts.txt-L1');
    await waitFor('the cells', async () => ((await cellCount(frame)) === 2 * result.tokens[0]!.clean.ids.length ? true : undefined), 20_000);
  });

  async function startLongRun(): Promise<number> {
    await openFile('long.patch.json');
    const since = Date.now();
    // The editor-title button of a .patch.json.
    await page.locator('.editor-group-container.active .editor-actions .action-label[aria-label^="Run Patch File"]').first().click();
    await pickMethod(page);
    await page.locator('.notification-toast', { hasText: 'PatchLens: long' }).filter({ hasText: 'patching' }).first().waitFor({ timeout: 60_000 });
    return since;
  }

  test("Select Model lists each family's hub examples, as the engine's registry answers them", async () => {
    await runCommand(page, 'PatchLens: Select Model');
    // The engine's answer adds the hub examples, under one separator per family.
    await waitForQuickPickRow(page, 'Hugging Face hub: GPT-2');
    await shot('select-model');
    // The list shows what fits; the rest is found by typing, as a user would.
    const input = page.locator('.quick-input-widget input.input');
    for (const [typed, id] of [
      ['pythia', 'EleutherAI/pythia-160m'],
      ['attn-only', 'attn-only-2l'],
      ['llama-3', 'meta-llama/Llama-3.2-1B'],
      ['smollm', 'HuggingFaceTB/SmolLM2-135M'],
      ['qwen', 'Qwen/Qwen2.5-0.5B'],
    ]) {
      await input.fill(typed!);
      await waitForQuickPickRow(page, id!, 10_000);
    }
    await shot('select-model-qwen');
    await page.keyboard.press('Escape');
  });

  test('(4) Cancel on the progress notification stops a long run, recorded as cancelled; the engine takes the next run', async () => {
    const since = await startLongRun();
    await shot('progress');
    const toast = page.locator('.notification-toast', { hasText: 'PatchLens: long' }).first();
    await toast.locator('.monaco-button', { hasText: 'Cancel' }).click();
    const t = Date.now();
    const { result } = await resultAfter('long', since);
    step(`cancelled in ${Date.now() - t} ms`);
    assert.equal(result.status, 'cancelled');
    // The runs view lists it as cancelled.
    await page.locator('.activitybar .action-item a[aria-label^="PatchLens"], .activitybar .action-item[aria-label^="PatchLens"]').first().click();
    await page.locator('.monaco-list-row', { hasText: 'long' }).filter({ hasText: 'cancelled' }).first().waitFor({ timeout: 15_000 });
    await shot('runs-view');
    const next = Date.now();
    await openFile('speaker.patch.json');
    await runCommand(page, 'PatchLens: Run Patch File');
    await pickMethod(page);
    const again = await resultAfter('speaker', next);
    assert.equal(again.result.status, 'done');
  });

  test('(5) an engine killed during a run: the run is recorded as failed and the next run works', async () => {
    const since = await startLongRun();
    const pids = enginePids(host.extensionDir);
    assert.equal(pids.length, 1, `one engine process (found ${pids.join(', ')})`);
    process.kill(pids[0]!, 'SIGKILL');
    const { result } = await resultAfter('long', since);
    assert.equal(result.status, 'failed');
    assert.match(result.message ?? '', /SIGKILL/);
    await page.locator('.notification-toast', { hasText: 'engine stopped' }).first().waitFor({ timeout: 15_000 });
    const next = Date.now();
    await openFile('speaker.patch.json');
    await runCommand(page, 'PatchLens: Run Patch File');
    await pickMethod(page);
    const again = await resultAfter('speaker', next);
    assert.equal(again.result.status, 'done');
    const now = enginePids(host.extensionDir);
    assert.equal(now.length, 1);
    assert.notEqual(now[0], pids[0]);
  });

  test('the panel follows the light theme; a run opens from the runs view', async () => {
    await runCommand(page, 'Preferences: Color Theme');
    await page.locator('.quick-input-widget input.input').fill('Light Modern');
    await quickPickRows(page).filter({ hasText: 'Light Modern' }).first().waitFor();
    await page.keyboard.press('Enter');
    await page.locator('.monaco-workbench.vs:not(.vs-dark)').waitFor({ timeout: 20_000 });
    await runCommand(page, 'PatchLens: Show Runs');
    const openRun = async (): Promise<Frame> => {
      await page.locator('.monaco-list-row', { hasText: 'induction-AB' }).first().click();
      return panelFor('induction-AB');
    };
    let frame = await openRun();
    await page.waitForTimeout(1000);
    await shot('panel-light', frame);
    // A colour scale chosen for this run is kept for it: close the panel, open the run again, it is back.
    await frame.selectOption('#pl-center', 'zero');
    await waitFor('the new scale', async () => ((await frame.locator('.pl-colorbar').getAttribute('data-center')) === '0' ? true : undefined), 15_000);
    await page.locator('.tab', { hasText: 'PatchLens: induction-AB' }).first().locator('.codicon-close').click();
    await waitFor('the panel closed', async () => ((await page.locator('.tab', { hasText: 'PatchLens: induction-AB' }).count()) === 0 ? true : undefined), 15_000);
    frame = await openRun();
    await waitFor('the kept scale', async () => ((await frame.locator('.pl-colorbar').getAttribute('data-center')) === '0' ? true : undefined), 15_000);
    assert.equal(await frame.inputValue('#pl-center'), 'zero');
    await frame.click('#pl-plot-reset');
    await waitFor('the default scale', async () => ((await frame.locator('.pl-colorbar').getAttribute('data-center'))?.startsWith('-11.1') ? true : undefined), 15_000);
  });

  test('panels come back after a window reload', async () => {
    await page.reload();
    await page.locator('.monaco-workbench .part.statusbar').waitFor({ timeout: 60_000 });
    // The visible panel is restored from its saved state (the result file's path), heatmap and all.
    const title = await waitFor('a restored panel', async () => {
      for (const f of page.frames()) {
        try {
          if ((await f.locator('.pl-facets[data-cell-count]').count()) > 0 && Number(await f.locator('.pl-facets').getAttribute('data-cell-count')) > 0)
            return f.locator('.pl-title').innerText();
        } catch {
          /* detached */
        }
      }
      return undefined;
    });
    step(`restored the panel of ${title}`);
    assert.ok(['speaker', 'induction-AB', 'prompts.txt-L1', 'long'].includes(title));
  });
});
