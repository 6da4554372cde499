/**
 * Subscription trie benchmark: match rate with 100k subscriptions, beside a naive matcher that
 * loops over every filter, plus subscribe / unsubscribe rates and the heap the trie holds.
 *
 * The workload is an IoT-style mix, generated from a fixed-seed PRNG so every run sees the same
 * subscriptions and topics: mostly exact filters `sensors/{site}/{device}/{metric}`, some device
 * wildcards `sensors/{site}/{device}/#`, site-wide `sensors/{site}/+/{metric}` and `sensors/{site}/#`,
 * a few global `sensors/+/+/{metric}`, `#` and shared groups. Topics are drawn from the same
 * space, so most of them match a handful of filters, as a live broker would see.
 *
 * Each figure is the median of several timed rounds after a warm-up. The naive matcher runs on
 * fewer topics (it is ~1000x slower) and both matchers must agree on the number of deliveries
 * for those topics, so the comparison cannot drift into measuring different work.
 *
 * Run: `npm run build && node dist/bench/trie-bench.js` (add `--expose-gc` for steadier heap figures).
 */
import { performance } from 'node:perf_hooks';
import { matchesFilter } from '../src/topics/match-filter.js';
import { type MatchSink, type SharedGroup, SubscriptionTrie, type TrieEntry } from '../src/topics/trie.js';

const siteCount = 100;
const devicesPerSite = 100;
const metrics = ['temp', 'humidity', 'pressure', 'co2', 'light', 'noise', 'battery', 'rssi', 'status'];
const rounds = 7;

/** mulberry32: a tiny fixed-seed PRNG so the workload is identical on every run. */
function prng(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let mixed = state;
    mixed = Math.imul(mixed ^ (mixed >>> 15), mixed | 1);
    mixed ^= mixed + Math.imul(mixed ^ (mixed >>> 7), mixed | 61);
    return ((mixed ^ (mixed >>> 14)) >>> 0) / 4294967296;
  };
}

interface Subscription {
  filter: string;
  key: string;
}

function buildWorkload(): Subscription[] {
  const random = prng(42);
  const subscriptions: Subscription[] = [];
  let client = 0;
  const add = (filter: string): void => {
    subscriptions.push({ filter, key: `client-${client++ % 20_000}` });
  };
  for (let site = 0; site < siteCount; site++) {
    for (let device = 0; device < devicesPerSite; device++) {
      for (const metric of metrics) add(`sensors/site-${site}/device-${device}/${metric}`); // 90,000 exact
      if (random() < 0.5) add(`sensors/site-${site}/device-${device}/#`); // ~5,000
    }
    for (const metric of metrics) for (let copy = 0; copy < 5; copy++) add(`sensors/site-${site}/+/${metric}`); // 4,500
    for (let copy = 0; copy < 3; copy++) add(`sensors/site-${site}/#`); // 300
    add(`$share/workers/sensors/site-${site}/#`);
    add(`$share/workers/sensors/site-${site}/#`);
  }
  for (const metric of metrics) for (let copy = 0; copy < 10; copy++) add(`sensors/+/+/${metric}`); // 90
  for (let copy = 0; copy < 5; copy++) add('#');
  return subscriptions;
}

function buildTopics(count: number, seed: number): string[] {
  const random = prng(seed);
  const topics: string[] = [];
  for (let index = 0; index < count; index++) {
    const site = Math.floor(random() * siteCount);
    const device = Math.floor(random() * devicesPerSite);
    const metric = metrics[Math.floor(random() * metrics.length)]!;
    topics.push(`sensors/site-${site}/device-${device}/${metric}`);
  }
  return topics;
}

/** Counts deliveries so the work cannot be optimised away and both matchers can be compared. */
class CountingSink implements MatchSink<number> {
  deliveries = 0;
  subscriber(_entry: TrieEntry<number>, _filter: string): void {
    this.deliveries++;
  }
  sharedGroup(_group: SharedGroup<number>): void {
    this.deliveries++;
  }
}

function median(values: number[]): number {
  const sorted = [...values].sort((left, right) => left - right);
  return sorted[Math.floor(sorted.length / 2)]!;
}

/** Runs `body` once to warm up, then `rounds` times; returns the median operations per second. */
function rate(operations: number, body: () => void): number {
  body();
  const samples: number[] = [];
  for (let round = 0; round < rounds; round++) {
    const startMs = performance.now();
    body();
    samples.push(operations / ((performance.now() - startMs) / 1000));
  }
  return median(samples);
}

function fillTrie(subscriptions: Subscription[]): SubscriptionTrie<number> {
  const trie = new SubscriptionTrie<number>();
  for (let index = 0; index < subscriptions.length; index++) trie.subscribe(subscriptions[index]!.filter, subscriptions[index]!.key, index);
  return trie;
}

