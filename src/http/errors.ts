/** The contract's error body, for the places that answer before or outside the error handler. */
import type { FastifyReply } from 'fastify';

export function sendError(reply: FastifyReply, status: number, message: string, extra: Record<string, unknown> = {}): FastifyReply {
  return reply
    .code(status)
    .type('application/json; charset=utf-8')
    .send({ result: 'ng', message, ...extra });
}
