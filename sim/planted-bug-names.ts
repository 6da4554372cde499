/**
 * The names of the planted broker bugs (planted-bugs.ts), on their own so that the command line
 * can check a `--plant` value without loading the simulator: `keel serve` shares the CLI's module
 * graph, and the simulator only loads when a simulation runs.
 */
export const plantedBugNames = [
  'skip-qos1-redelivery',
  'qos2-twice',
  'deliver-unsubscribed',
  'forget-retained',
  'will-on-clean-disconnect',
  'never-fire-will',
  'stall-drops-others-qos0',
  'qos0-dropped-as-output-full',
  'drop-expiry-interval',
  'will-ignores-delay',
  'unsubscribe-ignored',
  'undefined-topic-alias',
  'wildcard-matches-dollar-topic',
  'qos-above-grant',
  'copy-per-overlapping-filter',
  'shared-to-two-members',
  'keepalive-never-enforced',
  'packet-id-reused-on-wrap',
  'clean-start-keeps-subscriptions',
] as const;

export type PlantedBugName = (typeof plantedBugNames)[number];
