// The API client (static/sale/api.js) against a real HTTP server started here, with Node's own
// fetch: JSON bodies, the token, answers that are not JSON, no answer at all, Retry-After.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { createApi, retryAfterSeconds, unavailable } from "../../static/sale/api.js";

let server;
let base;
const seen = [];

before(async () => {
  server = createServer((req, res) => {
    let body = "";
    req.on("data", (chunk) => (body += chunk));
    req.on("end", () => {
      seen.push({ method: req.method, url: req.url, auth: req.headers.authorization, type: req.headers["content-type"], body });
      if (req.url === "/json") {
        res.writeHead(429, { "Content-Type": "application/json", "Retry-After": "2.5" });
        res.end(JSON.stringify({ error: "rate_limited", message: "slow down" }));
      } else if (req.url === "/html") {
        res.writeHead(502, { "Content-Type": "text/html" });
        res.end("<h1>Bad gateway</h1>");
      } else if (req.url === "/hang") {
        // Never answers: the client's timeout ends it.
      } else {
        res.writeHead(200, { "Content-Type": "application/json" });
        res.end('{"ok":true}');
      }
    });
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  base = `http://127.0.0.1:${server.address().port}`;
});

after(() => {
  server.closeAllConnections();
  server.close();
});

const client = (token = null, timeoutMs = 2000) =>
  createApi({ fetchFn: (path, init) => fetch(base + path, init), token: () => token, monotonic: () => 77, timeoutMs });

test("a JSON answer with its status and headers; the body and the token sent", async () => {
  const { api } = client("jwt-1");
  const answer = await api("/json", { method: "POST", body: { sale: 7 }, auth: true });
  assert.equal(answer.status, 429);
  assert.deepEqual(answer.data, { error: "rate_limited", message: "slow down" });
  assert.equal(answer.received, 77);
  assert.equal(retryAfterSeconds(answer.headers), 3);
  const request = seen.at(-1);
  assert.deepEqual([request.method, request.auth, request.type, request.body], ["POST", "Bearer jwt-1", "application/json", '{"sale":7}']);
});

test("the token only when asked for", async () => {
  await client("jwt-1").api("/ok");
  assert.equal(seen.at(-1).auth, undefined);
  assert.equal(seen.at(-1).method, "GET");
});

test("an answer that is not JSON has null data", async () => {
  const answer = await client().api("/html");
  assert.equal(answer.status, 502);
  assert.equal(answer.data, null);
  assert.equal(unavailable(answer), true);
  assert.equal(retryAfterSeconds(answer.headers), 1, "no Retry-After: 1 s");
});

test("no answer: api rejects, attempt gives status 0", async () => {
  const { api, attempt } = client(null, 200);
  await assert.rejects(api("/hang"));
  const answer = await attempt("/hang");
  assert.deepEqual([answer.status, answer.data, answer.headers], [0, null, null]);
  assert.equal(unavailable(answer), true);
});

test("which answers mean the shop is away", () => {
  const check = (status, error, away) => assert.equal(unavailable({ status, data: error ? { error } : null }), away, `${status} ${error}`);
  check(503, "captcha_busy", false);
  check(503, "limits_unavailable", true);
  check(504, null, true);
  check(500, null, false);
  check(410, "sold_out", false);
});
