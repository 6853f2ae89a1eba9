import { test } from 'node:test';
import assert from 'node:assert/strict';
import { makeNonce, webviewHtml } from '../../src/extension/webviewHtml';

const BASE = {
  scriptUri: 'https://file%2B.vscode-resource.vscode-cdn.net/ext/dist/webview/main.js',
  styleUri: 'https://file%2B.vscode-resource.vscode-cdn.net/ext/dist/webview/main.css',
  cspSource: 'https://*.vscode-cdn.net',
  title: 'PatchLens',
};

test('the page: the CSP, one nonce script, the stylesheet', () => {
  const nonce = makeNonce();
  const html = webviewHtml({ ...BASE, nonce });
  const csp = /<meta http-equiv="Content-Security-Policy" content="([^"]*)">/.exec(html)?.[1];
  assert.equal(
    csp,
    `default-src &#39;none&#39;; img-src https://*.vscode-cdn.net data:; style-src https://*.vscode-cdn.net; script-src &#39;nonce-${nonce}&#39;; font-src https://*.vscode-cdn.net;`,
  );
  assert.equal(html.match(/<script/g)?.length, 1);
  assert.ok(html.includes(`<script nonce="${nonce}" src="${BASE.scriptUri}"></script>`));
  assert.ok(html.includes(`<link rel="stylesheet" href="${BASE.styleUri}">`));
  assert.ok(!/unsafe-inline|unsafe-eval/.test(html));
  assert.ok(!/ style=/.test(html));
});

test('the title is escaped', () => {
  const html = webviewHtml({ ...BASE, nonce: makeNonce(), title: '</title><script>alert(1)</script> & "q"' });
  assert.ok(html.includes('<title>&lt;/title&gt;&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;q&quot;</title>'));
  assert.equal(html.match(/<script/g)?.length, 1);
});

test('nonces are random base64 of 192 bits; a nonce or source that could break the CSP is refused', () => {
  const a = makeNonce();
  const b = makeNonce();
  assert.notEqual(a, b);
  assert.match(a, /^[A-Za-z0-9+/]{32}$/);
  assert.throws(() => webviewHtml({ ...BASE, nonce: "x' 'unsafe-inline" }), /nonce/);
  assert.throws(() => webviewHtml({ ...BASE, nonce: a, cspSource: "https://a; script-src 'unsafe-inline'" }), /CSP source/);
  assert.throws(() => webviewHtml({ ...BASE, nonce: a, cspSource: "'self' 'unsafe-eval'" }), /CSP source/);
});

test("code-server's CSP source ('self' plus its CDN) is accepted and used as is", () => {
  const html = webviewHtml({ ...BASE, nonce: makeNonce(), cspSource: "'self' https://*.vscode-cdn.net" });
  assert.ok(html.includes('style-src &#39;self&#39; https://*.vscode-cdn.net;'), html);
});
