/**
 * Where log lines go and how they look. fastify's logger (pino) writes one JSON object per
 * line; on a terminal (logFormat auto) or with logFormat pretty, each line is rewritten as
 *
 *   05:31:02.123 INFO  message key=value key={"nested":1}
 *
 * (local time, level name, message, then the other fields), with an error's stack on the
 * lines that follow. No dependency beyond pino itself: pino accepts any `{ write(line) }`.
 */
import type { Config } from './config.js';

/** Where formatted lines are written (process.stdout, or a fake in tests). */
export interface LogOutput {
  write(text: string): unknown;
  /** Whether the output is a terminal. */
  readonly isTTY?: boolean;
}

/** The fastify `logger` option: a level, and for readable lines the stream that formats them. */
export type LoggerOption = { level: string } | { level: string; stream: { write(line: string): void } };

const LEVELS: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };
/** Fields of every pino line that the readable form shows in its own way or leaves out. */
const SHOWN_APART = new Set(['pid', 'hostname', 'time', 'level', 'msg', 'v', 'err']);

const two = (n: number): string => String(n).padStart(2, '0');

/** `time` (Unix milliseconds) as local HH:MM:SS.mmm. */
function clock(time: unknown): string {
  if (typeof time !== 'number' || !Number.isFinite(time)) return '--:--:--.---';
  const d = new Date(time);
  return `${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}.${String(d.getMilliseconds()).padStart(3, '0')}`;
}

/** A field value: bare when it is a word, else as JSON (strings quoted, objects inline). */
function fieldValue(v: unknown): string {
  if (typeof v === 'string') return v !== '' && !/[\s"=\\]/.test(v) ? v : JSON.stringify(v);
  if (typeof v === 'number' || typeof v === 'boolean' || v === null) return String(v);
  return JSON.stringify(v) ?? String(v);
}

/** The lines after the main one for a serialized error: its message, then its stack frames. */
function errorLines(err: unknown): string[] {
  if (typeof err !== 'object' || err === null) return [`    ${fieldValue(err)}`];
  const { message, stack, type } = err as { message?: unknown; stack?: unknown; type?: unknown };
  const text = typeof message === 'string' ? message : '';
  const lines = typeof stack === 'string' ? stack.split('\n') : [];
  // A stack starts with "Type: message"; print the message only when it does not.
  if (lines.length === 0 || !lines[0].includes(text)) lines.unshift(typeof type === 'string' && type !== '' ? `${type}: ${text}` : text);
  return lines.map((l) => `    ${l.trimStart()}`);
}

/**
 * One pino JSON line as a readable line (ending in a newline, followed by the error's lines
 * when it has an `err`). Text that is not a JSON object is passed through unchanged.
 */
export function formatLogLine(line: string): string {
  let entry: unknown;
  try {
    entry = JSON.parse(line);
  } catch {
    return line.endsWith('\n') ? line : `${line}\n`;
  }
  if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) return line.endsWith('\n') ? line : `${line}\n`;
  const e = entry as Record<string, unknown>;
  const level = typeof e.level === 'number' ? (LEVELS[e.level] ?? `L${e.level}`) : String(e.level ?? '').toUpperCase();
  let out = `${clock(e.time)} ${level.padEnd(5)} ${typeof e.msg === 'string' ? e.msg : fieldValue(e.msg ?? '')}`;
  for (const [key, value] of Object.entries(e)) {
    if (!SHOWN_APART.has(key) && value !== undefined) out += ` ${key}=${fieldValue(value)}`;
  }
  const lines = [out.trimEnd()];
  if (e.err !== undefined) lines.push(...errorLines(e.err));
  return `${lines.join('\n')}\n`;
}

/** A pino destination that writes every line it is given to `out` in the readable form. */
export function prettyStream(out: LogOutput): { write(text: string): void } {
  return {
    write(text: string): void {
      // pino writes one line per call; split anyway, so a batch of lines is formatted too.
      const lines = text.split('\n').filter((l) => l !== '');
      out.write(lines.map(formatLogLine).join(''));
    },
  };
}

/**
 * The fastify `logger` option for a config: `{ level }` (JSON lines on standard output) for
 * logFormat json, and for auto when `out` is not a terminal; readable lines written to `out`
 * for pretty, and for auto on a terminal.
 */
export function loggerOption(config: Pick<Config, 'logLevel' | 'logFormat'>, out: LogOutput = process.stdout): LoggerOption {
  const pretty = config.logFormat === 'pretty' || (config.logFormat === 'auto' && out.isTTY === true);
  return pretty ? { level: config.logLevel, stream: prettyStream(out) } : { level: config.logLevel };
}
