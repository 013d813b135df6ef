// The page's state as plain data and the transitions on it: the sale as the page knows it
// (which status answers move it, which are too old), the stored values, the user's token.
// No DOM here: tests/js/state.test.js drives every transition. Sibling modules are imported with
// this module's own `?v=` (see main.js), so all of them are of one version.

const v = new URL(import.meta.url).search;
const { parseTime } = await import(`./time.js${v}`);

const TOKEN_MARGIN_MS = 60000;

/** The sale from the page's data attributes (`dataset`). */
export function saleFrom(dataset) {
  return {
    id: Number(dataset.sale),
    state: dataset.state || "upcoming",
    startsAt: parseTime(dataset.startsAt),
    endsAt: parseTime(dataset.endsAt),
    remaining: null,
    // server_time of the newest status applied: an older (cached) answer must not undo it.
    asOf: -Infinity,
  };
}

/** The state to show at server time `now`: the start and the end come by the clock too. */
export function effectiveState(sale, now) {
  if (sale.state === "ended" || (sale.endsAt !== null && now >= sale.endsAt)) return "ended";
  if (sale.state === "sold_out" || sale.state === "unknown") return sale.state;
  if (sale.state === "upcoming" && sale.startsAt !== null && now >= sale.startsAt) return "live";
  return sale.state;
}

/** Applies a status answer unless it is older than one applied; whether it was applied. */
export function applyStatus(sale, status) {
  const serverMs = parseTime(status.server_time);
  if (serverMs !== null && serverMs < sale.asOf) return false;
  if (serverMs !== null) sale.asOf = serverMs;
  if (typeof status.state === "string") sale.state = status.state;
  const starts = parseTime(status.starts_at);
  if (starts !== null) sale.startsAt = starts;
  sale.endsAt = parseTime(status.ends_at);
  sale.remaining = Number.isInteger(status.remaining_hint) ? status.remaining_hint : null;
  return true;
}

/** What this page learnt first-hand at `now`: a status older than now must not re-open the sale. */
export function markSoldOut(sale, now) {
  sale.state = "sold_out";
  sale.remaining = 0;
  sale.asOf = Math.max(sale.asOf, now);
}

/** The unit this page held came back at `now`: an older (cached) sold-out must not hide it. */
export function markReturned(sale, now) {
  sale.state = "live";
  sale.remaining = null;
  sale.asOf = Math.max(sale.asOf, now);
}

/** A key-value store over `storage` (localStorage), in memory when the browser refuses it. */
export function createStore(storage) {
  const memory = new Map();
  return {
    get(key) {
      if (memory.has(key)) return memory.get(key);
      try {
        return storage().getItem(key);
      } catch {
        return null;
      }
    },
    set(key, value) {
      try {
        storage().setItem(key, value);
        memory.delete(key);
      } catch {
        memory.set(key, value);
      }
    },
    remove(key) {
      memory.delete(key);
      try {
        storage().removeItem(key);
      } catch {
        /* nothing stored there */
      }
    },
  };
}

/** The claims of a JWT (not verified: the edge does that), null when it is not one. */
export function claims(jwt) {
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

/** Whether a JWT is still good a minute after server time `now`. */
export function usable(jwt, now) {
  const c = jwt ? claims(jwt) : null;
  return !!c && typeof c.exp === "number" && c.exp * 1000 > now + TOKEN_MARGIN_MS;
}
