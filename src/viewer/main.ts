/**
 * The page's entry: with `?series=UID` (and `&token=T` when the server wants one) the viewer of
 * that series, else the series browser. Everything the page asks of the server goes through its
 * public API, relative to where the page is served.
 */
import { Api } from './api.js';
import { SeriesBrowser } from './browser.js';
import { parseState } from './state.js';
import { Viewer } from './viewer.js';

/**
 * Shows what the URL names. `openedAt` is when the user asked for it (0: the page's own load),
 * so the viewer's first-images time counts from there.
 */
function show(root: HTMLElement, openedAt: number): void {
  root.replaceChildren();
  const state = parseState(location.search);
  if (state.series) {
    const viewer = new Viewer(root, new Api(location.href, state.token), state, openedAt);
    Object.defineProperty(window, 'circusViewer', { get: () => viewer.stats(), configurable: true });
    void viewer.open();
  } else {
    // A series chosen in the list opens in this page; the way back (history) loads the list anew.
    new SeriesBrowser(root, new Api(location.href, null), (search) => {
      history.pushState(null, '', search);
      show(root, performance.now());
    }).open();
  }
}

const root = document.getElementById('app');
if (root) {
  show(root, 0);
  window.addEventListener('popstate', () => location.reload());
}
