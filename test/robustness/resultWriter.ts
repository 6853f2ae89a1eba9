/**
 * A second process for the result-store tests: writes results the way the engine does, so that the
 * test process can read, list and race against it. Not a test file (no .test.ts).
 *
 *   node --import tsx resultWriter.ts rewrite FILE COUNT     rewrite one result COUNT times, atomically
 *   node --import tsx resultWriter.ts plain FILE COUNT       the same with a plain writeFileSync (the control)
 *   node --import tsx resultWriter.ts new DIR NAME COUNT TAG claim and write COUNT new runs named NAME
 */
import { writeFileSync } from 'node:fs';
import { claimResultPath, writeResultFile } from '../../src/common/resultFile';
import { type PatchResult, RESULT_FORMAT } from '../../src/protocol/result';

function result(name: string, tag: string, i: number, values: number): PatchResult {
  return {
    format: RESULT_FORMAT,
    name,
    status: 'done',
    createdAt: new Date().toISOString(),
    spec: { metric: 'logit_diff', sweeps: ['resid_pre'] },
    model: { id: `${tag}#${i}`, config: { nLayers: 1, nHeads: 1, dModel: 1, dHead: 1, dMlp: 1, dVocab: 1, nCtx: 1 }, dtype: 'float32', provider: 'cpu', weightProcessing: 'none' },
    engine: { version: '0', mode: 'fast', seconds: 0 },
    metric: 'logit_diff',
    tokens: [],
    sweeps: { resid_pre: { shape: [1, values], axes: ['layer', 'pos'], values: Array.from({ length: values }, (_, k) => k / 7) } },
  };
}

const [mode, target, ...rest] = process.argv.slice(2);
if (mode === 'rewrite' || mode === 'plain') {
  const count = Number(rest[0]);
  for (let i = 0; i < count; i++) {
    // Alternating sizes, so a torn read would show as a short or mixed file.
    const r = result('rewrite', 'w', i, i % 2 === 0 ? 40_000 : 15_000);
    if (mode === 'rewrite') writeResultFile(target!, r);
    else writeFileSync(target!, JSON.stringify(r) + '\n');
  }
} else if (mode === 'new') {
  const [name, count, tag] = rest;
  for (let i = 0; i < Number(count); i++) writeResultFile(claimResultPath(target!, name!), result(name!, tag!, i, 2000 + (i % 5) * 3000));
} else {
  throw new Error(`unknown mode ${mode}`);
}
