// The browser kiosk (docs/web-kiosk.md): the native kiosk's states in a page — idle ("Present your
// badge"), connecting, session, reconnecting, not responding, failed — over one WebTransport session
// that carries the wire protocol. window.wayray says what the page shows (the tests read it).

import { CHANNEL, ERROR, FrameParser, KEYFRAME_REASON, TOKEN_KIND, WireError, encode } from "./wire.js";
import { Display, DecodeError, cursorCss } from "./display.js";
import { Input } from "./input.js";

const BUILD = document.querySelector('meta[name="wayray-build"]').content;
const $ = (id) => document.getElementById(id);
const canvas = $("screen");
const state = (window.wayray = {
  build: BUILD, state: "idle", screen: null, sessionId: null, reason: "", framesApplied: 0, mismatches: 0,
  keyframeRequests: 0, lastSeq: null, complete: false, lastKeyAt: null, shownAt: [], loadedAt: performance.now(),
  keymap: null, // the layout sent in the Hello: { layout, variant, how } (wayray/web/keymaps.py)
  firstCompleteAt: null,
  // Keypress to pixels as wrclient measures it: from a key sent to the first changed picture shown after it.
  pendingKeys: [], keyToPixels: [],
});

const BACKOFF_MIN = 500, BACKOFF_MAX = 10000;
const PING_EVERY = 1000, IDLE_TIMEOUT = 6000;
const NOT_RESPONDING_REFUSAL = "the session is not responding";

let conn = null; // the current connection (see connect())
let token = null; // { value, kind }
let backoff = BACKOFF_MIN;

function show(s, reason = "") {
  state.state = s;
  state.reason = reason;
  document.body.dataset.state = s;
  $("idle").hidden = s !== "idle" && s !== "failed";
  canvas.hidden = !(s === "session" || s === "reconnecting" || s === "not-responding" || s === "connecting");
  $("leave").hidden = !(s === "session" || s === "not-responding" || s === "reconnecting" || s === "connecting");
  const notice = {
    connecting: "Connecting…",
    reconnecting: "Reconnecting…",
    "not-responding": `The session is not responding${reason ? `: ${reason}` : ""}`,
  }[s];
  $("notice").hidden = !notice;
  $("notice").textContent = notice || "";
  $("idle-reason").textContent = s === "idle" || s === "failed" ? reason : "";
  if (s === "idle") $("badge").focus();
}

// --- tokens -----------------------------------------------------------------------------------------

function hex(bytes) { return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join(""); }

function terminalToken() {
  let t = localStorage.getItem("wayray.terminal-token");
  if (!t) {
    t = hex(crypto.getRandomValues(new Uint8Array(32)));
    localStorage.setItem("wayray.terminal-token", t);
  }
  return t;
}

