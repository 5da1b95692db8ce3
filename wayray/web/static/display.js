// The page's framebuffer: FrameUpdates applied as wrclient's decoder applies them (wayray/codec/
// decoder.py), the frame checksum checked (docs/encoding.md: CRC-32 per 64x64 tile of the B,G,R,X
// bytes, then CRC-32 of width, height and the tile CRCs), and the changed rectangles put on the canvas.

import { decompress } from "./vendor/fzstd.mjs";
import { ENCODING } from "./wire.js";

const TILE = 64;
const MAX_SIDE = 8192;
const MAX_VIDEO_STREAMS = 8;

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

export function crc32(bytes, crc = 0) {
  let c = ~crc >>> 0;
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return ~c >>> 0;
}

export class DecodeError extends Error {}

export class Display {
  constructor(canvas) {
    this.canvas = canvas;
    this.ctx = canvas.getContext("2d", { alpha: false });
    this.width = 0; this.height = 0;
    this.fb = null; // Uint32Array of XRGB words (bytes B, G, R, X)
    this.lastSeq = null;
    this.needsKeyframe = true;
    this.desync = "no keyframe yet";
    this.streams = new Map(); // stream id → { rect, decoder, tiles }
    this.dirty = null; // rectangle to put on the canvas at the next animation frame
    this.mismatches = 0;
    this.applied = 0;
    this.regionCounts = {}; // encoding number → regions applied (the tests and figures read it)
  }

  reset() { this.needsKeyframe = true; this.desync = "viewer reset"; this.lastSeq = null; this.closeStreams(); }

  closeStreams() {
    for (const s of this.streams.values()) { try { s.decoder.close(); } catch (e) { /* closed already */ } }
    this.streams.clear();
  }

  // Apply one FrameUpdate; returns true when the picture is in sync (checksum matched).
  async apply(u) {
    if (u.keyframe) this.startKeyframe(u);
    else if (!this.fb) return false;
    else if (u.width !== this.width || u.height !== this.height) {
      this.lose(`update ${u.seq} is ${u.width}x${u.height}, the screen ${this.width}x${this.height}`);
      return false;
    } else if (this.lastSeq !== null && u.seq !== this.lastSeq + 1n) {
      this.lose(`update ${u.seq} follows ${this.lastSeq}: updates were lost`);
    }
    this.lastSeq = u.seq;
    const touched = new Uint8Array(this.rows * this.cols);
    try {
      for (const region of u.regions) {
        const rect = await this.applyRegion(region);
        if (rect) this.touch(touched, rect);
      }
    } finally {
      this.refreshChecksums(touched);
    }
    this.applied++;
    if (this.checksum() !== u.checksum) {
      this.mismatches++;
      this.lose(`update ${u.seq}: checksum mismatch, the picture differs from the server's`);
      return false;
    }
    if (u.keyframe && this.needsKeyframe) { this.needsKeyframe = false; this.desync = null; }
    return !this.needsKeyframe;
  }

  lose(why) {
    if (!this.needsKeyframe) { console.info("display out of sync, waiting for a keyframe:", why); this.desync = why; }
    this.needsKeyframe = true;
  }

  startKeyframe(u) {
    const { width: w, height: h } = u;
    if (!(w > 0 && w <= MAX_SIDE && h > 0 && h <= MAX_SIDE)) throw new DecodeError(`keyframe of size ${w}x${h}`);
    if (!this.fb || w !== this.width || h !== this.height) {
      this.width = w; this.height = h;
      this.fb = new Uint32Array(w * h);
      this.bytes = new Uint8Array(this.fb.buffer);
      this.rows = Math.ceil(h / TILE); this.cols = Math.ceil(w / TILE);
      this.tileCrc = new Uint32Array(this.rows * this.cols);
      this.canvas.width = w; this.canvas.height = h;
      this.image = this.ctx.createImageData(w, h);
      this.rgba = new Uint32Array(this.image.data.buffer);
    }
    this.closeStreams();
    this.damage({ x: 0, y: 0, width: w, height: h });
  }

  touch(touched, r) {
    for (let ty = Math.floor(r.y / TILE); ty <= Math.floor((r.y + r.height - 1) / TILE); ty++) {
      for (let tx = Math.floor(r.x / TILE); tx <= Math.floor((r.x + r.width - 1) / TILE); tx++) {
        touched[ty * this.cols + tx] = 1;
      }
    }
  }

