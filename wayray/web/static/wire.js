// The WayRay wire protocol (docs/protocol.md) as the page speaks it: frames, messages, and the
// channels' unidirectional streams inside a WebTransport session (docs/web-kiosk.md, section 2).
// The layouts here are the ones tests/web checks against wayray/wire (a message the server cannot
// decode closes the session with MALFORMED_MESSAGE and a reason).

export const VERSION = [1, 2];
export const CHANNEL = { CONTROL: 0, DISPLAY: 1, INPUT: 2 };
export const CAPABILITIES = ["clipboard", "cursor", "display", "input"]; // sorted, as a set<> is sent
export const TOKEN_KIND = { TERMINAL: 1, BADGE: 2, SOFTWARE: 3 };
export const ERROR = {
  NO_ERROR: 0, PROTOCOL_VIOLATION: 1, MALFORMED_MESSAGE: 2, UNEXPECTED_MESSAGE: 5,
  IDLE_TIMEOUT: 9, TOKEN_REJECTED: 256, SESSION_MOVED: 257, SESSION_ENDED: 258,
  SERVER_SHUTDOWN: 259, SERVER_BUSY: 260, TRANSPORT_ERROR: 264, ACCESS_DENIED: 265, INTERNAL_ERROR: 511,
};
export const SESSION_EVENT = {
  1: "GREETER", 2: "DESKTOP", 3: "MOVED", 4: "DETACHED", 5: "ENDED", 6: "NOT_RESPONDING", 7: "RESPONDING",
};
export const ENCODING = { RAW_ZSTD: 1, XOR_ZSTD: 2, FILL: 3, H264: 4, COPY: 5 };
export const KEYFRAME_REASON = { CHECKSUM_MISMATCH: 1, DECODER_ERROR: 2, VIEWER_RESET: 3 };
// Message numbers per channel (docs/protocol.md, section 8).
export const MSG = {
  control: { Hello: 1, ServerHello: 2, Close: 3, Ping: 4, Pong: 5, KeyframeRequest: 6, ResizeRequest: 7,
             ClipboardText: 8, SessionEvent: 9 },
  display: { FrameUpdate: 1, CursorImage: 2, CursorPosition: 3, FrameAck: 4 },
  input: { Key: 1, PointerMotion: 2, PointerButton: 3, PointerAxis: 4, KeymapUpdate: 5 },
};
// Largest frame bodies the page accepts from the server, per channel (the wire's limits).
const MAX_BODY = { 0: 2 * 1024 * 1024, 1: 64 * 1024 * 1024 };

const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder("utf-8", { fatal: true });

export class WireError extends Error {
  constructor(code, reason) { super(reason); this.code = code; }
}

// --- writing -------------------------------------------------------------------------------------

export class Writer {
  constructor() { this.buf = new Uint8Array(256); this.view = new DataView(this.buf.buffer); this.n = 0; }
  room(k) {
    if (this.n + k <= this.buf.length) return;
    const bigger = new Uint8Array(Math.max(this.buf.length * 2, this.n + k));
    bigger.set(this.buf.subarray(0, this.n));
    this.buf = bigger; this.view = new DataView(bigger.buffer);
  }
  u8(v) { this.room(1); this.view.setUint8(this.n, v); this.n += 1; return this; }
  u16(v) { this.room(2); this.view.setUint16(this.n, v, true); this.n += 2; return this; }
  u32(v) { this.room(4); this.view.setUint32(this.n, v >>> 0, true); this.n += 4; return this; }
  i32(v) { this.room(4); this.view.setInt32(this.n, v | 0, true); this.n += 4; return this; }
  u64(v) { this.room(8); this.view.setBigUint64(this.n, BigInt(v), true); this.n += 8; return this; }
  f64(v) { this.room(8); this.view.setFloat64(this.n, v, true); this.n += 8; return this; }
  bool(v) { return this.u8(v ? 1 : 0); }
  bytes(b) { this.u32(b.length); this.room(b.length); this.buf.set(b, this.n); this.n += b.length; return this; }
  str(s) { return this.bytes(utf8.encode(s)); }
  strs(list) { this.u32(list.length); for (const s of list) this.str(s); return this; }
  done() { return this.buf.slice(0, this.n); }
}

