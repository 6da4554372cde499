/**
 * What a node does with a hand-off stream message written by a newer Keel than itself.
 *
 * Every node reads the whole hand-off stream and records each sequence applied before it
 * acknowledges it (cluster-node.ts). A message this node cannot understand would be recorded
 * applied and acknowledged all the same, and what it carried would be lost for this node's
 * sessions for good, though the stream still had it. That is what a node from before batched
 * hand-offs does with a batch (README "Cluster", upgrades). From this version on, a node tells
 * "written by a newer format" from "not a hand-off" and stops its reader at the first such
 * message instead: it applies and acknowledges nothing from there on, pauses its consumer, logs
 * `cluster-handoff-format-newer` and reports itself not ready (`/readyz` degraded). The stream
 * keeps everything behind that point, so once the node runs a version that reads it (it is
 * upgraded, as the rest of the cluster was), it goes on from there and loses nothing.
 *
 * A message is of a newer format when:
 * - its subject is a kind of its own (`$KEEL.handoff.$<kind>`; no MQTT topic maps to a `$` level,
 *   subjects.ts) that this node does not know: it knows `$batch` (handoff-batch.ts) and
 *   `$session` (session-handover.ts);
 * - its `Keel-Needs` header names a capability this node does not have (a comma-separated list,
 *   for a future change to an existing kind of message that an older reader must not skip over).
 *   This version has none, so any `Keel-Needs` stops it.
 * The decision reads the subject and headers only, never the payload: a batch whose version byte
 * is not this node's may as well be damaged, and a damaged message must not stop a node for good.
 * So a later batch format says so in `Keel-Needs` (or takes a kind of its own). A message of a
 * known format that does not decode (a batch cut short, say) is recorded applied, counted and
 * logged, as before, since no version would read it.
 */
import { handoffBatchSubject } from './handoff-batch.js';
import { handoverMarkerSubject } from './session-handover.js';
import { handoffPrefix } from './subjects.js';

/** The header listing capabilities a reader needs to apply a stream message. */
export const headerNeeds = 'Keel-Needs';

/** The `$` kinds of hand-off stream messages this version reads. */
const knownKinds: ReadonlySet<string> = new Set([handoffBatchSubject, handoverMarkerSubject].map((subject) => subject.slice(handoffPrefix.length)));

/** Capabilities this version has, by the names `Keel-Needs` lists. */
const capabilities: ReadonlySet<string> = new Set<string>();

/**
 * Why this node cannot read a hand-off stream message written by a newer version, or null when
 * it is of a format this node knows.
 */
export function newerFormat(subject: string, headers: Readonly<Record<string, string>>): string | null {
  const needs = headers[headerNeeds];
  if (needs !== undefined) {
    const missing = needs
      .split(',')
      .map((item) => item.trim())
      .filter((item) => item.length > 0 && !capabilities.has(item));
    if (missing.length > 0) return `it needs ${missing.join(', ')}`;
  }
  if (!subject.startsWith(handoffPrefix) || subject.charCodeAt(handoffPrefix.length) !== 0x24) return null;
  const kind = subject.slice(handoffPrefix.length);
  return knownKinds.has(kind) ? null : `its kind ${kind} is unknown`;
}
