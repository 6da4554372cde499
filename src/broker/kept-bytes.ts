/**
 * The byte arrays the broker keeps beyond the input that brought them, listed for inspection.
 *
 * A host hands the core its input (a socket's bytes, a disk read, a cluster delivery) in memory
 * the host owns, and in Node a `Buffer` whose `slice` is a view of it: whatever the core keeps of
 * an input must be a copy that owns its memory (codec/own-copy.ts), or it keeps the host's whole
 * chunk alive behind it, past every byte bound. This module lists what is kept long-term, so that
 * a checker outside the core (the simulator's `kept-bytes-alias` rule) can tell whether any of it
 * is still a view of the host's input: the payloads and correlation data of stored messages
 * (queued, inflight and retained ones), of wills, of a cluster node's outbox, and of the stream
 * entries held in memory; and what a cluster node keeps while hand-overs wait (states that
 * arrived, deliveries held at a marker, its answers and own hand-offs: session-handover.ts).
 *
 * Not listed: what lives only as long as one connection's reading or one replay's cursor (the
 * decoder's partial packet, a cursor's read-ahead), which the host's own buffers bound; and what
 * the core made itself (its payload slabs, arenas and encodings) is listed like any other kept
 * array: it is simply never a view of the input. The visitor reads the arrays and changes nothing.
 */
import { assert } from '../assert.js';
import type { Properties } from '../codec/packets.js';
import type { Broker } from './broker.js';

/** Where a kept array is: a kind (`message`, `will`, `cluster-outbox`, `cluster-handover`, `stream:NAME`), a key within it, and which field. */
export type KeptBytesVisitor = (kind: string, key: string | number, field: string, bytes: Uint8Array) => void;

/** Calls `visit` for every byte array the broker keeps long-term (see the module comment). */
export function forEachKeptBytes(broker: Broker, visit: KeptBytesVisitor): void {
  const state = broker.state;
  for (const message of state.messages.values()) {
    visit('message', message.messageId, 'payload', message.payload);
    visitProperties('message', message.messageId, message.properties, visit);
  }
  for (const [clientId, will] of state.wills) {
    visit('will', clientId, 'payload', will.payload);
    visitProperties('will', clientId, will.properties, visit);
  }
  const outbox = state.cluster?.outbox;
  if (outbox !== undefined) for (const entry of outbox.values()) visit('cluster-outbox', entry.id, 'payload', entry.payload);
  broker.cluster?.handover.forEachKeptBytes((key, field, bytes) => visit('cluster-handover', key, field, bytes));
  // One kind per stream (`stream:NAME`), keyed by offset: no string built per entry.
  let kindStream = '';
  let kind = '';
  broker.store.streams?.forEachHeldEntry?.((stream, entry) => {
    assert(entry.offset >= 0, 'a held stream entry has an offset');
    if (stream !== kindStream) {
      kindStream = stream;
      kind = `stream:${stream}`;
    }
    visit(kind, entry.offset, 'payload', entry.payload);
    visitProperties(kind, entry.offset, entry.properties, visit);
  });
}

/** The binary property a message keeps (user properties and the rest are strings). */
function visitProperties(kind: string, key: string | number, properties: Properties | undefined, visit: KeptBytesVisitor): void {
  const correlationData = properties?.correlationData;
  if (correlationData !== undefined) visit(kind, key, 'correlationData', correlationData);
}
