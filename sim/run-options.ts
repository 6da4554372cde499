/**
 * The options that shape a simulated run besides its seed, and the one table that spells each of
 * them as command-line flags.
 *
 * A failing run prints a command that reproduces it, and that command must carry every option
 * that made the run what it was, or it replays a different world and passes. So the options live
 * in one type, `RunOptions`, and `runOptionFlags` is typed over every key of it: an option added
 * to the type without its flags does not compile. From the table come the reproduce line
 * (`reproduceCommand`), the flags of `keel sim` and `keel vopr` (io/sim-commands.ts), the parsing
 * of the bare simulator entry point (sim/main.ts), and vopr's hand-over of options to each seed
 * (`pickRunOptions`); a test round-trips every option through the flags and back.
 *
 * What does not shape a run stays out: the seed (its own flag), `--trace` (printing the events
 * changes nothing in them), and the output sinks. Brokers and stores built by a caller (tests)
 * have no flag; the reproduce line says so rather than pretend.
 *
 * This module loads without the simulator (the CLI validates flags before loading it).
 */
import { assert } from '../src/assert.js';
import { type HandoverShapeName, handoverShapeNames } from './cluster/handover-shapes.js';
import { type ClusterPlantedBugName, clusterPlantedBugNames, type PlantedBugName, type PlantedStoreBugName, plantedBugNames, plantedStoreBugNames } from './planted-bug-names.js';

export interface RunOptions {
  /** Overrides the seed's choice of client count (2..12). */
  clientCount?: number;
  /** Overrides the seed's choice of whether faults happen at all. */
  faults?: boolean;
  /** False: the world without the workload streams (see chooseShape), as seeds were built before them. */
  workload?: boolean;
  /** Runs a deliberately broken broker (planted-bugs.ts). */
  plant?: PlantedBugName;
  /** Runs a deliberately broken store (planted-bugs.ts). */
  plantStore?: PlantedStoreBugName;
  /** A bound on events, against a broker that loops; default `eventsMaxDefault`. */
  eventsMax?: number;
  /** Broker nodes: 1 (default) one broker; 2..9 a cluster over a model of NATS (sim/cluster/). */
  nodes?: number;
  /** Runs deliberately broken cluster nodes (sim/cluster/cluster-planted-bugs.ts); a cluster run. */
  plantCluster?: ClusterPlantedBugName;
  /** Cluster movers keep persistent sessions and subscribe, so their sessions are handed over (mover-client.ts). */
  handoverMovers?: boolean;
  /** Cluster nodes keep a stream of every topic under a tiny backlog bound, so their hand-off consumers pause and resume. */
  clusterStreams?: boolean;
  /** False: no cluster node loses its disk (cluster worlds as before lost disks existed). */
  lostDisk?: boolean;
  /** False: no large payloads (sim/large-payloads.ts; worlds as before they existed). */
  largePayloads?: boolean;
  /** False: no movers whose sessions grow to several MiB (sim/cluster/cluster-world.ts HeavySessions; worlds as before they existed). */
  heavySessions?: boolean;
  /** Cluster nodes crash at hand-over claims they win, before they learn it (sim/cluster/cluster-world.ts aimAtClaim); off by default. */
  claimCrashes?: boolean;
  /** False: no crashes or cuts aimed at session hand-over steps (sim/cluster/handover-faults.ts; worlds as before they existed). */
  handoverFaults?: boolean;
  /** Shaped hand-over plans (sim/cluster/handover-shapes.ts): true in every `--handover-movers` world, false in none; absent, in half. */
  handoverShapes?: boolean;
  /** One hand-over shape for every `--handover-movers` world's plan (sim/cluster/handover-shapes.ts), instead of one drawn. */
  handoverShape?: HandoverShapeName;
}

/** Run options that contradict each other: a usage error (`keel sim` and `keel vopr` say it and exit 2), not a failed run. */
export class RunOptionsError extends Error {}

/**
 * Throws RunOptionsError for a combination that names no run: a hand-over shape without movers
 * that keep their sessions (it would be silently ignored), or one that needs more nodes than asked.
 */
export function checkRunOptions(options: RunOptions): void {
  if (options.handoverShape !== undefined && options.handoverMovers !== true) throw new RunOptionsError('--handover-shape needs --handover-movers: its plan drives a mover that keeps its session');
  if (options.handoverShape === 'giveup-no-claim' && options.nodes !== undefined && options.nodes < 3)
    throw new RunOptionsError('--handover-shape giveup-no-claim needs --nodes 3 or more: the client moves on to a third node');
}

/** An option with a value: `--clients 5`. `parse` throws an Error whose message says what is allowed. */
export interface ValueFlag<V> {
  kind: 'value';
  flag: string;
  placeholder: string;
  description: string;
  parse(text: string): V;
  format(value: V): string;
}

