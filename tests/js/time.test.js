// Times as the page writes and says them, and the server's clock (static/sale/time.js).
import { test } from "node:test";
import assert from "node:assert/strict";
import { createClock, formatLeft, holdLeft, parseTime, spoken, stateText } from "../../static/sale/time.js";

test("a countdown rounds up and grows hours and days", () => {
  const cases = [
    [0, "00:00"],
    [-5000, "00:00"],
    [1, "00:01"],
    [59_001, "01:00"],
    [3_599_000, "59:59"],
    [3_600_000, "1:00:00"],
    [86_400_000 + 3_723_000, "1 d 1:02:03"],
  ];
  for (const [ms, text] of cases) assert.equal(formatLeft(ms), text, `${ms} ms`);
});

test("a hold's time left rounds down", () => {
  const cases = [
    [299_999, "4:59"],
    [300_000, "5:00"],
    [999, "0:00"],
    [-1, "0:00"],
    [3_899_000, "1:04:59"],
  ];
  for (const [ms, text] of cases) assert.equal(holdLeft(ms), text, `${ms} ms`);
});

test("screen readers hear the start and the end of a hold", () => {
  const cases = [
    ["upcoming", 3 * 86_400_000, null, "The sale starts in 3 days."],
    ["upcoming", 5 * 3_600_000, null, "The sale starts in about 5 hours."],
    ["upcoming", 90_000, null, "The sale starts in about 2 minutes."],
    ["upcoming", 45_000, null, "The sale starts in less than a minute."],
    ["upcoming", 20_000, null, "The sale starts in 30 seconds."],
    ["upcoming", 5_000, null, "The sale starts in 10 seconds."],
    ["live", 0, 50_000, "Less than a minute left to pay."],
    ["live", 0, 9_000, "Less than 10 seconds left to pay."],
    ["live", 0, 0, "The sale is live."],
    ["sold_out", 0, null, "Sold out."],
  ];
  for (const [state, left, hold, words] of cases) assert.equal(spoken(state, left, hold), words);
  assert.equal(stateText("unknown"), "This sale does not exist.");
  assert.equal(stateText("anything"), "The sale has not started yet.");
});

test("times parse or are null", () => {
  assert.equal(parseTime("2026-11-22T18:00:00Z"), Date.UTC(2026, 10, 22, 18));
  assert.equal(parseTime(""), null);
  assert.equal(parseTime(undefined), null);
  assert.equal(parseTime("soon"), null);
});

test("the clock takes the largest of its lower bounds and ignores the wall clock", () => {
  let mono = 1000;
  const clock = createClock(() => mono, () => 42);
  assert.equal(clock.now(), 42, "no sample yet: the wall clock");
  clock.add(null, 0);
  assert.equal(clock.now(), 42);
  clock.add(10_000, 1000); // base 9000
  clock.add(9_500, 1000); // an older (cached) answer: base stays
  assert.equal(clock.now(), 10_000);
  mono = 2000;
  assert.equal(clock.now(), 11_000);
  for (let i = 0; i < 25; i++) clock.add(5000 + i, 1000);
  assert.equal(clock.samples.length, 20, "only the newest few are kept");
  assert.equal(clock.now(), 2000 + 4024);
});
