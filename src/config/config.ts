/**
 * One schema for every option: its type, default and bounds. Values come from (later wins)
 * the defaults, a JSON config file, environment variables `CIRCUS_RS_<NAME>` and command-line
 * flags; they are validated once, at start, with a message naming the bad option, then frozen.
 */
import { readFileSync } from 'node:fs';
import { totalmem } from 'node:os';
import { addressList } from './addresses.js';

type Kind = 'string' | 'integer' | 'bytes' | 'boolean' | 'list';

interface OptionSpec {
  kind: Kind;
  description: string;
  default: unknown;
  min?: number;
  max?: number;
  choices?: readonly string[];
  /** For strings: shortest non-empty value. */
  minLength?: number;
  /** For lists: entries are addresses or CIDR blocks. */
  addresses?: boolean;
  /** For lists: entries are HTTP header lines, "Name: value" (`HEADER_LINE`). */
  headers?: boolean;
  /** For lists: what separates entries in one string (a comma unless said otherwise). */
  separator?: string;
  /** The command-line flag, when not the one `flagName` derives from the name (without the dashes). */
  flag?: string;
  /** Values never shown in messages (secrets, credentials). */
  secret?: boolean;
  /** For strings: a non-empty value must match, else `patternRule` says why. */
  pattern?: RegExp;
  patternRule?: string;
}

/** An HTTP header line: a name (an RFC 9110 token), a colon, a value on one line. */
export const HEADER_LINE = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+):[ \t]*([^\r\n]*)$/;

