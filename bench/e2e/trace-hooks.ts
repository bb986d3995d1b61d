/**
 * A preload for the warm-job breakdown (`node --import …/trace-hooks.js`):
 * timestamps every HTTP request a process serves or sends and the Docker
 * attach stream's traffic, without any change to labrun's own code. Times
 * are wall-clock milliseconds with sub-millisecond precision
 * (`performance.timeOrigin + performance.now()`), so events of the client,
 * coordinator and agent processes on one machine line up.
 *
 * Writes its events as JSON to $LABRUN_TRACE_FILE when the process exits.
 */
import { writeFileSync } from "node:fs";
import http from "node:http";
import net from "node:net";

export type TraceKind =
  | "server.request"
  | "server.finish"
  | "client.send"
  | "client.response"
  | "attach.stdin"
  | "attach.data";

/** One timestamped event: [ms, kind, what (method and path, or byte count)]. */
export type TraceEvent = [number, TraceKind, string];

const now = () => performance.timeOrigin + performance.now();

/** Installs the hooks in this process; `events` receives what they see. */
export function installTraceHooks(events: TraceEvent[]): void {
  const record = (kind: TraceKind, what: string) => events.push([now(), kind, what]);

  const serverEmit = http.Server.prototype.emit;
  http.Server.prototype.emit = function (this: http.Server, event: string, ...args: unknown[]) {
    if (event === "request") {
      const [req, res] = args as [http.IncomingMessage, http.ServerResponse];
      const what = `${req.method} ${req.url}`;
      record("server.request", what);
      // When the handler answers (its `end` call), not the response's
      // "finish" event: on a busy machine that event can come after the
      // other process has already read the answer.
      const end = res.end;
      res.end = function (this: http.ServerResponse, ...endArgs: unknown[]) {
        record("server.finish", what);
        res.end = end;
        return Reflect.apply(end, this, endArgs);
      } as typeof end;
    }
    return Reflect.apply(serverEmit, this, [event, ...args]);
  } as typeof serverEmit;

  const requestEnd = http.ClientRequest.prototype.end;
  http.ClientRequest.prototype.end = function (this: http.ClientRequest, ...args: unknown[]) {
    const what = `${this.method} ${this.path}`;
    record("client.send", what);
    this.once("response", (res: http.IncomingMessage) => {
      res.once("end", () => record("client.response", what));
    });
    return Reflect.apply(requestEnd, this, args);
  } as typeof requestEnd;

  // The job goes to the runner as one line on the attach stream's stdin
  // (`{"source":…}\n`); that socket's traffic after it is the runner's output.
  const traced = new WeakSet<net.Socket>();
  const socketEnd = net.Socket.prototype.end;
  net.Socket.prototype.end = function (this: net.Socket, ...args: unknown[]) {
    if (typeof args[0] === "string" && args[0].startsWith('{"source"')) {
      traced.add(this);
      record("attach.stdin", String(args[0].length));
    }
    return Reflect.apply(socketEnd, this, args);
  } as typeof socketEnd;
  const socketEmit = net.Socket.prototype.emit;
  net.Socket.prototype.emit = function (this: net.Socket, event: string, ...args: unknown[]) {
    if (event === "data" && traced.has(this)) {
      record("attach.data", String((args[0] as Buffer).length));
    }
    return Reflect.apply(socketEmit, this, [event, ...args]);
  } as typeof socketEmit;
}

const traceFile = process.env.LABRUN_TRACE_FILE;
if (traceFile) {
  const events: TraceEvent[] = [];
  installTraceHooks(events);
  process.once("exit", () => writeFileSync(traceFile, JSON.stringify(events)));
}
