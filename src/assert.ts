/**
 * The core's assertion helper. Assertions catch programmer errors (broken invariants inside Keel),
 * never bad input from a peer: that is a ProtocolViolation or a value. They stay on in production,
 * because a wrong broker state is worse than a loud stop. `node:assert` is not allowed under src/.
 */

export function assert(condition: unknown, message: string): asserts condition {
  if (!condition) throw new Error(`assertion failed: ${message}`);
}
