// The page's times: parsing, the server's clock, and how a time left is written and said.
// Pure: nothing here touches the page, so `node --test` checks all of it (tests/js/time.test.js).

const CLOCK_SAMPLES = 20;

/** Milliseconds since the epoch of an RFC 3339 text, else null. */
export function parseTime(text) {
  const ms = Date.parse(text || "");
  return Number.isFinite(ms) ? ms : null;
}

/**
 * The server's clock. Each status answer gives lower bounds of the server clock minus the
 * browser's monotonic clock (server_time was read before the answer left, a cached answer is
 * older still, and its Date header is rounded down); the newest few are kept and the largest
 * used, so the button never enables before the start, and neither the browser's wall clock nor a
 * cached answer can move it. `monotonic` and `wall` are performance.now and Date.now.
 */
export function createClock(monotonic, wall) {
  return {
    samples: [],
    base: null,
    /** A server time (ms) read no later than monotonic() was `at`. */
    add(serverMs, at) {
      if (serverMs === null) return;
      this.samples.push(serverMs - at);
      if (this.samples.length > CLOCK_SAMPLES) this.samples.shift();
      this.base = Math.max(...this.samples);
    },
    now() {
      return this.base === null ? wall() : monotonic() + this.base;
    },
  };
}

const two = (n) => String(n).padStart(2, "0");

/** A countdown: 05:09, 1:05:09 past an hour, 2 d 1:05:09 past a day; whole seconds rounded up. */
export function formatLeft(ms) {
  const total = Math.max(0, Math.ceil(ms / 1000));
  const days = Math.floor(total / 86400);
  const hours = Math.floor((total % 86400) / 3600);
  const minutes = Math.floor((total % 3600) / 60);
  const seconds = total % 60;
  const clockText = hours > 0 || days > 0 ? `${hours}:${two(minutes)}:${two(seconds)}` : `${two(minutes)}:${two(seconds)}`;
  return days > 0 ? `${days} d ${clockText}` : clockText;
}

/**
 * A hold's time left as people say it: 4:59, or 1:04:59 past an hour. Whole seconds rounded
 * down: the page's clock is never ahead of the server's, so it must not promise a second more.
 */
export function holdLeft(ms) {
  const total = Math.max(0, Math.floor(ms / 1000));
  const hours = Math.floor(total / 3600);
  const minutes = Math.floor((total % 3600) / 60);
  const seconds = total % 60;
  return hours > 0 ? `${hours}:${two(minutes)}:${two(seconds)}` : `${minutes}:${two(seconds)}`;
}

/** The sale's state in words. */
export function stateText(state) {
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

/**
 * Words for a screen reader: said at each state change, each minute, and at 30 and 10 s before
 * the start; and when a hold has a minute, then 10 s, left to pay.
 */
export function spoken(state, left, holdMs) {
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

/** A time of day on the visitor's clock and in their language. */
export function clockTime(ms) {
  try {
    return new Intl.DateTimeFormat(undefined, { timeStyle: "short" }).format(new Date(ms));
  } catch {
    return new Date(ms).toISOString();
  }
}
