/** Headers every answer carries, HTTP responses and WebSocket upgrades alike. */

export const EXPOSED_HEADERS = 'X-Circus-Pixel-Size, X-Circus-Pixel-Columns, X-Circus-Pixel-Rows, X-Circus-Center, X-Circus-Instance';

/** The header naming the server (instanceName) on every response. */
export const INSTANCE_HEADER = 'X-Circus-Instance';

/** CORS headers every response carries (beside Access-Control-Allow-Origin), preflight answers included. */
export const CORS_HEADERS = {
  'Access-Control-Allow-Methods': 'GET',
  'Access-Control-Allow-Headers': 'Authorization',
  'Access-Control-Max-Age': '86400',
  'Access-Control-Expose-Headers': EXPOSED_HEADERS,
} as const;
