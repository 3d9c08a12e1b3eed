/**
 * multipart/related bodies (RFC 2046 5.1, RFC 2387), as WADO-RS answers a retrieval: read from
 * a stream of chunks, one part at a time, so that only the part being read is held in memory.
 *
 * A body is a preamble, then parts each opened by a delimiter line `--boundary` (after a CRLF,
 * except at the very start), its own header lines, an empty line and its content; a delimiter
 * line `--boundary--` closes the body (an epilogue after it is ignored). A part's content ends
 * right before the CRLF of the next delimiter. Anything else (no opening delimiter, a part
 * without headers, a body that ends before its closing delimiter, a part larger than the bound)
 * is a MultipartError naming what was wrong.
 */

export class MultipartError extends Error {
  constructor(
    message: string,
    /** The body ended before its closing delimiter (a connection closed early, most often). */
    readonly cutShort = false,
  ) {
    super(message);
    this.name = 'MultipartError';
  }
}

/** One part: its header lines (names lower-cased) and its content. */
export interface Part {
  headers: Map<string, string>;
  body: Buffer;
}

/** The type and parameters of a Content-Type value (names lower-cased, quotes taken off). */
export function parseContentType(value: string): { type: string; params: Map<string, string> } {
  const params = new Map<string, string>();
  const semicolon = value.indexOf(';');
  const type = (semicolon < 0 ? value : value.slice(0, semicolon)).trim().toLowerCase();
  // name=token or name="quoted \" string", separated by semicolons.
  const param = /;\s*([^=;\s]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;\s]*))/g;
  for (const m of (semicolon < 0 ? '' : value.slice(semicolon)).matchAll(param)) {
    params.set(m[1].toLowerCase(), m[2] !== undefined ? m[2].replace(/\\(.)/g, '$1') : m[3]);
  }
  return { type, params };
}

/** The boundary of a multipart Content-Type, or a MultipartError saying why there is none. */
export function boundaryOf(contentType: string | null): string {
  if (!contentType) throw new MultipartError('the answer has no Content-Type');
  const { type, params } = parseContentType(contentType);
  if (!type.startsWith('multipart/')) throw new MultipartError(`the answer is ${type || 'untyped'}, not multipart/related`);
  const boundary = params.get('boundary');
  // RFC 2046: 1 to 70 characters.
  if (!boundary || boundary.length > 70) throw new MultipartError(`the multipart Content-Type has no valid boundary (${contentType.slice(0, 200)})`);
  return boundary;
}

const CRLF = Buffer.from('\r\n');
const HEADER_END = Buffer.from('\r\n\r\n');
/** Longest header block of one part accepted. */
const MAX_PART_HEADERS = 16 * 1024;
/** Longest preamble accepted before the first delimiter. */
const MAX_PREAMBLE = 64 * 1024;

/**
 * Reads the parts of a multipart body from `chunks`, calling `onPart` with each one as soon as
 * it is complete (awaited before reading on). A part whose content would pass `maxPartBytes`
 * stops the reading with a MultipartError. Resolves with the number of parts once the closing
 * delimiter is read.
 */
