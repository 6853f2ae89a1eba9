/**
 * What the engine needs of a tokenizer. `ranges[i]` is the [start, end) UTF-16 character range of the
 * text that token i came from, so a heatmap column maps back to the characters in the editor.
 */
export interface EncodedText {
  readonly ids: number[];
  readonly ranges: [number, number][];
}

export interface TextTokenizer {
  readonly vocabSize: number;
  readonly bosTokenId: number;
  encode(text: string): EncodedText;
  /** The token's text as a person reads it (GPT-2's 'Ġ' shown as a space). */
  tokenString(id: number): string;
  decode(ids: readonly number[]): string;
}
