export * from './validate.js';
export * from './trie.js';