  async applyRegion(g) {
    const { x, y, width: w, height: h } = g;
    if (w <= 0 || h <= 0 || x + w > this.width || y + h > this.height) {
      throw new DecodeError(`a region ${w}x${h}+${x}+${y} outside the ${this.width}x${this.height} screen`);
    }
    const fb = this.fb, W = this.width;
    this.regionCounts[g.encoding] = (this.regionCounts[g.encoding] || 0) + 1;
    switch (g.encoding) {
      case ENCODING.RAW_ZSTD:
      case ENCODING.XOR_ZSTD: {
        const px = this.unpack(g);
        const xor = g.encoding === ENCODING.XOR_ZSTD;
        for (let row = 0; row < h; row++) {
          const dst = (y + row) * W + x, src = row * w;
          if (xor) { for (let i = 0; i < w; i++) fb[dst + i] ^= px[src + i]; }
          else fb.set(px.subarray(src, src + w), dst);
        }
        break;
      }
      case ENCODING.FILL: {
        if (g.data.length !== 4) throw new DecodeError("a FILL region without its 4 bytes");
        const c = new DataView(g.data.buffer, g.data.byteOffset, 4).getUint32(0, true);
        for (let row = 0; row < h; row++) fb.fill(c, (y + row) * W + x, (y + row) * W + x + w);
        break;
      }
      case ENCODING.COPY: {
        if (g.data.length !== 8) throw new DecodeError("a COPY region without its source");
        const v = new DataView(g.data.buffer, g.data.byteOffset, 8);
        const sx = v.getUint32(0, true), sy = v.getUint32(4, true);
        if (sx + w > this.width || sy + h > this.height) throw new DecodeError("a COPY source outside the screen");
        const tmp = new Uint32Array(w * h);
        for (let row = 0; row < h; row++) tmp.set(fb.subarray((sy + row) * W + sx, (sy + row) * W + sx + w), row * w);
        for (let row = 0; row < h; row++) fb.set(tmp.subarray(row * w, row * w + w), (y + row) * W + x);
        break;
      }
      case ENCODING.H264:
        return this.applyVideo(g);
      default:
        throw new DecodeError(`unknown region encoding ${g.encoding}`);
    }
    const rect = { x, y, width: w, height: h };
    this.damage(rect);
    return rect;
  }

  unpack(g) {
    const expected = g.width * g.height * 4;
    let raw;
    try { raw = decompress(g.data, new Uint8Array(expected)); } catch (e) {
      throw new DecodeError(`corrupt zstd data: ${e.message || e}`);
    }
    if (raw.length !== expected) throw new DecodeError(`${raw.length} bytes of pixels where ${expected} are needed`);
    return new Uint32Array(raw.buffer, raw.byteOffset, g.width * g.height);
  }

  // H.264 through WebCodecs: one VideoDecoder per stream, its pictures drawn into the framebuffer.
  async applyVideo(g) {
    let s = this.streams.get(g.streamId);
    const rect = { x: g.x, y: g.y, width: g.width, height: g.height };
    if (g.data.length === 0) { // the end of a stream: the rectangle is refreshed losslessly next
      if (s) { s.decoder.close(); this.streams.delete(g.streamId); }
      return null;
    }
    if (!s) {
      if (typeof VideoDecoder === "undefined") throw new DecodeError("this browser has no WebCodecs VideoDecoder");
      if (this.streams.size >= MAX_VIDEO_STREAMS) throw new DecodeError("too many video streams");
      s = { rect, waiting: [], error: null, n: 0 };
      // Each access unit gives one picture (x264 with zerolatency: no reordering); a picture goes to
      // the oldest waiting decode. flush() is never used: it would require a key frame again.
      s.decoder = new VideoDecoder({
        output: (picture) => { const w = s.waiting.shift(); if (w) w.resolve(picture); else picture.close(); },
        error: (e) => { s.error = e; for (const w of s.waiting.splice(0)) w.reject(e); },
      });
      // Constrained baseline 3.1 is what the encoder makes (wayray/codec/video.py: x264 ultrafast);
      // the configuration only says which decoder to take.
      s.decoder.configure({ codec: "avc1.42e01f", optimizeForLatency: true, hardwareAcceleration: "prefer-software" });
      this.streams.set(g.streamId, s);
    } else if (s.rect.x !== rect.x || s.rect.y !== rect.y || s.rect.width !== rect.width || s.rect.height !== rect.height) {
      throw new DecodeError(`video stream ${g.streamId} moved`);
    }
    if (s.error) throw new DecodeError(`video: ${s.error.message || s.error}`);
    const picture = new Promise((resolve, reject) => s.waiting.push({ resolve, reject }));
    let frame;
    try {
      s.decoder.decode(new EncodedVideoChunk({ type: s.n === 0 ? "key" : "delta", timestamp: s.n++, data: g.data }));
      frame = await Promise.race([picture, new Promise((resolve) => setTimeout(() => resolve(null), 2000))]);
    } catch (e) {
      throw new DecodeError(`video: ${e.message || e}`);
    }
    if (!frame) throw new DecodeError(`video stream ${g.streamId}: no picture for an access unit`);
    try {
      const size = rect.width * rect.height * 4;
      const buf = new Uint8Array(size);
      await frame.copyTo(buf, { rect: { x: 0, y: 0, width: rect.width, height: rect.height }, format: "BGRX" });
      const px = new Uint32Array(buf.buffer);
      for (let row = 0; row < rect.height; row++) {
        this.fb.set(px.subarray(row * rect.width, (row + 1) * rect.width), (rect.y + row) * this.width + rect.x);
      }
    } finally {
      frame.close();
    }
    this.damage(rect);
    return rect;
  }

