/**
 * Reloading on request: the seam between SIGHUP (what a Mosquitto operator sends to make the
 * broker re-read its files) and the parts of a running server that can take new contents
 * without a restart.
 *
 * Every such part is a `Reloadable` that the server registers when it starts: today the password
 * file and the ACL file. TLS certificates, when listeners get them, plug in the same way. A
 * reload asks each part in turn, synchronously, and never throws: a part that cannot read or
 * parse its file keeps what it had and says why in its outcome, so a half-edited file never
 * locks everybody out and never kills the broker. What only a restart can change is named in the
 * report, so the operator is not left guessing whether an edit took effect.
 */
import type { LogFields } from '../src/contract.js';

export interface ReloadOutcome {
  /** What was reloaded, for the log ("password file"). */
  readonly what: string;
  /** False when the part kept its previous contents. */
  readonly ok: boolean;
  /** One sentence: what is in force now, or why nothing changed. */
  readonly detail: string;
}

export interface Reloadable {
  readonly what: string;
  /** Re-reads now; never throws for a bad or missing file (that is an outcome with ok false). */
  reload(): ReloadOutcome;
}

export interface ReloadReport {
  readonly outcomes: readonly ReloadOutcome[];
  /** What this server was started with that a reload does not change. */
  readonly needsRestart: readonly string[];
}

export function reloadAll(parts: readonly Reloadable[], needsRestart: readonly string[]): ReloadReport {
  const outcomes = parts.map((part) => part.reload());
  return { outcomes, needsRestart };
}

/** The report as the fields of one log line. */
export function reloadLogFields(report: ReloadReport): LogFields {
  const reloaded = report.outcomes.filter((outcome) => outcome.ok);
  const kept = report.outcomes.filter((outcome) => !outcome.ok);
  const describe = (outcomes: readonly ReloadOutcome[]): string => outcomes.map((outcome) => `${outcome.what}: ${outcome.detail}`).join('; ');
  return {
    reloaded: reloaded.length === 0 ? 'nothing' : describe(reloaded),
    ...(kept.length === 0 ? {} : { kept: describe(kept) }),
    needsRestart: report.needsRestart.join(', '),
  };
}
