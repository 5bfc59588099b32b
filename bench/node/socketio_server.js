// Baseline: Node socket.io broadcasting the same event to a room of N subscribers.
//
// Fast settings from the socket.io performance docs: WebSocket transport only, no per-message deflate, no HTTP
// compression, the native `bufferutil` / `utf-8-validate` add-ons for `ws` installed; pingInterval raised past the
// length of a run so no ping frame lands in the byte-counted stream. Every client joins room "g" on connect.
// On stdin `go EVENTS PER_TICK` it emits EVENTS events, PER_TICK per event-loop turn (setImmediate), prints `sent`.
//
// Usage: node socketio_server.js PORT
"use strict";

const http = require("http");
const readline = require("readline");
const { Server } = require("socket.io");

const DATA_BYTES = 64;

function eventWrapper(index) {
  return {
    type: "stream",
    timestamp: 1764370000123,
    streamName: "bench",
    groupId: "g",
    id: String(index).padStart(8, "0"),
    event: { type: "create", data: "x".repeat(DATA_BYTES) },
  };
}

function burst(io, events, perTick, done) {
  const payloads = Array.from({ length: events }, (_, i) => eventWrapper(i));
  let next = 0;
  const tick = () => {
    const end = Math.min(events, next + perTick);
    for (; next < end; next++) io.to("g").emit("stream", payloads[next]);
    if (next < events) setImmediate(tick);
    else done();
  };
  tick();
}

const port = Number(process.argv[2]);
const server = http.createServer();
const io = new Server(server, {
  transports: ["websocket"],
  perMessageDeflate: false,
  httpCompression: false,
  pingInterval: 600000,
  pingTimeout: 600000,
  serveClient: false,
});
io.on("connection", (socket) => socket.join("g"));
server.listen({ port, host: "127.0.0.1", backlog: 1024 }, () => console.log("ready"));

readline.createInterface({ input: process.stdin }).on("line", (line) => {
  const [command, events, perTick] = line.trim().split(/\s+/);
  if (command === "go") burst(io, Number(events), Number(perTick), () => console.log("sent"));
}).on("close", () => process.exit(0));
