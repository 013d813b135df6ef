// The page itself: its elements, the state shared by the other modules (one `page` object, not
// variables spread over a closure), the stored order, and the render that shows it all: the
// countdown, the hold's time left, the words for screen readers, the Buy button and the focus.
//
// No inline script or style anywhere (the CSP forbids them): state shows through text, classes
// and the `hidden` and `disabled` attributes.

const v = new URL(import.meta.url).search;
const { createClock, formatLeft, holdLeft, parseTime, spoken, stateText } = await import(`./time.js${v}`);
const { claims, createStore, effectiveState, saleFrom } = await import(`./state.js${v}`);
const { createApi } = await import(`./api.js${v}`);
const { loginHref } = await import(`./login.js${v}`);

const SOLD_OUT_TEXT = "Sold out. If a unit comes back, this page will offer it.";

export const root = document.getElementById("sale");
const byId = (id) => document.getElementById(id);
export const ui = {
  panel: byId("panel"),
  countdown: byId("countdown"),
  announce: byId("announce"),
  buy: byId("buy"),
  login: byId("login"),
  captcha: byId("captcha"),
  bar: byId("pow-bar"),
  progress: byId("pow-progress"),
  imageForm: byId("image-captcha"),
  image: byId("captcha-image"),
  audio: byId("captcha-audio"),
  answer: byId("captcha-answer"),
  result: byId("result"),
  hold: byId("hold"),
  pay: byId("pay"),
};

export const sale = saleFrom(root ? root.dataset : {});
export const store = createStore(() => window.localStorage);
/** What survives the trip to the shop's login and back in this tab (the captcha's progress). */
export const tabStore = createStore(() => window.sessionStorage);
export const clock = createClock(() => performance.now(), () => Date.now());

/** What the modules share; each field says who writes it. */
export const page = {
  busy: null, // the button's label while a purchase runs (purchase.js)
  retryAt: 0, // performance.now() before which a 429 keeps the button off (purchase.js)
  login: "unknown", // "ok", "missing" (logged out), "leaving" (to the shop's login) (user.js)
  user: null, // who GET /api/me says the visitor is: {uid, expiresAt} (server ms) (user.js)
  token: null, // the dev token, in dev mode only; production's is a cookie never seen here (user.js)
  hold: null, // the live hold shown: {order, already, payBy} (payBy in server ms) (order.js)
  statusTrouble: false, // the last status poll failed: said, and what was known is kept (poll.js)
  holdUp: () => {}, // called at each render once the hold's time is up (order.js sets it)
  leaving: () => {}, // called before the page goes to the shop's login (captcha.js sets it)
};

export const { api, attempt } = createApi({
  fetchFn: (...args) => fetch(...args),
  token: () => page.token,
  monotonic: () => performance.now(),
});

const orderKey = `flash.order.${sale.id}`;
let announced = "";
let tickTimer = null;

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export function setText(el, text) {
  if (el.textContent !== text) el.textContent = text;
}

/**
 * The result line; `kind` is success, error or info (its colours). A `kept` text (what became
 * of the visitor's order) stays when the sale closes or re-opens, until the next purchase.
 */
export function setResult(text, kind, kept = false) {
  delete ui.result.dataset.closed; // which closed state it tells, set by render()
  if (kept) ui.result.dataset.kept = "true";
  else delete ui.result.dataset.kept;
  ui.result.className = kind ? `result is-${kind}` : "result";
  setText(ui.result, text);
}

/**
 * Gives the focus back when what had it was hidden or disabled (the captcha's box, the busy Buy
 * button, the paid Pay button): to the enabled Pay or Buy button, else to the result (or the
 * countdown when there is none), so keyboard and screen-reader users stay where things happen.
 */
export function keepFocus() {
  const active = document.activeElement;
  const lost = !active || active === document.body || active.disabled || active.closest("[hidden]") !== null;
  if (!lost) return;
  const button = [ui.pay, ui.buy].find((b) => b && !b.hidden && !b.disabled);
  const target = button || (ui.result.textContent ? ui.result : ui.countdown);
  target.focus();
}

export const currentState = () => effectiveState(sale, clock.now());

/** The shop's login with the way back to this page; "" when the edge names none. */
export function loginLink() {
  return loginHref((root && root.dataset.login) || "", location.href);
}

/** The user's id: the one GET /api/me named, else the dev token's subject, else the one kept for the dev endpoint. */
export function currentUid() {
  if (page.user) return page.user.uid;
  const c = page.token ? claims(page.token) : null;
  if (c && typeof c.sub === "string") return c.sub;
  return store.get("flash.uid");
}

