/**
 * A client on a bare TCP socket for hostile-input tests: it writes whatever bytes it is given,
 * keeps every byte the broker sends, and tells a close by the broker from its own leaving. Waits
 * are bounded: `until` re-checks its condition on every socket event and gives up after a
 * timeout; `quiet` waits for a short silence, for where nobody can say what is still to come.
 */
import net from 'node:net';
import { frameBytes, type Observation } from '../broker/hostile-judge.js';

/** The longest a test waits for an answer it expects (a correct broker answers in milliseconds). */
export const answerTimeoutMs = 2_000;
/** Silence that counts as "nothing more is coming" where the oracle cannot say what will come. */
export const quietMs = 20;

/** A client on a bare socket that keeps every byte it is sent and notices when the broker closes. */
export class RawConnection {
  private readonly chunks: Buffer[] = [];
  private leaving = false;
  private wake: () => void = () => undefined;
  brokerClosed = false;
  closed = false;
  private lastDataMs = Date.now();

  private constructor(private readonly socket: net.Socket) {
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => {
      this.chunks.push(chunk);
      this.lastDataMs = Date.now();
      this.wake();
    });
    socket.on('error', () => undefined);
    const ended = (): void => {
      if (!this.leaving) this.brokerClosed = true;
      this.wake();
    };
    socket.on('end', ended);
    socket.on('close', () => {
      this.closed = true;
      ended();
    });
  }

  static open(port: number): Promise<RawConnection> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host: '127.0.0.1', port }, () => resolve(new RawConnection(socket)));
      socket.once('error', reject);
    });
  }

  received(): Uint8Array {
    return Buffer.concat(this.chunks);
  }

  frameCount(): number {
    return frameBytes(this.received()).frames.length;
  }

  write(bytes: Uint8Array): void {
    if (!this.brokerClosed) this.socket.write(bytes);
  }

  /** Resolves when `condition` holds or `timeoutMs` passed, re-checking on every socket event. */
  async until(condition: () => boolean, timeoutMs: number): Promise<void> {
    const deadlineMs = Date.now() + timeoutMs;
    while (!condition() && Date.now() < deadlineMs) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(quietMs, Math.max(1, deadlineMs - Date.now())));
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  }

  /** Waits until the broker closed, or sent nothing for `quietMs`. */
  async quiet(): Promise<void> {
    this.lastDataMs = Date.now();
    await this.until(() => this.brokerClosed || Date.now() - this.lastDataMs >= quietMs, answerTimeoutMs);
  }

  observation(): Observation {
    return { bytes: this.received(), brokerClosed: this.brokerClosed };
  }

  /** Leaves: half-closes (`end`) and waits for the broker to close, or drops the socket (anything else: real time does not wait for keepalives). */
  async leave(ending: 'drop' | 'end' | 'linger'): Promise<void> {
    this.leaving = true;
    if (this.closed) return;
    if (ending === 'end') {
      this.socket.end();
      await this.until(() => this.closed, answerTimeoutMs);
    }
    this.socket.destroy();
  }
}

/** Bytes from a hex string; spaces are ignored. */
export function fromHex(text: string): Uint8Array {
  return Uint8Array.from(Buffer.from(text.replace(/\s+/g, ''), 'hex'));
}
