/**
 * Proves that `keel inspect` reports the sessions and wills whose owner (user name) is not stored,
 * because an older version wrote their records: a data directory written through the real
 * DurableStateStore (over the simulated disk, then copied to real files) with a mix of records
 * with a user name, with null (anonymous) and without the field is counted exactly, and the
 * formatted report names the count only when there is something to say.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import seedrandom from 'seedrandom';
import { afterEach, describe, expect, it } from 'vitest';
import { formatInspectReport, inspectDataDirectory } from '../../io/inspect.js';
import { DurableStateStore } from '../../src/store/durable-store.js';
import type { StateRecord } from '../../src/store/state-store.js';
import { SimulatedDisk } from '../../sim/simulated-disk.js';

const directories: string[] = [];
afterEach(() => {
  for (const directory of directories.splice(0)) rmSync(directory, { recursive: true, force: true });
});

function writeDataDirectory(records: StateRecord[]): string {
  const disk = new SimulatedDisk(seedrandom('inspect-owners'));
  const store = new DurableStateStore({ syncPolicy: 'always', syncIntervalMs: 10, segmentBytesMax: 4096, snapshotLogBytes: 1 << 30, writeBytesMax: 1024 });
  const pump = (): void => {
    for (let requests = store.drainRequests(); requests.length > 0; requests = store.drainRequests()) {
      for (const request of requests) store.storageCompleted(0, disk.execute(request));
    }
  };
  pump();
  expect(store.recover(0)).toEqual([]);
  for (const record of records) store.append(record);
  store.flush(0);
  pump();
  const directory = mkdtempSync(join(tmpdir(), 'keel-inspect-owners-'));
  directories.push(directory);
  for (const entry of disk.describe().split(',')) {
    const name = entry.split(':')[0]!;
    writeFileSync(join(directory, name), disk.fileBytes(name)!);
  }
  return directory;
}

const will = { topic: 'w', payload: new Uint8Array([1]), qos: 0 as const, retain: false };

describe('keel inspect and stored owners', () => {
  it('counts the sessions and wills without a stored user name', () => {
    const directory = writeDataDirectory([
      { kind: 'session-created', clientId: 'old', protocolVersion: 4, expiryIntervalSeconds: 60 },
      { kind: 'session-created', clientId: 'alice', protocolVersion: 5, expiryIntervalSeconds: 60, username: 'alice' },
      { kind: 'session-created', clientId: 'anonymous', protocolVersion: 5, expiryIntervalSeconds: 60, username: null },
      { kind: 'session-created', clientId: 'older', protocolVersion: 5, expiryIntervalSeconds: 60, username: 'bob' },
      // An older version resumed it: the owner is unknown again.
      { kind: 'session-resumed', clientId: 'older', protocolVersion: 5, expiryIntervalSeconds: 60 },
      { kind: 'will-set', clientId: 'old', will },
      { kind: 'will-set', clientId: 'alice', will, username: 'alice' },
    ]);
    const report = inspectDataDirectory(directory);
    expect(report.problems).toEqual([]);
    expect(report.state).toMatchObject({ sessions: 4, wills: 2, ownersUnknown: { sessions: 2, wills: 1 } });
    expect(formatInspectReport(report)).toContain('owner unknown (written before user names were stored): sessions=2 wills=1');
  });

  it('says nothing about owners when every one is stored', () => {
    const directory = writeDataDirectory([
      { kind: 'session-created', clientId: 'alice', protocolVersion: 5, expiryIntervalSeconds: 60, username: 'alice' },
      { kind: 'will-set', clientId: 'alice', will, username: null },
    ]);
    const report = inspectDataDirectory(directory);
    expect(report.state).toMatchObject({ ownersUnknown: { sessions: 0, wills: 0 } });
    expect(formatInspectReport(report)).not.toContain('owner unknown');
  });
});
