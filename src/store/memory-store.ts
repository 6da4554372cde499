/**
 * STUB: the broker helper writes the in-memory StateStore here.
 */
import type { StateStore } from './state-store.js';

export class MemoryStateStore implements StateStore {}
