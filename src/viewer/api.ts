/**
 * The viewer's client of the server's public API. Every URL is relative to the page, so the
 * viewer works wherever it is served (`/`, or `/rs/` with `--base-path /rs`). A token, when
 * the page was opened with one, goes in the Authorization header, so image URLs (the cache's
 * keys) do not carry it. Errors become ApiError with the server's own message.
 */

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

/** An image of `/mpr` or `/oblique`, decoded, with what its X-Circus-* headers say. */
export interface LoadedImage {
  /** The API URL (relative to the page) it was fetched from. */
  readonly url: string;
  readonly bitmap: ImageBitmap;
  readonly width: number;
  readonly height: number;
  /** Pixel width and height in mm (X-Circus-Pixel-Size: two numbers for /mpr, one for /oblique). */
  readonly pixelSize: [number, number];
  /** X-Circus-Center (oblique): the cursor's column and row in the image. */
  readonly center: [number, number] | null;
  /** Bytes the decoded image holds (for the cache's budget). */
  readonly bytes: number;
}

export const isAbort = (err: unknown): boolean => err instanceof DOMException && err.name === 'AbortError';

export class Api {
  /** The folder the page is served from: API paths are resolved against it. */
  readonly base: URL;

  constructor(
    pageUrl: string,
    private readonly token: string | null,
  ) {
    this.base = new URL('.', pageUrl);
  }

  /** A relative API URL with its parameters in the order given (so equal requests have equal URLs). */
  static path(action: string, params: Record<string, string | number>): string {
    const query = Object.entries(params)
      .map(([k, v]) => `${k}=${encodeURIComponent(String(v)).replace(/%2C/g, ',')}`)
      .join('&');
    return query ? `${action}?${query}` : action;
  }

  private async fetch(path: string, signal?: AbortSignal, cache: RequestCache = 'default'): Promise<Response> {
    const headers: Record<string, string> = {};
    if (this.token) headers.Authorization = `Bearer ${this.token}`;
    let res: Response;
    try {
      res = await fetch(new URL(path, this.base), { headers, signal, cache });
    } catch (err) {
      if (isAbort(err)) throw err;
      throw new ApiError(0, 'the server cannot be reached');
    }
    if (!res.ok) throw new ApiError(res.status, await errorMessage(res));
    return res;
  }

  async json<T>(path: string, signal?: AbortSignal): Promise<T> {
    return (await (await this.fetch(path, signal)).json()) as T;
  }

  /** An image, decoded. The page keeps decoded images itself, so the browser's HTTP cache is not written. */
  async image(path: string, signal?: AbortSignal): Promise<LoadedImage> {
    const res = await this.fetch(path, signal, 'no-store');
    const blob = await res.blob();
    const bitmap = await createImageBitmap(blob, { colorSpaceConversion: 'none', premultiplyAlpha: 'none' });
    if (signal?.aborted) {
      bitmap.close();
      throw signal.reason instanceof DOMException ? signal.reason : new DOMException('aborted', 'AbortError');
    }
    const size = numbers(res.headers.get('X-Circus-Pixel-Size'));
    const center = numbers(res.headers.get('X-Circus-Center'));
    return {
      url: path,
      bitmap,
      width: bitmap.width,
      height: bitmap.height,
      pixelSize: size.length >= 2 ? [size[0], size[1]] : size.length === 1 ? [size[0], size[0]] : [1, 1],
      center: center.length === 2 ? [center[0], center[1]] : null,
      bytes: bitmap.width * bitmap.height * 4,
    };
  }
}

function numbers(header: string | null): number[] {
  if (!header) return [];
  const values = header.split(',').map(Number);
  return values.every(Number.isFinite) ? values : [];
}

/** The message of an error answer: the JSON body's `message` (both APIs' error bodies have one), else the status text. */
async function errorMessage(res: Response): Promise<string> {
  try {
    const body = (await res.json()) as { message?: unknown };
    if (typeof body.message === 'string' && body.message !== '') return body.message;
  } catch {
    // Not JSON: the status says it.
  }
  return `${res.status} ${res.statusText}`.trim();
}
