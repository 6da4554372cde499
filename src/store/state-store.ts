/**
 * STUB: the broker helper defines the durable-state interface here (records, log sequence
 * numbers, durability notifications). See src/store/memory-store.ts for the in-memory one.
 */
export interface StateStore {}
