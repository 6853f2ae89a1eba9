/**
 * The HTML shell of the results webview. Host-side, but free of `vscode` imports so that it can be
 * unit-tested and reused by the browser tests, which load exactly this page under exactly this CSP.
 * The page carries no data: the bundle builds the panel and gets the result by postMessage.
 */
import { randomBytes } from 'node:crypto';

export interface WebviewHtmlOptions {
  /** The bundled dist/webview/main.js, as a webview URI. */
  readonly scriptUri: string;
  /** The stylesheet (dist/webview/main.css, emitted by esbuild from media/panel.css), as a webview URI. */
  readonly styleUri: string;
  /** `webview.cspSource`: the origin the webview serves local resources from. */
  readonly cspSource: string;
  readonly nonce: string;
  readonly title: string;
}

/** A nonce for the page's one script: 192 random bits, base64 (no padding at this length). */
export function makeNonce(): string {
  return randomBytes(24).toString('base64');
}

const HTML_ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => HTML_ESCAPES[c]);
}

// The CSP is assembled from these strings, so a quote or ';' in them could add a directive; they come
// from VS Code and makeNonce, so anything odd is a programming error, reported loudly.
const NONCE_RE = /^[A-Za-z0-9+/_-]+={0,2}$/;
// code-server passes `'self' https://*.vscode-cdn.net`: the quoted keyword 'self' is the one token
// with quotes that may appear.
const CSP_SOURCE_RE = /^(?:'self'|[^\s;,'"<>]+)$/;

export function webviewHtml(opts: WebviewHtmlOptions): string {
  if (!NONCE_RE.test(opts.nonce)) throw new Error('webviewHtml: the nonce must be base64');
  for (const s of opts.cspSource.split(' ')) {
    if (!CSP_SOURCE_RE.test(s)) throw new Error(`webviewHtml: unexpected CSP source '${opts.cspSource}'`);
  }
  const src = opts.cspSource;
  // Chart.js sizes its canvases through the CSSOM (element.style.x = ...), which style-src does not
  // govern, so no 'unsafe-inline' is needed.
  const csp = ["default-src 'none'", `img-src ${src} data:`, `style-src ${src}`, `script-src 'nonce-${opts.nonce}'`, `font-src ${src}`].join('; ');
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="UTF-8">
<meta http-equiv="Content-Security-Policy" content="${escapeHtml(csp)};">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<link rel="stylesheet" href="${escapeHtml(opts.styleUri)}">
<title>${escapeHtml(opts.title)}</title>
</head>
<body>
<div id="app"></div>
<script nonce="${escapeHtml(opts.nonce)}" src="${escapeHtml(opts.scriptUri)}"></script>
</body>
</html>
`;
}
