/**
 * Coalesces pointer positions into `hoverPosition` messages: only changes are sent, at most one per
 * `delayMs`, and always the latest. Each message makes the host decorate and reveal a range in an
 * editor, so a mouse sweeping across a heatmap must not send one per pixel; and crossing the gap
 * between two facets must not flash a `null` in between.
 */
export class HoverSender {
  private sent: number | null = null;
  private pending: number | null = null;
  private timer: ReturnType<typeof setTimeout> | undefined;

  constructor(
    private readonly send: (pos: number | null) => void,
    private readonly delayMs = 40,
  ) {}

  set(pos: number | null): void {
    this.pending = pos;
    if (this.timer === undefined) this.timer = setTimeout(() => this.flush(), this.delayMs);
  }

  private flush(): void {
    this.timer = undefined;
    if (this.pending === this.sent) return;
    this.sent = this.pending;
    this.send(this.pending);
  }
}
