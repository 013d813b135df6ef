// The purchase: captcha, pass, buy; every answer told in words from the message table
// (messages.js). The shop away (a 502, 503 or 504 to the captcha's solution or the buy, or no
// answer at all: Redis or an origin restarting) is told ("trying again in N s") and tried again
// by itself after the answer's Retry-After, never sooner (plus up to half again at random, so a
// crowd does not come back in step), a few times, then Buy is the visitor's again. A pass the
// edge refused before spending it (503 limits_unavailable) is kept; a pass the edge had admitted
// (any other such answer) is spent, and a new check is solved. A pass refused because the
// captcha got harder since it was earned (403 pass_level_too_low) is solved again at the new level.

const v = new URL(import.meta.url).search;
const { describe, fill } = await import(`./messages.js${v}`);
const { retryAfterSeconds, unavailable } = await import(`./api.js${v}`);
const { markSoldOut } = await import(`./state.js${v}`);
const { attempt, clock, keepFocus, loginLink, page, refresh, remember, sale, setResult, sleep, working } = await import(`./page.js${v}`);
const { ensureUser, relogin } = await import(`./user.js${v}`);
const { FIRST_BACKOFF_MS, schedulePoll } = await import(`./poll.js${v}`);
const { showOrder } = await import(`./order.js${v}`);
const { CheckExpired, ImageGone, MAX_QUIET_RETRIES, earnPass, forgetPass, hideCaptcha, keptCheck, usablePass } = await import(
  `./captcha.js${v}`
);

// The shop away: tries again after Retry-After (at least BUSY_MIN_WAIT_MS, no answer at all
// counting as FIRST_BACKOFF_MS), times 1 to 1 + BUSY_JITTER; at most BUSY_RETRIES times, and not
// at all when asked to wait longer than BUSY_MAX_WAIT_MS.
const BUSY_RETRIES = 4;
const BUSY_MIN_WAIT_MS = 1000;
const BUSY_MAX_WAIT_MS = 10000;
const BUSY_JITTER = 0.5;

/** What an entry's `effect` does besides its words (see messages.js). */
const EFFECTS = {
  duplicate(answer, message) {
    const { data } = answer;
    if (data.outcome === "rejected") return setResult(message.text, message.kind);
    // `state` is the origin's (submitted: still in flight); the edge's own 409 has none.
    const order = { order_id: data.order_id ?? null, confirmed: data.order_id != null && data.state !== "submitted" };
    remember(order);
    showOrder(order, true);
  },
  sold_out: () => markSoldOut(sale, clock.now()), // render() tells it
  ended: () => {
    sale.state = "ended"; // render() tells it
  },
  rate_limited(answer, message) {
    const seconds = retryAfterSeconds(answer.headers);
    page.retryAt = performance.now() + seconds * 1000;
    setResult(fill(message.text, { seconds }), message.kind);
    setTimeout(refresh, seconds * 1000 + 20);
  },
  logout: () => relogin(), // its words, or to the shop's login and back
  unknown_sale(answer, message) {
    sale.state = "unknown";
    setResult(message.text, message.kind);
  },
};

/** Tells any answer of the captcha or buy endpoints in words. */
function explain(answer) {
  const { status, data } = answer;
  if (status === 200 && data && data.status === "reserved") {
    const order = { order_id: data.order_id ?? null, confirmed: data.confirmed !== false };
    remember(order);
    showOrder(order, false);
    if (Number.isInteger(data.remaining_hint)) {
      sale.remaining = data.remaining_hint;
      if (data.remaining_hint <= 0) markSoldOut(sale, clock.now());
    }
    return;
  }
  const message = describe(status, data);
  if (message.effect) EFFECTS[message.effect](answer, message);
  else setResult(message.text, message.kind);
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
  await sleep(ms);
  working("Trying again…");
  return true;
}

/** One press of Buy, to its end: an order, an answer told, or the shop still away. */
async function buyRounds() {
  const kept = keptCheck();
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
      if (!earned.pass) return explain(earned.answer);
      pass = earned.pass;
    }
    working("Buying…");
    const bought = await attempt(`/api/sales/${sale.id}/buy`, { method: "POST", body: { pass_token: pass.token }, auth: true });
    const code = bought.data && bought.data.error;
    if (unavailable(bought)) {
      // The edge's own 503 limits_unavailable spent nothing; any other came after it
      // admitted the pass (or may have: no answer at all).
      if (!(bought.status === 503 && code === "limits_unavailable")) forgetPass();
      if (!(await waitWhileAway(bought, ++away))) return;
      continue;
    }
    if (bought.status !== 401) forgetPass(); // spent, or refused for good; a 401 looked at no pass
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
    return explain(bought);
  }
}

export async function purchase() {
  if (page.busy) return;
  working("Checking you are a person…");
  setResult("", "");
  try {
    const known = page.login === "ok";
    if (!(await ensureUser())) {
      // Logged out since the page knew them: to the login again; else the page offers it.
      if (known) relogin();
      else if (!loginLink()) setResult("Please log in to the shop.", "error");
      return;
    }
    await buyRounds();
  } catch (error) {
    let text = "The shop is busy, try again in a moment.";
    if (error instanceof CheckExpired) text = "The check took too long, please try again.";
    else if (error instanceof ImageGone) text = "The picture expired. Please try again.";
    setResult(text, "error");
  } finally {
    hideCaptcha();
    page.busy = null;
    refresh();
    keepFocus();
    schedulePoll();
  }
}
