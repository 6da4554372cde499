/**
 * Proves the simulator's disk device (sim/disk.ts) completes storage requests in the order the
 * real host may (src/store/storage-order.ts): one file's requests in issue order, a stall on one
 * file holding back none of the others, directory requests after everything issued before them
 * and before everything issued after; and that a seed choosing one queue completes every request
 * in issue order, as the device did before. Latencies are random, so each property is checked
 * over many requests from seeded streams.
 */
import { describe, expect, it } from 'vitest';
import { chooseDiskShape, DiskDevice, type DiskShape } from '../../sim/disk.js';
import { Random } from '../../sim/random.js';
import type { StorageRequest } from '../../src/contract.js';

function shape(filesConcurrent: boolean, slowProbability: number): DiskShape {
  return { ...chooseDiskShape(1, false), filesConcurrent, slowProbability, slowMsMax: 1_000 };
}

const files = ['wal-1.log', 's-0.seg', 's-0.idx'];

function randomRequest(random: Random, id: number): StorageRequest {
  const roll = random.int(0, 9);
  if (roll === 0) return { op: 'sync-directory', requestId: id };
  if (roll === 1) return { op: 'rename', requestId: id, from: random.pick(files), to: random.pick(files) };
  return { op: 'sync', requestId: id, file: random.pick(files) };
}

function namesOf(request: StorageRequest): string[] | null {
  if (request.op === 'sync-directory' || request.op === 'list') return null;
  return request.op === 'rename' ? [request.from, request.to] : [request.file];
}

/** Issues requests one simulated millisecond apart and returns each with its completion time. */
function issue(device: DiskDevice, count: number, seed: number): { request: StorageRequest; atMs: number }[] {
  const random = Random.stream(seed, 'disk-device-test');
  const issued: { request: StorageRequest; atMs: number }[] = [];
  for (let id = 1; id <= count; id++) {
    const request = randomRequest(random, id);
    issued.push({ request, atMs: device.completionMs(id, false, request) });
  }
  return issued;
}

describe('DiskDevice', () => {
  it("completes one file's requests in issue order and a directory request after everything before it", () => {
    const device = new DiskDevice(Random.stream(7, 'disk'), shape(true, 0.05));
    const issued = issue(device, 2_000, 7);
    for (let later = 0; later < issued.length; later++) {
      const laterNames = namesOf(issued[later]!.request);
      for (let earlier = Math.max(0, later - 200); earlier < later; earlier++) {
        const earlierNames = namesOf(issued[earlier]!.request);
        const ordered = laterNames === null || earlierNames === null || laterNames.some((name) => earlierNames.includes(name));
        if (ordered && issued[earlier]!.atMs > issued[later]!.atMs) expect.fail(`request ${later + 1} completes before ${earlier + 1}, which it must follow`);
      }
    }
  });

  it("does not hold a file's requests behind another file's stall", () => {
    const device = new DiskDevice(Random.stream(3, 'disk'), shape(true, 0.05));
    const issued = issue(device, 2_000, 3);
    // Some request completes before an earlier one: a stall held back only its own file.
    const overtaken = issued.filter((entry, index) => index > 0 && entry.atMs < issued[index - 1]!.atMs);
    expect(device.stalls).toBeGreaterThan(0);
    expect(overtaken.length).toBeGreaterThan(0);
    for (const entry of overtaken) expect(namesOf(entry.request)).not.toBeNull();
  });

  it('completes every request in issue order for a seed that keeps one queue', () => {
    const device = new DiskDevice(Random.stream(3, 'disk'), shape(false, 0.05));
    const issued = issue(device, 2_000, 3);
    expect(device.stalls).toBeGreaterThan(0);
    for (let index = 1; index < issued.length; index++) expect(issued[index]!.atMs).toBeGreaterThanOrEqual(issued[index - 1]!.atMs);
  });

  it('lets about three seeds in four run files side by side', () => {
    let concurrent = 0;
    for (let seed = 1; seed <= 400; seed++) if (chooseDiskShape(seed, seed % 2 === 0).filesConcurrent) concurrent += 1;
    expect(concurrent).toBeGreaterThan(250);
    expect(concurrent).toBeLessThan(350);
  });
});
