/**
 * Proves the `listeners` setting is checked as documented (io/listeners/listener-config.ts): the
 * README's example parses, with relative certificate paths resolved against the config file's
 * directory; every problem of a bad list is reported at once, naming the listener and the key
 * (unknown protocol or key, missing port, path or certificate, certificate settings on a plain
 * listener, PROXY on WebSockets, origins on plain MQTT, identityAsUsername without a required
 * client certificate, two listeners on one port of one address or of every address); origins are
 * normalized as browsers send them; and a list built from flags is checked by the same rules.
 */
import { describe, expect, it } from 'vitest';
import { checkListeners, listenerDefaults, listenerName, normalizeOrigin, parseListeners } from '../../io/listeners/listener-config.js';

const example = [
  { protocol: 'mqtt', host: '0.0.0.0', port: 1883 },
  { protocol: 'mqtts', host: '0.0.0.0', port: 8883, certFile: 'server.crt', keyFile: 'server.key', caFile: 'ca.crt', requireClientCertificate: false, identityAsUsername: false },
  { protocol: 'ws', host: '0.0.0.0', port: 8080, path: '/mqtt' },
  { protocol: 'wss', host: '0.0.0.0', port: 8081, path: '/mqtt', certFile: 'server.crt', keyFile: 'server.key' },
];

function problemsOf(value: unknown): string[] {
  const parsed = parseListeners(value, '/etc/keel');
  if (parsed.ok) throw new Error('expected problems');
  return parsed.problems;
}

