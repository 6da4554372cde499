/**
 * Keeps the hand-off stream's order for the core when a consumer session starts with deliveries
 * still unacknowledged from before (this node crashed, or lost NATS, between a delivery and its
 * acknowledgement).
 *
 * JetStream redelivers such a delivery only once its ack wait has passed, and meanwhile goes on
 * with the sequences after it: left alone, the core would see message 12 before the 10 and 11 it
 * had not made safe, and pass them to a subscriber out of the publisher's order. So at the start of
 * a session the link reads the consumer's state: how far it had delivered (`deliveredUpTo`) and how
 * many of those deliveries are unacknowledged (`pendingCount`). Deliveries past `deliveredUpTo` are
 * held back until every one of the pending sequences has come again; then the held ones follow,
 * in stream order. The hold is bounded twice: the server sends at most the consumer's max ack
 * pending unacknowledged messages (the pending ones count), and the link releases the hold after a
 * few ack waits if a pending message never comes back (deleted from the stream meanwhile).
 */
export class RedeliveryGate<T extends { readonly seq: number }> {
  private readonly seen = new Set<number>();
  private held: T[] = [];
  private opened: boolean;

  constructor(
    private readonly deliveredUpTo: number,
    private readonly pendingCount: number,
  ) {
    if (!(Number.isInteger(deliveredUpTo) && deliveredUpTo >= 0)) throw new Error(`deliveredUpTo must be a non-negative integer, got ${deliveredUpTo}`);
    if (!(Number.isInteger(pendingCount) && pendingCount >= 0)) throw new Error(`pendingCount must be a non-negative integer, got ${pendingCount}`);
    this.opened = pendingCount === 0;
  }

  get open(): boolean {
    return this.opened;
  }

  /** Deliveries held back now. */
  get heldCount(): number {
    return this.held.length;
  }

  /** Takes one delivery; returns those that may go to the core now, in order. */
  offer(message: T): T[] {
    if (this.opened) return [message];
    if (message.seq > this.deliveredUpTo) {
      this.held.push(message);
      return [];
    }
    this.seen.add(message.seq);
    if (this.seen.size < this.pendingCount) return [message];
    return [message, ...this.release()];
  }

  /** Stops holding: returns what was held, in arrival order (which is stream order). */
  release(): T[] {
    this.opened = true;
    const held = this.held;
    this.held = [];
    return held;
  }
}
