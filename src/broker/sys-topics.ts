/**
 * `$SYS` topics: the broker's own figures, published by the core on its own deadline.
 *
 * Every `sysIntervalSeconds` (0: never) the broker publishes its counters as retained QoS 0
 * messages under `$SYS/broker/...` (Mosquitto's names, so that existing dashboards and
 * `mosquitto_sub -t '$SYS/#'` habits work) and `$SYS/keel/...` (Keel's own: drops by reason,
 * limits, throttling, storage). The first publication comes as soon as the broker is ready. Only
 * values that changed since the last publication are published again (uptime always changes).
 *
 * Because it runs on a core deadline, the simulator runs it too and replays it exactly, and the
 * figures are in the core's time. The messages are ordinary routed messages: `#` and `+/...` do
 * not match them [MQTT-4.7.2-1], and with an authorizer only users granted read on them receive
 * them (routing and the retained replay check every delivery).
 *
 * They are volatile: stored and retained without being written to the log (a restart publishes
 * them afresh), and left out of snapshots (state-store.ts). That is also why a client may not
 * publish to `$SYS` (handle-publish.ts refuses it like an unauthorized topic): a client's durable
 * retained message there would mix with the broker's volatile ones.
 *
 * Load figures are exponentially weighted moving averages of a rate per minute over 1, 5 and 15
 * minutes, updated at each publication from the counters' growth since the last one.
 */
import type { Broker } from './broker.js';
import { transientMessage } from './message.js';
import { storeMessage } from './routing.js';

/** The averaging windows of the load figures, in minutes, and their topic suffixes. */
const loadWindows: readonly [number, string][] = [
  [1, '1min'],
  [5, '5min'],
  [15, '15min'],
];

/** Counters whose rates are published under `$SYS/broker/load/<name>/<window>`. */
const loadCounters: readonly [string, (broker: Broker) => number][] = [
  ['messages/received', (broker) => broker.stats.packetsReceived],
  ['messages/sent', (broker) => broker.stats.packetsSent],
  ['publish/received', (broker) => broker.stats.messagesReceived],
  ['publish/sent', (broker) => broker.stats.messagesSent],
  ['bytes/received', (broker) => broker.stats.bytesReceived],
  ['bytes/sent', (broker) => broker.stats.bytesSent],
  ['connections', (broker) => broker.stats.connectionsOpened],
];

const encoder = new TextEncoder();

export class SysTopics {
  private readonly lastPayloads = new Map<string, string>();
  /** Payload bytes of the retained messages published here, which the retained limits leave out. */
  private retainedBytesValue = 0;
  /** Per load counter: its value at the last publication and its averages, one per window. */
  private readonly loads: { last: number; averages: number[] }[];
  private lastPublishedMs: number | null = null;

  constructor(
    private readonly broker: Broker,
    private readonly intervalMs: number,
    private readonly startedMs: number,
    private readonly version: string,
  ) {
    this.loads = loadCounters.map(() => ({ last: 0, averages: loadWindows.map(() => 0) }));
  }

  /** Retained messages and payload bytes of the broker's own: retainedMessagesMax and retainedBytesMax are for clients'. */
  get retainedCount(): number {
    return this.lastPayloads.size;
  }

  get retainedBytes(): number {
    return this.retainedBytesValue;
  }

  /** After recovery: the first publication now, then one per interval. */
  start(nowMs: number): void {
    this.broker.deadlines.push(nowMs, 'sys-publish', 0, '');
  }

  /** The deadline fired: publish what changed and schedule the next one. */
  onDeadline(nowMs: number): void {
    this.publishAll(nowMs);
    this.broker.deadlines.push(nowMs + this.intervalMs, 'sys-publish', 0, '');
  }

  private publishAll(nowMs: number): void {
    const values = this.values(nowMs);
    for (let index = 0; index < values.length; index++) {
      const [topic, text] = values[index]!;
      const previous = this.lastPayloads.get(topic);
      if (previous === text) continue;
      this.retainedBytesValue += encoder.encode(text).length - (previous === undefined ? 0 : encoder.encode(previous).length);
      this.lastPayloads.set(topic, text);
      this.publish(topic, text, nowMs);
    }
  }