describe('the listeners setting', () => {
  it('parses the README example, resolving relative files against the config directory', () => {
    const parsed = parseListeners(example, '/etc/keel');
    expect(parsed.ok).toBe(true);
    if (!parsed.ok) return;
    expect(parsed.listeners.map((listener) => listenerName(listener.protocol, listener.host, listener.port))).toEqual([
      'mqtt:0.0.0.0:1883',
      'mqtts:0.0.0.0:8883',
      'ws:0.0.0.0:8080',
      'wss:0.0.0.0:8081',
    ]);
    expect(parsed.listeners[1]).toMatchObject({ certFile: '/etc/keel/server.crt', keyFile: '/etc/keel/server.key', caFile: '/etc/keel/ca.crt', path: null });
    expect(parsed.listeners[2]).toMatchObject({ path: '/mqtt', certFile: null, proxyProtocol: false, allowedOrigins: null });
  });

  it('keeps absolute paths, defaults the host to loopback and takes the optional keys', () => {
    const parsed = parseListeners(
      [
        {
          protocol: 'mqtts',
          port: 8883,
          certFile: '/pki/a.crt',
          keyFile: 'k.key',
          caFile: '/pki/ca.crt',
          requireClientCertificate: true,
          identityAsUsername: true,
          proxyProtocol: true,
          connectionsMax: 10,
        },
      ],
      '/etc/keel',
    );
    expect(parsed).toMatchObject({
      ok: true,
      listeners: [{ host: '127.0.0.1', certFile: '/pki/a.crt', keyFile: '/etc/keel/k.key', identityAsUsername: true, proxyProtocol: true, connectionsMax: 10 }],
    });
  });

  it('reports every problem at once, naming the listener and the key', () => {
    const problems = problemsOf([
      { protocol: 'mqttx', port: 1 },
      { protocol: 'mqtt', host: '0.0.0.0', certFile: 'a.crt', path: '/mqtt', allowedOrigins: ['https://a.example'], colour: 'blue' },
      { protocol: 'ws', port: 8080, proxyProtocol: true },
      { protocol: 'wss', port: 8081, path: 'mqtt', identityAsUsername: true },
      { protocol: 'mqtts', port: 8883, certFile: 'a.crt', keyFile: 'a.key', requireClientCertificate: true, connectionsMax: 0 },
    ]);
    const expected = [
      /listeners\[0\]: "protocol" must be one of mqtt, mqtts, ws, wss \(got "mqttx"\)/,
      /listeners\[1\]: unknown key "colour"/,
      /listeners\[1\]: "port" must be an integer from 0 to 65535 \(it is required\)/,
      /listeners\[1\]: "certFile" is for TLS listeners \(mqtts, wss\), not mqtt/,
      /listeners\[1\]: "path" is for WebSocket listeners/,
      /listeners\[1\]: "allowedOrigins" is for WebSocket listeners/,
      /listeners\[2\]: a ws listener needs "path"/,
      /listeners\[2\]: "proxyProtocol" is for mqtt and mqtts listeners, not ws/,
      /listeners\[3\]: a wss listener needs "certFile"/,
      /listeners\[3\]: a wss listener needs "keyFile"/,
      /listeners\[3\]: "identityAsUsername" needs "requireClientCertificate": true/,
      /listeners\[3\]: "path" must start with "\/"/,
      /listeners\[4\]: "requireClientCertificate" needs "caFile"/,
      /listeners\[4\]: "connectionsMax" must be a positive integer or null/,
    ];
    for (const pattern of expected)
      expect(
        problems.some((problem) => pattern.test(problem)),
        `${pattern} in\n${problems.join('\n')}`,
      ).toBe(true);
    expect(problems).toHaveLength(expected.length);
  });

  it('refuses two listeners on one port of one address, or of every address', () => {
    expect(problemsOf([listenerDefaults('mqtt', '127.0.0.1', 1883), { ...listenerDefaults('ws', '127.0.0.1', 1883), path: '/mqtt' }])).toEqual([
      'listeners mqtt:127.0.0.1:1883 and ws:127.0.0.1:1883 use the same port 1883: give each its own',
    ]);
    expect(
      problemsOf([
        { protocol: 'mqtt', host: '0.0.0.0', port: 1883 },
        { protocol: 'mqtt', host: '127.0.0.1', port: 1883 },
      ]),
    ).toHaveLength(1);
    expect(
      parseListeners(
        [
          { protocol: 'mqtt', host: '127.0.0.2', port: 1883 },
          { protocol: 'mqtt', host: '127.0.0.1', port: 1883 },
          { protocol: 'mqtt', port: 0 },
          { protocol: 'mqtt', port: 0 },
        ],
        '/',
      ).ok,
    ).toBe(true);
  });

  it('wants a non-empty array of objects', () => {
    expect(problemsOf({})).toEqual(['"listeners" must be a non-empty array of listener objects']);
    expect(problemsOf([])).toEqual(['"listeners" must be a non-empty array of listener objects']);
    expect(problemsOf(['mqtt://0.0.0.0:1883'])[0]).toMatch(/listeners\[0\]: must be an object/);
  });

  it('normalizes allowed origins and refuses what is not an origin', () => {
    const parsed = parseListeners([{ protocol: 'ws', port: 8080, path: '/mqtt', allowedOrigins: ['HTTPS://Example.COM:443', 'http://localhost:8000'] }], '/');
    expect(parsed).toMatchObject({ ok: true, listeners: [{ allowedOrigins: ['https://example.com', 'http://localhost:8000'] }] });
    expect(problemsOf([{ protocol: 'ws', port: 8080, path: '/mqtt', allowedOrigins: ['https://example.com/app', 'example.com'] }])).toHaveLength(2);
    expect(normalizeOrigin('https://a.example/')).toBe('https://a.example');
    expect(normalizeOrigin('null')).toBeNull();
  });

  it('checks a list built from command-line flags by the same rules', () => {
    expect(checkListeners([listenerDefaults('mqtt', '127.0.0.1', 1883), listenerDefaults('mqtts', '127.0.0.1', 8883)])).toEqual([
      'listener mqtts:127.0.0.1:8883 (#2): a mqtts listener needs "certFile" (its certificate, PEM)',
      'listener mqtts:127.0.0.1:8883 (#2): a mqtts listener needs "keyFile" (the certificate\'s private key, PEM)',
    ]);
    expect(checkListeners([listenerDefaults('ws', '::', 8080)])).toEqual([]);
    expect(listenerName('ws', '::', 8080)).toBe('ws:[::]:8080');
  });
});
