/**
 * The names of the planted bugs (planted-bugs.ts), each with a one-line description, on their own
 * so that the command line can check a `--plant` or `--plant-store` value and list the bugs in
 * `--help` without loading the simulator: `keel serve` shares the CLI's module graph, and the
 * simulator only loads when a simulation runs.
 *
 * Adding a planted bug takes one line here (name and description) beside its wrapper in
 * planted-bugs.ts; the compiler holds `plantedBugs` to exactly these broker bug names, and a test
 * holds `plantedStoreBugs` to the store bug names.
 */
export const plantedBugDescriptions = {
  'skip-qos1-redelivery': 'forgets to resend unacknowledged QoS 1 messages when a session resumes',
  'qos2-twice': 'delivers some QoS 2 messages twice, the second time under a fresh packet identifier',
  'deliver-unsubscribed': 'also sends each message, at QoS 0, to another connection, subscribed or not',
  'forget-retained': 'never hands out retained messages on subscribe',
  'will-on-clean-disconnect': 'publishes the will even after a clean DISCONNECT',
  'never-fire-will': 'never publishes a will',
  'stall-drops-others-qos0': 'while any reader has stopped, drops QoS 0 to every other connection, unreported',
  'qos0-dropped-as-output-full': 'drops QoS 0 to any connection with unsent output and reports it as an output-full drop',
  'drop-expiry-interval': 'forwards messages without their Message Expiry Interval',
  'will-ignores-delay': 'publishes a will the moment its connection drops, ignoring the Will Delay Interval',
  'unsubscribe-ignored': 'acknowledges UNSUBSCRIBE but goes on sending what matches the filter',
  'undefined-topic-alias': 'sends PUBLISHes under a topic alias never defined on the connection',
  'wildcard-matches-dollar-topic': 'lets a filter that starts with a wildcard match a topic that starts with $',
  'qos-above-grant': 'delivers at the published QoS, above the QoS the subscription was granted',
  'copy-per-overlapping-filter': 'sends one copy per overlapping filter of a session instead of one per publication',
  'shared-to-two-members': 'gives a shared-group message to two members of the group',
  'keepalive-never-enforced': 'never closes a connection that stays silent past 1.5 times its keepalive',
  'packet-id-reused-on-wrap': 'after the packet identifiers wrap, reuses one still in flight',
  'clean-start-keeps-subscriptions': "keeps a session's old subscriptions when the client asks for a clean start",
  'stream-seam-skips-one': 'skips one entry where a stream reader goes from reading files to reading memory (the replay-to-live seam)',
  'stream-commit-before-ack': "takes each stream delivery as acknowledged at the broker's next input, before its PUBACK, so the committed position passes it",
  'stream-retention-cuts-group': 'trims stream segments by age even where a consumer group with members has not acknowledged them',
  'stream-position-not-logged': "keeps stream readers' and groups' positions in memory after their first record, so a restart sets them back",
  'will-topic-unchecked': 'accepts a CONNECT whose will it must refuse (invalid or $SYS topic, QoS too high, retain unavailable), dropping the will',
  'empty-will-topic-throws': 'throws (an assertion) on a CONNECT with an empty will topic instead of refusing it',
  'retained-replay-drops-at-cap': 'drops QoS 0 retained messages sent on SUBSCRIBE at the output cap (reported as output-full) instead of waiting',
  'retained-replay-skips-one': 'never sends every 50th QoS 0 retained message of a replay on SUBSCRIBE',
  'session-owner-unchecked': "lets another user's CONNECT take over a session by its client id (the ownership check skipped)",
  'acl-reads-everything': 'skips the per-message ACL check for every subscription the ACL allowed, so deny rules withhold nothing',
  'delete-retained-ignored': "answers an operator's delete-retained with success and clears nothing",
  'delete-session-ignored': "answers an operator's delete-session with success and leaves the session as it was",
  'retained-payload-view': 'keeps a retained payload as a .slice() of the received bytes, which on a Node Buffer is a view of the whole input chunk',
  'large-payload-cut': 'sends a payload over 64 KiB cut to its first 64 KiB, as a fixed-size output buffer would',
  'send-buffer-reused': "writes each input's sends into one output buffer that the next input's sends overwrite, though the host may still hold them",
} as const satisfies Record<string, string>;

export type PlantedBugName = keyof typeof plantedBugDescriptions;

export const plantedBugNames = Object.keys(plantedBugDescriptions) as PlantedBugName[];

/** Broken stores (`--plant-store`): each wraps the real store and breaks one durability promise. */
export const plantedStoreBugDescriptions = {
  'ack-before-sync': 'reports every appended record as durable at once, so acknowledgements precede fsync',
  'recovery-skips-record': 'recovery silently drops the last subscription it read',
} as const satisfies Record<string, string>;

export type PlantedStoreBugName = keyof typeof plantedStoreBugDescriptions;

export const plantedStoreBugNames = Object.keys(plantedStoreBugDescriptions) as PlantedStoreBugName[];

/** Deliberately broken cluster nodes (sim/cluster/cluster-planted-bugs.ts), for `--plant-cluster`. */
export const clusterPlantedBugDescriptions = {
  'handoff-ack-before-log': "acknowledges a hand-off to the stream before the receiving node's log holds it",
  'retained-out-of-order': 'applies changes of the retained bucket in arrival order, one held back behind the next, not by revision',
  'takeover-keeps-both': 'ignores a client id claimed by another node: the old connection and session stay',
  'share-per-node': "delivers a $share group's message from another node to one of its own members whatever node the publisher chose (one copy per node)",
  'share-choice-dropped': "drops the node choices of $share groups from every message from another node, so a group's copy chosen there is delivered nowhere",
  'retained-conflict-dropped': 'takes a retained put that met a newer revision as replaced by it and acknowledges its publisher, though its message came after the newer one',
  'retained-plain-put': 'issues the retained puts that waited through a cut from NATS unconditionally when the link returns, not as a compare-and-set at their base revision',
  'handover-drops-queued': 'leaves the queued messages out of a session it hands over to another node (run with --handover-movers)',
  'handover-truncates': 'puts a session it hands over as one value, past 512 KiB without its newest queued messages, as before states went in parts (run with --handover-movers)',
  'handover-serves-older-marker': "hands a session over at an older claim's marker though the newest claim asks it for the session at a marker still to come (run with --handover-movers)",
  'session-revision-ignored':
    "keeps a copy of a session for a newer claim that asks it, whatever claim the copy was made under, as before sessions carried their claim's revision (run with --handover-movers)",
  'claim-answer-forgotten': 'takes each won claim that asked for a hand-over for timed out and does not know it in the watch, so it claims again over its own win (run with --handover-movers)',
  'backlog-never-paces': "never pauses its hand-off consumer when hand-offs overrun the streams' backlog bound (run with --cluster-streams)",
  'backlog-stays-paused': "never resumes its hand-off consumer once paused for the streams' backlog (run with --cluster-streams)",
  'lost-disk-drops-handoffs': 'started again on an empty data directory (its disk lost), acknowledges every hand-off from the stream without routing it',
  'qos2-batch-regrouped': 'after a restart, sends the batches of QoS 2 hand-offs it recovers under new dedupe ids, as if it had grouped their members afresh',
};

export type ClusterPlantedBugName = keyof typeof clusterPlantedBugDescriptions;

export const clusterPlantedBugNames = Object.keys(clusterPlantedBugDescriptions) as ClusterPlantedBugName[];