  refreshChecksums(touched) {
    const video = new Uint8Array(this.rows * this.cols);
    for (const s of this.streams.values()) this.touch(video, s.rect);
    for (let i = 0; i < touched.length; i++) {
      if (video[i]) { this.tileCrc[i] = 0; continue; }
      if (touched[i]) this.tileCrc[i] = this.tileChecksum(Math.floor(i / this.cols), i % this.cols);
    }
  }

  tileChecksum(ty, tx) {
    const x0 = tx * TILE, y0 = ty * TILE;
    const w = Math.min(TILE, this.width - x0), h = Math.min(TILE, this.height - y0);
    let crc = 0;
    for (let row = 0; row < h; row++) {
      const start = ((y0 + row) * this.width + x0) * 4;
      crc = crc32(this.bytes.subarray(start, start + w * 4), crc);
    }
    return crc;
  }

  checksum() {
    const head = new Uint32Array([this.width, this.height]);
    const crc = crc32(new Uint8Array(head.buffer));
    return crc32(new Uint8Array(this.tileCrc.buffer), crc);
  }

  damage(r) {
    if (!this.dirty) { this.dirty = { ...r }; return; }
    const d = this.dirty;
    const x1 = Math.max(d.x + d.width, r.x + r.width), y1 = Math.max(d.y + d.height, r.y + r.height);
    d.x = Math.min(d.x, r.x); d.y = Math.min(d.y, r.y); d.width = x1 - d.x; d.height = y1 - d.y;
  }

  // Put what changed on the canvas (XRGB words → the canvas's RGBA bytes).
  present() {
    const d = this.dirty;
    if (!d || !this.fb) return false;
    this.dirty = null;
    const W = this.width, fb = this.fb, out = this.rgba;
    for (let row = d.y; row < d.y + d.height; row++) {
      let i = row * W + d.x;
      const end = i + d.width;
      for (; i < end; i++) {
        const v = fb[i];
        out[i] = 0xff000000 | ((v & 0xff) << 16) | (v & 0xff00) | ((v >>> 16) & 0xff);
      }
    }
    this.ctx.putImageData(this.image, 0, 0, d.x, d.y, d.width, d.height);
    return true;
  }

  // The picture as PNG-ready RGBA bytes (tests compare it with the session's own screenshot).
  rgbaOf() { this.dirty = { x: 0, y: 0, width: this.width, height: this.height }; this.present(); return this.image.data; }
}

// A CursorImage (zstd of premultiplied B, G, R, A rows) as a CSS cursor value.
export function cursorCss(img) {
  const raw = decompress(img.pixels, new Uint8Array(img.width * img.height * 4));
  const c = document.createElement("canvas");
  c.width = img.width; c.height = img.height;
  const ctx = c.getContext("2d");
  const data = ctx.createImageData(img.width, img.height);
  for (let i = 0; i < raw.length; i += 4) {
    const a = raw[i + 3];
    const un = (v) => (a ? Math.min(255, Math.round((v * 255) / a)) : 0);
    data.data[i] = un(raw[i + 2]); data.data[i + 1] = un(raw[i + 1]); data.data[i + 2] = un(raw[i]); data.data[i + 3] = a;
  }
  ctx.putImageData(data, 0, 0);
  return `url(${c.toDataURL("image/png")}) ${img.hotX} ${img.hotY}, default`;
}