/** The naive broker: a flat list of (filter, key), each checked against every topic. */
function naiveDeliveries(subscriptions: Subscription[], topic: string): number {
  let deliveries = 0;
  const groupsSeen = new Set<string>();
  for (const subscription of subscriptions) {
    if (!matchesFilter(subscription.filter, topic)) continue;
    if (subscription.filter.startsWith('$share/')) {
      if (groupsSeen.has(subscription.filter)) continue;
      groupsSeen.add(subscription.filter);
    }
    deliveries++;
  }
  return deliveries;
}

function heapUsedBytes(): number {
  const collect = (globalThis as { gc?: () => void }).gc;
  if (collect !== undefined) collect();
  return process.memoryUsage().heapUsed;
}

function format(value: number): string {
  return Math.round(value).toLocaleString('en-US');
}

function main(): void {
  const subscriptions = buildWorkload();
  const unique = new Set(subscriptions.map((subscription) => `${subscription.filter} ${subscription.key}`)).size;
  const topics = buildTopics(20_000, 7);
  const naiveTopics = topics.slice(0, 20);

  const heapBeforeBytes = heapUsedBytes();
  const trie = fillTrie(subscriptions);
  const heapAfterBytes = heapUsedBytes();

  const sink = new CountingSink();
  for (const topic of naiveTopics) trie.match(topic, sink);
  const naiveTotal = naiveTopics.reduce((total, topic) => total + naiveDeliveries(subscriptions, topic), 0);
  if (naiveTotal !== sink.deliveries) throw new Error(`trie delivered ${sink.deliveries}, naive ${naiveTotal}`);

  sink.deliveries = 0;
  const trieMatchesPerSecond = rate(topics.length, () => {
    for (let index = 0; index < topics.length; index++) trie.match(topics[index]!, sink);
  });
  const deliveriesPerMatch = sink.deliveries / (topics.length * (rounds + 1));
  // The same topics against the exact filters alone: one delivery per match, so this isolates the
  // cost of walking the trie from the cost of reporting subscribers.
  const exactTrie = fillTrie(subscriptions.filter((subscription) => !subscription.filter.includes('+') && !subscription.filter.includes('#')));
  const exactMatchesPerSecond = rate(topics.length, () => {
    for (let index = 0; index < topics.length; index++) exactTrie.match(topics[index]!, sink);
  });
  const naiveMatchesPerSecond = rate(naiveTopics.length, () => {
    for (const topic of naiveTopics) naiveDeliveries(subscriptions, topic);
  });

  const subscribesPerSecond = rate(subscriptions.length, () => fillTrie(subscriptions));
  const churnTrie = fillTrie(subscriptions);
  const unsubscribesThenSubscribesPerSecond = rate(2 * subscriptions.length, () => {
    for (const subscription of subscriptions) churnTrie.unsubscribe(subscription.filter, subscription.key);
    if (churnTrie.size !== 0 || churnTrie.nodeCount !== 1) throw new Error('unsubscribing everything must empty and prune the trie');
    for (let index = 0; index < subscriptions.length; index++) churnTrie.subscribe(subscriptions[index]!.filter, subscriptions[index]!.key, index);
  });

  console.log(`subscription trie benchmark (node ${process.version}, median of ${rounds} rounds)`);
  console.log(`  subscriptions            ${format(subscriptions.length)} (${format(unique)} distinct filter+key, ${format(trie.nodeCount)} nodes)`);
  console.log(`  heap held by the trie    ${((heapAfterBytes - heapBeforeBytes) / 1024 / 1024).toFixed(1)} MiB`);
  console.log(`  deliveries per match     ${deliveriesPerMatch.toFixed(2)}`);
  console.log(`  trie matches/s           ${format(trieMatchesPerSecond)} (${format(topics.length)} topics per round)`);
  console.log(`  exact-only matches/s     ${format(exactMatchesPerSecond)} (${format(exactTrie.size)} exact filters, 1 delivery per match)`);
  console.log(`  naive matches/s          ${format(naiveMatchesPerSecond)} (${format(naiveTopics.length)} topics per round, loop over all filters)`);
  console.log(`  trie / naive             ${format(trieMatchesPerSecond / naiveMatchesPerSecond)}x`);
  console.log(`  subscribe ops/s          ${format(subscribesPerSecond)} (fresh trie, ${format(subscriptions.length)} per round)`);
  console.log(`  unsubscribe+subscribe/s  ${format(unsubscribesThenSubscribesPerSecond)} (empty the trie to its root, then refill)`);
}

main();