export function frame(type, body) {
  const out = new Uint8Array(6 + body.length);
  const v = new DataView(out.buffer);
  v.setUint32(0, body.length, true);
  v.setUint16(4, type, true);
  out.set(body, 6);
  return out;
}

export const encode = {
  Hello(h) {
    return frame(MSG.control.Hello, new Writer()
      .u16(VERSION[0]).u16(VERSION[1]).str(h.token).u8(h.tokenKind).strs(CAPABILITIES)
      .u32(h.width).u32(h.height).u16(h.scale120).str(h.keymap || "")
      .str("wayray-web").str(h.build).str(h.accessKey || "").str(h.terminalId || "").done());
  },
  Close(code, reason) { return frame(MSG.control.Close, new Writer().u16(code).str(reason).done()); },
  Ping(nonce) { return frame(MSG.control.Ping, new Writer().u64(nonce).done()); },
  Pong(nonce) { return frame(MSG.control.Pong, new Writer().u64(nonce).done()); },
  KeyframeRequest(reason) { return frame(MSG.control.KeyframeRequest, new Writer().u8(reason).done()); },
  ResizeRequest(w, h, scale120) {
    return frame(MSG.control.ResizeRequest, new Writer().u32(w).u32(h).u16(scale120).done());
  },
  ClipboardText(selection, text) {
    return frame(MSG.control.ClipboardText, new Writer().u8(selection).str(text).done());
  },
  FrameAck(seq, decodeUs) {
    return frame(MSG.display.FrameAck, new Writer().u64(seq).u32(Math.min(decodeUs, 0xffffffff)).done());
  },
  Key(code, pressed, timeMs) {
    return frame(MSG.input.Key, new Writer().u32(code).u8(pressed ? 1 : 0).u32(timeMs).done());
  },
  PointerMotion(x, y, timeMs) { return frame(MSG.input.PointerMotion, new Writer().f64(x).f64(y).u32(timeMs).done()); },
  PointerButton(button, pressed, timeMs) {
    return frame(MSG.input.PointerButton, new Writer().u32(button).u8(pressed ? 1 : 0).u32(timeMs).done());
  },
  PointerAxis(axis, value, value120, source, timeMs) {
    return frame(MSG.input.PointerAxis,
      new Writer().u8(axis).f64(value).i32(value120).u8(source).u32(timeMs).done());
  },
};

// --- reading -------------------------------------------------------------------------------------

export class Reader {
  constructor(bytes) {
    this.b = bytes; this.v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength); this.n = 0;
  }
  need(k) {
    if (this.n + k > this.b.length) throw new WireError(ERROR.MALFORMED_MESSAGE, "a message ends early");
  }
  u8() { this.need(1); return this.v.getUint8(this.n++); }
  u16() { this.need(2); const x = this.v.getUint16(this.n, true); this.n += 2; return x; }
  u32() { this.need(4); const x = this.v.getUint32(this.n, true); this.n += 4; return x; }
  i32() { this.need(4); const x = this.v.getInt32(this.n, true); this.n += 4; return x; }
  u64() { this.need(8); const x = this.v.getBigUint64(this.n, true); this.n += 8; return x; }
  bool() {
    const x = this.u8();
    if (x > 1) throw new WireError(ERROR.MALFORMED_MESSAGE, "a bool that is neither 0 nor 1");
    return x === 1;
  }
  bytes(max) {
    const k = this.u32();
    if (k > max) throw new WireError(ERROR.MALFORMED_MESSAGE, `${k} bytes where at most ${max} may be`);
    this.need(k); const out = this.b.subarray(this.n, this.n + k); this.n += k; return out;
  }
  str(max) {
    try { return fromUtf8.decode(this.bytes(max)); } catch (e) {
      if (e instanceof WireError) throw e;
      throw new WireError(ERROR.MALFORMED_MESSAGE, "text that is not UTF-8");
    }
  }
  strs(maxItems, max) {
    const k = this.u32();
    if (k > maxItems) throw new WireError(ERROR.MALFORMED_MESSAGE, "too many items");
    const out = []; for (let i = 0; i < k; i++) out.push(this.str(max)); return out;
  }
  end() {
    if (this.n !== this.b.length) throw new WireError(ERROR.MALFORMED_MESSAGE, "trailing bytes after a message");
  }
}

