/**
 * Proves what the core does with what the host tells it of a connection (ConnectionPeer): a
 * listener's own connectionsMax refuses a CONNECT like the broker-wide one (5.0: 0x97; 3.1.1:
 * rc 3), counts it, leaves other listeners alone and counts a takeover on the same listener as
 * freeing its slot; a user name the transport verified (mutual TLS with identityAsUsername) is
 * the client's user name whatever the CONNECT says, no password is asked of it, and an enhanced
 * authentication on such a connection is refused (0x8C). Log lines name the listener.
 */
import { describe, expect, it } from 'vitest';
import type { Authenticator } from '../../src/broker/authenticator.js';
import { Broker } from '../../src/broker/broker.js';
import type { ListenerInfo } from '../../src/contract.js';
import { Harness } from './harness.js';

const small: ListenerInfo = { name: 'mqtts:8883', connectionsMax: 2 };
const other: ListenerInfo = { name: 'mqtt:1883', connectionsMax: null };

describe('a listener with its own connectionsMax', () => {
  for (const version of [4, 5] as const) {
    it(`version ${version}: refuses the CONNECT past it, and only on that listener`, () => {
      const harness = new Harness();
      harness.listener = small;
      harness.connect('a', version);
      harness.connect('b', version);
      const third = harness.open(version);
      expect(third.connect('c').reasonCode).toBe(version === 5 ? 0x97 : 3);
      expect(harness.broker.stats.limits.listenerConnectionsMax).toBe(1);
      // A takeover on the same listener frees the slot it takes.
      expect(harness.open(version).connect('a').reasonCode).toBe(0);
      harness.listener = other;
      expect(harness.open(version).connect('d').reasonCode).toBe(0);
      expect(harness.broker.listenerClients(small)).toBe(2);
      expect(harness.broker.listenerClients(other)).toBe(1);
    });
  }

  it('gives the slot back when a client goes', () => {
    const harness = new Harness();
    harness.listener = small;
    harness.connect('a', 5);
    harness.connect('b', 5).disconnect();
    expect(harness.open(5).connect('c').reasonCode).toBe(0);
    expect(harness.logs.find((log) => log.event === 'client-connected')?.fields).toMatchObject({ listener: 'mqtts:8883' });
  });
});

describe('a user name the transport verified', () => {
  const refuseEveryone: Authenticator = { authenticate: () => ({ ok: false, reasonCode: 0x86 }) };

  function harnessWithAuthenticator(): Harness {
    const harness = new Harness();
    harness.broker = new Broker({ config: harness.config, nowMs: harness.nowMs, store: harness.store, authenticator: refuseEveryone });
    harness.collect();
    return harness;
  }

  it('is the client user name, and no password is checked', () => {
    const harness = harnessWithAuthenticator();
    expect(harness.open(5).connect('plain', { username: 'alice', password: new Uint8Array([1]) }).reasonCode).toBe(0x86);
    harness.verifiedUsername = 'device-7';
    const client = harness.open(5);
    expect(client.connect('device', { username: 'someone-else' }).reasonCode).toBe(0);
    expect(harness.broker.state.sessions.get('device')?.username).toBe('device-7');
    expect(harness.logs.find((log) => log.event === 'client-connected')?.fields).toMatchObject({ username: 'device-7' });
  });

  it('refuses an enhanced authentication on such a connection with 0x8C', () => {
    const harness = harnessWithAuthenticator();
    harness.verifiedUsername = 'device-7';
    expect(harness.open(5).connect('device', { properties: { authenticationMethod: 'SCRAM-SHA-256' } }).reasonCode).toBe(0x8c);
  });
});