async function terminalId() {
  // HMAC-SHA256 of "wayray terminal id v1" keyed with the terminal token, in hex. The token is this
  // origin's (localStorage), so each server already gets an identity of its own (wrclient binds its
  // identity to the server's certificate instead: docs/protocol.md, Hello).
  const enc = new TextEncoder();
  const key = await crypto.subtle.importKey("raw", enc.encode(terminalToken()), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  return hex(new Uint8Array(await crypto.subtle.sign("HMAC", key, enc.encode("wayray terminal id v1"))));
}

// --- the connection ---------------------------------------------------------------------------------

class Connection {
  constructor() {
    this.display = new Display(canvas);
    this.writers = new Map();
    this.queues = new Map();
    this.closed = false;
    this.lastPong = performance.now();
    this.nonce = 0n;
    this.askedKeyframe = false;
    this.presentPending = false;
    this.applying = Promise.resolve();
  }

  async open() {
    const info = await (await fetch("/web.json", { cache: "no-store" })).json();
    if (info.build !== BUILD) {
      // A stale page (the server was upgraded since it loaded): the current one is a reload away.
      location.reload();
      throw new Error("reloading: the server serves a newer page");
    }
    const keymap = await pageKeymap(); // before the session: the server may compile it a while
    const options = {};
    if (info.hashes.length) {
      options.serverCertificateHashes = info.hashes.map((h) => ({
        algorithm: "sha-256", value: new Uint8Array(h.match(/../g).map((x) => parseInt(x, 16))),
      }));
    }
    this.wt = new WebTransport(`${location.origin}${info.path}?build=${BUILD}`, options);
    // The server says why in its close capsule (the wire's code and reason); a Close message that
    // arrived first has said it already. A session that just ends is lost (reconnect).
    this.wt.closed.then(
      (info) => setTimeout(() => {
        if (info && (info.closeCode || info.reason)) this.closedBy(info.closeCode || 0, info.reason || "");
        else this.lost("the server closed the connection");
      }, 0),
      (e) => setTimeout(() => this.lost(`the connection failed: ${e.message || e}`), 0),
    );
    await this.wt.ready;
    this.readStreams();
    const dpr = window.devicePixelRatio || 1;
    this.sendNow(CHANNEL.CONTROL, encode.Hello({
      token: token.value, tokenKind: token.kind,
      width: Math.round(window.innerWidth * dpr), height: Math.round(window.innerHeight * dpr),
      scale120: Math.max(1, Math.round(dpr * 120)), build: BUILD, keymap,
      accessKey: localStorage.getItem("wayray.access-key") || "", terminalId: await terminalId(),
    }));
  }

  // One unidirectional stream per channel, opened when first used; its first byte names the channel.
  sendNow(channel, bytes) {
    if (this.closed) return;
    let q = this.queues.get(channel);
    if (!q) {
      q = [Uint8Array.of(channel)];
      this.queues.set(channel, q);
    }
    q.push(bytes);
    this.pumpChannel(channel);
  }

  async pumpChannel(channel) {
    this.pumping = this.pumping || {};
    if (this.pumping[channel]) return;
    this.pumping[channel] = true;
    try {
      let w = this.writers.get(channel);
      if (!w) {
        const stream = await this.wt.createUnidirectionalStream();
        w = stream.getWriter();
        this.writers.set(channel, w);
      }
      const q = this.queues.get(channel);
      while (q.length && !this.closed) {
        const chunk = q.length > 1 ? joinAll(q.splice(0)) : q.shift();
        await w.write(chunk);
      }
    } catch (e) {
      this.lost(`cannot send: ${e.message || e}`);
    } finally {
      this.pumping[channel] = false;
    }
  }

  async readStreams() {
    const reader = this.wt.incomingUnidirectionalStreams.getReader();
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        this.readStream(value);
      }
    } catch (e) { /* the session ended: closed() says why */ }
  }

  async readStream(stream) {
    const r = stream.getReader();
    let parser = null;
    try {
      for (;;) {
        const { value, done } = await r.read();
        if (done) return;
        let chunk = value;
        if (!parser) {
          parser = new FrameParser(chunk[0]);
          chunk = chunk.subarray(1);
        }
        for (const msg of parser.feed(chunk)) this.message(msg);
      }
    } catch (e) {
      if (e instanceof WireError) this.fail(e.code, e.message);
    }
  }

  message(m) {
    switch (m.type) {
      case "ServerHello": return this.established(m);
      case "Ping": return this.sendNow(CHANNEL.CONTROL, encode.Pong(m.nonce));
      case "Pong": this.lastPong = performance.now(); return undefined;
      case "Close": return this.closedBy(m.code, m.reason);
      case "SessionEvent": return this.event(m);
      case "FrameUpdate":
        this.applying = this.applying.then(() => this.frame(m)).catch((e) => this.fail(ERROR.INTERNAL_ERROR, `the page failed: ${e}`));
        return undefined;
      case "CursorImage": this.cursorImage = cursorCss(m); this.cursorSerial = m.serial; canvas.style.cursor = this.cursorImage; return undefined;
      case "CursorPosition": canvas.style.cursor = m.visible && m.serial === this.cursorSerial ? this.cursorImage : "none"; return undefined;
      case "ClipboardText": return clipboardFromSession(m.text);
      default: return undefined;
    }
  }

  established(sh) {
    backoff = BACKOFF_MIN;
    state.sessionId = sh.sessionId;
    input.outputWidth = sh.width; input.outputHeight = sh.height;
    input.active = true;
    show("session");
    clipboardToSession();
    // The server's silence is counted from now: starting a session may take seconds before its hello.
    this.lastPong = performance.now();
    this.pinger = setInterval(() => {
      if (performance.now() - this.lastPong > IDLE_TIMEOUT) {
        this.fail(ERROR.IDLE_TIMEOUT, `no answer from the server for ${IDLE_TIMEOUT / 1000} s`);
        return;
      }
      this.sendNow(CHANNEL.CONTROL, encode.Ping(this.nonce++));
    }, PING_EVERY);
  }

  event(e) {
    if (e.kind === "GREETER") state.screen = "greeter";
    else if (e.kind === "DESKTOP") state.screen = "desktop";
    else if (e.kind === "NOT_RESPONDING") show("not-responding", e.detail);
    else if (e.kind === "RESPONDING") show("session");
    else if (e.kind === "MOVED") this.notice = "Your session moved to another kiosk";
  }

  async frame(u) {
    if (this.closed) return;
    const started = performance.now();
    let inSync = false;
    try {
      inSync = await this.display.apply(u);
    } catch (e) {
      // A picture that cannot be applied (DecodeError, or the browser's own decoders failing) costs
      // a keyframe, never the frames after it.
      console.warn(`frame ${u.seq} could not be applied:`, e.message || e);
      this.display.lose(e instanceof DecodeError ? e.message : `the browser failed: ${e.message || e}`);
    }
    input.outputWidth = this.display.width; input.outputHeight = this.display.height;
    state.framesApplied = this.display.applied;
    state.mismatches = this.display.mismatches;
    state.regions = this.display.regionCounts;
    state.lastSeq = Number(u.seq);
    this.sendNow(CHANNEL.DISPLAY, encode.FrameAck(u.seq, Math.round((performance.now() - started) * 1000)));
    if (this.display.needsKeyframe) {
      if (!this.askedKeyframe && this.display.desync !== "no keyframe yet") {
        const reason = this.display.desync && this.display.desync.includes("checksum")
          ? KEYFRAME_REASON.CHECKSUM_MISMATCH : KEYFRAME_REASON.DECODER_ERROR;
        this.sendNow(CHANNEL.CONTROL, encode.KeyframeRequest(reason));
        this.askedKeyframe = true;
        state.keyframeRequests++;
      }
    } else {
      this.askedKeyframe = false;
      if (inSync && !state.complete) { state.complete = true; state.firstCompleteAt = performance.now(); }
    }
    if (!this.presentPending) {
      this.presentPending = true;
      requestAnimationFrame(() => {
        this.presentPending = false;
        if (this.display.present()) {
          const now = performance.now();
          if (state.shownAt.length < 100000) state.shownAt.push(now);
          if (state.pendingKeys.length && state.keyToPixels.length < 100000) {
            for (const t of state.pendingKeys) state.keyToPixels.push(now - t);
          }
          state.pendingKeys = [];
        }
      });
    }
  }

  closedBy(code, reason) {
    if (this.closed) return;
    this.closed = true;
    this.stop();
    ended(code, reason, this.notice);
  }

  fail(code, reason) {
    if (this.closed) return;
    this.closed = true;
    try {
      const w = this.writers.get(CHANNEL.CONTROL);
      if (w) w.write(encode.Close(code, reason));
    } catch (e) { /* closing anyway */ }
    this.stop();
    ended(code, reason);
  }

  lost(why) {
    if (this.closed) return;
    this.closed = true;
    this.stop();
    ended(ERROR.TRANSPORT_ERROR, why);
  }

  leave() {
    if (this.closed) return;
    this.closed = true;
    try {
      const w = this.writers.get(CHANNEL.CONTROL);
      if (w) w.write(encode.Close(ERROR.NO_ERROR, "the person left the browser kiosk"));
    } catch (e) { /* closing anyway */ }
    this.stop();
  }

  stop() {
    input.active = false;
    input.releaseAll();
    clearInterval(this.pinger);
    this.display.closeStreams();
    setTimeout(() => { try { this.wt?.close(); } catch (e) { /* gone */ } }, 200);
  }
}

