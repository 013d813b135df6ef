// The captcha: a challenge, its proof of work in static/pow-worker.js (plus the image or audio
// answer when asked: both fetched with the user's token through the challenge's handle, shown
// from blob: URLs), and the solution traded for a pass. What only asks for a moment is retried
// without a word: a challenge refused because this edge's clock has not reached the start yet
// (409 sale_not_started) or every image is in use (503 captcha_busy). A solved check refused for
// the store's absence is kept and sent again (it was not spent). A login that runs out on the
// way (a 401) keeps the pass and the solved check in sessionStorage for the visitor's return.

const v = new URL(import.meta.url).search;
const { parseTime } = await import(`./time.js${v}`);
const { retryAfterSeconds, unavailable } = await import(`./api.js${v}`);
const { keepProgress, takeProgress } = await import(`./login.js${v}`);
const { api, attempt, clock, currentUid, page, root, sale, setText, sleep, tabStore, ui, working } = await import(`./page.js${v}`);

const PROGRESS_ANNOUNCE_MS = 2000;
const REQUEST_TIMEOUT_MS = 15000;
// Retries of a step that only asks for a moment, then it is told.
export const MAX_QUIET_RETRIES = 3;
const MAX_QUIET_WAIT_MS = 5000;
// A kept solution or pass is used again only with this much of its life left.
const PASS_MARGIN_MS = 5000;

export class CheckExpired extends Error {}
export class ImageGone extends Error {}

// blob: URLs of the image captcha shown now, revoked when it is hidden.
let mediaUrls = [];
// A pass earned and not spent yet (the shop was away when it was sent): {token, expiresAt
// (server ms), uid}. Used by the next try, in this purchase or the visitor's next press.
let keptPass = null;
// The purchase's `kept` of the check under way (see earnPass), kept over a trip to the login.
let keptNow = { solution: null };
const progressKey = `flash.captcha.${sale.id}`;

page.leaving = () => {
  const pass = usablePass();
  const solution = keptNow.solution;
  keepProgress(tabStore, progressKey, currentUid(), {
    pass: pass && { token: pass.token, expiresAt: pass.expiresAt },
    solution: solution && { body: solution.body, expiresAt: solution.expiresAt },
  });
};

/**
 * Back from the login: the pass or the solved check kept for this user, if any; the solved
 * check is for the next press's `kept`.
 */
export function restoreProgress() {
  const { pass, solution } = takeProgress(tabStore, progressKey, currentUid(), clock.now(), PASS_MARGIN_MS);
  if (pass) keptPass = { ...pass, uid: currentUid() };
  keptNow = { solution };
  return !!(pass || solution);
}

/** The `kept` a press of Buy starts with: a check solved before a trip to the login, if any. */
export function keptCheck() {
  const kept = keptNow.solution && keptNow.solution.expiresAt - clock.now() > PASS_MARGIN_MS ? keptNow : { solution: null };
  keptNow = kept;
  return kept;
}

export function hideCaptcha() {
  ui.captcha.hidden = true;
  ui.imageForm.hidden = true;
  ui.image.removeAttribute("src");
  ui.audio.removeAttribute("src");
  mediaUrls.forEach((url) => URL.revokeObjectURL(url));
  mediaUrls = [];
  ui.answer.value = "";
  ui.imageForm.onsubmit = null;
  setText(ui.progress, "");
}

/** A blob: URL of the captcha media at `path`, fetched with the user's token. */
async function mediaUrl(path) {
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), REQUEST_TIMEOUT_MS);
  try {
    const response = await fetch(path, {
      headers: page.token ? { Authorization: `Bearer ${page.token}` } : {},
      cache: "no-store",
      credentials: "same-origin",
      signal: abort.signal,
    });
    if (!response.ok) throw new ImageGone();
    const url = URL.createObjectURL(await response.blob());
    mediaUrls.push(url);
    return url;
  } finally {
    clearTimeout(timer);
  }
}

/** Shows the challenge's picture (awaited) and its audio (in the background). */
async function showImage(image) {
  ui.image.src = await mediaUrl(image.png);
  mediaUrl(image.audio).then(
    (url) => {
      if (mediaUrls.includes(url)) ui.audio.src = url; // not hidden (and revoked) meanwhile
    },
    () => {
      /* the picture is there; the audio is a bonus */
    },
  );
}

