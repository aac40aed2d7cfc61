/**
 * An HTTP server in front of another that passes every request through, except the ones `hold`
 * picks: those it reads and leaves unanswered, as a dependency that hangs would, until released.
 * Tests use it to keep a step provably unfinished, however fast the machine runs the others.
 */
import { once } from 'node:events';
import { createServer, request, type IncomingMessage, type ServerResponse } from 'node:http';

export interface HttpGate {
  readonly url: string;
  /** Requests held so far, released ones included. */
  readonly held: number;
  /** Passes the requests held until now through; `hold` still decides for later ones. */
  release(): void;
  /** Drops the requests still held and every connection, and stops listening. */
  close(): Promise<void>;
}

export async function startHttpGate(target: string, hold: (request: IncomingMessage, body: Buffer) => boolean): Promise<HttpGate> {
  let held = 0;
  let waiting: (() => void)[] = [];
  const pass = (incoming: IncomingMessage, outgoing: ServerResponse, body: Buffer): void => {
    // Headers as received, Host included: what an AWS signature covers.
    const forwarded = request(`${target}${incoming.url}`, { method: incoming.method, headers: incoming.headers }, (answer) => {
      outgoing.writeHead(answer.statusCode!, answer.headers);
      answer.pipe(outgoing);
    });
    forwarded.on('error', () => outgoing.destroy());
    forwarded.end(body);
  };
  const receive = async (incoming: IncomingMessage, outgoing: ServerResponse): Promise<void> => {
    const body = Buffer.concat(await incoming.toArray());
    if (!hold(incoming, body)) return pass(incoming, outgoing, body);
    held += 1;
    waiting.push(() => pass(incoming, outgoing, body));
  };
  const server = createServer((incoming, outgoing) => void receive(incoming, outgoing).catch(() => outgoing.destroy()));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}`,
    get held() {
      return held;
    },
    release() {
      const released = waiting;
      waiting = [];
      for (const passThrough of released) passThrough();
    },
    close() {
      waiting = [];
      server.closeAllConnections();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
