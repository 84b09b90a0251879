/** A raw HTTP/1.1 client that reports what actually arrived: status, and body bytes (chunked decoded). */
export interface RawOptions {
  method?: string;
  path: string;
  headers?: Record<string, string>;
  /** Extra raw header lines. */
  rawHeaderLines?: string[];
  /** Body pieces and the pause before each. */
  body?: { bytes: number; delayMs?: number }[];
  /** Close the connection this long after sending (client cancel). */
  cancelAfterMs?: number;
  /** Close once this many body bytes arrived. */
  readBodyBytes?: number;
  timeoutMs?: number;
  /** Frame the body pieces as chunks (Transfer-Encoding: chunked). */
  chunked?: boolean;
}

export interface RawResult {
  status: number | null;
  bodyBytes: number;
  complete: boolean;
  closedByClient: boolean;
  error?: string;
  head?: string;
}

export function rawRequest(port: number, options: RawOptions): Promise<RawResult> {
  const method = options.method ?? "GET";
  const headers: Record<string, string> = { host: `127.0.0.1:${port}`, connection: "close", ...options.headers };
  const total = (options.body ?? []).reduce((n, p) => n + p.bytes, 0);
  if (options.chunked) headers["transfer-encoding"] = "chunked";
  if (options.body && !Object.keys(headers).some((h) => h.toLowerCase() === "content-length" || h.toLowerCase() === "transfer-encoding")) {
    headers["content-length"] = String(total);
  }
  const head = `${method} ${options.path} HTTP/1.1\r\n` + Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join("") +
    (options.rawHeaderLines ?? []).map((l) => `${l}\r\n`).join("") + "\r\n";
  return new Promise((resolve) => {
    let buffer = new Uint8Array(0);
    let status: number | null = null;
    let headText: string | undefined;
    let bodyStart = -1;
    let chunked = false;
    let length: number | undefined;
    let bodyBytes = 0;
    let complete = false;
    let closedByClient = false;
    let done = false;
    let socketRef: { end(): void; terminate?(): void } | undefined;
    const finish = (error?: string) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      resolve({ status, bodyBytes, complete, closedByClient, ...(error ? { error } : {}), ...(headText ? { head: headText } : {}) });
    };
    const timer = setTimeout(() => {
      closedByClient = true;
      socketRef?.terminate?.();
      finish("timeout");
    }, options.timeoutMs ?? 20_000);
    // Parses what has arrived so far.
    const parse = () => {
      for (;;) {
        if (bodyStart < 0) {
          const text = new TextDecoder("latin1").decode(buffer);
          const end = text.indexOf("\r\n\r\n");
          if (end < 0) return;
          const h = text.slice(0, end);
          const code = Number(h.slice(9, 12));
          buffer = buffer.slice(end + 4);
          if (code >= 100 && code < 200 && code !== 101) continue; // interim
          status = code;
          headText = h;
          bodyStart = 0;
          const lower = h.toLowerCase();
          chunked = /\r\ntransfer-encoding:[^\r]*chunked/.test(lower);
          const cl = /\r\ncontent-length:\s*(\d+)/.exec(lower);
          length = cl ? Number(cl[1]) : undefined;
          if (method === "HEAD" || code === 204 || code === 304 || code === 101) {
            length = 0;
            chunked = false;
            complete = code !== 101;
          }
          if (length === 0) complete = code !== 101;
        }
        if (chunked) {
          const text = new TextDecoder("latin1").decode(buffer);
          const nl = text.indexOf("\r\n");
          if (nl < 0) return;
          const size = parseInt(text.slice(0, nl), 16);
          if (size === 0) {
            complete = true;
            return;
          }
          const available = buffer.length - nl - 2;
          if (available < size + 2) {
            // Count what arrived of this chunk only once complete; partial data counted at close.
            return;
          }
          bodyBytes += size;
          buffer = buffer.slice(nl + 2 + size + 2);
          continue;
        }
        bodyBytes += buffer.length;
        buffer = new Uint8Array(0);
        if (length !== undefined && bodyBytes >= length) complete = true;
        return;
      }
    };
    Bun.connect({
      hostname: "127.0.0.1",
      port,
      socket: {
        open(socket) {
          socketRef = socket;
          socket.write(head);
          void (async () => {
            for (const piece of options.body ?? []) {
              if (piece.delayMs) await Bun.sleep(piece.delayMs);
              if (done) return;
              const data = new Uint8Array(piece.bytes).fill(97);
              if (options.chunked) socket.write(`${piece.bytes.toString(16)}\r\n`);
              socket.write(data);
              if (options.chunked) socket.write("\r\n");
            }
            if (options.chunked && !done) socket.write("0\r\n\r\n");
          })();
          if (options.cancelAfterMs !== undefined) {
            setTimeout(() => {
              if (done) return;
              closedByClient = true;
              socket.end();
              finish();
            }, options.cancelAfterMs);
          }
        },
        data(socket, data) {
          const merged = new Uint8Array(buffer.length + data.length);
          merged.set(buffer);
          merged.set(data, buffer.length);
          buffer = merged;
          parse();
          if (chunked && !complete && bodyStart >= 0) {
            // partial chunk data arrived: counted when closing
          }
          if (options.readBodyBytes !== undefined && bodyBytes >= options.readBodyBytes && !complete) {
            closedByClient = true;
            socket.end();
            finish();
          }
        },
        close() {
          // A partial chunk: its data bytes that arrived count too.
          if (chunked && !complete && buffer.length > 0) {
            const text = new TextDecoder("latin1").decode(buffer);
            const nl = text.indexOf("\r\n");
            if (nl >= 0) bodyBytes += Math.min(buffer.length - nl - 2, parseInt(text.slice(0, nl), 16));
          }
          finish();
        },
        error(_s, error) {
          finish(String(error));
        },
        connectError(_s, error) {
          finish(`connect: ${error}`);
        },
      },
    }).catch((error) => finish(`connect: ${error}`));
  });
}
