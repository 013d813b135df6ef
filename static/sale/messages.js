// What the page says to an answer of the captcha and buy endpoints: a table keyed by the API's
// error codes (docs/API.md, "Edge"), data rather than branches, so a code the API adds is one
// line here and tests/js/messages.test.js checks every documented code has its line.
//
// An entry is {text, kind} (kind: the result's colours) and may name an `effect`, what the page
// does besides (purchase.js carries them out): `duplicate` shows the order the user has,
// `sold_out` and `ended` close the sale (the countdown tells it, so no text), `rate_limited`
// keeps Buy off for Retry-After (`{seconds}` in its text), `logout` sends the user to log in again,
// `unknown_sale` marks the sale as missing.

/** Said when nothing more precise is known: the shop away, or an answer the page cannot read. */
export const GENERIC = { text: "The shop is busy, try again in a moment.", kind: "error" };

const CHECK_FAILED = { text: "The check failed, please try again.", kind: "error" };
const NOT_STARTED = { text: "The sale has not started yet. Try again in a moment.", kind: "info" };

export const MESSAGES = {
  duplicate: { effect: "duplicate", text: "Your earlier try in this sale was not accepted.", kind: "error" },
  not_started: NOT_STARTED,
  sale_not_started: NOT_STARTED,
  sold_out: { effect: "sold_out" },
  ended: { effect: "ended" },
  rate_limited: { effect: "rate_limited", text: "Too many tries, wait {seconds} s.", kind: "error" },
  unauthorized: { effect: "logout", text: "Please log in again.", kind: "error" },
  unknown_sale: { effect: "unknown_sale", text: "This sale does not exist.", kind: "error" },
  captcha_failed: CHECK_FAILED,
  challenge_spent: CHECK_FAILED,
  pass_token_invalid: CHECK_FAILED,
  pass_token_spent: CHECK_FAILED,
  pass_level_too_low: CHECK_FAILED,
  captcha_busy: { text: "Many people are buying right now, please try again in a moment.", kind: "error" },
  captcha_image_gone: { text: "The picture expired. Please try again.", kind: "error" },
  forbidden: CHECK_FAILED,
  not_found: GENERIC,
  unknown_order: GENERIC,
  invalid_sale_id: GENERIC,
  malformed_json: GENERIC,
  invalid_body: GENERIC,
  body_too_large: GENERIC,
  limits_unavailable: GENERIC,
  origin_unavailable: GENERIC,
  redis_unavailable: GENERIC,
  database_unavailable: GENERIC,
  stock_unavailable: GENERIC,
  timeout: GENERIC,
};

/** A `reason` (of captcha_failed) that has words of its own. */
export const REASONS = {
  wrong_answer: { text: "The characters did not match. Please try again.", kind: "error" },
};

/** An answer without a known code is told by its status alone. */
const BY_STATUS = { 401: "unauthorized", 403: "captcha_failed", 410: "sold_out", 429: "rate_limited" };

/** The entry for an error answer (`status`, its JSON `data` or null). */
export function describe(status, data) {
  const code = data && typeof data.error === "string" ? data.error : "";
  const reason = data && typeof data.reason === "string" ? REASONS[data.reason] : undefined;
  if (reason && status === 403) return reason;
  return (Object.hasOwn(MESSAGES, code) && MESSAGES[code]) || MESSAGES[BY_STATUS[status]] || GENERIC;
}

/** An entry's text with its `{name}` places filled from `values`. */
export function fill(text, values = {}) {
  return (text || "").replace(/\{(\w+)\}/g, (whole, name) => (name in values ? String(values[name]) : whole));
}
