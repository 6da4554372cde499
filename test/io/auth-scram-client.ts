/**
 * The client side of SCRAM-SHA-256 (RFC 5802 / RFC 7677), written from the RFC with node:crypto
 * and independent of io/auth/scram.ts, for the tests to talk to the server side: it builds the
 * client-first and client-final messages and checks the server's signature.
 */
import { createHash, createHmac, pbkdf2Sync, randomBytes } from 'node:crypto';

export class ScramClient {
  readonly clientNonce: string;
  private clientFirstBare = '';
  private expectedServerSignature = '';

  constructor(
    readonly username: string,
    private readonly password: string,
    clientNonce?: string,
  ) {
    this.clientNonce = clientNonce ?? randomBytes(18).toString('base64');
  }

  clientFirst(): string {
    const name = this.username.replace(/=/g, '=3D').replace(/,/g, '=2C');
    this.clientFirstBare = `n=${name},r=${this.clientNonce}`;
    return `n,,${this.clientFirstBare}`;
  }

  /** The client-final message answering `serverFirst`; throws if the server's nonce is wrong. */
  clientFinal(serverFirst: string, proofOverride?: Buffer): string {
    const fields = new Map(serverFirst.split(',').map((part) => [part.slice(0, 1), part.slice(2)]));
    const nonce = fields.get('r')!;
    if (!nonce.startsWith(this.clientNonce)) throw new Error('the server nonce does not extend ours');
    const salt = Buffer.from(fields.get('s')!, 'base64');
    const iterations = Number(fields.get('i'));
    const salted = pbkdf2Sync(this.password, salt, iterations, 32, 'sha256');
    const clientKey = createHmac('sha256', salted).update('Client Key').digest();
    const storedKey = createHash('sha256').update(clientKey).digest();
    const withoutProof = `c=${Buffer.from('n,,').toString('base64')},r=${nonce}`;
    const authMessage = `${this.clientFirstBare},${serverFirst},${withoutProof}`;
    const clientSignature = createHmac('sha256', storedKey).update(authMessage).digest();
    const proof = Buffer.alloc(32);
    for (let index = 0; index < 32; index++) proof[index] = clientKey[index]! ^ clientSignature[index]!;
    const serverKey = createHmac('sha256', salted).update('Server Key').digest();
    this.expectedServerSignature = createHmac('sha256', serverKey).update(authMessage).digest('base64');
    return `${withoutProof},p=${(proofOverride ?? proof).toString('base64')}`;
  }

  /** Whether the server-final message proves the server knows our ServerKey. */
  verifyServerFinal(serverFinal: string): boolean {
    return serverFinal === `v=${this.expectedServerSignature}`;
  }
}