/** Solves `challenge`: {nonce, answer}, answer only when an image was asked for. */
function solveCaptcha(challenge) {
  return new Promise((resolve, reject) => {
    const expected = 2 ** challenge.difficulty;
    let nonce = null;
    let answer = null;
    let lastAnnounce = 0;
    const needsAnswer = !!(challenge.image && challenge.image.png);
    ui.bar.value = 0;
    ui.captcha.hidden = false;
    setText(ui.progress, "Working on the check…");

    let worker;
    try {
      worker = new Worker(root.dataset.worker);
    } catch (error) {
      reject(error);
      return;
    }
    // A challenge is refused from its expires_at on: give up then rather than wait forever.
    const expiresIn = Number.isFinite(challenge.expires_at) ? challenge.expires_at * 1000 - clock.now() : Infinity;
    const expiry = Number.isFinite(expiresIn)
      ? setTimeout(() => {
          worker.terminate();
          reject(new CheckExpired());
        }, Math.max(0, expiresIn))
      : null;
    const finish = () => {
      if (nonce === null || (needsAnswer && !answer)) return;
      clearTimeout(expiry);
      resolve({ nonce, answer });
    };
    worker.onmessage = (event) => {
      const message = event.data || {};
      if (message.type === "progress") {
        ui.bar.value = 1 - Math.exp(-message.hashes / expected);
        const now = performance.now();
        if (now - lastAnnounce >= PROGRESS_ANNOUNCE_MS) {
          lastAnnounce = now;
          setText(ui.progress, `Working on the check: ${Math.round(ui.bar.value * 100)} %`);
        }
      } else if (message.type === "found") {
        worker.terminate();
        nonce = message.nonce;
        ui.bar.value = 1;
        setText(ui.progress, needsAnswer && !answer ? "Done. Now type the characters." : "Check done.");
        finish();
      } else {
        worker.terminate();
        clearTimeout(expiry);
        reject(new Error(message.message || "worker failed"));
      }
    };
    worker.onerror = (event) => {
      event.preventDefault();
      worker.terminate();
      clearTimeout(expiry);
      reject(new Error("worker failed"));
    };
    if (needsAnswer) {
      ui.imageForm.hidden = false;
      ui.imageForm.onsubmit = (event) => {
        event.preventDefault();
        const typed = ui.answer.value.trim();
        if (!typed) {
          ui.answer.focus();
          return;
        }
        answer = typed;
        if (nonce === null) setText(ui.progress, "Almost done…");
        finish();
      };
      ui.answer.focus();
    }
    worker.postMessage({ challenge: challenge.challenge, difficulty: challenge.difficulty });
  });
}

/** How long the edge asks to wait: until the sale's start by its clock, else Retry-After. */
function quietWaitMs(answer) {
  const data = answer.data || {};
  const starts = parseTime(data.starts_at);
  const now = parseTime(data.server_time);
  const ms = starts !== null && now !== null ? starts - now + 20 : retryAfterSeconds(answer.headers) * 1000;
  return Math.min(MAX_QUIET_WAIT_MS, Math.max(20, ms));
}

/**
 * A challenge, asked again without a word when the edge only asks for a moment: its clock has
 * not reached the start yet (it may be a little behind this page's), or every image is in use.
 */
async function fetchChallenge() {
  for (let tries = 0; ; tries++) {
    const answer = await api(`/api/captcha?sale=${sale.id}`, { auth: true });
    const code = answer.data && answer.data.error;
    const quiet = (answer.status === 409 && code === "sale_not_started") || (answer.status === 503 && code === "captcha_busy");
    if (!quiet || tries >= MAX_QUIET_RETRIES) return answer;
    await sleep(quietWaitMs(answer));
  }
}

/** The kept pass, when it is this user's and has life left. */
export function usablePass() {
  const pass = keptPass;
  return pass && pass.uid === currentUid() && pass.expiresAt - clock.now() > PASS_MARGIN_MS ? pass : null;
}

/** The kept pass was spent (or may have been): the next try earns a new one. */
export function forgetPass() {
  keptPass = null;
}

/**
 * A pass: a new challenge solved (or `kept.solution`, solved already and refused only for the
 * shop's absence, sent again while the challenge lasts). Returns {pass}, {again} (solve a new
 * one) or {answer} (an answer to tell, or `away` when the shop was away: `kept.solution` then
 * holds what to send again).
 */
export async function earnPass(kept) {
  keptNow = kept;
  if (!kept.solution || kept.solution.expiresAt - clock.now() <= PASS_MARGIN_MS) {
    kept.solution = null;
    working("Checking you are a person…");
    const challenge = await fetchChallenge();
    if (challenge.status !== 200 || !challenge.data || typeof challenge.data.challenge !== "string") {
      return { answer: challenge };
    }
    if (challenge.data.image && challenge.data.image.png) await showImage(challenge.data.image);
    const solved = await solveCaptcha(challenge.data);
    const body = { sale: sale.id, challenge: challenge.data.challenge, nonce: solved.nonce };
    if (solved.answer) body.answer = solved.answer;
    const expiresAt = Number.isFinite(challenge.data.expires_at) ? challenge.data.expires_at * 1000 : Infinity;
    kept.solution = { body, expiresAt };
  }
  const resent = kept.solution.sent === true;
  kept.solution.sent = true;
  const answer = await attempt("/api/captcha", { method: "POST", body: kept.solution.body, auth: true });
  if (unavailable(answer)) return { answer, away: true };
  if (answer.status === 401) {
    kept.solution.sent = resent; // the login ran out before the check was looked at: kept
    return { answer };
  }
  kept.solution = null;
  const code = answer.data && answer.data.error;
  // Sent again after the shop was away, and spent: the store had taken it but its answer was
  // lost. A new check, without a word.
  if (resent && answer.status === 403 && code === "challenge_spent") return { again: true };
  if (answer.status !== 200 || !answer.data || typeof answer.data.pass_token !== "string") return { answer };
  const expiresAt = Number.isFinite(answer.data.expires_at) ? answer.data.expires_at * 1000 : clock.now() + 60000;
  keptPass = { token: answer.data.pass_token, expiresAt, uid: currentUid() };
  return { pass: keptPass };
}
