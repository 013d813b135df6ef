// The message table (static/sale/messages.js) against the API's own list of codes: every error
// code docs/API.md names for the edge's public endpoints has its words, unknown codes get the
// generic ones.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { GENERIC, MESSAGES, describe, fill } from "../../static/sale/messages.js";

/** The codes of the error tables of docs/API.md's edge part (before "## Origin"). */
function documentedCodes() {
  const api = readFileSync(new URL("../../docs/API.md", import.meta.url), "utf8");
  const edge = api.split("\n## Origin")[0];
  const codes = new Set();
  for (const line of edge.split("\n")) {
    const cells = line.split("|").map((cell) => cell.trim());
    if (cells.length < 4 || !/^\d{3}(\/\d{3})*$/.test(cells[1])) continue;
    for (const [, code] of cells[2].matchAll(/`([a-z_]+)`/g)) codes.add(code);
  }
  // Named in the prose of the captcha endpoints rather than in a table.
  for (const [, code] of edge.matchAll(/`(?:403|404)\s+([a-z_]+)`/g)) codes.add(code);
  return codes;
}

test("every documented error code has words", () => {
  const codes = documentedCodes();
  for (const code of ["unauthorized", "sold_out", "captcha_failed", "challenge_spent", "captcha_image_gone"]) {
    assert.ok(codes.has(code), `the reading of docs/API.md finds ${code}`);
  }
  for (const code of codes) {
    assert.ok(Object.hasOwn(MESSAGES, code), `no message for ${code}`);
    const message = MESSAGES[code];
    assert.ok(message.text || message.effect, `${code} says nothing and does nothing`);
  }
});

test("an answer is told by its code, else its status, else generically", () => {
  const check = (status, data, text) => assert.equal(describe(status, data).text, text, JSON.stringify({ status, data }));
  check(503, { error: "captcha_busy" }, "Many people are buying right now, please try again in a moment.");
  check(404, { error: "captcha_image_gone" }, "The picture expired. Please try again.");
  check(409, { error: "sale_not_started" }, "The sale has not started yet. Try again in a moment.");
  check(403, { error: "captcha_failed", reason: "wrong_answer" }, "The characters did not match. Please try again.");
  check(403, { error: "captcha_failed", reason: "expired" }, "The check failed, please try again.");
  check(403, { error: "something_new" }, "The check failed, please try again.");
  check(401, null, "Please log in again.");
  check(500, { error: "something_new" }, GENERIC.text);
  check(502, null, GENERIC.text);
  check(409, { error: "toString" }, GENERIC.text);
  assert.equal(describe(410, { error: "ended" }).effect, "ended");
  assert.equal(describe(410, {}).effect, "sold_out");
  assert.equal(describe(429, { error: "rate_limited" }).effect, "rate_limited");
});

test("places in a text are filled", () => {
  assert.equal(fill(MESSAGES.rate_limited.text, { seconds: 3 }), "Too many tries, wait 3 s.");
  assert.equal(fill("a {missing}", {}), "a {missing}");
});
