/**
 * The page's entry: with `?series=UID` (and `&token=T` when the server wants one) the viewer of
 * that series, else the series browser. Everything the page asks of the server goes through its
 * public API, relative to where the page is served.
 */
import { Api } from './api.js';
import { SeriesBrowser } from './browser.js';
import { parseState } from './state.js';
import { Viewer } from './viewer.js';

const root = document.getElementById('app');
if (root) {
  const state = parseState(location.search);
  if (state.series) {
    const viewer = new Viewer(root, new Api(location.href, state.token), state);
    Object.defineProperty(window, 'circusViewer', { get: () => viewer.stats(), configurable: true });
    void viewer.open();
  } else {
    new SeriesBrowser(root, new Api(location.href, null)).open();
  }
}
