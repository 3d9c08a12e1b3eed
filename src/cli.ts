#!/usr/bin/env -S GLIBC_TUNABLES=glibc.malloc.hugetlb=1 node
/**
 * circus-rs command line: `serve`, `index DIR`, `demo DIR`.
 * Every serve option also comes from the config file (--config) and from CIRCUS_RS_<NAME>;
 * `index` resolves its index file from the same sources, so it builds the one serve reads.
 *
 * The interpreter line asks glibc for transparent huge pages on large allocations: a volume's
 * buffer is then faulted in 2 MiB pages instead of 4 KiB ones, which halves a cold load on
 * virtual machines where page faults are dear (bench/load.ts measures both).
 */
import { Command, Option } from 'commander';
import { existsSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { ConfigError, envName, flagName, indexConfigFor, indexPathOf, loadConfig, OPTIONS, type Config, type OptionName } from './config/config.js';
import { loggerOption } from './config/logging.js';
import { DEMO, DEMO_SERIES_UID, writeDemo } from './demo/phantom.js';
import { createServer, VERSION } from './server.js';
import { SeriesIndex, type IndexProgress } from './sources/seriesIndex.js';

const program = new Command();
program.name('circus-rs').description('DICOM volume rendering server').version(VERSION);

function fail(message: string): never {
  process.stderr.write(`circus-rs: ${message}\n`);
  process.exit(2);
}

/** Progress on a terminal as a bar, elsewhere as plain lines. */
function progressReporter(stream: NodeJS.WriteStream): (p: IndexProgress) => void {
  let lastLine = 0;
  return (p) => {
    if (stream.isTTY) {
      if (p.phase === 'scan') stream.write(`\rscanning: ${p.done} files`);
      else {
        const width = 30;
        const frac = p.total > 0 ? p.done / p.total : 1;
        const fill = Math.round(frac * width);
        stream.write(`\rreading headers [${'#'.repeat(fill)}${' '.repeat(width - fill)}] ${Math.floor(frac * 100)}% ${p.done}/${p.total}`);
        if (p.done === p.total) stream.write('\n');
      }
      return;
    }
    const now = Date.now();
    if (p.phase === 'read' && (now - lastLine > 2000 || p.done === p.total)) {
      lastLine = now;
      stream.write(`reading headers: ${p.done}/${p.total}\n`);
    }
  };
}

const serve = program.command('serve').description('serve the series of a data directory over HTTP');
/** The option each flag sets, by the name commander gives the flag's value (they differ when an option has its own flag). */
const optionOf = new Map<string, OptionName>();
for (const [name, spec] of Object.entries(OPTIONS) as [OptionName, (typeof OPTIONS)[OptionName]][]) {
  const flag = spec.kind === 'boolean' ? `${flagName(name)} [value]` : `${flagName(name)} <value>`;
  const option = new Option(flag, `${spec.description} (default ${JSON.stringify(spec.default)})`);
  // A list flag may be given several times, each adding entries.
  if (spec.kind === 'list') option.argParser((value: string, previous: string[] | undefined) => [...(previous ?? []), value]);
  serve.addOption(option);
  optionOf.set(option.attributeName(), name);
  // An option on by default is turned off with --no-<flag> (--no-viewer); its value name is the same.
  if (spec.kind === 'boolean' && spec.default === true) serve.addOption(new Option(`--no-${flagName(name).slice(2)}`, `turn ${name} off`));
}
serve.option('--config <file>', 'JSON file of options (same names as the flags, in camelCase)');
serve.action(async (opts: Record<string, unknown>) => {
  let config: Config;
  try {
    const { config: file, ...given } = opts;
    const flags = Object.fromEntries(Object.entries(given).map(([k, v]) => [optionOf.get(k) ?? k, v]));
    config = loadConfig({ flags, env: process.env, file: file as string | undefined });
  } catch (err) {
    if (err instanceof ConfigError) fail(err.message);
    throw err;
  }
  const dataDir = resolve(config.dataDir);
  if (!existsSync(dataDir)) {
    if (config.dataDir !== OPTIONS.dataDir.default) fail(`data directory ${dataDir} does not exist (option dataDir)`);
    process.stdout.write(`writing the demo series into ${dataDir}\n`);
    await writeDemo(dataDir);
  } else if (!statSync(dataDir).isDirectory()) {
    fail(`data directory ${dataDir} is not a folder (option dataDir)`);
  }
  let server: ReturnType<typeof createServer>;
  try {
    server = createServer(config, { logger: loggerOption(config), warmWorkers: true });
  } catch (err) {
    // A PACS URL or an instance cache folder that cannot be used.
    fail((err as Error).message);
  }
  const { app } = server;
  try {
    await app.listen({ host: config.host, port: config.port });
  } catch (err) {
    fail(`cannot listen on ${config.host}:${config.port}: ${(err as Error).message}`);
  }
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : config.port;
  const host = config.host.includes(':') ? `[${config.host}]` : config.host;
  const base = `http://${host === '0.0.0.0' ? '127.0.0.1' : host}:${port}${config.basePath}`;
  const indexing = server.startIndexing();
  indexing
    ?.then((s) =>
      app.log.info(
        `header index up to date: ${s.files} files (${s.added} new, ${s.changed} changed, ${s.removed} removed, ${s.notDicom} not DICOM), ${s.series} series, ${s.seconds.toFixed(1)} s`,
      ),
    )
    .catch((err: Error) => app.log.warn(`header index update failed: ${err.message}`));

  const example = existsSync(resolve(dataDir, DEMO_SERIES_UID)) ? DEMO_SERIES_UID : server.index?.series()[0]?.seriesUid;
  const lines = [`circus-rs ${VERSION} serving ${dataDir} at ${base}`];
  if (config.viewer && config.auth && !config.allowListing) {
    lines.push(`  ${base}/?series=<uid>&token=<token>  the viewer (with auth the series list is off unless --allow-listing)`);
  } else if (config.viewer) {
    lines.push(`  ${base}/  the viewer: series list, then a series in four linked panes`);
    if (example) lines.push(`  ${base}/?series=${example}  ${example === DEMO_SERIES_UID ? 'the demo series' : 'a series'} in the viewer`);
  }
  lines.push(`  ${base}/status`);
  if (example) {
    lines.push(`  ${base}/metadata?series=${example}`, `  ${base}/mpr?series=${example}&mode=axial`, `  ${base}/mpr?series=${example}&mode=coronal`);
    if (example === DEMO_SERIES_UID) {
      const c = [DEMO.columns / 2, DEMO.rows / 2, DEMO.slices / 2].join(',');
      lines.push(`  ${base}/oblique?series=${example}&a=0.5&b=axial&c=${c}&ww=1500&wl=300`);
    }
  }
  process.stdout.write(`${lines.join('\n')}\n`);

  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    app.log.info(`${signal}: finishing requests in flight, then stopping`);
    const timer = setTimeout(() => process.exit(1), 10_000);
    timer.unref();
    server.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
});

program
  .command('index')
  .description('build or update the header index of a folder tree of DICOM files (the one serve reads)')
  .argument('<dir>', 'data directory')
  .option(
    '--index-path <file>',
    `SQLite file (also ${envName('indexPath')} and the config file; default: .circus-rs-index.sqlite in the data directory)`,
  )
  .option('--config <file>', 'JSON file of options, the one serve is given')
  .action(async (dir: string, opts: { indexPath?: string; config?: string }) => {
    const root = resolve(dir);
    if (!existsSync(root) || !statSync(root).isDirectory()) fail(`${root} is not a folder`);
    let config: Config;
    try {
      config = indexConfigFor(root, { flags: { indexPath: opts.indexPath }, env: process.env, file: opts.config });
    } catch (err) {
      if (err instanceof ConfigError) fail(err.message);
      throw err;
    }
    const dbPath = indexPathOf(config);
    process.stderr.write(`index: ${resolve(dbPath)}\n`);
    let index: SeriesIndex;
    try {
      index = new SeriesIndex(root, dbPath);
    } catch (err) {
      fail(`header index ${dbPath} cannot be opened: ${(err as Error).message}`);
    }
    const s = await index.update({ readLimits: { maxInflatedBytes: config.maxInflatedBytes }, onProgress: progressReporter(process.stderr) });
    index.close();
    process.stdout.write(
      `${s.files} files: ${s.added} new, ${s.changed} changed, ${s.removed} removed, ${s.unchanged} unchanged, ${s.notDicom} not DICOM; ${s.series} series; ${s.seconds.toFixed(2)} s\n`,
    );
  });

program
  .command('demo')
  .description('write the demo series (a CT head phantom) into a folder')
  .argument('<dir>', 'folder to write into')
  .action(async (dir: string) => {
    const r = await writeDemo(resolve(dir));
    process.stdout.write(`wrote ${r.files} files of series ${r.seriesUid} into ${r.path}\n`);
  });

program.parseAsync(process.argv).catch((err: Error) => fail(err.stack ?? err.message));
