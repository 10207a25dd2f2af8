// HTTP plumbing shared by the session (token refresh) and the REST client: JSON in and out,
// and the error shape of docs/api.md turned into an ApiError.

// ApiError carries the server's {error: {code, message, details}}; status 0 with code
// "network" means the request never got an answer (offline, DNS, CORS, server down).
export class ApiError extends Error {
  constructor(status, code, message, details = {}, retryAfter = 0) {
    super(message || code);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.details = details;
    this.retryAfter = retryAfter; // seconds, from Retry-After on 429
  }

  get network() { return this.status === 0; }
}

const TIMEOUT_MS = 15_000;

// An upload may take minutes on a slow link.
const UPLOAD_TIMEOUT_MS = 600_000;

// requestJSON sends body as JSON, or a FormData as multipart/form-data (the browser writes
// that Content-Type with its boundary).
export async function requestJSON(method, url, { body, token, signal } = {}) {
  const headers = { Accept: 'application/json' };
  const form = typeof FormData !== 'undefined' && body instanceof FormData;
  if (body !== undefined && !form) headers['Content-Type'] = 'application/json';
  if (token) headers.Authorization = `Bearer ${token}`;
  let res;
  try {
    res = await fetch(url, {
      method,
      headers,
      body: body === undefined ? undefined : form ? body : JSON.stringify(body),
      signal: signal ?? AbortSignal.timeout(form ? UPLOAD_TIMEOUT_MS : TIMEOUT_MS),
      credentials: 'omit', // bearer tokens only, no cookies
    });
  } catch (err) {
    throw new ApiError(0, 'network', `Network error: ${err.message}`);
  }
  if (res.status === 204) return null;
  let data = null;
  try {
    data = await res.json();
  } catch {
    // An answer that is not JSON (a proxy error page, say).
  }
  if (!res.ok) {
    const e = data?.error ?? {};
    throw new ApiError(res.status, e.code ?? `http_${res.status}`, e.message ?? res.statusText,
      e.details ?? {}, Number(res.headers.get('Retry-After')) || 0);
  }
  return data;
}

export function postJSON(url, body, opts) {
  return requestJSON('POST', url, { ...opts, body });
}
