// Keyboard, pointer, wheel and touch (taps, drags, long presses, two-finger scrolling) → the wire's
// input messages. Keys go by KeyboardEvent.code
// (the key's place on the keyboard, as evdev codes are), so the session's layout decides what they
// type; the page sends no keymap of its own (docs/web-kiosk.md, section 5).

const EVDEV = (() => {
  const m = { Escape: 1, Minus: 12, Equal: 13, Backspace: 14, Tab: 15, BracketLeft: 26, BracketRight: 27,
    Enter: 28, ControlLeft: 29, Semicolon: 39, Quote: 40, Backquote: 41, ShiftLeft: 42, Backslash: 43,
    Comma: 51, Period: 52, Slash: 53, ShiftRight: 54, NumpadMultiply: 55, AltLeft: 56, Space: 57,
    CapsLock: 58, NumLock: 69, ScrollLock: 70, Numpad7: 71, Numpad8: 72, Numpad9: 73, NumpadSubtract: 74,
    Numpad4: 75, Numpad5: 76, Numpad6: 77, NumpadAdd: 78, Numpad1: 79, Numpad2: 80, Numpad3: 81,
    Numpad0: 82, NumpadDecimal: 83, IntlBackslash: 86, F11: 87, F12: 88, IntlRo: 89, NumpadEnter: 96,
    ControlRight: 97, NumpadDivide: 98, PrintScreen: 99, AltRight: 100, Home: 102, ArrowUp: 103,
    PageUp: 104, ArrowLeft: 105, ArrowRight: 106, End: 107, ArrowDown: 108, PageDown: 109, Insert: 110,
    Delete: 111, NumpadEqual: 117, Pause: 119, NumpadComma: 121, IntlYen: 124, MetaLeft: 125,
    MetaRight: 126, ContextMenu: 127 };
  "1234567890".split("").forEach((d, i) => { m[`Digit${d}`] = 2 + i; });
  "QWERTYUIOP".split("").forEach((c, i) => { m[`Key${c}`] = 16 + i; });
  "ASDFGHJKL".split("").forEach((c, i) => { m[`Key${c}`] = 30 + i; });
  "ZXCVBNM".split("").forEach((c, i) => { m[`Key${c}`] = 44 + i; });
  for (let i = 1; i <= 10; i++) m[`F${i}`] = 58 + i;
  for (let i = 13; i <= 24; i++) m[`F${i}`] = 170 + i;
  return m;
})();

export function evdevCode(code) { return EVDEV[code]; }

// MouseEvent.button → evdev BTN_*.
const BUTTONS = [0x110, 0x112, 0x111, 0x113, 0x114];
const BTN_LEFT = 0x110, BTN_RIGHT = 0x111;
const AXIS_SOURCE_WHEEL = 0, AXIS_SOURCE_FINGER = 1;
// Touch (docs/web-kiosk.md, section 5): a finger that lifts where it went down is a click (a tap);
// one that moves past TOUCH_SLOP CSS pixels first drags (the left button held); one held still for
// LONG_PRESS ms is a right click; two fingers scroll (finger-source axis events, ended by a stop).
const TOUCH_SLOP = 10, LONG_PRESS = 600;

export class Input {
  // send(kind, ...args): the kiosk queues the message on the input channel.
  constructor(canvas, send) {
    this.canvas = canvas;
    this.send = send;
    this.held = new Set();
    this.active = false;
    this.outputWidth = 1; this.outputHeight = 1;
    const on = (target, type, fn, opts) => target.addEventListener(type, (e) => { if (this.active) fn(e); }, opts);
    on(window, "keydown", (e) => this.key(e, true), { capture: true });
    on(window, "keyup", (e) => this.key(e, false), { capture: true });
    on(window, "blur", () => this.releaseAll());
    this.touches = new Map(); // pointerId → { x, y, x0, y0 } in CSS pixels
    this.gesture = null; // touch: "pending" | "drag" | "scroll" | "done"
    this.longPress = null;
    on(canvas, "pointermove", (e) => (e.pointerType === "touch" ? this.touchMove(e) : this.motion(e)));
    on(canvas, "pointerdown", (e) => {
      canvas.focus(); canvas.setPointerCapture(e.pointerId);
      if (e.pointerType === "touch") { this.touchDown(e); return; }
      this.motion(e); this.button(e, true);
    });
    on(canvas, "pointerup", (e) => {
      if (e.pointerType === "touch") { this.touchUp(e); return; }
      this.motion(e); this.button(e, false);
    });
    on(canvas, "pointercancel", (e) => { if (e.pointerType === "touch") this.touchUp(e, true); });
    on(canvas, "wheel", (e) => this.wheel(e), { passive: false });
    on(canvas, "contextmenu", (e) => e.preventDefault());
  }

  now() { return Math.floor(performance.now()) >>> 0; }

