// The page's state transitions (static/sale/state.js).
import { test } from "node:test";
import assert from "node:assert/strict";
import { applyStatus, claims, createStore, effectiveState, markReturned, markSoldOut, saleFrom, usable } from "../../static/sale/state.js";

const T0 = Date.UTC(2026, 10, 22, 18);
const iso = (ms) => new Date(ms).toISOString();

function sale(state = "upcoming", endsAt = "") {
  return saleFrom({ sale: "7", state, startsAt: iso(T0), endsAt });
}

test("the start and the end come by the clock", () => {
  const cases = [
    [sale(), T0 - 1, "upcoming"],
    [sale(), T0, "live"],
    [sale("live", iso(T0 + 10)), T0 + 10, "ended"],
    [sale("sold_out"), T0 + 5, "sold_out"],
    [sale("sold_out", iso(T0 + 10)), T0 + 10, "ended"],
    [sale("unknown"), T0 + 5, "unknown"],
    [sale("ended"), T0 - 5, "ended"],
  ];
  for (const [s, now, expected] of cases) assert.equal(effectiveState(s, now), expected, `${s.state} at ${now - T0}`);
  assert.equal(sale().id, 7);
  assert.equal(saleFrom({}).state, "upcoming");
});

test("a status older than one applied is ignored", () => {
  const s = sale();
  assert.equal(applyStatus(s, { server_time: iso(T0 + 2000), state: "live", starts_at: iso(T0), remaining_hint: 3 }), true);
  assert.deepEqual([s.state, s.remaining, s.asOf], ["live", 3, T0 + 2000]);
  assert.equal(applyStatus(s, { server_time: iso(T0 + 1000), state: "sold_out" }), false);
  assert.equal(s.state, "live");
  assert.equal(applyStatus(s, { server_time: iso(T0 + 3000), state: "sold_out", ends_at: iso(T0 + 9000) }), true);
  assert.deepEqual([s.state, s.remaining, s.endsAt], ["sold_out", null, T0 + 9000]);
});

test("what the page learnt first-hand outranks older statuses", () => {
  const s = sale("live");
  markSoldOut(s, T0 + 5000);
  assert.equal(applyStatus(s, { server_time: iso(T0 + 4000), state: "live" }), false);
  assert.deepEqual([s.state, s.remaining], ["sold_out", 0]);
  markReturned(s, T0 + 6000);
  assert.equal(applyStatus(s, { server_time: iso(T0 + 5500), state: "sold_out" }), false);
  assert.equal(s.state, "live");
  assert.equal(applyStatus(s, { server_time: iso(T0 + 7000), state: "sold_out" }), true);
  assert.equal(s.state, "sold_out");
});

test("a store falls back to memory when storage refuses", () => {
  const refusing = createStore(() => {
    throw new Error("denied");
  });
  assert.equal(refusing.get("a"), null);
  refusing.set("a", "1");
  assert.equal(refusing.get("a"), "1");
  refusing.remove("a");
  assert.equal(refusing.get("a"), null);
  const map = new Map();
  const storage = { getItem: (k) => map.get(k) ?? null, setItem: (k, val) => map.set(k, val), removeItem: (k) => map.delete(k) };
  const kept = createStore(() => storage);
  kept.set("b", "2");
  assert.equal(map.get("b"), "2");
});

test("tokens are read and judged by their exp", () => {
  const jwt = (payload) => `h.${Buffer.from(JSON.stringify(payload)).toString("base64url")}.s`;
  assert.deepEqual(claims(jwt({ sub: "web-1", exp: 5 })), { sub: "web-1", exp: 5 });
  assert.equal(claims("nope"), null);
  assert.equal(usable(jwt({ exp: (T0 + 61_000) / 1000 }), T0), true);
  assert.equal(usable(jwt({ exp: (T0 + 59_000) / 1000 }), T0), false, "a minute's margin");
  assert.equal(usable(jwt({ sub: "x" }), T0), false);
  assert.equal(usable(null, T0), false);
});
