/**
 * A TCP proxy the tests can pause to play a network partition (a fake of the network, which is outside the
 * project). Paused, it forwards nothing either way: bytes in flight wait in socket buffers and new connections
 * are accepted but not connected onward — like a link that drops packets, not one that refuses connections.
 * Resumed, everything waiting flows on (late requests then reach the far side, as after a real partition heals).
 */
import { createServer, connect, type AddressInfo, type Server, type Socket } from 'node:net';

interface Pair {
  client: Socket;
  upstream: Socket | null;
}

/** Forwards 127.0.0.1:<port> to 127.0.0.1:`targetPort`. */
export class PausableProxy {
  private paused = false;
  private readonly pairs = new Set<Pair>();

  private constructor(
    private readonly server: Server,
    private readonly targetPort: number,
  ) {}

  /** Listens on a free port. */
  static async start(targetPort: number): Promise<PausableProxy> {
    // The connection handler runs only after listen(), when `proxy` is set.
    const server = createServer((client) => proxy.accept(client));
    const proxy: PausableProxy = new PausableProxy(server, targetPort);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return proxy;
  }

  /** http://127.0.0.1:<port> */
  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  /** Stops forwarding (see the module comment). */
  pause(): void {
    this.paused = true;
    for (const p of this.pairs) this.freeze(p);
  }

  /** Forwards again, connecting what arrived while paused. */
  resume(): void {
    this.paused = false;
    for (const p of this.pairs) this.flow(p);
  }

  /** Closes every connection and the listener. */
  async close(): Promise<void> {
    for (const p of this.pairs) {
      p.client.destroy();
      p.upstream?.destroy();
    }
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(client: Socket): void {
    const pair: Pair = { client, upstream: null };
    this.pairs.add(pair);
    const end = (): void => {
      client.destroy();
      pair.upstream?.destroy();
      this.pairs.delete(pair);
    };
    client.on('error', end);
    client.on('close', end);
    if (this.paused) client.pause();
    else this.flow(pair);
  }

  private flow(p: Pair): void {
    if (!p.upstream) {
      const up = connect(this.targetPort, '127.0.0.1');
      p.upstream = up;
      const end = (): void => {
        p.client.destroy();
        up.destroy();
        this.pairs.delete(p);
      };
      up.on('error', end);
      up.on('close', end);
    }
    p.client.pipe(p.upstream);
    p.upstream.pipe(p.client);
  }

  private freeze(p: Pair): void {
    p.client.unpipe();
    p.client.pause();
    if (p.upstream) {
      p.upstream.unpipe();
      p.upstream.pause();
    }
  }
}

/** A TCP port that was free a moment ago (for a server that must be started after something that points at it). */
export async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}
