/**
 * The messages of /ws/volume (docs/API.md, "WebSocket /ws/volume"): what a frame from the client
 * says, what the server's messages look like, and the close codes.
 *
 * Policy:
 * - Every message in both directions is one binary frame: UTF-8 JSON, the byte 0x0A, then an
 *   optional payload (the server's TRANSFER_IMAGE carries the image; the client's messages none).
 * - A frame that is not a message is a ProtocolViolation with the close code that fits: 1003 a
 *   text frame, 1007 not JSON + 0x0A (not UTF-8, not JSON, not an object), 1008 not a known
 *   message (an unknown messageType; a transferId that is not a string of 1 to MAX_TRANSFER_ID
 *   characters; BEGIN_TRANSFER without a string seriesUid; SET_PRIORITY whose target is not an
 *   image index or a list of them, or whose priority is not a finite number). A message larger
 *   than wsMaxMessageBytes is closed with 1009 by ws itself (TOO_BIG_REASON says why).
 * - What a message asks is checked where it is served, not here: the series UID's syntax, the
 *   partial volume descriptor (both TRANSFER_ERROR 400), whether the transfer exists.
 * - A close reason is cut to the 123 bytes a close frame allows.
 */
import type { RawData } from 'ws';

/** Close codes (RFC 6455 7.4.1). */
export const CloseCode = {
  NORMAL: 1000,
  GOING_AWAY: 1001,
  UNSUPPORTED_DATA: 1003,
  INVALID_PAYLOAD: 1007,
  POLICY_VIOLATION: 1008,
  MESSAGE_TOO_BIG: 1009,
  INTERNAL_ERROR: 1011,
} as const;
export type CloseCode = (typeof CloseCode)[keyof typeof CloseCode];

/** The reason of a 1009 close (ws gives none). */
export const TOO_BIG_REASON = 'the message is larger than wsMaxMessageBytes';

/** The byte between a message's JSON and its payload. */
const SEPARATOR = 0x0a;
/** Longest transferId accepted. */
export const MAX_TRANSFER_ID = 256;

/** A frame or message the socket is closed for: the close code and the reason. */
export class ProtocolViolation extends Error {
  constructor(
    readonly code: CloseCode,
    message: string,
  ) {
    super(message);
  }
}

/** A message from the client, its fields checked as the policy says. */
export type ClientMessage =
  | {
      readonly messageType: 'BEGIN_TRANSFER';
      readonly transferId: string;
      readonly seriesUid: string;
      /** As the client sent it: parsed (400 when malformed) only once the transfer may begin. */
      readonly partialVolumeDescriptor: unknown;
    }
  | { readonly messageType: 'SET_PRIORITY'; readonly transferId: string; readonly target: number[]; readonly priority: number }
  | { readonly messageType: 'PAUSE_TRANSFER' | 'RESUME_TRANSFER' | 'ABORT_TRANSFER' | 'STOP_TRANSFER'; readonly transferId: string };

export type MessageType = ClientMessage['messageType'];

const MESSAGE_TYPES: ReadonlySet<string> = new Set<MessageType>([
  'BEGIN_TRANSFER',
  'SET_PRIORITY',
  'PAUSE_TRANSFER',
  'RESUME_TRANSFER',
  'ABORT_TRANSFER',
  'STOP_TRANSFER',
]);
const utf8 = new TextDecoder('utf-8', { fatal: true });

/** A frame as ws hands it over, as one message; throws ProtocolViolation. */
export function parseFrame(data: RawData, isBinary: boolean): ClientMessage {
  if (!isBinary) throw new ProtocolViolation(CloseCode.UNSUPPORTED_DATA, 'text frames are not accepted: send binary frames (JSON, 0x0A, payload)');
  return parseMessage(Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data));
}

/** A binary frame's bytes as a message; throws ProtocolViolation with the close code that fits. */
export function parseMessage(data: Buffer): ClientMessage {
  const end = data.indexOf(SEPARATOR);
  if (end < 0) throw new ProtocolViolation(CloseCode.INVALID_PAYLOAD, 'a message is JSON followed by the byte 0x0A');
  let text: string;
  try {
    text = utf8.decode(data.subarray(0, end));
  } catch {
    throw new ProtocolViolation(CloseCode.INVALID_PAYLOAD, 'the JSON part is not UTF-8');
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new ProtocolViolation(CloseCode.INVALID_PAYLOAD, 'the JSON part is not valid JSON');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ProtocolViolation(CloseCode.INVALID_PAYLOAD, 'the JSON part is not an object');
  }
  const m = value as Record<string, unknown>;
  if (typeof m.messageType !== 'string' || !MESSAGE_TYPES.has(m.messageType)) {
    const shown = typeof m.messageType === 'string' ? JSON.stringify(m.messageType.slice(0, 40)) : 'missing';
    throw new ProtocolViolation(CloseCode.POLICY_VIOLATION, `unknown messageType (${shown})`);
  }
  const messageType = m.messageType as MessageType;
  if (typeof m.transferId !== 'string' || m.transferId.length === 0 || m.transferId.length > MAX_TRANSFER_ID) {
    throw new ProtocolViolation(CloseCode.POLICY_VIOLATION, `${messageType}: transferId must be a string of 1 to ${MAX_TRANSFER_ID} characters`);
  }
  const transferId = m.transferId;
  switch (messageType) {
    case 'BEGIN_TRANSFER':
      if (typeof m.seriesUid !== 'string') throw new ProtocolViolation(CloseCode.POLICY_VIOLATION, 'BEGIN_TRANSFER: seriesUid must be a string');
      return { messageType, transferId, seriesUid: m.seriesUid, partialVolumeDescriptor: m.partialVolumeDescriptor };
    case 'SET_PRIORITY': {
      const target = targetOf(m.target);
      if (typeof m.priority !== 'number' || !Number.isFinite(m.priority)) {
        throw new ProtocolViolation(CloseCode.POLICY_VIOLATION, 'SET_PRIORITY: priority must be a finite number');
      }
      return { messageType, transferId, target, priority: m.priority };
    }
    default:
      return { messageType, transferId };
  }
}

/** SET_PRIORITY's target as a list of indices; throws ProtocolViolation unless an integer or an array of integers. */
function targetOf(value: unknown): number[] {
  const list = Array.isArray(value) ? value : [value];
  if (!list.every((v) => typeof v === 'number' && Number.isInteger(v))) {
    throw new ProtocolViolation(CloseCode.POLICY_VIOLATION, 'SET_PRIORITY: target must be an image index or an array of them');
  }
  return list as number[];
}

/** The JSON part of a server message, with its separator. */
const header = (message: Record<string, unknown>): Buffer => Buffer.from(`${JSON.stringify(message)}\n`);

/** The JSON part of TRANSFER_IMAGE (the image's bytes follow it in the same message). */
export const transferImageHeader = (transferId: string, imageIndex: number): Buffer =>
  header({ messageType: 'TRANSFER_IMAGE', transferId, imageIndex });

/** TRANSFER_ERROR: the transfer ended (or could not begin) with an HTTP status and a message. */
export const transferError = (transferId: string, status: number, message: string): Buffer =>
  header({ messageType: 'TRANSFER_ERROR', transferId, status, message });

/** A close reason within the 123 bytes a close frame allows. */
export function closeReason(message: string): string {
  let r = message;
  while (Buffer.byteLength(r) > 123) r = r.slice(0, -1);
  return r;
}