// The keyboard's layout as an XKB keymap, sent in the Hello as wrclient sends its own: the server
// compiles it (wayray/web/keymaps.py) from what the page knows — a layout its URL names
// (?layout=de,nodeadkeys), the browser's key map (the Keyboard Map API: which character each key
// types), the person's languages. "" when nothing is known: the session's default layout.
let keymapAsked = null, keymapGot = null;
async function pageKeymap() {
  let labels = {};
  try {
    if (navigator.keyboard && navigator.keyboard.getLayoutMap) labels = Object.fromEntries(await navigator.keyboard.getLayoutMap());
  } catch (e) { /* not offered here (a frame, a browser without it) */ }
  const q = new URLSearchParams({
    layout: new URLSearchParams(location.search).get("layout") || "",
    lang: (navigator.languages || [navigator.language || ""]).join(","),
    map: JSON.stringify(labels),
  }).toString();
  if (q !== keymapAsked) {
    try {
      const got = await (await fetch(`/keymap.json?${q}`, { cache: "no-store" })).json();
      keymapGot = got.layout ? got : null;
      keymapAsked = q;
    } catch (e) {
      console.warn("no keyboard layout from the server; the session's default is used:", e.message || e);
      keymapGot = null;
    }
    state.keymap = keymapGot ? { layout: keymapGot.layout, variant: keymapGot.variant, how: keymapGot.how } : null;
  }
  return keymapGot ? keymapGot.keymap : "";
}

