// The sale page's script, its entry point. The page (edge/templates/sale.html) is the same for
// everyone and cached; these modules make it the visitor's: the countdown on the server's clock
// (time.js), the status poll (poll.js), the user and their login (user.js, login.js), the
// purchase (purchase.js, captcha.js, messages.js), the order, its hold and its payment
// (order.js), all shown by page.js.
//
// Versions: the page loads `/static/sale/main.js?v=<hash>`, the hash taken over every file of
// static/sale/ (edge/src/pages.rs), and each module imports each sibling with `await import()`,
// its path followed by the module's own `?v=` (`v` below). So every module of one page is of
// one version: a new build changes every module's URL, and a cached module of an older build is
// never mixed with a newer one, while nginx keeps each for a year (a static `import` would drop
// the query and be cached a minute without a version). The imports form no cycle (a top-level
// `await` in a cycle would never end): time, messages, api, state, login < page < user < poll
// < order < captcha < purchase < main.

const v = new URL(import.meta.url).search;
const { root, loginLink, refresh, savedOrder, setResult, setText, page, sale, startClock, ui, currentState } = await import(
  `./page.js${v}`
);

/** The start time in the visitor's own time zone and language (the page says UTC). */
function localStart() {
  const time = root.querySelector(".starts time");
  if (!time || sale.startsAt === null || typeof Intl === "undefined") return;
  try {
    const text = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "long" }).format(new Date(sale.startsAt));
    setText(time, text);
  } catch {
    /* keep the server's UTC text */
  }
}

async function start() {
  startClock();
  const { poll } = await import(`./poll.js${v}`);
  const { ensureUser } = await import(`./user.js${v}`);
  const { pay, showOrder } = await import(`./order.js${v}`);
  const { purchase } = await import(`./purchase.js${v}`);
  const { restoreProgress } = await import(`./captcha.js${v}`);
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden && currentState() !== "ended") poll();
  });
  ui.buy.addEventListener("click", purchase);
  if (ui.pay) ui.pay.addEventListener("click", pay);
  localStart();
  refresh();
  poll();
  try {
    if (await ensureUser()) restoreProgress(); // back from the login: the check done before it
  } catch {
    // The edge did not answer; a click tries again.
  }
  const order = savedOrder();
  if (order) showOrder(order, false);
  else if (page.login === "missing" && !loginLink()) setResult("Please log in to the shop.", "error");
  refresh();
}

if (root) start();
