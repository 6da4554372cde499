/**
 * `keel passwd FILE USER`: adds a user to a password file or changes their password; `--delete`
 * removes them. The password comes from `--password` (for scripts) or from the first line of
 * standard input (nothing is echoed by us; a terminal shows what is typed). `--scram` stores a
 * SCRAM-SHA-256 entry, which serves both SCRAM-SHA-256 enhanced authentication and plain
 * CONNECT passwords; the default scrypt entry serves only plain passwords. A running broker
 * picks the change up within a second. Exit codes: 0 done, 1 the file could not be written,
 * 2 a usage problem (empty password, bad user name, bad iteration count).
 */
import { Command, InvalidArgumentError } from 'commander';
import { hashPasswordScram, hashPasswordScrypt, scramIterationsDefault, updatePasswordFile, usernameProblem } from './password-file.js';

interface PasswdFlags {
  password?: string;
  scram?: boolean;
  iterations: number;
  delete?: boolean;
}

export function passwdCommand(): Command {
  return new Command('passwd')
    .description('add a user to a password file, change their password, or remove them')
    .argument('<file>', 'password file (created when missing, mode 0600)')
    .argument('<user>', 'user name')
    .option('--password <password>', 'the password (otherwise read from the first line of standard input)')
    .option('--scram', 'store a SCRAM-SHA-256 entry (serves SCRAM-SHA-256 and plain passwords)')
    .option('--iterations <count>', 'PBKDF2 iterations of a SCRAM entry', parseIterations, scramIterationsDefault)
    .option('--delete', 'remove the user')
    .action(passwd);
}

function parseIterations(value: string): number {
  const count = Number(value);
  if (!Number.isInteger(count) || count < 4_096 || count > 10_000_000) throw new InvalidArgumentError('must be an integer from 4096 to 10000000');
  return count;
}

async function passwd(file: string, user: string, flags: PasswdFlags): Promise<void> {
  const problem = usernameProblem(user);
  if (problem !== null) return fail(2, problem);
  if (flags.delete === true) {
    const existed = write(() => updatePasswordFile(file, user, null));
    process.stdout.write(existed ? `removed ${user} from ${file}\n` : `${user} was not in ${file}\n`);
    return;
  }
  const password = flags.password ?? (await readPasswordLine());
  if (password.length === 0) return fail(2, 'the password is empty');
  const bytes = Buffer.from(password, 'utf8');
  const hash = flags.scram === true ? hashPasswordScram(bytes, flags.iterations) : hashPasswordScrypt(bytes);
  const existed = write(() => updatePasswordFile(file, user, hash));
  process.stdout.write(`${existed ? 'updated' : 'added'} ${user} in ${file} (${hash.kind})\n`);
}

function write(update: () => boolean): boolean {
  try {
    return update();
  } catch (error) {
    return fail(1, `cannot update the password file: ${(error as Error).message}`);
  }
}

/** The first line of standard input, without its line ending. */
async function readPasswordLine(): Promise<string> {
  if (process.stdin.isTTY) process.stderr.write('Password: ');
  let text = '';
  for await (const chunk of process.stdin) {
    text += (chunk as Buffer).toString('utf8');
    if (text.includes('\n')) break;
  }
  const end = text.indexOf('\n');
  return (end < 0 ? text : text.slice(0, end)).replace(/\r$/, '');
}

function fail(code: number, message: string): never {
  process.stderr.write(`keel passwd: ${message}\n`);
  process.exit(code);
}
