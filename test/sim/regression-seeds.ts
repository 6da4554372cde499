/**
 * Every seed the simulator ever failed on, with what it found. Each must pass from now on
 * (test/sim/regression.test.ts runs them all in CI). Keep worlds small: ~0.1-1 s each.
 */
export const regressionSeeds: readonly { seed: number; found: string }[] = [
  { seed: 6, found: 'checker: loss at a full queue of a clean session (no store record) must be excused by the broker\'s message-dropped report' },
  { seed: 24, found: 'checker: a protocol violator\'s CONNACK was judged as a session resume' },
  { seed: 41, found: 'checker: overlapping subscriptions spent one excused drop per subscription instead of per session' },
  { seed: 62, found: 'checker: a slow reader\'s backlog outlasted the quiet period; readers now read at full speed once quiet' },
  { seed: 81, found: 'checker: same as 41 (overlapping subscriptions and a small queue)' },
  { seed: 87, found: 'checker: a shared-group member chosen for a message lost its clean session; the spec only says SHOULD redistribute' },
  { seed: 90, found: 'checker: same as 87, with a broker restart' },
  { seed: 93, found: 'checker: same as 62' },
  { seed: 244, found: 'checker: a shared-group member at QoS 0 may be the one chosen, so the group owes nothing' },
  { seed: 298, found: 'checker: same as 244' },
  { seed: 439, found: 'checker: same as 87, with four broker restarts' },
];
