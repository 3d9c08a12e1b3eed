import Fastify from 'fastify';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config/config.js';
import { formatLogLine, loggerOption, type LogOutput } from '../src/config/logging.js';

/** 05:31:02.123 local time, whatever the time zone of the machine. */
const TIME = new Date(2026, 0, 2, 5, 31, 2, 123).getTime();

const line = (fields: Record<string, unknown>): string => `${JSON.stringify({ level: 30, time: TIME, pid: 4242, hostname: 'box', ...fields })}\n`;

/** An output that keeps what is written to it. */
function fakeOutput(isTTY: boolean): LogOutput & { text: string } {
  return {
    isTTY,
    text: '',
    write(t: string) {
      this.text += t;
      return true;
    },
  };
}

describe('readable log lines', () => {
  it('shows time, level, message and the other fields, leaving out pid and hostname', () => {
    expect(formatLogLine(line({ msg: 'Server listening at http://127.0.0.1:3000' }))).toBe(
      '05:31:02.123 INFO  Server listening at http://127.0.0.1:3000\n',
    );
    expect(
      formatLogLine(
        line({
          level: 40,
          v: 1,
          reqId: 'req-1',
          req: { method: 'GET', url: '/status' },
          responseTime: 1.5,
          cached: false,
          note: 'two words',
          empty: '',
          none: null,
          msg: 'slow',
        }),
      ),
    ).toBe(
      '05:31:02.123 WARN  slow reqId=req-1 req={"method":"GET","url":"/status"} responseTime=1.5 cached=false note="two words" empty="" none=null\n',
    );
  });

  it('names every pino level', () => {
    const levels = [10, 20, 30, 40, 50, 60].map((level) => formatLogLine(line({ level, msg: 'm' })).slice(13, 19));
    expect(levels).toEqual(['TRACE ', 'DEBUG ', 'INFO  ', 'WARN  ', 'ERROR ', 'FATAL ']);
  });

  it('shows an error as its message and stack on the lines that follow', () => {
    const err = { type: 'Error', message: 'boom', stack: 'Error: boom\n    at load (/app/volumeLoader.js:10:5)\n    at run (/app/server.js:3:1)' };
    expect(formatLogLine(line({ level: 50, reqId: 'req-7', err, msg: 'boom' }))).toBe(
      '05:31:02.123 ERROR boom reqId=req-7\n' +
        '    Error: boom\n' +
        '    at load (/app/volumeLoader.js:10:5)\n' +
        '    at run (/app/server.js:3:1)\n',
    );
    // Without a stack (or one that does not name the message), the message comes first.
    expect(formatLogLine(line({ level: 50, err: { type: 'RangeError', message: 'too big' }, msg: 'failed' }))).toBe(
      '05:31:02.123 ERROR failed\n    RangeError: too big\n',
    );
  });

  it('passes through text that is not a JSON object', () => {
    expect(formatLogLine('plain text')).toBe('plain text\n');
    expect(formatLogLine('[1,2]\n')).toBe('[1,2]\n');
  });
});

describe('loggerOption', () => {
  const config = (logFormat: string) => loadConfig({ env: {}, flags: { logLevel: 'warn', logFormat } });

  it('gives JSON lines off a terminal and readable ones on it (auto)', () => {
    const pipe = fakeOutput(false);
    expect(loggerOption(config('auto'), pipe)).toEqual({ level: 'warn' });
    const tty = fakeOutput(true);
    const onTty = loggerOption(config('auto'), tty);
    expect(onTty.level).toBe('warn');
    if (!('stream' in onTty)) throw new Error('auto on a terminal has no stream');
    onTty.stream.write(line({ msg: 'hello', port: 3000 }));
    expect(tty.text).toBe('05:31:02.123 INFO  hello port=3000\n');
  });

  it('follows pretty and json whatever the output is', () => {
    expect(loggerOption(config('json'), fakeOutput(true))).toEqual({ level: 'warn' });
    const pipe = fakeOutput(false);
    const pretty = loggerOption(config('pretty'), pipe);
    expect(pretty.level).toBe('warn');
    if (!('stream' in pretty)) throw new Error('pretty has no stream');
    pretty.stream.write(line({ level: 50, msg: 'disk full' }));
    expect(pipe.text).toBe('05:31:02.123 ERROR disk full\n');
  });

  it('is accepted by fastify: its log lines come out readable', async () => {
    const out = fakeOutput(true);
    const app = Fastify({ logger: loggerOption(loadConfig({ env: {}, flags: { logLevel: 'info' } }), out) });
    try {
      app.log.info({ series: '1.2.3' }, 'loaded');
      app.log.debug('hidden below the level');
      expect(out.text).toMatch(/^\d\d:\d\d:\d\d\.\d{3} INFO {2}loaded series=1\.2\.3\n$/);
    } finally {
      await app.close();
    }
  });
});
