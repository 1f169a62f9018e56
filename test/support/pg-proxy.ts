/**
 * Connections to PostgreSQL that a test can close on cue, for the driver faults of
 * test/resilience/postgres-driver.test.ts: postgres.js takes a `socket` factory (for tunnels), and
 * `createSocketTap` hands it sockets whose incoming data passes through the tap.
 *
 * `cutAfterNextReply()` arms a cut: the next chunk PostgreSQL sends is delivered, and the connection
 * is closed right after, before the driver's buffered writes go out. postgres.js buffers a small
 * write until the end of the event loop's turn (a `setImmediate`); whatever it writes in answer to
 * that reply — the next statement of a transaction, the next query of a request — is still in its
 * buffer when the close arrives. That is the close-while-a-write-is-queued of porsager/postgres#1154,
 * #1066 and #1208 and of LanternOps/breeze#3225, made to happen every time: the tap's own
 * `setImmediate` is queued while the reply is handled, so it runs before the driver's, and the close
 * (emitted on the next tick of `destroy()`) lands between the two.
 */
import { connect, type Socket } from 'node:net';

export interface SocketTap {
  /** The `socket` option of postgres.js (and of src/db/client.ts `createDatabase`). */
  readonly socket: () => Socket;
  /** Arms one cut: see the file's comment. Resolves once a connection was cut. */
  cutAfterNextReply(): Promise<void>;
  /** Closes every open connection now (PostgreSQL restarting, an idle reaper). */
  cutAll(): void;
  /** Connections cut so far. */
  readonly cuts: number;
}

export function createSocketTap(target = { host: '127.0.0.1', port: 5432 }): SocketTap {
  const open = new Set<Socket>();
  let armed: (() => void) | undefined;
  let cuts = 0;

  const socket = () => {
    const s = connect(target.port, target.host);
    open.add(s);
    s.once('close', () => open.delete(s));
    // Intercept 'data' listeners: the tap decides when a listener's chunk is followed by a cut.
    const on = s.on.bind(s);
    s.on = ((event: string, listener: (...args: unknown[]) => void) => {
      if (event !== 'data') return on(event, listener);
      return on('data', (chunk: Buffer) => {
        const cut = armed;
        armed = undefined;
        if (cut !== undefined) {
          setImmediate(() => {
            cuts += 1;
            s.destroy();
            cut();
          });
        }
        listener(chunk);
      });
    }) as Socket['on'];
    return s;
  };

  return {
    socket,
    cutAfterNextReply: () => new Promise<void>((resolve) => (armed = resolve)),
    cutAll() {
      for (const s of open) {
        cuts += 1;
        s.destroy();
      }
    },
    get cuts() {
      return cuts;
    },
  };
}
