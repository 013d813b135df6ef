// The visitor's login as plain data (static/sale/login.js): who /api/me names, when the login is
// due again, the link to the shop's login, and the captcha progress kept across the trip.
import { test } from "node:test";
import assert from "node:assert/strict";
import { EXPIRY_MARGIN_MS, keepProgress, loginDueIn, loginHref, takeProgress, userFrom } from "../../static/sale/login.js";
import { createStore } from "../../static/sale/state.js";

const T0 = Date.UTC(2026, 10, 22, 18);

/** A store over a Map standing in for sessionStorage's interface. */
function memoryStore() {
  const map = new Map();
  const storage = {
    getItem: (k) => (map.has(k) ? map.get(k) : null),
    setItem: (k, value) => map.set(k, String(value)),
    removeItem: (k) => map.delete(k),
  };
  return { store: createStore(() => storage), map };
}

test("GET /api/me names the user, or nobody", () => {
  const check = (answer, expected) => assert.deepEqual(userFrom(answer), expected, JSON.stringify(answer));
  check({ status: 200, data: { uid: "shopper-1", expires_at: T0 / 1000 } }, { uid: "shopper-1", expiresAt: T0 });
  check({ status: 401, data: { error: "unauthorized", reason: "expired" } }, null);
  check({ status: 200, data: { uid: "", expires_at: 1 } }, null);
  check({ status: 200, data: { uid: "a" } }, null);
  check({ status: 200, data: { uid: 7, expires_at: 1 } }, null);
  check({ status: 200, data: null }, null);
  check({ status: 0, data: null }, null);
  check(null, null);
});

test("a login is due again a margin before its expiry", () => {
  const user = { uid: "u", expiresAt: T0 };
  assert.equal(loginDueIn(user, T0 - EXPIRY_MARGIN_MS - 5000), 5000);
  assert.equal(loginDueIn(user, T0 - EXPIRY_MARGIN_MS), 0);
  assert.equal(loginDueIn(user, T0 + 1), 0);
  assert.equal(loginDueIn(null, T0), 0);
});

test("the login link carries the way back, and only an http(s) login is linked", () => {
  const page = "https://sale.example/sale/7?x=1#top";
  const check = (login, expected) => assert.equal(loginHref(login, page), expected, login);
  check("https://shop.example/login", `https://shop.example/login?return_to=${encodeURIComponent(page)}`);
  check("https://shop.example/login?lang=fr", `https://shop.example/login?lang=fr&return_to=${encodeURIComponent(page)}`);
  check("https://shop.example/login?return_to=https://evil.example/", `https://shop.example/login?return_to=${encodeURIComponent(page)}`);
  check("http://127.0.0.1:8080/login", `http://127.0.0.1:8080/login?return_to=${encodeURIComponent(page)}`);
  check("", "");
  check("javascript:alert(1)", "");
  check("/login", "");
});

test("the captcha progress comes back once, for the same user, while it lasts", () => {
  const { store, map } = memoryStore();
  const key = "flash.captcha.7";
  const pass = { token: "pass-1", expiresAt: T0 + 60000 };
  const solution = { body: { sale: 7, challenge: "c", nonce: 42 }, expiresAt: T0 + 30000 };
  keepProgress(store, key, "u1", { pass, solution });
  assert.deepEqual(takeProgress(store, key, "u1", T0, 5000), { pass, solution });
  assert.equal(map.has(key), false, "taken once");
  assert.deepEqual(takeProgress(store, key, "u1", T0, 5000), { pass: null, solution: null });

  keepProgress(store, key, "u1", { pass, solution });
  assert.deepEqual(takeProgress(store, key, "someone-else", T0, 5000), { pass: null, solution: null }, "another user's");

  keepProgress(store, key, "u1", { pass, solution });
  assert.deepEqual(takeProgress(store, key, "u1", T0 + 26000, 5000), { pass, solution: null }, "the check ran out");

  keepProgress(store, key, "u1", { pass, solution: null });
  assert.deepEqual(takeProgress(store, key, "u1", T0 + 56000, 5000), { pass: null, solution: null }, "the pass ran out");

  keepProgress(store, key, "u1", { pass: null, solution: null });
  assert.equal(map.has(key), false, "nothing to keep");

  map.set(key, "{not json");
  assert.deepEqual(takeProgress(store, key, "u1", T0, 5000), { pass: null, solution: null });
  map.set(key, JSON.stringify({ uid: "u1", pass: { token: 5, expiresAt: T0 + 60000 }, solution: { expiresAt: T0 + 60000 } }));
  assert.deepEqual(takeProgress(store, key, "u1", T0, 5000), { pass: null, solution: null }, "malformed parts");
});
