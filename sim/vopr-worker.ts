/**
 * One worker thread of `keel vopr --jobs N` (vopr-parallel.ts): runs the seeds it is handed, one
 * at a time, each exactly as `runVopr` runs it, and posts back each seed's outcome. It holds no
 * state between seeds but the modules it loaded, which no run writes to.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { runVoprSeed } from './vopr.js';
import type { FromWorker, PostableVoprOptions, ToWorker } from './vopr-parallel.js';

const port = parentPort;
if (port === null) throw new Error('vopr-worker.js runs as a worker thread of keel vopr --jobs');
const options = workerData as PostableVoprOptions;

port.on('message', (message: ToWorker) => {
  if (message.kind === 'stop') return port.close();
  let reply: FromWorker;
  try {
    reply = { kind: 'outcome', outcome: runVoprSeed(options, message.seed) };
  } catch (error) {
    // runSimulation reports a throw from the broker or the world as a violation; this is anything else.
    reply = { kind: 'error', seed: message.seed, message: error instanceof Error ? (error.stack ?? error.message) : String(error) };
  }
  port.postMessage(reply);
});