export async function readMultipart(
  chunks: AsyncIterable<Uint8Array>,
  boundary: string,
  onPart: (part: Part) => void | Promise<void>,
  maxPartBytes = 2 ** 31 - 1,
): Promise<number> {
  const delimiter = Buffer.from(`\r\n--${boundary}`);
  type State = 'preamble' | 'afterDelimiter' | 'headers' | 'body' | 'done';
  // Widened: steps change it inside a closure, which narrowing does not see.
  let state = 'preamble' as State;
  /** Bytes received and not yet consumed. */
  let pending: Buffer = Buffer.alloc(0);
  let headers = new Map<string, string>();
  /** Content of the current part already known to precede its end. */
  let content: Buffer[] = [];
  let contentBytes = 0;
  let parts = 0;
  /** Bytes of preamble passed over, and whether nothing has been passed over yet. */
  let preamble = 0;
  let atStart = true;

  const addContent = (bytes: Buffer): void => {
    if (bytes.length === 0) return;
    contentBytes += bytes.length;
    if (contentBytes > maxPartBytes) throw new MultipartError(`part ${parts + 1} is larger than ${maxPartBytes} bytes`);
    content.push(bytes);
  };

  /** Consumes what `pending` allows; false when more bytes are needed. */
  const step = async (): Promise<boolean> => {
    switch (state) {
      case 'preamble': {
        // The first delimiter may open the body without a CRLF before it.
        const opening = delimiter.subarray(2);
        if (atStart) {
          const n = Math.min(pending.length, opening.length);
          if (pending.subarray(0, n).equals(opening.subarray(0, n))) {
            if (n < opening.length) return false;
            pending = pending.subarray(opening.length);
            state = 'afterDelimiter';
            return true;
          }
        }
        const at = pending.indexOf(delimiter);
        if (at < 0) {
          const keep = Math.min(pending.length, delimiter.length - 1);
          preamble += pending.length - keep;
          if (preamble > MAX_PREAMBLE) throw new MultipartError(`no delimiter --${boundary} in the first ${MAX_PREAMBLE} bytes`);
          atStart = false;
          pending = pending.subarray(pending.length - keep);
          return false;
        }
        pending = pending.subarray(at + delimiter.length);
        state = 'afterDelimiter';
        return true;
      }
      case 'afterDelimiter': {
        if (pending.length < 2) return false;
        if (pending[0] === 0x2d && pending[1] === 0x2d) {
          state = 'done';
          pending = Buffer.alloc(0);
          return false;
        }
        // Transport padding (spaces, tabs), then CRLF.
        const eol = pending.indexOf(CRLF);
        if (eol < 0) {
          if (pending.length > 1024) throw new MultipartError('a delimiter line does not end');
          return false;
        }
        if (!/^[ \t]*$/.test(pending.subarray(0, eol).toString('latin1')))
          throw new MultipartError('a delimiter line is followed by other characters');
        pending = pending.subarray(eol + 2);
        state = 'headers';
        return true;
      }
      case 'headers': {
        // A part with no header lines has its empty line at once.
        if (pending.length >= 2 && pending[0] === 0x0d && pending[1] === 0x0a) {
          headers = new Map();
          pending = pending.subarray(2);
          state = 'body';
          return true;
        }
        const end = pending.indexOf(HEADER_END);
        if (end < 0) {
          if (pending.length > MAX_PART_HEADERS)
            throw new MultipartError(`the headers of part ${parts + 1} are longer than ${MAX_PART_HEADERS} bytes`);
          return false;
        }
        headers = new Map();
        for (const line of pending.subarray(0, end).toString('latin1').split('\r\n')) {
          const colon = line.indexOf(':');
          if (colon <= 0) throw new MultipartError(`part ${parts + 1} has a malformed header line: ${JSON.stringify(line.slice(0, 100))}`);
          headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
        }
        pending = pending.subarray(end + 4);
        state = 'body';
        content = [];
        contentBytes = 0;
        return true;
      }
      case 'body': {
        const at = pending.indexOf(delimiter);
        if (at < 0) {
          // Everything but a possible beginning of the delimiter is content.
          const safe = Math.max(0, pending.length - (delimiter.length - 1));
          addContent(pending.subarray(0, safe));
          pending = pending.subarray(safe);
          return false;
        }
        addContent(pending.subarray(0, at));
        pending = pending.subarray(at + delimiter.length);
        // One copy into a buffer of its own: the chunks it was cut from may hold other bytes.
        const body = Buffer.concat(content, contentBytes);
        content = [];
        contentBytes = 0;
        parts++;
        await onPart({ headers, body });
        state = 'afterDelimiter';
        return true;
      }
      case 'done':
        return false;
    }
  };

  for await (const chunk of chunks) {
    if (state === 'done') continue; // the epilogue
    const bytes = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    pending = pending.length === 0 ? bytes : Buffer.concat([pending, bytes]);
    while (await step()) {}
  }
  if (state === 'preamble') throw new MultipartError(`the body has no delimiter --${boundary}`);
  if (state !== 'done') {
    throw new MultipartError(`the body ends before its closing delimiter (${parts} complete part${parts === 1 ? '' : 's'})`, true);
  }
  return parts;
}
