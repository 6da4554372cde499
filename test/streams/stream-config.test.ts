/**
 * Proves the `streams` setting and the stream limits: entries get their defaults, every problem
 * of every entry is listed (names outside [A-Za-z0-9_-]{1,64}, invalid, shared or `$stream/`
 * filters, bad retention values, unknown keys, a name used twice, more streams than streamsMax),
 * and the limits are range-checked like every other integer setting.
 */
import { describe, expect, it } from 'vitest';
import { defaultConfig, resolveConfig, streamDefinitionFrom } from '../../src/config.js';

describe('stream configuration', () => {
  it('fills in the defaults of a minimal entry', () => {
    const resolved = resolveConfig({ streams: [{ name: 'sensors', filter: 'sensors/#' }] });
    expect(resolved.ok).toBe(true);
    if (!resolved.ok) return;
    expect(resolved.config.streams).toEqual([{ name: 'sensors', filter: 'sensors/#', retentionMs: 0, retentionBytes: 0, lastValue: false }]);
    expect(defaultConfig.streams).toEqual([]);
  });

  it('keeps the settings it is given', () => {
    const entry = { name: 'last_values-1', filter: 'state/+', retentionMs: 604_800_000, retentionBytes: 1_073_741_824, lastValue: true };
    const resolved = resolveConfig({ streams: [entry] });
    expect(resolved.ok && resolved.config.streams).toEqual([entry]);
  });

  it('lists every problem of every entry at once', () => {
    const resolved = resolveConfig({
      streams: [
        { name: 'bad name', filter: 'a/#' },
        { name: 'shared', filter: '$share/g/a' },
        { name: 'wild', filter: 'a/#/b', retentionMs: -1, retentionBytes: 1.5, lastValue: 'yes', colour: 'red' },
        { name: 'own', filter: '$stream/x' },
        { name: 'twice', filter: 'a' },
        { name: 'twice', filter: 'b' },
        { name: 'own', filter: '#/x' },
        'not an object',
      ],
    });
    expect(resolved.ok).toBe(false);
    if (resolved.ok) return;
    expect(resolved.problems).toEqual([
      '"streams"[0]: "name" must match [A-Za-z0-9_-]{1,64}, got "bad name"',
      '"streams"[1]: "filter" must not be a shared subscription',
      '"streams"[2]: unknown stream setting "colour"',
      `"streams"[2]: "filter" is not a valid topic filter: '#' must be the last level`,
      '"streams"[2]: "retentionMs" must be a whole number of milliseconds (0: for ever), got -1',
      '"streams"[2]: "retentionBytes" must be a whole number of bytes (0: no bound), got 1.5',
      '"streams"[2]: "lastValue" must be true or false, got "yes"',
      '"streams"[3]: "filter" must not be under $stream/',
      '"streams"[5]: stream name "twice" is used twice',
      `"streams"[6]: "filter" is not a valid topic filter: '#' must be the last level`,
      '"streams"[6]: stream name "own" is used twice',
      '"streams"[7] must be an object with "name" and "filter", got "not an object"',
    ]);
  });

  it('refuses more streams than streamsMax, and a non-list', () => {
    const two = [
      { name: 'a', filter: 'a' },
      { name: 'b', filter: 'b' },
    ];
    expect(resolveConfig({ streams: two, streamsMax: 1 })).toEqual({ ok: false, problems: ['"streams" holds 2 streams, more than streamsMax (1)'] });
    expect(resolveConfig({ streams: 'sensors' })).toEqual({ ok: false, problems: ['"streams" must be a list of stream definitions, got "sensors"'] });
  });

  it('holds a stream filter to the configured topic limits', () => {
    expect(streamDefinitionFrom({ name: 's', filter: 'a/b/c' }, { topicBytesMax: 1024, topicLevelsMax: 2 })).toEqual({
      problems: ['"filter" is not a valid topic filter: topic filter has more than 2 levels'],
    });
  });

  it('range-checks the stream limits', () => {
    const resolved = resolveConfig({ streamSegmentBytesMax: 100, streamReadAheadBytesMax: 0, streamIndexIntervalBytes: 1, streamsMax: -1 });
    expect(resolved.ok).toBe(false);
    if (resolved.ok) return;
    expect(resolved.problems.join('\n')).toMatch(/streamsMax/);
    expect(resolved.problems.join('\n')).toMatch(/streamReadAheadBytesMax/);
    expect(resolved.problems.join('\n')).toMatch(/streamSegmentBytesMax/);
    expect(resolved.problems.join('\n')).toMatch(/streamIndexIntervalBytes/);
  });
});
