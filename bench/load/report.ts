/**
 * Turns a benchmark result into the one table the harness prints (and the JSON it can save):
 * scenario, metric, one column per broker (median of runs), and Keel's ratio to each peer; with
 * node-floor and Mosquitto both in the run, also node-floor / mosquitto (Node's own floor against
 * a C broker).
 *
 * A ratio is keel / peer (or node-floor / mosquitto, as its column says). Whether that is good depends on the metric, so every row names
 * its direction in the `better` column: for throughput higher is better (ratio > 1 means Keel is
 * ahead); for latency and memory lower is better (ratio < 1 means Keel is ahead). Brokers that
 * could not run show "unavailable", runs that failed show "failed", and the reasons are listed
 * under the table rather than lost.
 */
import { cpus, totalmem } from 'node:os';
import { type Availability, type BrokerName, nodeFloorName } from './peers.js';
import { type BenchResult, type Cell, formatNumber, type Row } from './runner.js';

export interface Machine {
  cpu: string;
  cores: number;
  memoryGiB: number;
  node: string;
  versions: Partial<Record<BrokerName, string>>;
}

export function describeMachine(availability: Partial<Record<BrokerName, Availability>>): Machine {
  const versions: Partial<Record<BrokerName, string>> = {};
  for (const [broker, state] of Object.entries(availability) as [BrokerName, Availability][]) {
    versions[broker] = state.available ? state.version : `unavailable (${state.reason})`;
  }
  return { cpu: cpus()[0]?.model ?? 'unknown', cores: cpus().length, memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10, node: process.version, versions };
}

function cellText(cell: Cell | undefined, availability: Availability | undefined): string {
  if (availability !== undefined && !availability.available) return 'unavailable';
  // A metric this broker does not have (the V8 heap of Mosquitto), as opposed to a run that failed.
  if (cell !== undefined && cell.median === null && cell.errors.length === 0) return 'n/a';
  if (cell === undefined || cell.median === null) return 'failed';
  const text = formatNumber(cell.median);
  return cell.errors.length > 0 ? `${text} (${cell.runs.length} ok)` : text;
}

function ratioText(row: Row, [numerator, denominator]: RatioColumn): string {
  const top = row.cells[numerator]?.median ?? null;
  const bottom = row.cells[denominator]?.median ?? null;
  if (row.better === 'info' || top === null || bottom === null || bottom === 0) return '-';
  return `${(top / bottom).toFixed(2)}x`;
}

type RatioColumn = readonly [BrokerName, BrokerName];

/** keel/peer for every peer when Keel ran; node-floor/mosquitto when both ran. */
function ratioColumns(brokers: BrokerName[]): RatioColumn[] {
  const columns: RatioColumn[] = brokers.includes('keel') ? brokers.filter((broker) => broker !== 'keel').map((peer) => ['keel', peer] as const) : [];
  if (brokers.includes(nodeFloorName) && brokers.includes('mosquitto')) columns.push([nodeFloorName, 'mosquitto']);
  return columns;
}

const betterText = { higher: 'higher', lower: 'lower', info: '-' } as const;

export function renderTable(result: BenchResult, brokers: BrokerName[]): string {
  const ratios = ratioColumns(brokers);
  const header = ['scenario', 'metric', 'unit', 'better', ...brokers, ...ratios.map(([numerator, denominator]) => `${numerator}/${denominator}`)];
  const lines = result.rows.map((row) => [
    row.scenario,
    row.metric,
    row.unit,
    betterText[row.better],
    ...brokers.map((broker) => cellText(row.cells[broker], result.availability[broker])),
    ...ratios.map((column) => ratioText(row, column)),
  ]);
  const widths = header.map((title, column) => Math.max(title.length, ...lines.map((line) => line[column]!.length)));
  const numericFrom = 4;
  const format = (line: string[]): string =>
    line
      .map((text, column) => (column >= numericFrom ? text.padStart(widths[column]!) : text.padEnd(widths[column]!)))
      .join('  ')
      .trimEnd();
  const rule = widths.map((width) => '-'.repeat(width)).join('  ');
  return [format(header), rule, ...lines.map(format)].join('\n');
}

/** Reasons behind every "unavailable" and "failed" cell, one line each, deduplicated. */
export function renderNotes(result: BenchResult): string[] {
  const notes = new Set<string>();
  for (const [broker, state] of Object.entries(result.availability) as [BrokerName, Availability][]) {
    if (!state.available) notes.add(`${broker}: unavailable: ${state.reason}`);
  }
  for (const row of result.rows) {
    for (const [broker, cell] of Object.entries(row.cells) as [BrokerName, Cell][]) {
      for (const error of cell.errors) notes.add(`${row.scenario} on ${broker}: ${error}`);
    }
  }
  return [...notes];
}

export const ratioLegend =
  'Ratios are keel/peer (and node-floor/mosquitto where both ran: Node\'s floor against Mosquitto). "better" says which way is good: higher (throughput: a ratio above 1 means Keel is ahead) ' +
  'or lower (latency, memory, loss: a ratio below 1 means Keel is ahead).';
