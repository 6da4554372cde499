/**
 * Seeded random streams for the simulator.
 *
 * Every component (the network, the disk, each client by index, the world's shape) draws from
 * its own stream, named `${seed}:${component}`, so that adding a client or a fault kind does not
 * shift the choices of every other component. The generator is seedrandom's Alea: fast, and its
 * output for a given string seed is fixed across processes and platforms.
 */
import seedrandom from 'seedrandom';

export class Random {
  private readonly generator: seedrandom.PRNG;

  constructor(readonly name: string) {
    this.generator = seedrandom.alea(name);
  }

  /** A stream for a sub-component, independent of this one's position. */
  static stream(seed: number, component: string): Random {
    return new Random(`${seed}:${component}`);
  }

  /** A float in [0, 1). */
  next(): number {
    return this.generator();
  }

  /** An integer in [min, max], both inclusive. */
  int(min: number, max: number): number {
    if (!(Number.isInteger(min) && Number.isInteger(max) && min <= max)) {
      throw new Error(`Random.int: bad range ${min}..${max}`);
    }
    return min + Math.floor(this.generator() * (max - min + 1));
  }

  /** True with probability `probability`. */
  chance(probability: number): boolean {
    return this.generator() < probability;
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new Error('Random.pick: empty list');
    return items[Math.floor(this.generator() * items.length)]!;
  }

  /** A float in [min, max), skewed towards small values (half the draws land in the lowest tenth). */
  skewed(min: number, max: number): number {
    const draw = this.generator();
    return min + (max - min) * draw * draw * draw;
  }
}
