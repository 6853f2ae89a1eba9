/** Reading the text of a `.patch.json` file or a JSON selection: size, BOM, JSON with comments, then the schema. */
import { MAX_SPEC_CHARS, type PatchSpec } from '../protocol/spec';
import { parseJsoncNodes } from './jsonc';
import { SpecError, stripBom, type TextInfo } from './specError';
import { validateSpecValue } from './specSchema';

function checkSize(text: string, file: string): void {
  if (text.length > MAX_SPEC_CHARS) {
    const mb = (text.length / (1024 * 1024)).toFixed(1);
    throw new SpecError(
      `${file}: the spec is ${mb} MB, over the ${MAX_SPEC_CHARS / (1024 * 1024)} MB limit; a .patch.json holds prompts, not data — split it or use an induction block for generated tokens`,
    );
  }
}

/** Parses and validates the text of a `.patch.json` file (comments and trailing commas allowed). */
export function parseSpecText(text: string, file: string): PatchSpec {
  return parseSpecAt(text, file, 0);
}

/** parseSpecText for text that starts at document offset `base` (a selection). */
export function parseSpecAt(text: string, file: string, base: number): PatchSpec {
  checkSize(text, file);
  const body = stripBom(text);
  // Offsets point into the text without its BOM, as an editor's document does.
  const info: TextInfo = { text: body, base };
  if (body.trim() === '') throw new SpecError(`${file}: the file is empty; start from the "PatchLens: New Patch File" template`);
  const value = parseJsoncNodes(info, file);
  return validateSpecValue(value, file, info);
}
