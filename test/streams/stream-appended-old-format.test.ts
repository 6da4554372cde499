/**
 * Proves that a data directory written before `stream-appended` had its binary form (its log's
 * appends are type 24 records, JSON with the payload lifted out) still recovers: the log is built
 * here frame by frame with the generic encoder, as those versions wrote it, and a store opened on
 * it finds every entry (written back to the segments, which that log's crash left without them),
 * then appends in the binary form after them, and a second restart on the log holding both forms
 * reads every entry of both, in offset order, byte for byte.
 */
import { describe, expect, it } from 'vitest';
import type { StateRecord } from '../../src/store/state-store.js';
import { writeOldLog } from '../store/old-format-log.js';
import { decodeText, newDisk, StoreRig, text } from './store-rig.js';

const sensors = { name: 'sensors', filter: 'sensors/#', retentionMs: 0, retentionBytes: 0, lastValue: false };
const alerts = { name: 'alerts', filter: 'sensors/+/alert', retentionMs: 0, retentionBytes: 0, lastValue: false };

function appended(index: number, offsets: { sensors: number; alerts: number }, both: boolean): StateRecord {
  const entries = both
    ? [
        { stream: 'sensors', offset: offsets.sensors },
        { stream: 'alerts', offset: offsets.alerts },
      ]
    : [{ stream: 'sensors', offset: offsets.sensors }];
  const record: StateRecord = { kind: 'stream-appended', timeMs: 1_000 + index, topic: both ? `sensors/${index}/alert` : `sensors/${index}`, qos: 1, payload: text(`reading ${index}`), entries };
  // Some with MQTT 5.0 properties, which the JSON form kept as JSON (the correlation data lifted out).
  if (index % 3 === 0) record.properties = { contentType: 'text/plain', correlationData: new Uint8Array([index & 0xff, 7]), userProperties: [['unit', 'C']] };
  return record;
}

function readings(rig: StoreRig, stream: string): { offset: number; payload: string; contentType: string | undefined }[] {
  return rig.readAll(stream).map((entry) => ({ offset: entry.offset, payload: decodeText(entry.payload), contentType: entry.properties?.contentType }));
}

describe('stream-appended records of earlier versions', () => {
  it('recover, and recover again once binary records follow them in the log', () => {
    const offsets = { sensors: 0, alerts: 0 };
    const old: StateRecord[] = [
      { kind: 'stream-created', stream: sensors },
      { kind: 'stream-created', stream: alerts },
    ];
    const expected: { sensors: string[]; alerts: string[] } = { sensors: [], alerts: [] };
    for (let index = 0; index < 40; index++) {
      const both = index % 4 === 1;
      old.push(appended(index, offsets, both));
      expected.sensors.push(`reading ${index}`);
      offsets.sensors += 1;
      if (both) {
        expected.alerts.push(`reading ${index}`);
        offsets.alerts += 1;
      }
    }
    const first = new StoreRig(newDisk(5));
    writeOldLog(first.disk, old);
    expect(first.open()).toBe(true);
    expect(first.state.streams.get('sensors')!.nextOffset).toBe(40);
    expect(readings(first, 'sensors').map((reading) => reading.payload)).toEqual(expected.sensors);
    expect(readings(first, 'alerts').map((reading) => reading.payload)).toEqual(expected.alerts);
    expect(readings(first, 'sensors')[3]!.contentType).toBe('text/plain');

    // The current version appends after them, in the binary form.
    for (let index = 40; index < 80; index++) {
      const both = index % 4 === 1;
      first.commit(appended(index, offsets, both));
      expected.sensors.push(`reading ${index}`);
      offsets.sensors += 1;
      if (both) {
        expected.alerts.push(`reading ${index}`);
        offsets.alerts += 1;
      }
      first.run();
    }
    const second = new StoreRig(first.disk);
    expect(second.open()).toBe(true);
    const sensorsRead = readings(second, 'sensors');
    expect(sensorsRead.map((reading) => reading.offset)).toEqual([...Array(80).keys()]);
    expect(sensorsRead.map((reading) => reading.payload)).toEqual(expected.sensors);
    expect(sensorsRead.filter((reading) => reading.contentType === 'text/plain').length).toBe(27);
    expect(readings(second, 'alerts').map((reading) => reading.payload)).toEqual(expected.alerts);
  });
});
