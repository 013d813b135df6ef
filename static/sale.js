/*
 * The sale page's script. The page (edge/templates/sale.html) is the same for everyone and
 * cached; this script makes it the visitor's:
 *
 * - the clock: a countdown on the server's time. Each status answer gives lower bounds of the
 *   server clock minus the browser's monotonic clock (server_time was read before the answer
 *   left, a cached answer is older still, and its Date header is rounded down); the newest few
 *   are kept and the largest used, so the button never enables before the start, and neither the
 *   browser's wall clock nor a cached answer can move it;
 * - the status: `GET /api/sales/ID/status` every 0.7 s (±30 % jitter; nginx's micro-cache keeps
 *   an answer 1 to 2 s, so a sell-out shows about 2 s after it: the cache's share plus the wait
 *   for the next poll; every poll but one a second is a cache hit; slower when sold
 *   out or hidden, backing off (2 s doubling to 10 s, jittered) on a 404, a 5xx or a network error, which the
 *   page shows as a passing problem and never gives up on, stopped once the sale has ended); an expired
 *   copy from a cache is followed by one quick second look, as the cache is refreshing then;
 * - the user: a JWT in localStorage `flash.jwt`; when missing or expired, the edge's dev endpoint
 *   mints one for a random uid kept in `flash.uid` (404 there means production: "log in");
 * - the purchase: captcha challenge, proof of work in static/pow-worker.js (plus the image or
 *   audio answer when asked: both fetched with the user's token through the challenge's handle,
 *   shown from blob: URLs), pass token, buy; every answer is told in words, and an order is
 *   remembered per sale (`flash.order.ID`) so a reload still shows it. What only asks for a
 *   moment is retried without a word: a challenge refused because this edge's clock has not
 *   reached the start yet (409 sale_not_started) or every image is in use (503 captcha_busy),
 *   and a pass refused because the captcha got harder since it was earned (403
 *   pass_level_too_low: solved again at the new level);
 * - the shop away (a 502, 503 or 504 to the captcha's solution or the buy, or no answer at all:
 *   Redis or an origin restarting): told in words ("trying again in N s"), and tried again by
 *   itself after the answer's Retry-After, never sooner (plus up to half again at random, so a
 *   crowd does not come back in step), a few times, then Buy is the visitor's again. What was
 *   done is kept: a solved check refused for the store's absence is sent again (it was not
 *   spent), and so is a pass the edge refused before spending it (503 limits_unavailable); a
 *   pass the edge had admitted (any other such answer) is spent, and a new check is solved;
 * - the payment: "Pay now" goes to the shop's checkout (its URL from the page's template), or in
 *   dev mode asks the edge to sign the payment service's webhook; back from the checkout, the
 *   order is read again until the service's webhook has paid it;
 * - the hold: an order is a hold until its expires_at; the time left to pay ticks under the
 *   result, and when it runs out the order is read again, so a lapsed hold is told (the unit
 *   went back to the sale) and the button offers the sale again, without a reload;
 * - the focus: whatever a purchase or a payment hid or disabled gives the focus to the enabled
 *   Pay or Buy button, else to the result, never to the page's body.
 *
 * No inline script or style anywhere (the CSP forbids them): state shows through text, classes
 * and the `hidden` and `disabled` attributes.
 */
