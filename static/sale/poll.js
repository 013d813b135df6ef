// The status poll: `GET /api/sales/ID/status` every 0.7 s (±30 % jitter; nginx's micro-cache
// keeps an answer 1 to 2 s, so a sell-out shows about 2 s after it: the cache's share plus the
// wait for the next poll; every poll but one a second is a cache hit), slower when sold out or
// hidden, backing off (2 s doubling to 10 s, jittered) on a 404, a 5xx or a network error, which
// the page shows as a passing problem and never gives up on, stopped once the sale has ended. An
// expired copy from a cache is followed by one quick second look, as the cache is refreshing then.

const v = new URL(import.meta.url).search;
const { parseTime } = await import(`./time.js${v}`);
const { applyStatus } = await import(`./state.js${v}`);
const { api, clock, currentState, page, refresh, sale, setResult, ui } = await import(`./page.js${v}`);

const POLL_MS = 700;
const SLOW_POLL_MS = 5000;
const SOON_POLL_MS = 250;
// nginx keeps a `max-age=1` answer until the next whole second after it expires: up to 2 s.
const STALE_AFTER_MS = 2000;
const JITTER = 0.3;
export const FIRST_BACKOFF_MS = 2000;
export const MAX_BACKOFF_MS = 10000;

let pollTimer = null;
let polling = false;
let backoff = 0;
let retriedSoon = false;

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

function showStatus(status, received) {
  clock.add(parseTime(status.server_time), received);
  if (!applyStatus(sale, status)) return; // an older answer than one applied
  if (sale.state !== "sold_out" && sale.state !== "ended" && ui.result.dataset.closed) {
    // Returned stock re-opened the sale.
    setResult("", "");
  }
}

export async function poll() {
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
      showStatus(answer.data, answer.received);
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
  page.statusTrouble = !ok;
  retriedSoon = soon;
  refresh();
  schedulePoll(soon);
}

export function schedulePoll(soon = false) {
  const state = currentState();
  if (state === "ended") return; // nothing will change any more
  const base = soon ? SOON_POLL_MS : backoff || (state === "sold_out" || document.hidden ? SLOW_POLL_MS : POLL_MS);
  const delay = base * (1 - JITTER + 2 * JITTER * Math.random());
  clearTimeout(pollTimer);
  pollTimer = setTimeout(poll, delay);
}
