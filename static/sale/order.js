// The visitor's order and its hold: an order is remembered per sale (`flash.order.ID`) so a
// reload still shows it; it is a hold until its expires_at, the time left to pay ticks under the
// result, and when it runs out the order is read again, so a lapsed hold is told (the unit went
// back to the sale) and the button offers the sale again, without a reload.
//
// The payment: "Pay now" goes to the shop's checkout (its URL from the page's template: the
// edge's config, never a request; {order} and {return} filled in here), or in dev mode asks the
// edge to sign the payment service's webhook (POST /api/dev/pay). The order is paid only when the
// payment service's signed webhook reaches the origin; back from the checkout, the order is read
// again until it is no longer pending.

const v = new URL(import.meta.url).search;
const { clockTime, parseTime } = await import(`./time.js${v}`);
const { markReturned } = await import(`./state.js${v}`);
const { api, clock, forgetOrder, keepFocus, page, refresh, root, sale, savedOrder, setResult, sleep, store, ui } = await import(
  `./page.js${v}`
);
const { relogin } = await import(`./user.js${v}`);
const { MAX_BACKOFF_MS, poll } = await import(`./poll.js${v}`);

// A hold past its expires_at is cancelled by the origin's sweeper within moments: the first
// look again after this, then twice as long each time (up to MAX_BACKOFF_MS).
const LAPSE_RETRY_MS = 250;
const CHECKOUT_WAIT_MS = 60000;

const checkoutUrl = /^https?:\/\//.test((root && root.dataset.checkout) || "") ? root.dataset.checkout : "";
const devPay = !!root && root.dataset.devPay === "true";

/** `details` (from GET /api/orders/ID) adds the time to pay by, when the edge could tell. */
export function orderText(order, already, details) {
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

/** The order's state from the edge: {status, payBy, cancelReason} (payBy in server ms), null if unknown. */
async function orderDetails(orderId) {
  if (orderId === null || orderId === undefined || page.login !== "ok") return null;
  try {
    const answer = await api(`/api/orders/${encodeURIComponent(orderId)}`, { auth: true });
    if (answer.status !== 200 || !answer.data || typeof answer.data.status !== "string") return null;
    const seconds = answer.data.hold_remaining_seconds;
    const payBy = parseTime(answer.data.expires_at) ?? (Number.isFinite(seconds) ? clock.now() + seconds * 1000 : null);
    const cancelReason = typeof answer.data.cancel_reason === "string" ? answer.data.cancel_reason : null;
    return { status: answer.data.status, payBy, cancelReason };
  } catch {
    return null;
  }
}

/** The pay button: shown while the order is a live hold and there is a way to pay. */
function showPay(order, details) {
  if (!ui.pay) return;
  const payable = details && details.status === "pending" && (checkoutUrl !== "" || devPay);
  ui.pay.hidden = !payable;
  ui.pay.disabled = !payable;
  ui.pay.dataset.order = payable ? String(order.order_id) : "";
}

function busyShop() {
  setResult("The shop is busy, try again in a moment.", "error");
  ui.pay.disabled = false;
}

/** Pays the held order: to the shop's checkout, or in dev mode through the signed dev path. */
export async function pay() {
  const orderId = ui.pay.dataset.order;
  if (!orderId) return;
  if (checkoutUrl) {
    store.set(`flash.checkout.${orderId}`, String(Date.now()));
    const back = `${location.origin}/sale/${encodeURIComponent(sale.id)}`;
    location.assign(checkoutUrl.split("{order}").join(encodeURIComponent(orderId)).split("{return}").join(encodeURIComponent(back)));
    return;
  }
  ui.pay.disabled = true;
  ui.pay.setAttribute("aria-busy", "true");
  setResult("Paying…", "info");
  try {
    const answer = await api("/api/dev/pay", { method: "POST", body: { order_id: Number(orderId) }, auth: true });
    const code = answer.data && answer.data.error;
    if (answer.status === 200) {
      ui.pay.hidden = true;
      page.hold = null;
      setResult(`Paid: order ${orderId} is yours.`, "success");
    } else if (code === "hold_expired") {
      ui.pay.hidden = true;
      page.hold = null;
      forgetOrder();
      setResult("The hold ended before the payment: you will be refunded. The unit went back to the sale.", "error", true);
      refresh();
    } else if (answer.status === 401) {
      ui.pay.disabled = false;
      relogin();
    } else if (answer.status === 409) {
      ui.pay.hidden = true;
      page.hold = null;
      setResult(`Order ${orderId} cannot be paid any more (${answer.data.status || "not a hold"}).`, "error");
    } else {
      busyShop();
    }
  } catch {
    busyShop();
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
    await sleep(wait);
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
export async function showOrder(order, already) {
  setResult(orderText(order, already), "success");
  const details = await orderDetails(order.order_id);
  applyOrder(order, already, details, false);
  if (details && details.status === "pending" && store.get(`flash.checkout.${order.order_id}`)) {
    awaitCheckout(order, already);
  }
}

/** Words for an order that is no longer a hold (cancelled or rejected). */
function closedText(order, details) {
  if (details.status !== "cancelled") return `Order ${order.order_id} was not accepted.`;
  return details.cancelReason === "expired"
    ? `Order ${order.order_id} was cancelled: the hold ended before it was paid, and the unit went back to the sale.`
    : `Order ${order.order_id} was cancelled.`;
}

/**
 * Shows what the edge said of `order` (`details`, null when it could not tell). `lapsed`: this
 * page watched the hold run out, so the unit it held went back to the sale just now.
 */
function applyOrder(order, already, details, lapsed) {
  const saved = savedOrder();
  if (saved === null || saved.order_id !== order.order_id) return;
  if (details && (details.status === "cancelled" || details.status === "rejected")) {
    page.hold = null;
    showPay(order, null);
    forgetOrder();
    // First-hand: the unit this page held is back, so an older (cached) sold-out status must
    // not hide it; a newer one (someone bought it since) still does.
    if (lapsed && details.status === "cancelled" && sale.state === "sold_out") markReturned(sale, clock.now());
    setResult(closedText(order, details), "info", true);
    refresh();
    if (lapsed) {
      keepFocus(); // the pay button it may have had is gone
      poll();
    }
  } else if (details) {
    page.hold = details.status === "pending" && details.payBy !== null ? { order, already, payBy: details.payBy } : null;
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
  if (!page.hold || lapseChecking || lapseTimer !== null) return;
  const { order, already } = page.hold;
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

page.holdUp = checkLapse;
