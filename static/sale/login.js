// The visitor's login as plain data: who `GET /api/me` says they are, when their login is due
// again (its expiry, a little before), the shop's login link with the way back to this page, and
// the captcha progress kept in sessionStorage across the trip to the login and back. No DOM and
// no requests here: tests/js/login.test.js drives it all.

/** A login this close to its expiry (server ms) is renewed before anything is sent with it. */
export const EXPIRY_MARGIN_MS = 10000;

/** `{uid, expiresAt}` (server ms) from a `GET /api/me` answer; null when it names nobody. */
export function userFrom(answer) {
  const data = answer && answer.status === 200 ? answer.data : null;
  if (!data || typeof data.uid !== "string" || data.uid === "" || !Number.isFinite(data.expires_at)) return null;
  return { uid: data.uid, expiresAt: data.expires_at * 1000 };
}

/** How long `user` is good for at server time `now` before a new login is due (0: due now). */
export function loginDueIn(user, now) {
  if (!user) return 0;
  return Math.max(0, user.expiresAt - EXPIRY_MARGIN_MS - now);
}

/**
 * The shop's login page (`loginUrl`, from the page's `data-login`) with `return_to=<pageUrl>`;
 * "" when there is none, or it is not an http(s) URL.
 */
export function loginHref(loginUrl, pageUrl) {
  let url;
  try {
    url = new URL(loginUrl);
  } catch {
    return "";
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") return "";
  url.searchParams.set("return_to", pageUrl);
  return url.href;
}

/**
 * Keeps the captcha progress of `uid` under `key` of `store` (sessionStorage) for the trip to
 * the login: `pass` ({token, expiresAt}) earned and not spent, `solution` ({body, expiresAt})
 * solved and not traded yet. Nothing is kept when there is neither.
 */
export function keepProgress(store, key, uid, { pass = null, solution = null }) {
  if (!pass && !solution) {
    store.remove(key);
    return;
  }
  store.set(key, JSON.stringify({ uid, pass, solution }));
}

/**
 * The progress kept under `key`, taken (it is used once): `{pass, solution}`, each null when
 * missing, another user's, or with less than `marginMs` of its life left at server time `now`.
 */
export function takeProgress(store, key, uid, now, marginMs) {
  const raw = store.get(key);
  store.remove(key);
  let kept = null;
  try {
    kept = JSON.parse(raw || "null");
  } catch {
    kept = null;
  }
  const alive = (part) =>
    part && typeof part === "object" && Number.isFinite(part.expiresAt) && part.expiresAt - now > marginMs ? part : null;
  if (!kept || typeof kept !== "object" || kept.uid !== uid) return { pass: null, solution: null };
  const pass = alive(kept.pass);
  const solution = alive(kept.solution);
  return {
    pass: pass && typeof pass.token === "string" ? { token: pass.token, expiresAt: pass.expiresAt } : null,
    solution: solution && solution.body && typeof solution.body === "object" ? { body: solution.body, expiresAt: solution.expiresAt } : null,
  };
}
