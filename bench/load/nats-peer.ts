/**
 * What the cluster benches share: waiting for a condition, and a `nats-server -js` child on a free
 * loopback port with its store under a given directory.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { canConnect, freePort } from './peers.js';

/** Resolves once `condition` holds; throws naming `what` after `timeoutMs`. */
export async function until(condition: () => boolean | Promise<boolean>, what: string, timeoutMs = 15_000): Promise<void> {
  const startMs = Date.now();
  while (!(await condition())) {
    if (Date.now() - startMs > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Starts `nats-server -js` (store in `directory`/nats), adds it to `children`, and waits until it accepts connections. */
export async function startNats(directory: string, children: Set<ChildProcess>): Promise<{ child: ChildProcess; port: number }> {
  const port = await freePort();
  const child = spawn('nats-server', ['-js', '-a', '127.0.0.1', '-p', String(port), '-sd', join(directory, 'nats')], { stdio: 'ignore' });
  children.add(child);
  await until(() => canConnect(port), 'nats-server');
  return { child, port };
}
