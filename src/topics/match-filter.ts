/**
 * One filter against one topic name, without a trie: for the places that hold a filter and scan
 * topics (a new subscription looking through retained messages), where building a trie for a
 * single filter would cost more than it saves.
 *
 * It walks both strings level by level with indexOf and allocates nothing. The rules are the
 * trie's: `+` takes exactly one level (an empty one included), `#` takes the parent level and
 * everything below, and a filter starting with a wildcard does not match a `$` topic
 * [MQTT-4.7.2-1]. A shared filter is matched by its part after `$share/{group}/`.
 */
import { assert } from '../assert.js';
import { parseSharedFilter } from './validate.js';

const plus = 0x2b;
const hash = 0x23;
const dollar = 0x24;

/** True when the topic name matches the (valid) topic filter. */
export function matchesFilter(filter: string, topic: string): boolean {
  assert(topic.length > 0, 'a topic name is never empty');
  const shared = parseSharedFilter(filter);
  const plain = shared === null ? filter : shared.filter;
  assert(plain.length > 0, 'a topic filter is never empty');
  const first = plain.charCodeAt(0);
  if ((first === plus || first === hash) && topic.charCodeAt(0) === dollar) return false;
  let filterIndex = 0;
  let topicIndex = 0;
  for (;;) {
    // Both indexes sit at the start of a level here; topicIndex may equal topic.length when the
    // topic ends in an empty level (`a/`), and is -1 once the topic has no levels left.
    const filterEnd = plain.indexOf('/', filterIndex);
    const filterStop = filterEnd < 0 ? plain.length : filterEnd;
    const isHash = filterStop - filterIndex === 1 && plain.charCodeAt(filterIndex) === hash;
    if (isHash) return true;
    if (topicIndex < 0) return false;
    const topicEnd = topic.indexOf('/', topicIndex);
    const topicStop = topicEnd < 0 ? topic.length : topicEnd;
    const isPlus = filterStop - filterIndex === 1 && plain.charCodeAt(filterIndex) === plus;
    if (!isPlus && !sameLevel(plain, filterIndex, filterStop, topic, topicIndex, topicStop)) return false;
    topicIndex = topicEnd < 0 ? -1 : topicEnd + 1;
    if (filterEnd < 0) return topicIndex < 0;
    filterIndex = filterEnd + 1;
  }
}

function sameLevel(filter: string, filterStart: number, filterStop: number, topic: string, topicStart: number, topicStop: number): boolean {
  const length = filterStop - filterStart;
  if (length !== topicStop - topicStart) return false;
  for (let offset = 0; offset < length; offset++) {
    if (filter.charCodeAt(filterStart + offset) !== topic.charCodeAt(topicStart + offset)) return false;
  }
  return true;
}
