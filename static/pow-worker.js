/*
 * The proof of work of the sale page's captcha, run in a Web Worker so the page stays responsive.
 *
 * In:  {challenge: "v1....", difficulty: 12}
 * Out: {type: "progress", hashes} about every 100 ms, then {type: "found", nonce: "4821", hashes}
 *      (or {type: "error", message}).
 *
 * It finds the first decimal nonce 0, 1, 2, ... such that SHA-256(challenge + ":" + nonce) starts
 * with `difficulty` zero bits, as the edge checks (edge/src/captcha/pow.rs). SHA-256 is written
 * out here (FIPS 180-4): crypto.subtle.digest is asynchronous and costs far more per hash. The
 * whole 64-byte blocks of `challenge + ":"` are hashed once (the midstate); each nonce then
 * costs one or two compressions. Also loadable by node (module.exports) to check test vectors.
 */
"use strict";

const K = Int32Array.of(
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2
);

const H0 = Int32Array.of(
  0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19
);

/** Hashes the 64-byte block of `bytes` at `off` into the state `h` (8 words); `w` is scratch. */
function compress(h, bytes, off, w) {
  for (let i = 0; i < 16; i++) {
    const j = off + i * 4;
    w[i] = (bytes[j] << 24) | (bytes[j + 1] << 16) | (bytes[j + 2] << 8) | bytes[j + 3];
  }
  for (let i = 16; i < 64; i++) {
    const x = w[i - 15];
    const y = w[i - 2];
    const s0 = ((x >>> 7) | (x << 25)) ^ ((x >>> 18) | (x << 14)) ^ (x >>> 3);
    const s1 = ((y >>> 17) | (y << 15)) ^ ((y >>> 19) | (y << 13)) ^ (y >>> 10);
    w[i] = (w[i - 16] + s0 + w[i - 7] + s1) | 0;
  }
  let a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], k = h[7];
  for (let i = 0; i < 64; i++) {
    const s1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
    const t1 = (k + s1 + ((e & f) ^ (~e & g)) + K[i] + w[i]) | 0;
    const s0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
    const t2 = (s0 + ((a & b) ^ (a & c) ^ (b & c))) | 0;
    k = g; g = f; f = e; e = (d + t1) | 0;
    d = c; c = b; b = a; a = (t1 + t2) | 0;
  }
  h[0] = (h[0] + a) | 0; h[1] = (h[1] + b) | 0; h[2] = (h[2] + c) | 0; h[3] = (h[3] + d) | 0;
  h[4] = (h[4] + e) | 0; h[5] = (h[5] + f) | 0; h[6] = (h[6] + g) | 0; h[7] = (h[7] + k) | 0;
}

/**
 * Pads the message's last, partial block (in `buf` from 0 to `len`, under 64 bytes) for a message
 * of `total` bytes; returns how many blocks `buf` now holds (1 or 2).
 */
function pad(buf, len, total) {
  buf[len] = 0x80;
  const end = len + 9 <= 64 ? 64 : 128;
  buf.fill(0, len + 1, end - 8);
  const bits = total * 8;
  const high = Math.floor(bits / 0x100000000);
  for (let i = 0; i < 4; i++) {
    buf[end - 8 + i] = (high >>> (24 - i * 8)) & 0xff;
    buf[end - 4 + i] = (bits >>> (24 - i * 8)) & 0xff;
  }
  return end / 64;
}

/** SHA-256 of `bytes` (a Uint8Array): 32 bytes. */
function sha256(bytes) {
  const h = Int32Array.from(H0);
  const w = new Int32Array(64);
  const whole = bytes.length - (bytes.length % 64);
  for (let off = 0; off < whole; off += 64) compress(h, bytes, off, w);
  const buf = new Uint8Array(128);
  buf.set(bytes.subarray(whole));
  const blocks = pad(buf, bytes.length - whole, bytes.length);
  for (let i = 0; i < blocks; i++) compress(h, buf, i * 64, w);
  const out = new Uint8Array(32);
  for (let i = 0; i < 32; i++) out[i] = (h[i >> 2] >>> (24 - (i % 4) * 8)) & 0xff;
  return out;
}

/** Whether the hash state `h` starts with `bits` zero bits. */
function leadingZeros(h, bits) {
  for (let i = 0; i < 8 && bits > 0; i++, bits -= 32) {
    if (bits >= 32) {
      if (h[i] !== 0) return false;
    } else {
      return h[i] >>> (32 - bits) === 0;
    }
  }
  return bits <= 0;
}

/**
 * The first nonce (a decimal string) whose hash with `challenge` has `difficulty` leading zero
 * bits. Calls `report(hashes)` about every `everyMs` milliseconds.
 */
function solve(challenge, difficulty, report, everyMs) {
  const prefix = new TextEncoder().encode(challenge + ":");
  const whole = prefix.length - (prefix.length % 64);
  const mid = Int32Array.from(H0);
  const w = new Int32Array(64);
  for (let off = 0; off < whole; off += 64) compress(mid, prefix, off, w);
  const rest = prefix.length - whole;
  const buf = new Uint8Array(128);
  buf.set(prefix.subarray(whole));
  const h = new Int32Array(8);
  const clock = typeof performance === "undefined" ? Date : performance;
  let lastReport = clock.now();
  for (let nonce = 0; nonce <= Number.MAX_SAFE_INTEGER; nonce++) {
    const digits = String(nonce);
    let len = rest;
    for (let i = 0; i < digits.length; i++) buf[len++] = digits.charCodeAt(i);
    const blocks = pad(buf, len, prefix.length + digits.length);
    h.set(mid);
    compress(h, buf, 0, w);
    if (blocks === 2) compress(h, buf, 64, w);
    if (leadingZeros(h, difficulty)) return digits;
    if ((nonce & 0xfff) === 0xfff && report) {
      const now = clock.now();
      if (now - lastReport >= everyMs) {
        lastReport = now;
        report(nonce + 1);
      }
    }
  }
  throw new Error("no nonce found");
}

if (typeof module !== "undefined" && module.exports) {
  module.exports = { sha256, solve };
} else if (typeof self !== "undefined") {
  self.onmessage = (event) => {
    const { challenge, difficulty } = event.data || {};
    if (typeof challenge !== "string" || !Number.isInteger(difficulty) || difficulty < 0 || difficulty > 256) {
      self.postMessage({ type: "error", message: "bad challenge" });
      return;
    }
    try {
      const nonce = solve(challenge, difficulty, (hashes) => self.postMessage({ type: "progress", hashes }), 100);
      self.postMessage({ type: "found", nonce, hashes: Number(nonce) + 1 });
    } catch (error) {
      self.postMessage({ type: "error", message: String(error) });
    }
  };
}
