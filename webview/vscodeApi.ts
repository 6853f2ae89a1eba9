/** The webview's side of VS Code: acquired once (a second acquireVsCodeApi() throws), typed by the protocol. */
import type { WebviewState, WebviewToHost } from '../src/protocol/webviewMessages';
import { parseState } from './messages';

interface VsCodeApi {
  postMessage(message: unknown): void;
  getState(): unknown;
  setState(state: unknown): unknown;
}

declare function acquireVsCodeApi(): VsCodeApi;

export interface Host {
  post(message: WebviewToHost): void;
  getState(): WebviewState | undefined;
  setState(state: WebviewState): void;
}

let host: Host | undefined;

export function vscodeHost(): Host {
  if (host) return host;
  const api = acquireVsCodeApi();
  host = {
    post: (m) => api.postMessage(m),
    getState: () => parseState(api.getState()),
    setState: (s) => {
      api.setState(s);
    },
  };
  return host;
}
