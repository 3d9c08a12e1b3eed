/**
 * The web viewer: its page at the root of the base path (`/`, or `/rs/` with `--base-path /rs`)
 * and its files under `viewer/`, read once at start from the folder the build writes them to
 * (dist/viewer). The page holds no data, so both routes are public; the API it calls checks
 * tokens itself. `--no-viewer` leaves both routes out.
 *
 * The page builds every API URL relative to its own folder, so under a base path it must be
 * loaded as `/rs/`: `/rs` is redirected there.
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { CircusError } from '../../core/errors.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The name a route's answers are counted under in /status (by default its path). */
    counter?: string;
  }
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
};

/** Everything the page may load comes from the server itself. */
const CONTENT_SECURITY_POLICY =
  "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'self'; frame-ancestors 'self'";

export interface ViewerFile {
  body: Buffer;
  type: string;
  etag: string;
}

const isBuilt = (dir: string): boolean => existsSync(join(dir, 'index.html')) && existsSync(join(dir, 'main.js'));

/**
 * The folder of the built viewer: `viewer/` beside the compiled server (dist/viewer), or, for a
 * server running from its TypeScript sources, the package's dist/viewer.
 */
export function defaultViewerDir(): string {
  const here = fileURLToPath(new URL('.', import.meta.url));
  const candidates = [join(here, '../../viewer'), join(here, '../../../dist/viewer')];
  return candidates.find(isBuilt) ?? candidates[0];
}

/** The viewer's files by name (one flat folder, known types only), or null when it is not built there. */
export function readViewerFiles(dir: string): Map<string, ViewerFile> | null {
  if (!isBuilt(dir)) return null;
  const files = new Map<string, ViewerFile>();
  for (const name of readdirSync(dir)) {
    const type = TYPES[extname(name)];
    const path = join(dir, name);
    if (!type || !statSync(path).isFile()) continue;
    const body = readFileSync(path);
    files.set(name, { body, type, etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"` });
  }
  return files;
}

export async function viewerRoute(app: FastifyInstance): Promise<void> {
  const dir = app.deps.viewerDir ?? defaultViewerDir();
  const files = readViewerFiles(dir);
  if (!files) app.log.warn(`the viewer is not built (${dir} has no index.html and main.js): run npm run build`);
  const basePath = app.deps.config.basePath ?? '';

  const send = (request: FastifyRequest, reply: FastifyReply, name: string): FastifyReply => {
    const file = files?.get(name);
    if (!file)
      throw new CircusError('NOT_FOUND', files ? `unknown viewer file ${name.slice(0, 100)}` : 'the viewer is not built (run npm run build)');
    reply.header('Cache-Control', 'no-cache').header('ETag', file.etag).header('X-Content-Type-Options', 'nosniff');
    if (name === 'index.html') reply.header('Content-Security-Policy', CONTENT_SECURITY_POLICY).header('Referrer-Policy', 'no-referrer');
    if (request.headers['if-none-match'] === file.etag) return reply.code(304).send();
    return reply.type(file.type).send(file.body);
  };

  app.get('/', { config: { access: 'public', counter: 'viewer' } }, async (request, reply) => {
    const at = request.url.indexOf('?');
    const path = at < 0 ? request.url : request.url.slice(0, at);
    if (basePath !== '' && !path.endsWith('/')) return reply.redirect(`${path}/${at < 0 ? '' : request.url.slice(at)}`, 302);
    return send(request, reply, 'index.html');
  });
  app.get('/viewer/:file', { config: { access: 'public', counter: 'viewer' } }, async (request, reply) =>
    send(request, reply, (request.params as { file: string }).file),
  );
}