function joinAll(parts) {
  let n = 0; for (const p of parts) n += p.length;
  const out = new Uint8Array(n); let at = 0;
  for (const p of parts) { out.set(p, at); at += p.length; }
  return out;
}

// What happens after a connection: the native kiosk's choices (docs/kiosk.md).
function ended(code, reason, notice) {
  conn = null;
  state.sessionId = null; state.screen = null; state.complete = false;
  if (code === ERROR.SESSION_MOVED) { token = null; show("idle", notice || "Your session moved to another kiosk."); return; }
  if (code === ERROR.SESSION_ENDED) { show("idle", "The session ended."); if (token) retry(); return; }
  if (code === ERROR.ACCESS_DENIED) {
    token = null; $("key-form").hidden = false; show("idle", reason); return;
  }
  if (code === ERROR.TOKEN_REJECTED) { token = null; show("idle", reason); return; }
  if (code === ERROR.NO_ERROR && !token) { show("idle", ""); return; }
  if (code === ERROR.NO_ERROR && reason.includes("detached")) { token = null; show("idle", reason); return; }
  if (!token) { show("idle", reason); return; }
  // The server refuses a badge while its session does not respond (wayray/server/attach.py's
  // NOT_RESPONDING_REFUSAL): say that, not "Reconnecting", and keep trying until it answers.
  if (code === ERROR.SERVER_BUSY && reason.startsWith(NOT_RESPONDING_REFUSAL)) {
    show("not-responding", "waiting for it\u2026"); retry(); return;
  }
  show("reconnecting", reason);
  retry();
}

function retry() {
  const wait = backoff;
  backoff = Math.min(BACKOFF_MAX, backoff * 2);
  setTimeout(() => { if (token && !conn) connect(); }, wait);
}