/** The order remembered for this sale and this user, else null. */
export function savedOrder() {
  try {
    const saved = JSON.parse(store.get(orderKey) || "null");
    return saved && saved.uid === currentUid() ? saved : null;
  } catch {
    return null;
  }
}

export function remember(order) {
  store.set(orderKey, JSON.stringify({ uid: currentUid(), order_id: order.order_id ?? null, confirmed: order.confirmed !== false }));
}

export function forgetOrder() {
  store.remove(orderKey);
}

/** The time left to pay, under the result; at its end `page.holdUp` reads the order again. */
function renderHold(now) {
  const hold = page.hold;
  if (!hold || !savedOrder()) {
    ui.hold.hidden = true;
    setText(ui.hold, "");
    return null;
  }
  const left = hold.payBy - now;
  ui.hold.hidden = false;
  if (left > 0) {
    setText(ui.hold, `Pay within ${holdLeft(left)}`);
    ui.hold.className = left <= 60000 ? "hold is-ending" : "hold";
  } else {
    setText(ui.hold, "The time to pay is up.");
    ui.hold.className = "hold is-ending";
    ui.pay.disabled = true;
    page.holdUp();
  }
  return left;
}

function render() {
  const state = currentState();
  const now = clock.now();
  let text;
  if (state === "upcoming" && sale.startsAt !== null) {
    text = `Starts in ${formatLeft(sale.startsAt - now)}`;
  } else if (state === "live") {
    const left = sale.remaining !== null && sale.remaining > 0 ? ` ${sale.remaining} left.` : "";
    const ends = sale.endsAt !== null ? ` Ends in ${formatLeft(sale.endsAt - now)}.` : "";
    text = `The sale is live.${left}${ends}`;
    if (page.statusTrouble) text += " (Checking the sale again…)";
  } else {
    text = stateText(state);
  }
  const order = savedOrder();
  setText(ui.countdown, text);
  // Closed in red, but not for the visitor who has an order in it.
  ui.countdown.className =
    state === "live" ? "countdown is-live" : state === "upcoming" || order ? "countdown" : "countdown is-closed";
  const holdMs = renderHold(now);
  const words = spoken(state, sale.startsAt === null ? 0 : sale.startsAt - now, holdMs);
  if (words !== announced) {
    announced = words;
    setText(ui.announce, words);
  }

  const wait = Math.ceil((page.retryAt - performance.now()) / 1000);
  let label = "Buy now";
  let enabled = false;
  if (page.busy) label = page.busy;
  else if (order) label = "Bought";
  else if (state === "sold_out") label = "Sold out";
  else if (state === "ended") label = "Sale ended";
  else if (state === "unknown") label = "Not available";
  else if (state === "upcoming") label = "Buy now";
  else if (page.login === "missing" || page.login === "leaving") label = "Buy now";
  else if (wait > 0) label = `Wait ${wait} s`;
  else enabled = true;
  setText(ui.buy, label);
  ui.buy.disabled = !enabled;
  // Logged out in production: "Log in to buy", to the shop's login and back, instead of Buy.
  const link = page.login === "missing" && !order && (state === "live" || state === "upcoming") ? loginLink() : "";
  if (ui.login) {
    ui.login.hidden = link === "";
    if (link && ui.login.href !== link) ui.login.href = link;
  }
  ui.buy.hidden = link !== "";
  if (page.busy) ui.panel.setAttribute("aria-busy", "true");
  else ui.panel.removeAttribute("aria-busy");

  const closed = { sold_out: SOLD_OUT_TEXT, ended: "This sale has ended." }[state];
  if (!page.busy && closed && !order && !ui.result.dataset.kept && ui.result.dataset.closed !== state) {
    setResult(closed, "error");
    ui.result.dataset.closed = state;
  }
}

/**
 * Re-renders at each whole second of the server's clock, at each whole second before a hold's
 * end (its time left ticks on its own seconds), and sooner after any change.
 */
function tick() {
  render();
  const now = clock.now();
  let next = 1000 - (Math.floor(now) % 1000);
  const hold = page.hold;
  if (hold && hold.payBy > now) next = Math.min(next, (hold.payBy - now) % 1000 || 1000);
  tickTimer = setTimeout(tick, Math.max(50, next + 5));
}

export function refresh() {
  clearTimeout(tickTimer);
  tick();
}

/** A purchase step under way: `label` on the button, or null when none runs. */
export function working(label) {
  page.busy = label;
  refresh();
}

/** The page's own server time: read when the page's answer started to arrive. */
export function startClock() {
  const nav = performance.getEntriesByType ? performance.getEntriesByType("navigation")[0] : null;
  const at = nav && nav.responseStart > 0 ? nav.responseStart : performance.now();
  clock.add(parseTime(root.dataset.serverTime), at);
}
