/** Headers every answer carries, HTTP responses and WebSocket upgrades alike. */

export const EXPOSED_HEADERS =
  'X-Circus-Pixel-Size, X-Circus-Pixel-Columns, X-Circus-Pixel-Rows, X-Circus-Center, X-Circus-Instance, Warning, Content-Location';

/** The header naming the server (instanceName) on every response. */
export const INSTANCE_HEADER = 'X-Circus-Instance';

/** CORS headers every response carries (beside Access-Control-Allow-Origin), preflight answers included. */
export const CORS_HEADERS = {
  'Access-Control-Allow-Methods': 'GET',
  // Accept: DICOMweb clients send media types with parameters, which need a preflight.
  'Access-Control-Allow-Headers': 'Authorization, Accept',
  'Access-Control-Max-Age': '86400',
  'Access-Control-Expose-Headers': EXPOSED_HEADERS,
} as const;