(() => {
  "use strict";

  const POLL_MS = 700;
  const SLOW_POLL_MS = 5000;
  const SOON_POLL_MS = 250;
  // nginx keeps a `max-age=1` answer until the next whole second after it expires: up to 2 s.
  const STALE_AFTER_MS = 2000;
  const JITTER = 0.3;
  const FIRST_BACKOFF_MS = 2000;
  const MAX_BACKOFF_MS = 10000;
  const CLOCK_SAMPLES = 20;
  const TOKEN_MARGIN_MS = 60000;
  const REQUEST_TIMEOUT_MS = 15000;
  const PROGRESS_ANNOUNCE_MS = 2000;
  // A hold past its expires_at is cancelled by the origin's sweeper within moments: the first
  // look again after this, then twice as long each time (up to MAX_BACKOFF_MS).
  const LAPSE_RETRY_MS = 250;
  const SOLD_OUT_TEXT = "Sold out. If a unit comes back, this page will offer it.";
  const TOKEN_KEY = "flash.jwt";
  const UID_KEY = "flash.uid";
  // Retries of a purchase step that only asks for a moment (see above), then it is told.
  const MAX_QUIET_RETRIES = 3;
  const MAX_QUIET_WAIT_MS = 5000;
  // The shop away (see above): tries again after Retry-After (at least BUSY_MIN_WAIT_MS, no
  // answer at all counting as FIRST_BACKOFF_MS), times 1 to 1 + BUSY_JITTER; at most
  // BUSY_RETRIES times, and not at all when asked to wait longer than BUSY_MAX_WAIT_MS.
  const BUSY_RETRIES = 4;
  const BUSY_MIN_WAIT_MS = 1000;
  const BUSY_MAX_WAIT_MS = 10000;
  const BUSY_JITTER = 0.5;
  // A kept pass is used again only with this much of its life left.
  const PASS_MARGIN_MS = 5000;

  const root = document.getElementById("sale");
  if (!root) return;
  const byId = (id) => document.getElementById(id);
  const ui = {
    panel: byId("panel"),
    countdown: byId("countdown"),
    announce: byId("announce"),
    buy: byId("buy"),
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

  const parseTime = (text) => {
    const ms = Date.parse(text || "");
    return Number.isFinite(ms) ? ms : null;
  };

  const sale = {
    id: Number(root.dataset.sale),
    state: root.dataset.state || "upcoming",
    startsAt: parseTime(root.dataset.startsAt),
    endsAt: parseTime(root.dataset.endsAt),
    remaining: null,
    // server_time of the newest status applied: an older (cached) answer must not undo it.
    asOf: -Infinity,
  };
  const orderKey = `flash.order.${sale.id}`;

  /* --- storage: localStorage, or memory when the browser refuses it --- */

  const memory = new Map();
  const store = {
    get(key) {
      if (memory.has(key)) return memory.get(key);
      try {
        return window.localStorage.getItem(key);
      } catch {
        return null;
      }
    },
    set(key, value) {
      try {
        window.localStorage.setItem(key, value);
        memory.delete(key);
      } catch {
        memory.set(key, value);
      }
    },
    remove(key) {
      memory.delete(key);
      try {
        window.localStorage.removeItem(key);
      } catch {
        /* nothing stored there */
      }
    },
  };

  /* --- the server's clock --- */

  const clock = {
    samples: [],
    base: null,
    /** A server time (ms) read no later than performance.now() was `at`. */
    add(serverMs, at) {
      if (serverMs === null) return;
      this.samples.push(serverMs - at);
      if (this.samples.length > CLOCK_SAMPLES) this.samples.shift();
      this.base = Math.max(...this.samples);
    },
    now() {
      return this.base === null ? Date.now() : performance.now() + this.base;
    },
  };
  {
    const nav = performance.getEntriesByType ? performance.getEntriesByType("navigation")[0] : null;
    const at = nav && nav.responseStart > 0 ? nav.responseStart : performance.now();
    clock.add(parseTime(root.dataset.serverTime), at);
  }

  /* --- what the page shows --- */

  let busy = null; // the button's label while a purchase runs
  let retryAt = 0; // performance.now() before which a 429 keeps the button off
  let login = "unknown"; // "ok", "missing" (no dev endpoint: production)
  let token = null;
  let announced = "";
  let tickTimer = null;
  // The live hold this page shows: {order, already, payBy} (payBy in server ms), else null.
  let hold = null;

  function setText(el, text) {
    if (el.textContent !== text) el.textContent = text;
  }

  /**
   * The result line; `kind` is success, error or info (its colours). A `kept` text (what became
   * of the visitor's order) stays when the sale closes or re-opens, until the next purchase.
   */
  function setResult(text, kind, kept = false) {
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
  function keepFocus() {
    const active = document.activeElement;
    const lost = !active || active === document.body || active.disabled || active.closest("[hidden]") !== null;
    if (!lost) return;
    const button = [ui.pay, ui.buy].find((b) => b && !b.hidden && !b.disabled);
    const target = button || (ui.result.textContent ? ui.result : ui.countdown);
    target.focus();
  }

  function effectiveState() {
    const now = clock.now();
    if (sale.state === "ended" || (sale.endsAt !== null && now >= sale.endsAt)) return "ended";
    if (sale.state === "sold_out" || sale.state === "unknown") return sale.state;
    if (sale.state === "upcoming" && sale.startsAt !== null && now >= sale.startsAt) return "live";
    return sale.state;
  }

  function formatLeft(ms) {
    const total = Math.max(0, Math.ceil(ms / 1000));
    const days = Math.floor(total / 86400);
    const hours = Math.floor((total % 86400) / 3600);
    const minutes = Math.floor((total % 3600) / 60);
    const seconds = total % 60;
    const two = (n) => String(n).padStart(2, "0");
    const clockText = hours > 0 || days > 0 ? `${hours}:${two(minutes)}:${two(seconds)}` : `${two(minutes)}:${two(seconds)}`;
    return days > 0 ? `${days} d ${clockText}` : clockText;
  }

  /**
   * A hold's time left as people say it: 4:59, or 1:04:59 past an hour. Whole seconds rounded
   * down: the page's clock is never ahead of the server's, so it must not promise a second more.
   */
  function holdLeft(ms) {
    const total = Math.max(0, Math.floor(ms / 1000));
    const hours = Math.floor(total / 3600);
    const minutes = Math.floor((total % 3600) / 60);
    const seconds = total % 60;
    const two = (n) => String(n).padStart(2, "0");
    return hours > 0 ? `${hours}:${two(minutes)}:${two(seconds)}` : `${minutes}:${two(seconds)}`;
  }

  /**
   * Words for a screen reader: said at each state change, each minute, and at 30 and 10 s before
   * the start; and when a hold has a minute, then 10 s, left to pay.
   */
  function spoken(state, left, holdMs) {
    if (holdMs !== null && holdMs > 0 && holdMs <= 10000) return "Less than 10 seconds left to pay.";
    if (holdMs !== null && holdMs > 0 && holdMs <= 60000) return "Less than a minute left to pay.";
    if (state !== "upcoming") return stateText(state);
    const s = Math.max(0, Math.ceil(left / 1000));
    if (s > 2 * 86400) return `The sale starts in ${Math.round(s / 86400)} days.`;
    if (s > 2 * 3600) return `The sale starts in about ${Math.round(s / 3600)} hours.`;
    if (s > 60) return `The sale starts in about ${Math.ceil(s / 60)} minutes.`;
    if (s > 30) return "The sale starts in less than a minute.";
    if (s > 10) return "The sale starts in 30 seconds.";
    return "The sale starts in 10 seconds.";
  }

  function stateText(state) {
    switch (state) {
      case "live":
        return "The sale is live.";
      case "sold_out":
        return "Sold out.";
      case "ended":
        return "This sale has ended.";
      case "unknown":
        return "This sale does not exist.";
      default:
        return "The sale has not started yet.";
    }
  }

  function savedOrder() {
    try {
      const saved = JSON.parse(store.get(orderKey) || "null");
      return saved && saved.uid === currentUid() ? saved : null;
    } catch {
      return null;
    }
  }

  function forgetOrder() {
    store.remove(orderKey);
  }

  function clockTime(ms) {
    try {
      return new Intl.DateTimeFormat(undefined, { timeStyle: "short" }).format(new Date(ms));
    } catch {
      return new Date(ms).toISOString();
    }
  }

  /** `details` (from GET /api/orders/ID) adds the time to pay by, when the edge could tell. */
  function orderText(order, already, details) {
    if (order.order_id === null || order.order_id === undefined) {
      return "You got it! Your order is being confirmed.";
    }
    const lead = already ? `You already have order ${order.order_id}.` : `You got it: order ${order.order_id}.`;
    if (details && details.status === "paid") return `${lead} It is paid.`;
    if (details && details.status === "pending" && details.payBy !== null) {
      // The hold ends at the server's expires_at; shown on the visitor's own clock.
      return `${lead} Pay before ${clockTime(details.payBy - clock.now() + Date.now())} to keep it.`;
    }
    return order.confirmed === false ? `${lead} It is being confirmed.` : `${lead} Pay for it to keep it.`;
  }

  /**
   * The order's state from the edge: {status, payBy, cancelReason} (payBy in server ms), null if
   * unknown.
   */
  async function orderDetails(orderId) {
    if (orderId === null || orderId === undefined || !token) return null;
    try {
      const answer = await api(`/api/orders/${encodeURIComponent(orderId)}`, { auth: true });
      if (answer.status !== 200 || !answer.data || typeof answer.data.status !== "string") return null;
      const seconds = answer.data.hold_remaining_seconds;
      const payBy =
        parseTime(answer.data.expires_at) ?? (Number.isFinite(seconds) ? clock.now() + seconds * 1000 : null);
      const cancelReason = typeof answer.data.cancel_reason === "string" ? answer.data.cancel_reason : null;
      return { status: answer.data.status, payBy, cancelReason };
    } catch {
      return null;
    }
  }

  // How "Pay now" pays, from the page's template (the edge's config, never a request): the
  // shop's checkout URL ({order} and {return} filled in here), else dev mode's POST /api/dev/pay,
  // which signs the payment service's webhook on the edge. The order is paid only when the
  // payment service's signed webhook reaches the origin; back from the checkout, the page reads
  // the order again until it is no longer pending.
  const checkoutUrl = /^https?:\/\//.test(root.dataset.checkout || "") ? root.dataset.checkout : "";
  const devPay = root.dataset.devPay === "true";
  const CHECKOUT_WAIT_MS = 60000;

  /** The pay button: shown while the order is a live hold and there is a way to pay. */
  function showPay(order, details) {
    if (!ui.pay) return;
    const payable = details && details.status === "pending" && (checkoutUrl !== "" || devPay);
    ui.pay.hidden = !payable;
    ui.pay.disabled = !payable;
    ui.pay.dataset.order = payable ? String(order.order_id) : "";
  }

  /** Pays the held order: to the shop's checkout, or in dev mode through the signed dev path. */
  async function pay() {
    const orderId = ui.pay.dataset.order;
    if (!orderId) return;
    if (checkoutUrl) {
      store.set(`flash.checkout.${orderId}`, String(Date.now()));
      const back = `${location.origin}/sale/${encodeURIComponent(sale.id)}`;
      location.assign(
        checkoutUrl.split("{order}").join(encodeURIComponent(orderId)).split("{return}").join(encodeURIComponent(back)),
      );
      return;
    }
    ui.pay.disabled = true;
    ui.pay.setAttribute("aria-busy", "true");
    setResult("Paying…", "info");
    try {
      const answer = await api("/api/dev/pay", {
        method: "POST",
        body: { order_id: Number(orderId) },
        auth: true,
      });
      const code = answer.data && answer.data.error;
      if (answer.status === 200) {
        ui.pay.hidden = true;
        hold = null;
        setResult(`Paid: order ${orderId} is yours.`, "success");
      } else if (code === "hold_expired") {
        ui.pay.hidden = true;
        hold = null;
        forgetOrder();
        setResult("The hold ended before the payment: you will be refunded. The unit went back to the sale.", "error", true);
        refresh();
      } else if (answer.status === 401) {
        dropToken();
        setResult("Please log in again.", "error");
        ui.pay.disabled = false;
      } else if (answer.status === 409) {
        ui.pay.hidden = true;
        hold = null;
        setResult(`Order ${orderId} cannot be paid any more (${answer.data.status || "not a hold"}).`, "error");
      } else {
        setResult("The shop is busy, try again in a moment.", "error");
        ui.pay.disabled = false;
      }
    } catch {
      setResult("The shop is busy, try again in a moment.", "error");
      ui.pay.disabled = false;
    } finally {
      ui.pay.removeAttribute("aria-busy");
      refresh();
      keepFocus();
    }
  }

  /**
   * Back from the shop's checkout: the payment service's webhook may come a little after the
   * buyer. Reads the order again (doubling waits) until it is no longer pending, for a minute.
   */
  async function awaitCheckout(order, already) {
    const key = `flash.checkout.${order.order_id}`;
    const left = Number(store.get(key) || 0) + CHECKOUT_WAIT_MS - Date.now();
    if (!(left > 0)) {
      store.remove(key);
      return;
    }
    setResult(`Waiting for the payment of order ${order.order_id} to be confirmed…`, "info");
    let wait = LAPSE_RETRY_MS;
    const until = Date.now() + left;
    while (Date.now() < until) {
      await new Promise((resolve) => setTimeout(resolve, wait));
      wait = Math.min(MAX_BACKOFF_MS, wait * 2);
      const details = await orderDetails(order.order_id);
      if (details && details.status !== "pending") {
        store.remove(key);
        applyOrder(order, already, details, false);
        return;
      }
    }
    store.remove(key);
    applyOrder(order, already, await orderDetails(order.order_id), false);
  }

  /** Shows the remembered `order` as it stands now; forgets it once cancelled or rejected. */
  async function showOrder(order, already) {
    setResult(orderText(order, already), "success");
    const details = await orderDetails(order.order_id);
    applyOrder(order, already, details, false);
    if (details && details.status === "pending" && store.get(`flash.checkout.${order.order_id}`)) {
      awaitCheckout(order, already);
    }
  }

  /**
   * Shows what the edge said of `order` (`details`, null when it could not tell). `lapsed`: this
   * page watched the hold run out, so the unit it held went back to the sale just now.
   */
  function applyOrder(order, already, details, lapsed) {
    const saved = savedOrder();
    if (saved === null || saved.order_id !== order.order_id) return;
    if (details && (details.status === "cancelled" || details.status === "rejected")) {
      hold = null;
      showPay(order, null);
      forgetOrder();
      let text = `Order ${order.order_id} was not accepted.`;
      if (details.status === "cancelled") {
        text =
          details.cancelReason === "expired"
            ? `Order ${order.order_id} was cancelled: the hold ended before it was paid, and the unit went back to the sale.`
            : `Order ${order.order_id} was cancelled.`;
      }
      if (lapsed && details.status === "cancelled" && sale.state === "sold_out") {
        // First-hand: the unit this page held is back, so an older (cached) sold-out status must
        // not hide it; a newer one (someone bought it since) still does.
        sale.state = "live";
        sale.remaining = null;
        sale.asOf = Math.max(sale.asOf, clock.now());
      }
      setResult(text, "info", true);
      refresh();
      if (lapsed) {
        keepFocus(); // the pay button it may have had is gone
        poll();
      }
    } else if (details) {
      hold =
        details.status === "pending" && details.payBy !== null ? { order, already, payBy: details.payBy } : null;
      showPay(order, details);
      setResult(orderText(order, already, details), "success");
      refresh();
    } else {
      showPay(order, null);
    }
  }

  let lapseTimer = null;
  let lapseChecking = false;
  let lapseTries = 0;

  /**
   * The hold's time is up: reads the order again until the origin has cancelled it (its sweeper
   * runs every fraction of a second), or found it paid or extended meanwhile.
   */
  async function checkLapse() {
    if (!hold || lapseChecking || lapseTimer !== null) return;
    const { order, already } = hold;
    lapseChecking = true;
    let details = null;
    try {
      details = await orderDetails(order.order_id);
    } finally {
      lapseChecking = false;
    }
    if (details && (details.status !== "pending" || (details.payBy !== null && details.payBy > clock.now()))) {
      lapseTries = 0;
      applyOrder(order, already, details, true);
      return;
    }
    const delay = Math.min(MAX_BACKOFF_MS, LAPSE_RETRY_MS * 2 ** lapseTries);
    lapseTries += 1;
    lapseTimer = setTimeout(() => {
      lapseTimer = null;
      checkLapse();
    }, delay);
  }

  /** The time left to pay, under the result; at its end the order is read again. */
  function renderHold(now) {
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
      checkLapse();
    }
    return left;
  }

  function render() {
    const state = effectiveState();
    const now = clock.now();
    let text;
    if (state === "upcoming" && sale.startsAt !== null) {
      text = `Starts in ${formatLeft(sale.startsAt - now)}`;
    } else if (state === "live") {
      const left = sale.remaining !== null && sale.remaining > 0 ? ` ${sale.remaining} left.` : "";
      const ends = sale.endsAt !== null ? ` Ends in ${formatLeft(sale.endsAt - now)}.` : "";
      text = `The sale is live.${left}${ends}`;
      if (statusTrouble) text += " (Checking the sale again…)";
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

    const wait = Math.ceil((retryAt - performance.now()) / 1000);
    let label = "Buy now";
    let enabled = false;
    if (busy) label = busy;
    else if (order) label = "Bought";
    else if (state === "sold_out") label = "Sold out";
    else if (state === "ended") label = "Sale ended";
    else if (state === "unknown") label = "Not available";
    else if (state === "upcoming") label = "Buy now";
    else if (login === "missing") label = "Buy now";
    else if (wait > 0) label = `Wait ${wait} s`;
    else enabled = true;
    setText(ui.buy, label);
    ui.buy.disabled = !enabled;
    if (busy) ui.panel.setAttribute("aria-busy", "true");
    else ui.panel.removeAttribute("aria-busy");

    const closed = { sold_out: SOLD_OUT_TEXT, ended: "This sale has ended." }[state];
    if (!busy && closed && !order && !ui.result.dataset.kept && ui.result.dataset.closed !== state) {
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
    if (hold && hold.payBy > now) next = Math.min(next, (hold.payBy - now) % 1000 || 1000);
    tickTimer = setTimeout(tick, Math.max(50, next + 5));
  }

  function refresh() {
    clearTimeout(tickTimer);
    tick();
  }

  /* --- the edge's API --- */

  async function api(path, { method = "GET", body, auth = false } = {}) {
    const headers = { Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (auth && token) headers.Authorization = `Bearer ${token}`;
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), REQUEST_TIMEOUT_MS);
    try {
      const response = await fetch(path, {
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
      return { status: response.status, data, headers: response.headers, received: performance.now() };
    } finally {
      clearTimeout(timer);
    }
  }

  /* --- the status poll --- */

  let pollTimer = null;
  let polling = false;
  let backoff = 0;
  let retriedSoon = false;
  // The last status poll failed: the page says so (render) and keeps what it knew.
  let statusTrouble = false;

  function applyStatus(status, received) {
    const serverMs = parseTime(status.server_time);
    clock.add(serverMs, received);
    if (serverMs !== null && serverMs < sale.asOf) return; // an older answer than one applied
    if (serverMs !== null) sale.asOf = serverMs;
    if (typeof status.state === "string") sale.state = status.state;
    const starts = parseTime(status.starts_at);
    if (starts !== null) sale.startsAt = starts;
    sale.endsAt = parseTime(status.ends_at);
    sale.remaining = Number.isInteger(status.remaining_hint) ? status.remaining_hint : null;
    if (sale.state !== "sold_out" && sale.state !== "ended" && ui.result.dataset.closed) {
      // Returned stock re-opened the sale.
      setResult("", "");
    }
  }

  /**
   * Whether a status answer is a cache's expired copy: nginx says so (STALE, UPDATING: a fresh one
   * is on its way), or it is older than a cache may keep it. The clock is never ahead of the
   * server's, so an age over that is real.
   */
  function staleAnswer(answer) {
    const cache = (answer.headers.get("X-Cache-Status") || "").toUpperCase();
    if (cache === "STALE" || cache === "UPDATING" || cache === "EXPIRED") return true;
    const at = parseTime(answer.data.server_time);
    return at !== null && clock.now() - at > STALE_AFTER_MS;
  }

  async function poll() {
    if (polling) return;
    polling = true;
    clearTimeout(pollTimer);
    let ok = false;
    let soon = false;
    try {
      const answer = await api(`/api/sales/${sale.id}/status`);
      if (answer.status === 200 && answer.data) {
        // The Date header is when the answer left nginx (whole seconds, rounded down): another
        // lower bound of the clock, often better than a cached server_time.
        clock.add(parseTime(answer.headers.get("Date")), answer.received);
        applyStatus(answer.data, answer.received);
        ok = true;
        // Ask again shortly, once: the cache is refreshing right now.
        soon = !retriedSoon && staleAnswer(answer);
      }
      // A 404 or 5xx is a reason to ask again later (backoff below), never to give up: a cache
      // or a proxy can answer one for a moment, and a later good status restores the page.
    } catch {
      ok = false;
    } finally {
      polling = false;
    }
    backoff = ok ? 0 : Math.min(MAX_BACKOFF_MS, backoff ? backoff * 2 : FIRST_BACKOFF_MS);
    statusTrouble = !ok;
    retriedSoon = soon;
    refresh();
    schedulePoll(soon);
  }

  function schedulePoll(soon = false) {
    const state = effectiveState();
    if (state === "ended") return; // nothing will change any more
    const base = soon
      ? SOON_POLL_MS
      : backoff || (state === "sold_out" || document.hidden ? SLOW_POLL_MS : POLL_MS);
    const delay = base * (1 - JITTER + 2 * JITTER * Math.random());
    clearTimeout(pollTimer);
    pollTimer = setTimeout(poll, delay);
  }

  document.addEventListener("visibilitychange", () => {
    if (!document.hidden && effectiveState() !== "ended") poll();
  });

  /* --- the user --- */

  function claims(jwt) {
    try {
      const part = jwt.split(".")[1];
      const base64 = part.replace(/-/g, "+").replace(/_/g, "/");
      const json = atob(base64.padEnd(Math.ceil(base64.length / 4) * 4, "="));
      const value = JSON.parse(json);
      return value && typeof value === "object" ? value : null;
    } catch {
      return null;
    }
  }

  function usable(jwt) {
    const c = jwt ? claims(jwt) : null;
    return !!c && typeof c.exp === "number" && c.exp * 1000 > clock.now() + TOKEN_MARGIN_MS;
  }

  function randomUid() {
    const bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes);
    return `web-${Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("")}`;
  }

  function currentUid() {
    const c = token ? claims(token) : null;
    if (c && typeof c.sub === "string") return c.sub;
    return store.get(UID_KEY);
  }

  /** A usable token in `token`, minted by the dev endpoint when needed; null when none. */
  async function ensureToken() {
    if (usable(token)) return token;
    const saved = store.get(TOKEN_KEY);
    if (usable(saved)) {
      token = saved;
      login = "ok";
      return token;
    }
    token = null;
    if (saved) store.remove(TOKEN_KEY);
    let uid = store.get(UID_KEY);
    if (!uid || !/^[A-Za-z0-9_-]{1,128}$/.test(uid)) {
      uid = randomUid();
      store.set(UID_KEY, uid);
    }
    const answer = await api("/api/dev/token", { method: "POST", body: { uid } });
    if (answer.status === 404) {
      login = "missing";
      return null;
    }
    if (answer.status !== 200 || !answer.data || typeof answer.data.token !== "string") {
      throw new Error(`dev token: ${answer.status}`);
    }
    token = answer.data.token;
    store.set(TOKEN_KEY, token);
    login = "ok";
    return token;
  }

  function dropToken() {
    token = null;
    store.remove(TOKEN_KEY);
  }

  /* --- the captcha --- */

  // blob: URLs of the image captcha shown now, revoked when it is hidden.
  let mediaUrls = [];

  function hideCaptcha() {
    ui.captcha.hidden = true;
    ui.imageForm.hidden = true;
    ui.image.removeAttribute("src");
    ui.audio.removeAttribute("src");
    mediaUrls.forEach((url) => URL.revokeObjectURL(url));
    mediaUrls = [];
    ui.answer.value = "";
    ui.imageForm.onsubmit = null;
    setText(ui.progress, "");
  }

  class CheckExpired extends Error {}
  class ImageGone extends Error {}

  /** A blob: URL of the captcha media at `path`, fetched with the user's token. */
  async function mediaUrl(path) {
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), REQUEST_TIMEOUT_MS);
    try {
      const response = await fetch(path, {
        headers: { Authorization: `Bearer ${token}` },
        cache: "no-store",
        credentials: "same-origin",
        signal: abort.signal,
      });
      if (!response.ok) throw new ImageGone();
      const url = URL.createObjectURL(await response.blob());
      mediaUrls.push(url);
      return url;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Shows the challenge's picture (awaited) and its audio (in the background). */
  async function showImage(image) {
    ui.image.src = await mediaUrl(image.png);
    mediaUrl(image.audio).then(
      (url) => {
        if (mediaUrls.includes(url)) ui.audio.src = url; // not hidden (and revoked) meanwhile
      },
      () => {
        /* the picture is there; the audio is a bonus */
      }
    );
  }

  /** Solves `challenge`: {nonce, answer}, answer only when an image was asked for. */
  function solveCaptcha(challenge) {
    return new Promise((resolve, reject) => {
      const expected = 2 ** challenge.difficulty;
      let nonce = null;
      let answer = null;
      let lastAnnounce = 0;
      const needsAnswer = !!(challenge.image && challenge.image.png);
      ui.bar.value = 0;
      ui.captcha.hidden = false;
      setText(ui.progress, "Working on the check…");

      let worker;
      try {
        worker = new Worker(root.dataset.worker);
      } catch (error) {
        reject(error);
        return;
      }
      // A challenge is refused from its expires_at on: give up then rather than wait forever.
      const expiresIn = Number.isFinite(challenge.expires_at) ? challenge.expires_at * 1000 - clock.now() : Infinity;
      const expiry = Number.isFinite(expiresIn)
        ? setTimeout(() => {
            worker.terminate();
            reject(new CheckExpired());
          }, Math.max(0, expiresIn))
        : null;
      const finish = () => {
        if (nonce === null || (needsAnswer && !answer)) return;
        clearTimeout(expiry);
        resolve({ nonce, answer });
      };
      worker.onmessage = (event) => {
        const message = event.data || {};
        if (message.type === "progress") {
          ui.bar.value = 1 - Math.exp(-message.hashes / expected);
          const now = performance.now();
          if (now - lastAnnounce >= PROGRESS_ANNOUNCE_MS) {
            lastAnnounce = now;
            setText(ui.progress, `Working on the check: ${Math.round(ui.bar.value * 100)} %`);
          }
        } else if (message.type === "found") {
          worker.terminate();
          nonce = message.nonce;
          ui.bar.value = 1;
          setText(ui.progress, needsAnswer && !answer ? "Done. Now type the characters." : "Check done.");
          finish();
        } else {
          worker.terminate();
          clearTimeout(expiry);
          reject(new Error(message.message || "worker failed"));
        }
      };
      worker.onerror = (event) => {
        event.preventDefault();
        worker.terminate();
        clearTimeout(expiry);
        reject(new Error("worker failed"));
      };
      if (needsAnswer) {
        ui.imageForm.hidden = false;
        ui.imageForm.onsubmit = (event) => {
          event.preventDefault();
          const typed = ui.answer.value.trim();
          if (!typed) {
            ui.answer.focus();
            return;
          }
          answer = typed;
          if (nonce === null) setText(ui.progress, "Almost done…");
          finish();
        };
        ui.answer.focus();
      }
      worker.postMessage({ challenge: challenge.challenge, difficulty: challenge.difficulty });
    });
  }

  /* --- the purchase --- */

  function remember(order) {
    store.set(orderKey, JSON.stringify({ uid: currentUid(), order_id: order.order_id ?? null, confirmed: order.confirmed !== false }));
  }

  function retryAfterSeconds(headers) {
    const raw = headers && headers.get("Retry-After");
    const seconds = raw === null || raw === undefined ? NaN : Number(raw);
    return Number.isFinite(seconds) && seconds >= 0 ? Math.ceil(seconds) : 1;
  }

  /** What this page learnt first-hand: a status older than now must not re-open the sale. */
  function markSoldOut() {
    sale.state = "sold_out";
    sale.remaining = 0;
    sale.asOf = Math.max(sale.asOf, clock.now());
  }

  /** Tells any answer of the captcha or buy endpoints in words. */
  function explain(answer) {
    const { status, data } = answer;
    const code = data && typeof data.error === "string" ? data.error : "";
    if (status === 200 && data && data.status === "reserved") {
      const order = { order_id: data.order_id ?? null, confirmed: data.confirmed !== false };
      remember(order);
      showOrder(order, false);
      if (Number.isInteger(data.remaining_hint)) {
        sale.remaining = data.remaining_hint;
        if (data.remaining_hint <= 0) markSoldOut();
      }
    } else if (status === 409 && code === "duplicate") {
      if (data.outcome === "rejected") {
        setResult("Your earlier try in this sale was not accepted.", "error");
      } else {
        // `state` is the origin's (submitted: still in flight); the edge's own 409 has none.
        const order = { order_id: data.order_id ?? null, confirmed: data.order_id != null && data.state !== "submitted" };
        remember(order);
        showOrder(order, true);
      }
    } else if (status === 409 && (code === "not_started" || code === "sale_not_started")) {
      setResult("The sale has not started yet. Try again in a moment.", "info");
    } else if (status === 410 && code === "ended") {
      sale.state = "ended"; // render() tells it
    } else if (status === 410) {
      markSoldOut(); // render() tells it
    } else if (status === 429) {
      const seconds = retryAfterSeconds(answer.headers);
      retryAt = performance.now() + seconds * 1000;
      setResult(`Too many tries, wait ${seconds} s.`, "error");
      setTimeout(refresh, seconds * 1000 + 20);
    } else if (status === 401) {
      dropToken();
      setResult("Please log in again.", "error");
    } else if (status === 403 && data && data.reason === "wrong_answer") {
      setResult("The characters did not match. Please try again.", "error");
    } else if (status === 403) {
      setResult("The check failed, please try again.", "error");
    } else if (status === 503 && code === "captcha_busy") {
      setResult("Many people are buying right now, please try again in a moment.", "error");
    } else if (status === 404 && code === "captcha_image_gone") {
      setResult("The picture expired. Please try again.", "error");
    } else if (status === 404 && code === "unknown_sale") {
      sale.state = "unknown";
      setResult("This sale does not exist.", "error");
    } else {
      setResult("The shop is busy, try again in a moment.", "error");
    }
  }

  function working(label) {
    busy = label;
    refresh();
  }

  /** How long the edge asks to wait: until the sale's start by its clock, else Retry-After. */
  function quietWaitMs(answer) {
    const data = answer.data || {};
    const starts = parseTime(data.starts_at);
    const now = parseTime(data.server_time);
    const ms = starts !== null && now !== null ? starts - now + 20 : retryAfterSeconds(answer.headers) * 1000;
    return Math.min(MAX_QUIET_WAIT_MS, Math.max(20, ms));
  }

  /**
   * A challenge, asked again without a word when the edge only asks for a moment: its clock has
   * not reached the start yet (it may be a little behind this page's), or every image is in use.
   */
  async function fetchChallenge() {
    for (let tries = 0; ; tries++) {
      const answer = await api(`/api/captcha?sale=${sale.id}`, { auth: true });
      const code = answer.data && answer.data.error;
      const quiet =
        (answer.status === 409 && code === "sale_not_started") || (answer.status === 503 && code === "captcha_busy");
      if (!quiet || tries >= MAX_QUIET_RETRIES) return answer;
      await new Promise((resolve) => setTimeout(resolve, quietWaitMs(answer)));
    }
  }

  // A pass earned and not spent yet (the shop was away when it was sent): {token, expiresAt
  // (server ms), uid}. Used by the next try, in this purchase or the visitor's next press.
  let keptPass = null;

  function usablePass() {
    const pass = keptPass;
    return pass && pass.uid === currentUid() && pass.expiresAt - clock.now() > PASS_MARGIN_MS ? pass : null;
  }

  /** The shop away for a moment: a 502, 503 (but captcha_busy, retried on its own) or 504. */
  function unavailable(answer) {
    const code = answer.data && answer.data.error;
    return answer.status === 0 || answer.status === 502 || answer.status === 504 || (answer.status === 503 && code !== "captcha_busy");
  }

  /** `api`, with no answer at all (refused, cut off, timed out) as status 0. */
  async function attempt(path, options) {
    try {
      return await api(path, options);
    } catch {
      return { status: 0, data: null, headers: null, received: performance.now() };
    }
  }

  /**
   * Waits before the `tries`th try again after `answer` (the shop away), saying so; false when
   * it is not for the page to try again (tries used up, or asked to wait too long): then Buy is
   * the visitor's again.
   */
  async function waitWhileAway(answer, tries) {
    const asked = answer.headers ? retryAfterSeconds(answer.headers) * 1000 : FIRST_BACKOFF_MS;
    const wait = Math.max(BUSY_MIN_WAIT_MS, asked);
    if (tries > BUSY_RETRIES || wait > BUSY_MAX_WAIT_MS) {
      setResult("The shop is still busy. Please press Buy again in a moment.", "error");
      return false;
    }
    const ms = wait * (1 + BUSY_JITTER * Math.random());
    hideCaptcha();
    working("Waiting to try again…");
    setResult(`The shop is busy, trying again in ${Math.ceil(ms / 1000)} s…`, "info");
    await new Promise((resolve) => setTimeout(resolve, ms));
    working("Trying again…");
    return true;
  }

  /**
   * A pass: a new challenge solved (or `kept.solution`, solved already and refused only for the
   * shop's absence, sent again while the challenge lasts). Returns {pass}, {again} (solve a new
   * one) or {answer} (an answer to tell, or `away` when the shop was away: `kept.solution` then
   * holds what to send again).
   */
  async function earnPass(kept) {
    if (!kept.solution || kept.solution.expiresAt - clock.now() <= PASS_MARGIN_MS) {
      kept.solution = null;
      working("Checking you are a person…");
      const challenge = await fetchChallenge();
      if (challenge.status !== 200 || !challenge.data || typeof challenge.data.challenge !== "string") {
        return { answer: challenge };
      }
      if (challenge.data.image && challenge.data.image.png) await showImage(challenge.data.image);
      const solved = await solveCaptcha(challenge.data);
      const body = { sale: sale.id, challenge: challenge.data.challenge, nonce: solved.nonce };
      if (solved.answer) body.answer = solved.answer;
      const expiresAt = Number.isFinite(challenge.data.expires_at) ? challenge.data.expires_at * 1000 : Infinity;
      kept.solution = { body, expiresAt };
    }
    const resent = kept.solution.sent === true;
    kept.solution.sent = true;
    const answer = await attempt("/api/captcha", { method: "POST", body: kept.solution.body, auth: true });
    if (unavailable(answer)) return { answer, away: true };
    kept.solution = null;
    const code = answer.data && answer.data.error;
    // Sent again after the shop was away, and spent: the store had taken it but its answer was
    // lost. A new check, without a word.
    if (resent && answer.status === 403 && code === "challenge_spent") return { again: true };
    if (answer.status !== 200 || !answer.data || typeof answer.data.pass_token !== "string") return { answer };
    const expiresAt = Number.isFinite(answer.data.expires_at) ? answer.data.expires_at * 1000 : clock.now() + 60000;
    keptPass = { token: answer.data.pass_token, expiresAt, uid: currentUid() };
    return { pass: keptPass };
  }

  async function purchase() {
    if (busy) return;
    working("Checking you are a person…");
    setResult("", "");
    try {
      if (!(await ensureToken())) {
        setResult("Please log in to the shop.", "error");
        return;
      }
      const kept = { solution: null };
      let away = 0; // tries after the shop was away
      for (let round = 0; ; round++) {
        let pass = usablePass();
        if (!pass) {
          const earned = await earnPass(kept);
          if (earned.away) {
            if (!(await waitWhileAway(earned.answer, ++away))) return;
            continue;
          }
          if (earned.again) continue;
          if (!earned.pass) {
            explain(earned.answer);
            return;
          }
          pass = earned.pass;
        }
        working("Buying…");
        const bought = await attempt(`/api/sales/${sale.id}/buy`, {
          method: "POST",
          body: { pass_token: pass.token },
          auth: true,
        });
        const code = bought.data && bought.data.error;
        if (unavailable(bought)) {
          // The edge's own 503 limits_unavailable spent nothing; any other came after it
          // admitted the pass (or may have: no answer at all).
          if (!(bought.status === 503 && code === "limits_unavailable")) keptPass = null;
          if (!(await waitWhileAway(bought, ++away))) return;
          continue;
        }
        keptPass = null; // spent, or refused for good
        if (bought.status === 403 && code === "pass_level_too_low" && round < MAX_QUIET_RETRIES) {
          // The captcha got harder since the pass was earned: solve it again at the new level.
          hideCaptcha();
          working("Checking you are a person…");
          continue;
        }
        if (bought.status === 403 && code === "pass_token_spent" && away > 0 && round < BUSY_RETRIES + MAX_QUIET_RETRIES) {
          // A pass kept through the shop's absence that the edge had spent after all (its Redis
          // answered too late for it): a new check.
          continue;
        }
        explain(bought);
        return;
      }
    } catch (error) {
      let text = "The shop is busy, try again in a moment.";
      if (error instanceof CheckExpired) text = "The check took too long, please try again.";
      else if (error instanceof ImageGone) text = "The picture expired. Please try again.";
      setResult(text, "error");
    } finally {
      hideCaptcha();
      busy = null;
      refresh();
      keepFocus();
      schedulePoll();
    }
  }

  ui.buy.addEventListener("click", purchase);

  /* --- start --- */

  /** The start time in the visitor's own time zone and language (the page says UTC). */
  function localStart() {
    const time = root.querySelector(".starts time");
    if (!time || sale.startsAt === null || typeof Intl === "undefined") return;
    try {
      const text = new Intl.DateTimeFormat(undefined, {
        dateStyle: "medium",
        timeStyle: "long",
      }).format(new Date(sale.startsAt));
      setText(time, text);
    } catch {
      /* keep the server's UTC text */
    }
  }

  async function start() {
    if (ui.pay) ui.pay.addEventListener("click", pay);
    localStart();
    refresh();
    poll();
    try {
      await ensureToken();
    } catch {
      // The dev endpoint did not answer; a click tries again.
    }
    const order = savedOrder();
    if (order) showOrder(order, false);
    else if (login === "missing") setResult("Please log in to the shop.", "error");
    refresh();
  }

  start();
})();
