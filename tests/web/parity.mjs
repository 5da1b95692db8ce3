// Run by tests/web/test_js.py with node: the page's wire and display modules against frames made by
// wayray's own encoder (stdin: JSON {frames: [hex of FrameUpdate bodies]}); prints JSON results.
import { readFileSync } from "node:fs";
import { encode, FrameParser, frame, MSG } from "../../wayray/web/static/wire.js";
import { Display, crc32 } from "../../wayray/web/static/display.js";

const input = JSON.parse(readFileSync(0, "utf-8"));
const hex = (b) => Buffer.from(b).toString("hex");
const unhex = (h) => new Uint8Array(Buffer.from(h, "hex"));

const canvas = {
  width: 0, height: 0,
  getContext: () => ({
    createImageData: (w, h) => ({ data: new Uint8ClampedArray(w * h * 4) }),
    putImageData: () => {},
  }),
};
const display = new Display(canvas);
const parser = new FrameParser(1);
const results = [];
for (const body of input.frames) {
  for (const msg of parser.feed(frame(MSG.display.FrameUpdate, unhex(body)))) {
    const inSync = await display.apply(msg);
    results.push({ seq: Number(msg.seq), inSync, regions: msg.regions.map((r) => r.encoding) });
  }
}
const out = {
  results,
  fb: hex(new Uint8Array(display.fb.buffer)),
  width: display.width,
  height: display.height,
  hello: hex(encode.Hello({ token: "badge-1", tokenKind: 2, width: 1280, height: 720, scale120: 180,
    build: "0123456789abcdef", accessKey: "k", terminalId: "ab".repeat(32) })),
  input: [
    hex(encode.Key(30, true, 5)), hex(encode.PointerMotion(10.5, 20.25, 6)), hex(encode.PointerButton(0x110, false, 7)),
    hex(encode.PointerAxis(0, 15, 120, 0, 8)), hex(encode.FrameAck(7n, 1234)), hex(encode.KeyframeRequest(1)),
    hex(encode.Close(0, "bye")), hex(encode.Pong(99n)),
  ],
  crc: crc32(new TextEncoder().encode("123456789")),
};
process.stdout.write(JSON.stringify(out));