/**
 * A boolean option: `on` spells true, `off` spells false. A missing spelling means that value is
 * the run's default (absent and given are the same run), so writing nothing for it loses nothing.
 */
export interface SwitchFlag {
  kind: 'switch';
  on: { flag: string; description: string } | null;
  off: { flag: string; description: string } | null;
}

type FlagFor<V> = [V] extends [boolean] ? SwitchFlag : ValueFlag<V>;

export type RunOptionFlags = { [K in keyof Required<RunOptions>]: FlagFor<Required<RunOptions>[K]> };

/** The bound on events when `eventsMax` is not given. */
export const eventsMaxDefault = 5_000_000;

export const clientCountMin = 2;
export const clusterNodesMax = 9;
export const clientCountMax = 12;

export const runOptionFlags: RunOptionFlags = {
  clientCount: {
    kind: 'value',
    flag: '--clients',
    placeholder: '<n>',
    description: `override the seed's client count (${clientCountMin}..${clientCountMax})`,
    parse: (text) => integerFrom(text, clientCountMin, clientCountMax),
    format: String,
  },
  faults: {
    kind: 'switch',
    on: { flag: '--faults', description: 'run the seed with faults, whatever it chose (it still picks which)' },
    off: { flag: '--no-faults', description: 'run the seed without faults' },
  },
  lostDisk: {
    kind: 'switch',
    on: null,
    off: { flag: '--no-lost-disk', description: "cluster worlds as before a node could lose its disk: older cluster seeds' runs" },
  },
  largePayloads: {
    kind: 'switch',
    on: null,
    off: { flag: '--no-large-payloads', description: "worlds as before large payloads existed: older seeds' runs" },
  },
  heavySessions: {
    kind: 'switch',
    on: null,
    off: { flag: '--no-heavy-sessions', description: "cluster worlds as before movers' sessions grew to several MiB: older cluster seeds' runs" },
  },
  handoverFaults: {
    kind: 'switch',
    on: null,
    off: { flag: '--no-handover-faults', description: "cluster worlds as before crashes and cuts were aimed at session hand-over steps: older cluster seeds' runs" },
  },
  handoverShapes: {
    kind: 'switch',
    on: {
      flag: '--handover-shapes',
      description: 'with --handover-movers: every world has a mover follow a scripted itinerary through a hand-over shape (crash, give-up, claim crashed), not half of them',
    },
    off: { flag: '--no-handover-shapes', description: "cluster worlds as before shaped hand-over plans existed: older --handover-movers seeds' runs" },
  },
  handoverShape: {
    kind: 'value',
    flag: '--handover-shape',
    placeholder: '<shape>',
    description: `with --handover-movers: every world's plan follows this shape (${handoverShapeNames.join(', ')}; lost-marker is run only so)`,
    parse: (text) => oneOf(text, handoverShapeNames),
    format: String,
  },
  workload: {
    kind: 'switch',
    on: null,
    off: { flag: '--no-workload', description: "the world as before the workload streams (stalled readers, expiry, will delay, unsubscribe, aliases) existed: older seeds' runs" },
  },
  plant: {
    kind: 'value',
    flag: '--plant',
    placeholder: '<bug>',
    description: 'run a deliberately broken broker, to watch the checker catch it (bugs listed below)',
    parse: (text) => oneOf(text, plantedBugNames),
    format: String,
  },
  plantStore: {
    kind: 'value',
    flag: '--plant-store',
    placeholder: '<bug>',
    description: 'run a deliberately broken store (bugs listed below)',
    parse: (text) => oneOf(text, plantedStoreBugNames),
    format: String,
  },
  eventsMax: {
    kind: 'value',
    flag: '--events-max',
    placeholder: '<n>',
    description: `stop a run after this many events, against a broker that loops (default ${eventsMaxDefault})`,
    parse: (text) => integerFrom(text, 1, Number.MAX_SAFE_INTEGER),
    format: String,
  },
  nodes: {
    kind: 'value',
    flag: '--nodes',
    placeholder: '<n>',
    description: `broker nodes: 1 one broker (default), 2..${clusterNodesMax} a cluster over a model of NATS (vopr without it mixes both)`,
    parse: (text) => integerFrom(text, 1, clusterNodesMax),
    format: String,
  },
  plantCluster: {
    kind: 'value',
    flag: '--plant-cluster',
    placeholder: '<bug>',
    description: 'run deliberately broken cluster nodes (a cluster run; bugs listed below)',
    parse: (text) => oneOf(text, clusterPlantedBugNames),
    format: String,
  },
  claimCrashes: {
    kind: 'switch',
    on: {
      flag: '--claim-crashes',
      description: 'cluster nodes crash at some hand-over claims they win, before their marker is queued, so a chain of moves goes short of the stream (with --handover-movers)',
    },
    off: null,
  },
  handoverMovers: {
    kind: 'switch',
    on: { flag: '--handover-movers', description: 'cluster movers keep persistent sessions and subscribe: their sessions are handed over between nodes' },
    off: null,
  },
  clusterStreams: {
    kind: 'switch',
    on: {
      flag: '--cluster-streams',
      description: "cluster nodes keep a stream of every topic with a 1 KiB backlog bound: their hand-off consumers pause and resume (vopr's mix picks it for a third of its cluster seeds)",
    },
    off: null,
  },
};

