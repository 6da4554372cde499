/**
 * Parsers for the benchmark commands' options (commander argument parsers), shared by every
 * `bench/*-bench.ts` entry point so that they reject bad values the same way.
 */
import { InvalidArgumentError } from 'commander';

/** An integer option within [minimum, maximum]; anything else is refused with the range. */
export function integerOption(minimum: number, maximum: number): (value: string) => number {
  return (value: string): number => {
    const parsed = Number(value);
    if (!Number.isInteger(parsed) || parsed < minimum || parsed > maximum) throw new InvalidArgumentError(`must be an integer from ${minimum} to ${maximum}`);
    return parsed;
  };
}

/** A comma-separated list; blanks are ignored. */
export function listOption(value: string): string[] {
  return value
    .split(',')
    .map((item) => item.trim())
    .filter((item) => item.length > 0);
}