async function connect() {
  if (conn) return;
  if (state.state !== "not-responding") show(state.state === "reconnecting" ? "reconnecting" : "connecting");
  conn = new Connection();
  const c = conn;
  try {
    await c.open();
  } catch (e) {
    if (!c.closed) c.lost(`cannot connect: ${e.message || e}`);
  }
}

function present(value, kind) {
  token = { value, kind };
  backoff = BACKOFF_MIN;
  if (conn) { conn.leave(); conn = null; }
  connect();
}

let clipboardSeen = null; // the text last exchanged with the session (either way)

async function clipboardFromSession(text) {
  clipboardSeen = text;
  try { await navigator.clipboard.writeText(text); } catch (e) { /* the browser refused: no focus, or no permission */ }
}

// The browser's clipboard to the session, as wrclient sends its own when it changes: when the page
// gets the focus back (a person copied something elsewhere) and when a session starts, if the
// browser lets the page read it (a permission a kiosk's browser can be given). The session's policy
// decides whether it goes in (wrsrvd filters, as for any viewer).
async function clipboardToSession() {
  if (!conn || conn.closed || state.state !== "session" || !navigator.clipboard?.readText) return;
  let text;
  try { text = await navigator.clipboard.readText(); } catch (e) { return; /* not allowed: nothing sent */ }
  if (!text || text === clipboardSeen || !conn || conn.closed) return;
  clipboardSeen = text;
  const bytes = new TextEncoder().encode(text);
  if (bytes.length > 1024 * 1024) return; // the wire's limit; the native viewer truncates, a page sends none
  conn.sendNow(CHANNEL.CONTROL, encode.ClipboardText(0, text));
}
window.addEventListener("focus", clipboardToSession);

const input = new Input(canvas, (kind, ...args) => {
  if (conn && !conn.closed) conn.sendNow(CHANNEL.INPUT, encode[kind](...args));
});

$("badge-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const badge = $("badge").value.trim();
  $("badge").value = "";
  if (badge) present(badge, TOKEN_KIND.BADGE);
});
$("browser-token").addEventListener("click", () => present(terminalToken(), TOKEN_KIND.TERMINAL));
$("key-form").addEventListener("submit", (e) => {
  e.preventDefault();
  localStorage.setItem("wayray.access-key", $("access-key").value.trim());
  $("access-key").value = "";
  $("key-form").hidden = true;
  show("idle", "Saved. Present your badge again.");
});
$("leave").addEventListener("click", () => {
  token = null;
  if (conn) { conn.leave(); conn = null; }
  show("idle", "");
});
// Full screen, and there the keys a browser keeps for itself (Escape, Ctrl+W, Alt+Tab where the
// system allows) go to the session: the Keyboard Lock API, where the browser has it.
$("fullscreen").addEventListener("click", async () => {
  try {
    await document.documentElement.requestFullscreen({ navigationUI: "hide" });
    if (navigator.keyboard && navigator.keyboard.lock) await navigator.keyboard.lock();
  } catch (e) {
    console.info("full screen refused:", e.message || e);
  }
  canvas.focus();
});

// A resized window (or a phone turned round) asks the session for an output of the new size.
let resizeTimer = null;
window.addEventListener("resize", () => {
  clearTimeout(resizeTimer);
  resizeTimer = setTimeout(() => {
    if (!conn || conn.closed || state.state !== "session") return;
    const dpr = window.devicePixelRatio || 1;
    conn.sendNow(CHANNEL.CONTROL, encode.ResizeRequest(
      Math.round(window.innerWidth * dpr), Math.round(window.innerHeight * dpr), Math.max(1, Math.round(dpr * 120))));
  }, 300);
});
setInterval(() => { $("clock").textContent = new Date().toLocaleTimeString(); }, 1000);
window.wayray.display = () => conn && conn.display;
show("idle");
if (new URLSearchParams(location.search).get("token") === "browser") present(terminalToken(), TOKEN_KIND.TERMINAL);
