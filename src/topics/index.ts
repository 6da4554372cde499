export * from './validate.js';
export * from './trie.js';
export * from './match-filter.js';