/** A base path: empty, or '/' and segments, not ending with '/' (`/rs`, `/images/rs`). */
export const BASE_PATH_PATTERN = /^(\/[^/?#\s]+)+$/;

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;

export const OPTIONS = {
  dataDir: { kind: 'string', default: 'demo-data', description: 'folder of DICOM series (CIRCUS layout, hashed layout or any tree)' },
  host: { kind: 'string', default: '127.0.0.1', description: 'address to listen on' },
  port: { kind: 'integer', default: 3000, min: 0, max: 65535, description: 'port to listen on (0: any free port)' },
  cacheBytes: {
    kind: 'bytes',
    default: Math.floor(totalmem() / 4),
    min: 16 * MiB,
    max: 1024 * GiB,
    description: 'memory budget of the volume cache in bytes (suffixes K, M, G accepted)',
  },
  cacheWaitMs: {
    kind: 'integer',
    default: 30_000,
    min: 0,
    max: 600_000,
    description: 'how long a load waits for other loads to free cache room before it is refused with 503',
  },
  indexPath: {
    kind: 'string',
    default: '',
    description: 'SQLite file of the header index (default: .circus-rs-index.sqlite in the data directory)',
  },
  maxVoxels: {
    kind: 'integer',
    default: 1024 * 1024 * 1024,
    min: 1,
    max: 2 ** 40,
    description: 'largest number of voxels one volume may have',
  },
  maxFilesPerSeries: { kind: 'integer', default: 20_000, min: 1, max: 10_000_000, description: 'most files one series may have (413 beyond)' },
  maxFrameBytes: {
    kind: 'bytes',
    default: 256 * MiB,
    min: 1024,
    max: 4 * GiB,
    description: 'largest decoded size of one frame (413 beyond)',
  },
  maxImageSide: {
    kind: 'integer',
    default: 4096,
    min: 16,
    max: 65535,
    description: 'largest side of an image in pixels (413 beyond)',
  },
  gzipLevel: { kind: 'integer', default: 1, min: 1, max: 9, description: 'gzip level of /raw streams' },
  gzipStrategy: {
    kind: 'string',
    default: 'default',
    choices: ['default', 'filtered', 'rle', 'huffman'],
    description: 'zlib strategy of /raw streams (default, filtered, rle, huffman): rle and huffman are a little faster on CT and about 16% larger',
  },
  maxInflatedBytes: {
    kind: 'bytes',
    default: 1 * GiB,
    min: 1 * MiB,
    max: 4 * GiB,
    description: 'largest size a deflated DICOM dataset may inflate to',
  },
  decodeWorkers: {
    kind: 'integer',
    default: 0,
    min: 0,
    max: 64,
    description: 'worker threads decoding compressed frames (0: one per core)',
  },
  renderWorkers: {
    kind: 'integer',
    default: 0,
    min: 0,
    max: 64,
    description: 'worker threads rendering images (0: one per core)',
  },
  workerTaskTimeoutMs: {
    kind: 'integer',
    default: 60_000,
    min: 1000,
    max: 3_600_000,
    description: 'longest a worker thread may spend on one task (decoding frames, rendering an image) before it is stopped',
  },
  loadConcurrency: { kind: 'integer', default: 8, min: 1, max: 256, description: 'files read at once while loading a series' },
  corsOrigin: { kind: 'string', default: '*', description: 'value of Access-Control-Allow-Origin' },
  basePath: {
    kind: 'string',
    default: '',
    pattern: BASE_PATH_PATTERN,
    patternRule: "must be empty or start with '/' and not end with '/' (for example /rs)",
    description: 'path every route is served under, for example /rs (default: the root)',
  },
  viewer: { kind: 'boolean', default: true, description: 'serve the web viewer at / (--no-viewer turns it off)' },
  allowListing: {
    kind: 'boolean',
    default: false,
    description: 'answer GET /series (patient names and IDs) in authentication mode too; without auth it is always on',
  },
  listLimit: {
    kind: 'integer',
    default: 1000,
    min: 1,
    max: 100_000,
    description: 'most series one GET /series answers (a page; offset for the next)',
  },
  dicomweb: { kind: 'boolean', default: true, description: 'serve the DICOMweb face under /dicom-web (--no-dicomweb turns it off)' },
  dicomwebMaxResults: {
    kind: 'integer',
    default: 1000,
    min: 1,
    max: 100_000,
    description: 'most matches one QIDO-RS search answers (a page; offset for the next)',
  },
  dicomwebMaxInstances: {
    kind: 'integer',
    default: 20_000,
    min: 1,
    max: 10_000_000,
    description: 'most instances one WADO-RS study retrieve or study metadata answers (413 beyond)',
  },
  logLevel: {
    kind: 'string',
    default: 'info',
    choices: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'],
    description: 'log level',
  },
  logFormat: {
    kind: 'string',
    default: 'auto',
    choices: ['auto', 'pretty', 'json'],
    description: 'log lines: auto (readable on a terminal, JSON otherwise), pretty or json',
  },
  auth: { kind: 'boolean', default: false, description: 'authentication mode: metadata, mpr, oblique, raw and volume need a token' },
  tokenSecret: {
    kind: 'string',
    default: '',
    minLength: 16,
    description: 'HMAC secret of access tokens, at least 16 characters (default: random, so tokens die with the process)',
  },
  tokenTtl: { kind: 'integer', default: 1800, min: 1, max: 30 * 24 * 3600, description: 'lifetime of access tokens in seconds' },
  tokenIssuers: {
    kind: 'list',
    default: ['127.0.0.0/8', '::1'],
    addresses: true,
    description: 'addresses (CIDR blocks, comma-separated) that may ask for tokens',
  },
  trustProxy: {
    kind: 'list',
    default: [],
    addresses: true,
    description: 'addresses of reverse proxies whose X-Forwarded-For is believed (empty: none)',
  },
  requestTimeoutMs: { kind: 'integer', default: 30_000, min: 1000, max: 3_600_000, description: 'time a client has to send its whole request' },
  maxUrlLength: { kind: 'integer', default: 4096, min: 256, max: 65536, description: 'longest request URL accepted' },
  wsMaxTransfersPerSocket: {
    kind: 'integer',
    default: 8,
    min: 1,
    max: 1024,
    description: 'transfers one /ws/volume socket may have under way at once (TRANSFER_ERROR 429 beyond)',
  },
  wsMaxSocketsPerAddress: {
    kind: 'integer',
    default: 16,
    min: 1,
    max: 65_535,
    description: '/ws/volume sockets one client address may have open at once (429 beyond)',
  },
  wsMaxMessageBytes: {
    kind: 'bytes',
    default: 64 * 1024,
    min: 1024,
    max: 16 * MiB,
    description: 'largest message a /ws/volume client may send (the socket is closed with 1009 beyond)',
  },
  wsIdleTimeoutMs: {
    kind: 'integer',
    default: 300_000,
    min: 1000,
    max: 86_400_000,
    description: 'a /ws/volume socket with no message, no image written and no load waited for this long is closed',
  },
  instanceName: {
    kind: 'string',
    default: '',
    pattern: /^[A-Za-z0-9._:@-]{1,64}$/,
    patternRule: 'must be 1 to 64 letters, digits, dots, underscores, colons, at signs or hyphens (for example r1 or the host name)',
    description: 'name of this server, sent in the X-Circus-Instance header of every response and in /metrics (default: none, no header)',
  },
  dicomwebUrl: {
    kind: 'string',
    default: '',
    pattern: /^https?:\/\/[^/?#@\s]+(\/[^?#\s]*)?$/,
    patternRule: 'must be an http:// or https:// URL without user:password, query or fragment (credentials go in dicomwebHeaders)',
    description: 'base URL of a DICOMweb PACS (QIDO-RS, WADO-RS) where series not in the data directory are looked up (default: none)',
  },
  dicomwebHeaders: {
    kind: 'list',
    default: [],
    headers: true,
    separator: '\n',
    flag: 'dicomweb-header',
    secret: true,
    description:
      'HTTP header "Name: value" sent with every request to the PACS, such as credentials (repeat the flag for more; one a line in the environment)',
  },
  dicomwebTimeoutMs: {
    kind: 'integer',
    default: 30_000,
    min: 100,
    max: 600_000,
    description: 'longest wait for an answer of the PACS, or for the next bytes of one (504 beyond)',
  },
  dicomwebConcurrency: { kind: 'integer', default: 8, min: 1, max: 256, description: 'requests to the PACS at once, every load together' },
  instanceCacheDir: {
    kind: 'string',
    default: '',
    description: 'folder keeping the instances retrieved from the PACS, so a series is retrieved once (default: none)',
  },
  instanceCacheBytes: {
    kind: 'bytes',
    default: 10 * GiB,
    min: 1 * MiB,
    max: 64 * 1024 * GiB,
    description: 'most bytes the instance cache holds; the least recently used instances go first',
  },
  development: { kind: 'boolean', default: false, description: 'development mode: 500 responses carry the stack trace' },
} as const satisfies Record<string, OptionSpec>;

export type OptionName = keyof typeof OPTIONS;

type ValueOf<K extends Kind> = K extends 'string' ? string : K extends 'boolean' ? boolean : K extends 'list' ? string[] : number;

export type Config = { readonly [K in OptionName]: ValueOf<(typeof OPTIONS)[K]['kind']> };

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

/** `cacheBytes` -> `CIRCUS_RS_CACHE_BYTES`. */
export const envName = (name: string): string => `CIRCUS_RS_${name.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()}`;
/** `cacheBytes` -> `--cache-bytes` (or the option's own `flag`). */
export const flagName = (name: string): string => {
  const own = (OPTIONS as Record<string, OptionSpec>)[name]?.flag;
  return `--${own ?? name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
};

const SIZE = /^(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?$/i;
const MULTIPLIER: Record<string, number> = { '': 1, k: 1024, m: MiB, g: GiB, t: 1024 * GiB };

function coerce(name: OptionName, spec: OptionSpec, raw: unknown): unknown {
  const where = `option ${name} (${flagName(name)}, ${envName(name)})`;
  const bad = (why: string): never => {
    const shown = name === 'tokenSecret' || spec.secret ? '(hidden)' : JSON.stringify(raw);
    throw new ConfigError(`${where}: ${why}, got ${shown}`);
  };
  switch (spec.kind) {
    case 'string':
      if (typeof raw !== 'string') bad('must be a string');
      if (spec.choices && !spec.choices.includes(raw as string)) bad(`must be one of ${spec.choices.join(', ')}`);
      if (spec.minLength !== undefined && raw !== '' && (raw as string).length < spec.minLength) bad(`must be at least ${spec.minLength} characters`);
      if (spec.pattern && raw !== '' && !spec.pattern.test(raw as string)) bad(spec.patternRule ?? `must match ${spec.pattern}`);
      return raw;
    case 'boolean':
      if (typeof raw === 'boolean') return raw;
      if (raw === 'true' || raw === '1' || raw === 'yes' || raw === 'on') return true;
      if (raw === 'false' || raw === '0' || raw === 'no' || raw === 'off') return false;
      return bad('must be true or false');
    case 'list': {
      // An array (a config file, a flag given several times) or one string; either way each
      // string may hold several entries.
      const separator = spec.separator ?? ',';
      let list: string[];
      if ((Array.isArray(raw) && raw.every((v) => typeof v === 'string')) || typeof raw === 'string')
        list = ([] as string[])
          .concat(raw as string | string[])
          .flatMap((v) => v.split(separator))
          .map((v) => v.trim())
          .filter(Boolean);
      else return bad(separator === ',' ? 'must be a comma-separated list' : 'must be a list of strings');
      if (spec.headers && !list.every((v) => HEADER_LINE.test(v))) bad('every entry must be an HTTP header "Name: value"');
      if (spec.addresses) {
        try {
          addressList(list);
        } catch (err) {
          bad((err as Error).message);
        }
      }
      return list;
    }
    case 'integer':
    case 'bytes': {
      let n: number;
      if (typeof raw === 'number') n = raw;
      else if (typeof raw === 'string' && spec.kind === 'bytes' && SIZE.test(raw.trim())) {
        const m = SIZE.exec(raw.trim())!;
        n = Math.floor(Number(m[1]) * MULTIPLIER[m[2].toLowerCase()]);
      } else if (typeof raw === 'string' && /^-?\d+$/.test(raw.trim())) n = Number(raw.trim());
      else return bad(spec.kind === 'bytes' ? 'must be a size in bytes (for example 4G)' : 'must be an integer');
      if (!Number.isSafeInteger(n)) bad('must be a whole number');
      if ((spec.min !== undefined && n < spec.min) || (spec.max !== undefined && n > spec.max)) {
        bad(`must be between ${spec.min} and ${spec.max}`);
      }
      return n;
    }
  }
}

export interface ConfigSources {
  /** Values from command-line flags (camelCase names; undefined when not given). */
  flags?: Partial<Record<string, unknown>>;
  env?: NodeJS.ProcessEnv;
  /** Path of a JSON config file. */
  file?: string;
}

/** Merges defaults, file, environment and flags; validates; returns a frozen config. */
export function loadConfig(sources: ConfigSources = {}): Config {
  let fromFile: Record<string, unknown> = {};
  if (sources.file) {
    let text: string;
    try {
      text = readFileSync(sources.file, 'utf8');
    } catch (err) {
      throw new ConfigError(`config file ${sources.file} cannot be read: ${(err as Error).message}`);
    }
    try {
      fromFile = JSON.parse(text) as Record<string, unknown>;
    } catch (err) {
      throw new ConfigError(`config file ${sources.file} is not valid JSON: ${(err as Error).message}`);
    }
    if (typeof fromFile !== 'object' || fromFile === null || Array.isArray(fromFile)) {
      throw new ConfigError(`config file ${sources.file} must hold a JSON object`);
    }
    for (const key of Object.keys(fromFile)) {
      if (!(key in OPTIONS)) throw new ConfigError(`config file ${sources.file}: unknown option ${key}`);
    }
  }
  const env = sources.env ?? {};
  const out: Record<string, unknown> = {};
  for (const [name, spec] of Object.entries(OPTIONS) as [OptionName, OptionSpec][]) {
    const flag = sources.flags?.[name];
    const raw = flag !== undefined ? flag : env[envName(name)] !== undefined ? env[envName(name)] : fromFile[name];
    out[name] = raw === undefined ? spec.default : coerce(name, spec, raw);
  }
  return Object.freeze(out) as Config;
}

/**
 * The config of `circus-rs index DIR`: the same sources in the same order as serve (flags >
 * environment > file > defaults), with DIR as the data directory, so that both use the same
 * index file (`indexPathOf`) and the same read limits. Throws ConfigError like loadConfig.
 */
export const indexConfigFor = (dir: string, sources: ConfigSources = {}): Config =>
  loadConfig({ ...sources, flags: { ...sources.flags, dataDir: dir } });

/** Where the header index lives for a config. */
export const indexPathOf = (config: Pick<Config, 'dataDir' | 'indexPath'>): string =>
  config.indexPath !== '' ? config.indexPath : `${config.dataDir.replace(/\/+$/, '')}/.circus-rs-index.sqlite`;