/** The keys of `RunOptions`, in the order their flags are printed. */
export const runOptionKeys = Object.keys(runOptionFlags) as (keyof RunOptions)[];

function integerFrom(text: string, min: number, max: number): number {
  const value = Number(text);
  if (text.trim() === '' || !Number.isSafeInteger(value) || value < min || value > max) {
    throw new Error(max === Number.MAX_SAFE_INTEGER ? `must be an integer of at least ${min}` : `must be an integer from ${min} to ${max}`);
  }
  return value;
}

function oneOf<T extends string>(text: string, names: readonly T[]): T {
  if (!(names as readonly string[]).includes(text)) throw new Error(`must be one of ${names.join(', ')}`);
  return text as T;
}

/** The flags that give a run these options, in table order; nothing for an option at its default. */
export function runOptionsToFlags(options: RunOptions): string[] {
  const flags: string[] = [];
  for (const key of runOptionKeys) {
    const value = options[key];
    if (value === undefined) continue;
    const spec = runOptionFlags[key] as ValueFlag<unknown> | SwitchFlag;
    if (spec.kind === 'value') flags.push(spec.flag, spec.format(value));
    else {
      assert(typeof value === 'boolean', `${key} is a switch`);
      const spelling = value ? spec.on : spec.off;
      if (spelling !== null) flags.push(spelling.flag);
    }
  }
  return flags;
}

/** Copies the run options out of a larger options object (vopr's, for each seed). */
export function pickRunOptions(options: RunOptions): RunOptions {
  const picked: Record<string, unknown> = {};
  for (const key of runOptionKeys) if (options[key] !== undefined) picked[key] = options[key];
  return picked as RunOptions;
}

/**
 * Reads run flags out of an argument list (the bare entry point sim/main.ts; the CLI uses
 * commander over the same table). Returns the options and the arguments that are not run flags.
 */
export function parseRunFlags(args: readonly string[]): { options: RunOptions; rest: string[] } {
  const options: Record<string, unknown> = {};
  const rest: string[] = [];
  for (let index = 0; index < args.length; index++) {
    const argument = args[index]!;
    const match = matchFlag(argument);
    if (match === null) {
      rest.push(argument);
      continue;
    }
    if (match.value !== undefined) options[match.key] = match.value;
    else {
      const text = args[index + 1];
      if (text === undefined) throw new Error(`${argument} needs a value`);
      const spec = runOptionFlags[match.key] as ValueFlag<unknown>;
      try {
        options[match.key] = spec.parse(text);
      } catch (error) {
        throw new Error(`${argument} ${(error as Error).message}, got ${text}`);
      }
      index++;
    }
  }
  return { options: options as RunOptions, rest };
}

/** Which option a flag sets; a switch's value comes with it, a value flag's follows it. */
function matchFlag(argument: string): { key: keyof RunOptions; value?: boolean } | null {
  for (const key of runOptionKeys) {
    const spec = runOptionFlags[key] as ValueFlag<unknown> | SwitchFlag;
    if (spec.kind === 'value' && spec.flag === argument) return { key };
    if (spec.kind === 'switch' && spec.on?.flag === argument) return { key, value: true };
    if (spec.kind === 'switch' && spec.off?.flag === argument) return { key, value: false };
  }
  return null;
}

/**
 * The command that replays a run, in the form that works from the checkout (`npx keel` runs the
 * project's own `keel`; after `npm link` plain `keel` does too). `customParts` names what the
 * caller built itself (a broker, a store), which no flag can name: the line then says so in a
 * shell comment, so it still runs, and nobody mistakes it for the same run.
 */
export function reproduceCommand(seed: number, options: RunOptions, customParts: string[] = []): string {
  assert(Number.isSafeInteger(seed) && seed >= 0, 'a seed is a non-negative integer');
  const command = ['npx', 'keel', 'sim', '--seed', String(seed), ...runOptionsToFlags(options)].map(shellWord).join(' ');
  return customParts.length === 0 ? command : `${command}  # not the same run: the ${customParts.join(' and ')} came from the caller, which no flag names`;
}

/** Quotes a word for a POSIX shell when it holds anything but plain characters. */
function shellWord(word: string): string {
  return /^[A-Za-z0-9_./=:+-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}
