export * from './match-filter.js';
export * from './trie.js';
export * from './validate.js';
