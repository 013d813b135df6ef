// The user: who `GET /api/me` says the visitor is. In production the shop's login set an
// HttpOnly cookie the browser sends on its own (this script never sees the token); a logged-out
// visitor is offered "Log in to buy", a link to the shop's login (the page's `data-login`, from
// the edge's config) with the way back here. In dev mode (the page's `data-dev-login`) a JWT is
// kept in localStorage `flash.jwt`, minted when missing or expired by the edge's dev endpoint for
// a random uid kept in `flash.uid`, and sent in `Authorization`.
//
// A login that runs out while the page is open (its expiry passing, or a 401 from any call)
// sends the visitor to log in again; their order is kept (page.js) and `page.leaving` keeps the
// captcha's progress (captcha.js) for their return.

const v = new URL(import.meta.url).search;
const { usable } = await import(`./state.js${v}`);
const { loginDueIn, userFrom } = await import(`./login.js${v}`);
const { api, clock, loginLink, page, root, setResult, store } = await import(`./page.js${v}`);

const TOKEN_KEY = "flash.jwt";
const UID_KEY = "flash.uid";
const MAX_TIMER_MS = 2 ** 31 - 1;
const devLogin = !!root && root.dataset.devLogin === "true";

let expiryTimer = null;

function randomUid() {
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  return `web-${Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("")}`;
}

/** A usable dev token in `page.token`: the one kept, else one minted by the edge's dev endpoint. */
async function ensureDevToken() {
  const saved = store.get(TOKEN_KEY);
  if (usable(saved, clock.now())) {
    page.token = saved;
    return;
  }
  if (saved) store.remove(TOKEN_KEY);
  let uid = store.get(UID_KEY);
  if (!uid || !/^[A-Za-z0-9_-]{1,128}$/.test(uid)) {
    uid = randomUid();
    store.set(UID_KEY, uid);
  }
  const answer = await api("/api/dev/token", { method: "POST", body: { uid } });
  if (answer.status !== 200 || !answer.data || typeof answer.data.token !== "string") {
    throw new Error(`dev token: ${answer.status}`);
  }
  page.token = answer.data.token;
  store.set(TOKEN_KEY, page.token);
}

/** The login's expiry, watched: in production it sends the visitor to log in again. */
function watchExpiry() {
  clearTimeout(expiryTimer);
  if (devLogin || !page.user) return; // a dev token is minted again when needed
  const due = loginDueIn(page.user, clock.now());
  // setTimeout holds at most 2^31 - 1 ms; a login due later is looked at again then.
  expiryTimer = due > MAX_TIMER_MS ? setTimeout(watchExpiry, MAX_TIMER_MS) : setTimeout(() => relogin(), due);
}

/**
 * Whether the visitor is logged in, asking `GET /api/me` when not known or due again (with the
 * dev token when one is held, else the login's cookie); `page.login` says the outcome.
 */
export async function ensureUser() {
  if (page.user && loginDueIn(page.user, clock.now()) > 0 && (!page.token || usable(page.token, clock.now()))) return true;
  page.user = null;
  if (devLogin) await ensureDevToken();
  let me = await api("/api/me", { auth: true });
  if (me.status === 401 && devLogin) {
    // A kept dev token this edge does not take (its key changed): a new one.
    dropToken();
    await ensureDevToken();
    me = await api("/api/me", { auth: true });
  }
  page.user = userFrom(me);
  if (page.user) {
    page.login = "ok";
    watchExpiry();
    return true;
  }
  if (me.status !== 401) throw new Error(`me: ${me.status}`);
  page.login = "missing";
  return false;
}

export function dropToken() {
  page.token = null;
  page.user = null;
  store.remove(TOKEN_KEY);
}

/**
 * The login ran out (a 401, or its expiry): in production, to the shop's login and back, the
 * captcha's progress kept (`page.leaving`); in dev mode (or without a login URL) the token is
 * dropped and the visitor told, the next press logging in again.
 */
export function relogin() {
  const href = devLogin ? "" : loginLink();
  // Kept before the user is forgotten: the progress is kept under their uid.
  if (href) page.leaving();
  dropToken();
  if (!href) {
    page.login = devLogin ? "unknown" : "missing";
    setResult("Please log in again.", "error");
    return;
  }
  page.login = "leaving";
  setResult("Your login has expired. Taking you to log in again…", "info");
  location.assign(href);
}
