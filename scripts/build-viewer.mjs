/**
 * Builds the web viewer: compiles src/viewer/*.ts with its own tsconfig (DOM, ES modules the
 * browser loads as they are, no bundler) and copies its HTML (naming every module for preloading)
 * and CSS beside them, into dist/viewer or the folder given with --out-dir. `npm run build` runs it after the server.
 *
 *   node scripts/build-viewer.mjs [--out-dir DIR]
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const source = join(root, 'src', 'viewer');
const at = process.argv.indexOf('--out-dir');
const out = at >= 0 && process.argv[at + 1] ? resolve(process.argv[at + 1]) : join(root, 'dist', 'viewer');
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
const PRELOAD_MARK = '<!-- modulepreload -->';

mkdirSync(out, { recursive: true });
execFileSync(process.execPath, [tsc, '-p', join(source, 'tsconfig.json'), '--outDir', out], { stdio: 'inherit' });
for (const name of readdirSync(source)) {
  if (name.endsWith('.css')) copyFileSync(join(source, name), join(out, name));
}
// The page names every module up front (modulepreload), so the browser fetches them at once
// instead of discovering the imports one level at a time.
const modules = readdirSync(out)
  .filter((name) => name.endsWith('.js') && name !== 'main.js')
  .sort()
  .map((name) => `    <link rel="modulepreload" href="viewer/${name}" />`);
const page = readFileSync(join(source, 'index.html'), 'utf8');
if (!page.includes(PRELOAD_MARK)) throw new Error(`src/viewer/index.html has no ${PRELOAD_MARK}`);
writeFileSync(join(out, 'index.html'), page.replace(PRELOAD_MARK, modules.join('\n').trimStart()));
process.stdout.write(`viewer built into ${out}\n`);
