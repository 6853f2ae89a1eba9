/**
 * The one way free text (a run's name, a model id) becomes part of a file name. Letters, marks and digits
 * of any script, '.', '_' and '-' are kept; path separators, NUL, control and format characters (U+202E
 * would show the rest of the name reversed), spaces and other punctuation become '_'. The stem is never
 * hidden (no leading '.'), never taken for an option (no leading '-'), never a Windows device name, and at
 * most STEM_MAX_BYTES of UTF-8, so that with a run number and the longest suffix PatchLens adds
 * (`-123.attn_head_pattern_dest_src_pos.png`) it stays well under the 255 bytes a file name may have.
 */
export const STEM_MAX_BYTES = 100;

const WINDOWS_DEVICE = /^(con|prn|aux|nul|com[0-9]|lpt[0-9])(\..*)?$/i;

export function safeFileStem(name: string): string {
  let stem = name
    .normalize('NFC')
    .replace(/[^\p{L}\p{M}\p{N}._-]+/gu, '_')
    .replace(/^[._-]+/, '')
    .replace(/[.]+$/, '');
  if (WINDOWS_DEVICE.test(stem)) stem = `${stem}_`;
  let bytes = 0;
  let cut = 0;
  for (const ch of stem) {
    bytes += Buffer.byteLength(ch, 'utf8');
    if (bytes > STEM_MAX_BYTES) break;
    cut += ch.length;
  }
  stem = stem.slice(0, cut).replace(/[.]+$/, '');
  return stem === '' ? 'run' : stem;
}
