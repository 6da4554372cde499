/**
 * Small helpers for the configured limits that several handlers share: which topic limit a
 * refused topic name or filter hit (for the counters in `stats.limits`), and the token buckets
 * behind the connection-rate and publish-rate limits. The outcome of each limit (the reason code,
 * the refusal, the close) stays in the handler that enforces it.
 */
import { utf8Length } from '../codec/utf8.js';
import type { BrokerConfig } from '../config.js';
import type { LimitStats } from './stats.js';
import { TokenBucket } from './token-bucket.js';

/** Counts a refused topic name or filter under the topic limit it exceeds, if it exceeds one. */
export function countTopicLimit(limits: LimitStats, config: BrokerConfig, text: string): void {
  if (utf8Length(text) > config.topicBytesMax) {
    limits.topicBytesMax += 1;
    return;
  }
  let levels = 1;
  for (let index = 0; index < text.length; index++) if (text.charCodeAt(index) === 0x2f) levels += 1;
  if (levels > config.topicLevelsMax) limits.topicLevelsMax += 1;
}

/** A bucket for a per-second limit, or null when the limit is 0 (unlimited). */
export function rateBucket(ratePerSecondMax: number, nowMs: number): TokenBucket | null {
  return ratePerSecondMax === 0 ? null : new TokenBucket(ratePerSecondMax, nowMs);
}
