import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BUILTIN_MODELS } from '../../src/common/builtinModelNames';
import { builtinModelNames } from '../../src/engine/model/builtinModels';

test('the model picker lists exactly the models the engine can build', () => {
  assert.deepEqual(BUILTIN_MODELS.map((m) => m.name).sort(), builtinModelNames().sort());
  for (const m of BUILTIN_MODELS) assert.ok(m.description.startsWith(`${m.name} `), m.description);
});