  key(e, pressed) {
    const code = evdevCode(e.code);
    e.preventDefault();
    e.stopPropagation();
    if (code === undefined) return;
    if (pressed && e.repeat) return; // the session repeats keys itself
    if (pressed) this.held.add(code); else if (!this.held.delete(code)) return;
    this.send("Key", code, pressed, this.now());
    if (pressed && window.wayray) {
      window.wayray.lastKeyAt = performance.now();
      if (window.wayray.pendingKeys.length < 1000) window.wayray.pendingKeys.push(window.wayray.lastKeyAt);
    }
  }

  releaseAll() {
    for (const code of this.held) this.send("Key", code, false, this.now());
    this.held.clear();
    clearTimeout(this.longPress);
    if (this.gesture === "drag") this.press(BTN_LEFT, false);
    this.touches.clear();
    this.gesture = null;
  }

  position(e) {
    const r = this.canvas.getBoundingClientRect();
    const x = ((e.clientX - r.left) / r.width) * this.outputWidth;
    const y = ((e.clientY - r.top) / r.height) * this.outputHeight;
    return [Math.max(0, Math.min(this.outputWidth - 1, x)), Math.max(0, Math.min(this.outputHeight - 1, y))];
  }

  motion(e) { const [x, y] = this.position(e); this.send("PointerMotion", x, y, this.now()); }

  button(e, pressed) {
    e.preventDefault();
    const b = BUTTONS[e.button];
    if (b !== undefined) this.send("PointerButton", b, pressed, this.now());
  }

  press(b, pressed) { this.send("PointerButton", b, pressed, this.now()); }

  touchDown(e) {
    e.preventDefault();
    this.touches.set(e.pointerId, { x: e.clientX, y: e.clientY, x0: e.clientX, y0: e.clientY });
    if (this.touches.size === 1) {
      this.gesture = "pending";
      this.touchAt = e;
      clearTimeout(this.longPress);
      this.longPress = setTimeout(() => {
        if (this.gesture !== "pending" || !this.active) return;
        this.gesture = "done"; // held still: a right click where the finger is
        this.motion(this.touchAt); this.press(BTN_RIGHT, true); this.press(BTN_RIGHT, false);
      }, LONG_PRESS);
    } else if (this.touches.size === 2 && (this.gesture === "pending" || this.gesture === "drag")) {
      clearTimeout(this.longPress);
      if (this.gesture === "drag") this.press(BTN_LEFT, false);
      this.gesture = "scroll";
    }
  }

  touchMove(e) {
    const t = this.touches.get(e.pointerId);
    if (!t) return;
    e.preventDefault();
    const dx = e.clientX - t.x, dy = e.clientY - t.y;
    t.x = e.clientX; t.y = e.clientY;
    if (this.gesture === "pending" && Math.hypot(t.x - t.x0, t.y - t.y0) > TOUCH_SLOP) {
      clearTimeout(this.longPress);
      this.gesture = "drag"; // the press where the finger went down, then the drag
      this.motion({ clientX: t.x0, clientY: t.y0 }); this.press(BTN_LEFT, true);
    }
    if (this.gesture === "drag") this.motion(e);
    else if (this.gesture === "scroll") {
      // Content follows the fingers, as on a phone: fingers moving down scroll up (negative), in
      // the session's pixels; each finger moves half the way of the pair's middle.
      const r = this.canvas.getBoundingClientRect();
      const sx = this.outputWidth / r.width, sy = this.outputHeight / r.height;
      const half = 1 / this.touches.size;
      if (dy) this.send("PointerAxis", 0, -dy * sy * half, 0, AXIS_SOURCE_FINGER, this.now());
      if (dx) this.send("PointerAxis", 1, -dx * sx * half, 0, AXIS_SOURCE_FINGER, this.now());
    }
  }

  touchUp(e, cancelled = false) {
    const t = this.touches.get(e.pointerId);
    if (!t) return;
    e.preventDefault();
    this.touches.delete(e.pointerId);
    if (this.gesture === "pending") {
      clearTimeout(this.longPress);
      this.gesture = "done";
      if (!cancelled) { this.motion({ clientX: t.x0, clientY: t.y0 }); this.press(BTN_LEFT, true); this.press(BTN_LEFT, false); }
    } else if (this.gesture === "drag") {
      this.gesture = "done";
      this.press(BTN_LEFT, false);
    } else if (this.gesture === "scroll" && this.touches.size < 2) {
      this.gesture = "done"; // Wayland's axis_stop: a finger-source axis of 0 on both axes
      for (const axis of [0, 1]) this.send("PointerAxis", axis, 0, 0, AXIS_SOURCE_FINGER, this.now());
    }
    if (this.touches.size === 0) this.gesture = null;
  }

  wheel(e) {
    e.preventDefault();
    // One wheel notch: 100 px (DOM_DELTA_PIXEL) or 3 lines; Wayland's is 15 px, value120 120.
    const notches = (d) => (e.deltaMode === 1 ? d / 3 : e.deltaMode === 2 ? d : d / 100);
    for (const [axis, d] of [[0, e.deltaY], [1, e.deltaX]]) {
      if (!d) continue;
      const n = notches(d);
      this.send("PointerAxis", axis, n * 15, Math.round(n * 120), AXIS_SOURCE_WHEEL, this.now());
    }
  }
}
