/**
 * A guard around one defect of @nats-io/transport-node 3.3.1 that would otherwise kill Keel.
 *
 * When a NATS server closes the connection in an orderly way (it is stopped, or it restarts), the
 * transport answers the server's FIN by ending its own side of the socket. If nats.js then flushes
 * anything (a publish, an acknowledgement, a ping) before the socket's 'close', the write comes
 * after end: Node reports ERR_STREAM_WRITE_AFTER_END to the write's callback, which nats.js
 * handles, and also as an 'error' event on the next tick, by which time the transport has removed
 * its listeners on 'close'. An 'error' event without a listener is an uncaught exception, and the
 * broker process would die of a NATS server's ordinary shutdown (seen in test/cluster/nats-link.test.ts).
 *
 * The guard makes the transport's `_send` skip a socket whose writable side has ended: nothing
 * written then could reach the server anyway, and nats.js already treats unsent frames of a lost
 * connection as lost (it resends subscriptions on reconnection; requests time out). It is installed
 * once, only if the method it wraps is where 3.3.1 has it; otherwise it does nothing.
 */
import { createRequire } from 'node:module';

interface TransportPrototype {
  _send(frame: Uint8Array): Promise<void>;
  socket?: { writableEnded?: boolean; destroyed?: boolean };
}

let installed = false;

export function guardNatsWriteAfterEnd(): boolean {
  if (installed) return true;
  const require = createRequire(import.meta.url);
  const module = require('@nats-io/transport-node/lib/node_transport.js') as { NodeTransport?: { prototype: TransportPrototype } };
  const prototype = module.NodeTransport?.prototype;
  if (prototype === undefined || typeof prototype._send !== 'function') return false;
  const send = prototype._send;
  prototype._send = function guardedSend(this: TransportPrototype, frame: Uint8Array): Promise<void> {
    const socket = this.socket;
    if (socket !== undefined && (socket.writableEnded === true || socket.destroyed === true)) return Promise.resolve();
    return send.call(this, frame);
  };
  installed = true;
  return true;
}
