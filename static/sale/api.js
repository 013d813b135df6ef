// The edge's API as the page calls it: JSON in and out, the user's token when asked, a timeout,
// and no answer at all (refused, cut off, timed out) told apart from an answer.
// `fetch`, the token and the monotonic clock are passed in, so tests/js/api.test.js runs it
// against a real HTTP server of its own.

const REQUEST_TIMEOUT_MS = 15000;

/**
 * `{api, attempt}` over `fetchFn`. `api(path, {method, body, auth})` resolves to
 * `{status, data, headers, received}` (data: the JSON body or null) and rejects when no answer
 * came; `attempt` is the same with no answer as status 0.
 */
export function createApi({ fetchFn, token, monotonic, timeoutMs = REQUEST_TIMEOUT_MS }) {
  async function api(path, { method = "GET", body, auth = false } = {}) {
    const headers = { Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const jwt = auth ? token() : null;
    if (jwt) headers.Authorization = `Bearer ${jwt}`;
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), timeoutMs);
    try {
      const response = await fetchFn(path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        cache: "no-store",
        credentials: "same-origin",
        signal: abort.signal,
      });
      let data = null;
      try {
        data = await response.json();
      } catch {
        data = null;
      }
      return { status: response.status, data, headers: response.headers, received: monotonic() };
    } finally {
      clearTimeout(timer);
    }
  }

  async function attempt(path, options) {
    try {
      return await api(path, options);
    } catch {
      return { status: 0, data: null, headers: null, received: monotonic() };
    }
  }

  return { api, attempt };
}

/** The answer's Retry-After in whole seconds (rounded up), 1 when it has none. */
export function retryAfterSeconds(headers) {
  const raw = headers && headers.get("Retry-After");
  const seconds = raw === null || raw === undefined ? NaN : Number(raw);
  return Number.isFinite(seconds) && seconds >= 0 ? Math.ceil(seconds) : 1;
}

/** The shop away for a moment: no answer, a 502, 503 (but captcha_busy, retried on its own) or 504. */
export function unavailable(answer) {
  const code = answer.data && answer.data.error;
  return answer.status === 0 || answer.status === 502 || answer.status === 504 || (answer.status === 503 && code !== "captcha_busy");
}
