import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ConfigError, envName, flagName, indexConfigFor, indexPathOf, loadConfig } from '../src/config/config.js';
import { TempDir } from './fixtures/series.js';

let tmp: TempDir;
beforeEach(() => {
  tmp = new TempDir();
});
afterEach(() => tmp.remove());

describe('config', () => {
  it('names options the same way everywhere', () => {
    expect(envName('cacheBytes')).toBe('CIRCUS_RS_CACHE_BYTES');
    expect(flagName('cacheBytes')).toBe('--cache-bytes');
  });

  it('merges defaults < file < environment < flags, and freezes the result', () => {
    const file = join(tmp.path, 'c.json');
    writeFileSync(file, JSON.stringify({ port: 4000, host: '0.0.0.0', cacheBytes: '1G' }));
    const c = loadConfig({ file, env: { CIRCUS_RS_PORT: '5000', CIRCUS_RS_DEVELOPMENT: 'true' }, flags: { port: '6000' } });
    expect(c.port).toBe(6000);
    expect(c.host).toBe('0.0.0.0');
    expect(c.cacheBytes).toBe(1024 ** 3);
    expect(c.development).toBe(true);
    expect(c.corsOrigin).toBe('*');
    expect(Object.isFrozen(c)).toBe(true);
    expect(loadConfig({ env: {} }).port).toBe(3000);
  });

  it('accepts byte sizes with suffixes', () => {
    expect(loadConfig({ flags: { cacheBytes: '512M' } }).cacheBytes).toBe(512 * 1024 ** 2);
    expect(loadConfig({ flags: { cacheBytes: '1.5g' } }).cacheBytes).toBe(1.5 * 1024 ** 3);
    expect(loadConfig({ flags: { cacheBytes: 20_000_000 } }).cacheBytes).toBe(20_000_000);
  });

  it('refuses bad values with a message naming the option', () => {
    const bad: [Record<string, unknown>, RegExp][] = [
      [{ port: '70000' }, /option port \(--port, CIRCUS_RS_PORT\): must be between 0 and 65535, got "70000"/],
      [{ port: 'http' }, /option port .* must be an integer, got "http"/],
      [{ port: '1e3' }, /option port .* must be an integer/],
      [{ cacheBytes: '1K' }, /option cacheBytes .* must be between/],
      [{ cacheBytes: 'lots' }, /option cacheBytes .* must be a size in bytes/],
      [{ development: 'maybe' }, /option development .* must be true or false/],
      [{ logLevel: 'loud' }, /option logLevel .* must be one of/],
      [{ logFormat: 'xml' }, /option logFormat \(--log-format, CIRCUS_RS_LOG_FORMAT\): must be one of auto, pretty, json, got "xml"/],
    ];
    for (const [flags, message] of bad) {
      expect(() => loadConfig({ flags })).toThrow(ConfigError);
      expect(() => loadConfig({ flags })).toThrow(message);
    }
    expect(() => loadConfig({ env: { CIRCUS_RS_MAX_VOXELS: '-1' } })).toThrow(/option maxVoxels/);
  });

  it('refuses a config file that is unreadable, not JSON, or has unknown options', () => {
    expect(() => loadConfig({ file: join(tmp.path, 'missing.json') })).toThrow(/cannot be read/);
    const notJson = join(tmp.path, 'bad.json');
    writeFileSync(notJson, '{ port: 1');
    expect(() => loadConfig({ file: notJson })).toThrow(/is not valid JSON/);
    const unknown = join(tmp.path, 'unknown.json');
    writeFileSync(unknown, JSON.stringify({ prot: 1 }));
    expect(() => loadConfig({ file: unknown })).toThrow(/unknown option prot/);
  });

  it('puts the index in the data directory unless told otherwise', () => {
    expect(indexPathOf({ dataDir: '/data/', indexPath: '' })).toBe('/data/.circus-rs-index.sqlite');
    expect(indexPathOf({ dataDir: '/data', indexPath: '/var/idx.sqlite' })).toBe('/var/idx.sqlite');
  });

  it('reads logFormat (auto unless told otherwise)', () => {
    expect(loadConfig({ env: {} }).logFormat).toBe('auto');
    expect(loadConfig({ env: { CIRCUS_RS_LOG_FORMAT: 'json' } }).logFormat).toBe('json');
    expect(loadConfig({ env: { CIRCUS_RS_LOG_FORMAT: 'json' }, flags: { logFormat: 'pretty' } }).logFormat).toBe('pretty');
  });

  it('resolves the index path of `index DIR` from the same sources as serve, with DIR as the data directory', () => {
    const file = join(tmp.path, 'c.json');
    writeFileSync(file, JSON.stringify({ dataDir: '/elsewhere', indexPath: '/from/file.sqlite', maxInflatedBytes: '2M' }));
    const env = { CIRCUS_RS_INDEX_PATH: '/from/env.sqlite' };

    expect(indexPathOf(indexConfigFor('/data', { env: {} }))).toBe('/data/.circus-rs-index.sqlite');
    const fromFile = indexConfigFor('/data', { env: {}, file });
    expect(fromFile.dataDir).toBe('/data');
    expect(indexPathOf(fromFile)).toBe('/from/file.sqlite');
    expect(fromFile.maxInflatedBytes).toBe(2 * 1024 ** 2);
    expect(indexPathOf(indexConfigFor('/data', { env, file }))).toBe('/from/env.sqlite');
    expect(indexPathOf(indexConfigFor('/data', { env, file, flags: { indexPath: '/from/flag.sqlite' } }))).toBe('/from/flag.sqlite');
    // A flag not given leaves the environment in charge.
    expect(indexPathOf(indexConfigFor('/data', { env, flags: { indexPath: undefined } }))).toBe('/from/env.sqlite');
    // The index serve opens for the same sources is the same file.
    expect(indexPathOf(indexConfigFor('/data', { env, file }))).toBe(indexPathOf(loadConfig({ env, file, flags: { dataDir: '/data' } })));
    expect(() => indexConfigFor('/data', { env: { CIRCUS_RS_PORT: 'x' } })).toThrow(ConfigError);
  });
});
