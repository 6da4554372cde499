/** The codec's public surface: packet shapes, reason codes, the decoder and the encoders. */

export * from './decoder.js';
export * from './encoder.js';
export * from './errors.js';
export * from './packets.js';
export * from './reason-codes.js';
