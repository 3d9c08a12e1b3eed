/**
 * WebSocket /ws/volume: the current CIRCUS API's volume transfer (see docs/API.md).
 *
 * Every message is one binary frame: UTF-8 JSON, the byte 0x0A, then an optional payload. A
 * client begins transfers (a series, or a partial volume of it), sets image priorities, pauses,
 * resumes and aborts them; the server answers with TRANSFER_IMAGE messages (the image's voxels as
 * the payload) and TRANSFER_ERROR messages.
 *
 * Each file of this folder states its part of the policy:
 * - upgrade.ts: which upgrades become sockets (path, origin, token, sockets per address), how
 *   the others are answered, and the hand-back of requests asking for another upgrade;
 * - protocol.ts: messages, their parsing and encoding, close codes;
 * - connection.ts: one socket's transfers, served in turn, and their images;
 *   transfer.ts: the states of a transfer; socketWriter.ts: backpressure; idle.ts: idle and
 *   stalled sockets;
 * - figures.ts: what the sockets tell /status and /metrics.
 *
 * This file serves them on the app's HTTP server. When the server closes, every socket is closed
 * with 1001 first (and cut if it does not answer within SHUTDOWN_GRACE_MS).
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { WebSocket, WebSocketServer } from 'ws';
import { INSTANCE_HEADER } from '../headers.js';
import { VolumeConnection, type VolumeSocketLimits } from './connection.js';
import type { VolumeSocketTotals } from './figures.js';
import { CloseCode, TOO_BIG_REASON } from './protocol.js';
import { Admission, handBack, isWebSocketUpgrade, refuse } from './upgrade.js';

export { VOLUME_SOCKET_PATH } from './upgrade.js';

/** How long a socket closed at shutdown has to answer the close before it is cut. */
const SHUTDOWN_GRACE_MS = 1000;

/**
 * The server's sockets: a message over maxPayload makes ws close the socket with 1009 and no
 * reason; this gives it one, as every other close of this route has.
 */
class VolumeWebSocket extends WebSocket {
  override close(code?: number, reason?: string | Buffer): void {
    super.close(code, code === CloseCode.MESSAGE_TOO_BIG && reason === undefined ? TOO_BIG_REASON : reason);
  }
}

/** Serves /ws/volume on the app's HTTP server: upgrades, the sockets' limits, and their closing with the app. */
export function registerVolumeSocket(app: FastifyInstance): void {
  const config = app.deps.config;
  const limits: VolumeSocketLimits = {
    maxTransfersPerSocket: config.wsMaxTransfersPerSocket,
    maxSocketsPerAddress: config.wsMaxSocketsPerAddress,
    maxMessageBytes: config.wsMaxMessageBytes,
    idleTimeoutMs: config.wsIdleTimeoutMs,
  };
  const wss = new WebSocketServer<typeof VolumeWebSocket>({
    noServer: true,
    maxPayload: limits.maxMessageBytes,
    perMessageDeflate: false,
    clientTracking: false,
    WebSocket: VolumeWebSocket,
  });
  const admission = new Admission(app, limits.maxSocketsPerAddress);
  const connections = new Set<VolumeConnection>();
  const totals: VolumeSocketTotals = { sockets: 0, transfers: 0, imagesSent: 0 };
  // The instance name, on the upgrade's answer (101) and on its refusals, as on every HTTP response.
  const instance: Record<string, string> = config.instanceName ? { [INSTANCE_HEADER]: config.instanceName } : {};
  if (config.instanceName) wss.on('headers', (headers) => headers.push(`${INSTANCE_HEADER}: ${config.instanceName}`));

  app.decorate('volumeSockets', {
    count: () => connections.size,
    stats: () => [...connections].map((c) => c.stats()),
    totals: () => ({ ...totals }),
  });

  // Node gives this listener every request that carries Upgrade (Upgrade: h2c from curl --http2
  // too): only WebSocket upgrades are this route's, the others go back to the HTTP server.
  app.server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    try {
      if (isWebSocketUpgrade(req)) upgrade(req, socket, head);
      else handBack(app.server, req, socket, head);
    } catch (err) {
      // A listener of the HTTP server must not throw: that would end the process.
      app.log.error({ err }, 'ws/volume: an upgrade failed');
      socket.destroy();
    }
  });

  function upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const admitted = admission.admit(req);
    if ('status' in admitted) {
      refuse(socket, admitted, instance);
      return;
    }
    const { token, address } = admitted;
    wss.handleUpgrade(req, socket, head, (ws) => {
      admission.opened(address);
      totals.sockets++;
      const connection = new VolumeConnection(app, ws, socket, address, token, limits, totals);
      connections.add(connection);
      // Protocol errors (a bad frame, a message over maxPayload) close the socket with their code.
      ws.on('error', (err) => app.log.debug({ err }, 'ws/volume: socket error'));
      ws.on('close', () => {
        connection.dispose();
        connections.delete(connection);
        admission.closed(address);
      });
    });
  }

  // Before the HTTP server closes: it would wait for these connections to end.
  app.addHook('preClose', async () => {
    await Promise.all(
      [...connections].map(
        (c) =>
          new Promise<void>((resolve) => {
            c.ws.once('close', () => resolve());
            const cut = setTimeout(() => c.ws.terminate(), SHUTDOWN_GRACE_MS);
            cut.unref();
            c.ws.once('close', () => clearTimeout(cut));
            c.close(CloseCode.GOING_AWAY, 'the server is shutting down');
          }),
      ),
    );
  });
  app.addHook('onClose', async () => {
    for (const c of connections) c.ws.terminate();
    wss.close();
  });
}
