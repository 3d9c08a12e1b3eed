/**
 * What the /ws/volume sockets tell /status, /metrics and the tests: the figures of each open
 * socket, and the totals since the server started (app.volumeSockets).
 */

/** Figures of one open socket (for tests and status). */
export interface VolumeSocketStats {
  address: string;
  transfers: number;
  imagesSent: number;
  /** Largest bufferedAmount seen after a message was handed to the socket or handled. */
  maxBufferedAmount: number;
  bufferedAmount: number;
  /** Messages handed to the socket whose writing has not finished. */
  writing: number;
  /** Whether an image is kept ready for the next turn. */
  holding: boolean;
  /** Series being opened for the socket's transfers (those aborted or failed while opening included). */
  opening: number;
  /** Whether the socket is read (false while too much of what was sent to it is unsent). */
  reading: boolean;
  /** Messages received. */
  messages: number;
}

/** What the sockets have done since the server started (for metrics). */
export interface VolumeSocketTotals {
  /** Sockets accepted. */
  sockets: number;
  /** Transfers begun (BEGIN_TRANSFER messages accepted). */
  transfers: number;
  imagesSent: number;
}

declare module 'fastify' {
  interface FastifyInstance {
    /** The open /ws/volume sockets, and the totals since start. */
    volumeSockets: { count(): number; stats(): VolumeSocketStats[]; totals(): VolumeSocketTotals };
  }
}