const KiB = 1024, MiB = 1024 * 1024;

export const decode = {
  0: {
    [MSG.control.ServerHello]: (r) => ({
      type: "ServerHello", major: r.u16(), minor: r.u16(), capabilities: r.strs(32, 32), sessionId: r.str(64),
      width: r.u32(), height: r.u32(), scale120: r.u16(), resumed: r.bool(), keyframeFollows: r.bool(),
      frameWindow: r.u16(), serverName: r.str(64), serverVersion: r.str(64),
    }),
    [MSG.control.Close]: (r) => ({ type: "Close", code: r.u16(), reason: r.str(KiB) }),
    [MSG.control.Ping]: (r) => ({ type: "Ping", nonce: r.u64() }),
    [MSG.control.Pong]: (r) => ({ type: "Pong", nonce: r.u64() }),
    [MSG.control.ClipboardText]: (r) => ({ type: "ClipboardText", selection: r.u8(), text: r.str(MiB) }),
    [MSG.control.SessionEvent]: (r) => ({ type: "SessionEvent", kind: SESSION_EVENT[r.u8()], detail: r.str(KiB) }),
  },
  1: {
    [MSG.display.FrameUpdate]: (r) => {
      const seq = r.u64(), width = r.u32(), height = r.u32(), keyframe = r.bool();
      const count = r.u32();
      if (count > 4096) throw new WireError(ERROR.MALFORMED_MESSAGE, "more than 4096 regions");
      const regions = [];
      for (let i = 0; i < count; i++) {
        regions.push({ x: r.u32(), y: r.u32(), width: r.u32(), height: r.u32(), encoding: r.u8(),
                       data: r.bytes(64 * MiB), streamId: r.u32() });
      }
      return { type: "FrameUpdate", seq, width, height, keyframe, regions, checksum: Number(r.u64()) };
    },
    [MSG.display.CursorImage]: (r) => ({
      type: "CursorImage", serial: r.u32(), width: r.u16(), height: r.u16(), hotX: r.u16(), hotY: r.u16(),
      pixels: r.bytes(MiB),
    }),
    [MSG.display.CursorPosition]: (r) => ({
      type: "CursorPosition", x: r.i32(), y: r.i32(), visible: r.bool(), serial: r.u32(),
    }),
  },
};

// One channel's byte stream → messages (length u32, type u16, body), bounded per channel. Chunks wait
// unjoined until a whole frame is there, so a large keyframe arriving in many pieces is copied once.
export class FrameParser {
  constructor(channel) { this.channel = channel; this.parts = []; this.size = 0; this.need = 6; }
  *feed(chunk) {
    this.parts.push(chunk); this.size += chunk.length;
    if (this.size < this.need) return;
    const buf = this.parts.length === 1 ? this.parts[0] : join(this.parts, this.size);
    let at = 0;
    this.need = 6;
    for (;;) {
      if (buf.length - at < 6) break;
      const v = new DataView(buf.buffer, buf.byteOffset + at, 6);
      const length = v.getUint32(0, true), type = v.getUint16(4, true);
      const limit = MAX_BODY[this.channel];
      if (limit === undefined) throw new WireError(ERROR.PROTOCOL_VIOLATION, `the server sent on channel ${this.channel}`);
      if (length > limit) throw new WireError(3, `a frame of ${length} bytes on channel ${this.channel}`);
      if (buf.length - at < 6 + length) { this.need = 6 + length; break; }
      const body = buf.subarray(at + 6, at + 6 + length);
      at += 6 + length;
      const decoder = decode[this.channel][type];
      if (!decoder) throw new WireError(4, `unknown message ${type} on channel ${this.channel}`);
      const r = new Reader(body);
      const msg = decoder(r);
      r.end();
      yield msg;
    }
    const rest = buf.subarray(at);
    this.parts = rest.length ? [rest] : [];
    this.size = rest.length;
  }
}

function join(parts, size) {
  const out = new Uint8Array(size);
  let at = 0;
  for (const p of parts) { out.set(p, at); at += p.length; }
  return out;
}
