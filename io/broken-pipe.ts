/**
 * A reader that stops reading is a normal way to end a command: `keel sim --seed 42 --trace |
 * head`, `keel sub -t '#' | grep -m1 alarm`. Node ignores SIGPIPE, so the next write to the closed
 * pipe fails with EPIPE, and an unhandled stream error would end the process with a stack trace.
 *
 * The commands that print (sim, vopr, sub, inspect) call `exitQuietlyOnBrokenPipe` first: from
 * then on EPIPE on stdout or stderr ends the process without a word, with exit code 141 (128 +
 * SIGPIPE, what a shell reports for a program the signal stopped, such as mosquitto_sub in the
 * same pipeline): the command did not finish, so it does not claim success, and a pipeline
 * without `pipefail` still takes its status from the last command. Any other stream error is
 * thrown as before. `keel serve` does not take part: its log going away is no reason to stop.
 *
 * Output to a pipe is asynchronous once the pipe is full, so the error may come only after a
 * synchronous run (a simulation) has finished; when it has already happened, `writeStdoutLine`
 * stops at once instead of computing output that nobody will read.
 */

export const brokenPipeExitCode = 141;

let installed = false;
let stopHook: () => void = () => process.exit(brokenPipeExitCode);

/**
 * From now on EPIPE on stdout or stderr ends the run quietly: by `stop` when given (`keel sub`
 * disconnects cleanly first), otherwise by exiting with 141 at once.
 */
export function exitQuietlyOnBrokenPipe(stop?: () => void): void {
  if (stop !== undefined) stopHook = stop;
  if (installed) return;
  installed = true;
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (error: NodeJS.ErrnoException) => {
      if (error.code !== 'EPIPE') throw error;
      stopHook();
    });
  }
}

/** True once a write to stdout has failed because its reader went away. */
export function stdoutBroken(): boolean {
  return (process.stdout.errored as NodeJS.ErrnoException | null)?.code === 'EPIPE';
}

/** Writes one line to stdout, or stops the run if its reader has already gone. */
export function writeStdoutLine(line: string): void {
  if (stdoutBroken()) {
    stopHook();
    return;
  }
  process.stdout.write(`${line}\n`);
}
