/**
 * Colours for what chart.js paints on canvas. Canvas cannot use CSS variables, so they are read from
 * the computed style of the panel, where media/panel.css maps VS Code's `--vscode-*` variables (with
 * light and dark fallbacks) onto the panel's own `--pl-*` ones.
 */
export interface Theme {
  readonly background: string;
  readonly text: string;
  readonly muted: string;
  readonly border: string;
  readonly font: string;
  readonly dark: boolean;
}

export function readTheme(): Theme {
  const cs = getComputedStyle(document.body);
  const v = (name: string, fallback: string): string => cs.getPropertyValue(name).trim() || fallback;
  const cls = document.body.classList;
  const dark = cls.contains('vscode-dark') || (cls.contains('vscode-high-contrast') && !cls.contains('vscode-high-contrast-light'));
  return {
    background: v('--pl-bg', dark ? '#1e1e1e' : '#ffffff'),
    text: v('--pl-fg', dark ? '#cccccc' : '#222222'),
    muted: v('--pl-muted', dark ? '#aaaaaa' : '#555555'),
    border: v('--pl-border', dark ? '#454545' : '#c8c8c8'),
    font: cs.fontFamily || 'sans-serif',
    dark,
  };
}

/** VS Code switches themes by changing the body's class and the variables on <html>; `onChange` redraws. */
export function watchTheme(onChange: () => void): void {
  let last = JSON.stringify(readTheme());
  const check = (): void => {
    const now = JSON.stringify(readTheme());
    if (now === last) return;
    last = now;
    onChange();
  };
  const observer = new MutationObserver(check);
  observer.observe(document.documentElement, { attributes: true, attributeFilter: ['class', 'style'] });
  observer.observe(document.body, { attributes: true, attributeFilter: ['class', 'style'] });
}
