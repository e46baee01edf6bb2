// The baseline server: Node's `ws`, echoing every frame, and answering a `ping` frame
// with a `pong` by splicing the text (no JSON.parse), so the browser's side is all
// that is measured. Listens on 127.0.0.1:$PORT; exits when stdin closes.
import { WebSocketServer } from "ws";

const port = Number(process.env.PORT);
const server = new WebSocketServer({ host: "127.0.0.1", port, perMessageDeflate: false });
const PING = '{"type":"ping"';

server.on("connection", (socket) => {
  socket.on("message", (data, isBinary) => {
    if (isBinary) return;
    const text = data.toString();
    socket.send(text.startsWith(PING) ? `{"type":"pong"${text.slice(PING.length)}` : text);
  });
});
server.on("listening", () => console.log("LISTENING"));
process.stdin.on("end", () => process.exit(0));
process.stdin.resume();
