// The user: a JWT in localStorage `flash.jwt`; when missing or expired, the edge's dev endpoint
// mints one for a random uid kept in `flash.uid` (404 there means production: "log in").

const v = new URL(import.meta.url).search;
const { usable } = await import(`./state.js${v}`);
const { api, clock, page, store } = await import(`./page.js${v}`);

const TOKEN_KEY = "flash.jwt";
const UID_KEY = "flash.uid";

function randomUid() {
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  return `web-${Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("")}`;
}

/** A usable token in `page.token`, minted by the dev endpoint when needed; null when none. */
export async function ensureToken() {
  if (usable(page.token, clock.now())) return page.token;
  const saved = store.get(TOKEN_KEY);
  if (usable(saved, clock.now())) {
    page.token = saved;
    page.login = "ok";
    return page.token;
  }
  page.token = null;
  if (saved) store.remove(TOKEN_KEY);
  let uid = store.get(UID_KEY);
  if (!uid || !/^[A-Za-z0-9_-]{1,128}$/.test(uid)) {
    uid = randomUid();
    store.set(UID_KEY, uid);
  }
  const answer = await api("/api/dev/token", { method: "POST", body: { uid } });
  if (answer.status === 404) {
    page.login = "missing";
    return null;
  }
  if (answer.status !== 200 || !answer.data || typeof answer.data.token !== "string") {
    throw new Error(`dev token: ${answer.status}`);
  }
  page.token = answer.data.token;
  store.set(TOKEN_KEY, page.token);
  page.login = "ok";
  return page.token;
}

export function dropToken() {
  page.token = null;
  store.remove(TOKEN_KEY);
}