  /** One retained QoS 0 message, volatile (see the module comment), routed like any other. */
  private publish(topic: string, text: string, nowMs: number): void {
    const broker = this.broker;
    const stored = storeMessage(broker, transientMessage(topic, encoder.encode(text), 0, true, undefined, nowMs), true);
    broker.commit({ kind: 'retained-set', topic, messageId: stored.messageId }, true);
    broker.router.route(stored, '', nowMs);
  }

  /** Every figure as (topic, text), in a fixed order. */
  private values(nowMs: number): [string, string][] {
    const broker = this.broker;
    const stats = broker.stats;
    const sessions = broker.state.sessions.size;
    const drops = stats.drops;
    const dropped = drops.queueOverflow + drops.qos0Offline + drops.packetTooLarge + drops.expired + drops.sessionEnded + drops.outputFull;
    const values: [string, string][] = [
      ['$SYS/broker/version', this.version],
      ['$SYS/broker/uptime', `${Math.floor((nowMs - this.startedMs) / 1000)} seconds`],
      ['$SYS/broker/clients/connected', `${stats.clientsConnected}`],
      ['$SYS/broker/clients/disconnected', `${sessions - broker.online.size}`],
      ['$SYS/broker/clients/total', `${sessions}`],
      ['$SYS/broker/clients/maximum', `${stats.clientsConnectedMax}`],
      ['$SYS/broker/clients/expired', `${stats.sessionsExpired}`],
      ['$SYS/broker/messages/received', `${stats.packetsReceived}`],
      ['$SYS/broker/messages/sent', `${stats.packetsSent}`],
      ['$SYS/broker/publish/messages/received', `${stats.messagesReceived}`],
      ['$SYS/broker/publish/messages/sent', `${stats.messagesSent}`],
      ['$SYS/broker/publish/messages/dropped', `${dropped}`],
      ['$SYS/broker/retained messages/count', `${broker.state.retained.size}`],
      ['$SYS/broker/subscriptions/count', `${broker.trie.size}`],
      ['$SYS/broker/store/messages/count', `${broker.state.messages.size}`],
      ['$SYS/broker/bytes/received', `${stats.bytesReceived}`],
      ['$SYS/broker/bytes/sent', `${stats.bytesSent}`],
    ];
    this.addLoads(values, nowMs);
    for (const [reason, count] of Object.entries(drops)) values.push([`$SYS/keel/drops/${reason}`, `${count}`]);
    for (const [limit, count] of Object.entries(stats.limits)) values.push([`$SYS/keel/limits/${limit}`, `${count}`]);
    for (const [name, count] of Object.entries(stats.authorization)) values.push([`$SYS/keel/authorization/${name}`, `${count}`]);
    values.push(['$SYS/keel/authentication/failures', `${stats.authenticationFailures}`]);
    values.push(['$SYS/keel/throttle/publisherPauses', `${stats.throttle.publisherPauses}`]);
    const store = broker.store.stats;
    if (store !== undefined) {
      values.push(['$SYS/keel/storage/records', `${store.recordsAppended}`], ['$SYS/keel/storage/bytes', `${store.bytesAppended}`]);
      values.push(['$SYS/keel/storage/syncs', `${store.syncs}`], ['$SYS/keel/storage/snapshots', `${store.snapshotsWritten}`]);
    }
    return values;
  }

  /** Updates the moving averages from the counters' growth since the last publication. */
  private addLoads(values: [string, string][], nowMs: number): void {
    const elapsedMinutes = this.lastPublishedMs === null ? 0 : (nowMs - this.lastPublishedMs) / 60_000;
    this.lastPublishedMs = nowMs;
    for (let counter = 0; counter < loadCounters.length; counter++) {
      const [name, read] = loadCounters[counter]!;
      const load = this.loads[counter]!;
      const value = read(this.broker);
      const perMinute = elapsedMinutes > 0 ? (value - load.last) / elapsedMinutes : 0;
      load.last = value;
      for (let window = 0; window < loadWindows.length; window++) {
        const [minutes, suffix] = loadWindows[window]!;
        if (elapsedMinutes > 0) {
          const keep = Math.exp(-elapsedMinutes / minutes);
          load.averages[window] = load.averages[window]! * keep + perMinute * (1 - keep);
        }
        values.push([`$SYS/broker/load/${name}/${suffix}`, load.averages[window]!.toFixed(2)]);
      }
    }
  }
}
