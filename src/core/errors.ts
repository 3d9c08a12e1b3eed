/**
 * Domain errors. Every error the server can answer with has a code, a message and an HTTP
 * status, all from one table, so that nothing outside `http/` needs to know about HTTP and
 * nothing inside `http/` needs to guess a status from a message.
 */

export const ERROR_TABLE = {
  BAD_PARAMETER: 400,
  UNAUTHORIZED: 401,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  /** No representation the request accepts (a DICOMweb Accept header the server cannot satisfy). */
  NOT_ACCEPTABLE: 406,
  TOO_LARGE: 413,
  UNPROCESSABLE_SERIES: 422,
  UNSUPPORTED_TRANSFER_SYNTAX: 422,
  /** A source the series comes from (a DICOMweb PACS) failed: unreachable, an error status, an answer that is not what was asked for. */
  BAD_GATEWAY: 502,
  UNAVAILABLE: 503,
  /** A source the series comes from (a DICOMweb PACS) did not answer in time. */
  GATEWAY_TIMEOUT: 504,
  /** The client went away while its request waited; never sent (nobody is left to receive it). */
  CLIENT_GONE: 499,
} as const;

export type ErrorCode = keyof typeof ERROR_TABLE;

export class CircusError extends Error {
  readonly code: ErrorCode;
  readonly status: number;

  constructor(code: ErrorCode, message: string) {
    super(message);
    this.name = 'CircusError';
    this.code = code;
    this.status = ERROR_TABLE[code];
  }
}

/** A parameter of a request is missing or malformed (400). */
export const badParameter = (message: string): CircusError => new CircusError('BAD_PARAMETER', message);
/** The series cannot be made into one volume (422); the message names the slice and the reason. */
export const unprocessable = (message: string): CircusError => new CircusError('UNPROCESSABLE_SERIES', message);
/** A configured limit would be exceeded (413). */
export const tooLarge = (message: string): CircusError => new CircusError('TOO_LARGE', message);
/** No such series (404). */
export const notFound = (message: string): CircusError => new CircusError('NOT_FOUND', message);
/** A source failed to give the bytes of a series (502). */
export const badGateway = (message: string): CircusError => new CircusError('BAD_GATEWAY', message);
/** A source did not give the bytes of a series in time (504). */
export const gatewayTimeout = (message: string): CircusError => new CircusError('GATEWAY_TIMEOUT', message);
/**
 * Whether an error is a source's failure to give bytes (502, 504): it fails the load as it is,
 * never taken for an unreadable file (skipped) or a bad slice (422).
 */
export const isSourceFailure = (err: unknown): err is CircusError =>
  err instanceof CircusError && (err.code === 'BAD_GATEWAY' || err.code === 'GATEWAY_TIMEOUT');
