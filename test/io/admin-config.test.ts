/**
 * Proves the admin listener's settings and token (io/admin/admin-config.ts, admin-token.ts): the
 * `admin` key is taken out before the core's settings are checked; defaults fill what is left
 * out; `null` turns the listener off and an absent key means whatever the caller says; every
 * malformed value is reported at once; a listener beyond loopback without a token file is refused
 * while loopback names pass; a token file must hold one token of at least 16 characters, and a
 * token matches only itself, as `Bearer <token>`; a reload that finds a bad file keeps the token.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { adminDefaults, isLoopbackHost, resolveAdminConfig, takeAdminSettings } from '../../io/admin/admin-config.js';
import { AdminToken } from '../../io/admin/admin-token.js';
import { ConfigError, startServer } from '../../io/server.js';

const directory = mkdtempSync(join(tmpdir(), 'keel-admin-config-'));
afterAll(() => rmSync(directory, { recursive: true, force: true }));

describe('admin settings', () => {
  it('are taken out of the settings before the core sees them', () => {
    const settings = { admin: { port: 1 }, syncPolicy: 'none' };
    expect(takeAdminSettings(settings)).toEqual({ admin: { port: 1 }, core: { syncPolicy: 'none' } });
    expect(settings).toEqual({ admin: { port: 1 }, syncPolicy: 'none' });
    expect(takeAdminSettings({ syncPolicy: 'none' }).admin).toBeUndefined();
  });

  it('fill in defaults, turn off with null, and take the caller default when absent', () => {
    expect(resolveAdminConfig({ port: 0 }, null)).toEqual({ ok: true, admin: { host: '127.0.0.1', port: 0, tokenFile: null } });
    expect(resolveAdminConfig({}, null)).toEqual({ ok: true, admin: adminDefaults });
    expect(resolveAdminConfig(null, adminDefaults)).toEqual({ ok: true, admin: null });
    expect(resolveAdminConfig(undefined, null)).toEqual({ ok: true, admin: null });
    expect(resolveAdminConfig(undefined, adminDefaults)).toEqual({ ok: true, admin: adminDefaults });
  });

  it('report every malformed value at once', () => {
    const resolved = resolveAdminConfig({ host: '', port: 70_000, tokenFile: 3, colour: 'blue' }, null);
    expect(resolved.ok).toBe(false);
    expect(resolved.ok ? [] : resolved.problems).toEqual([
      'admin.colour is not a setting (admin takes host, port and tokenFile)',
      'admin.host must be a non-empty string',
      'admin.port must be an integer from 0 to 65535 (0: chosen by the operating system)',
      'admin.tokenFile must be a file name or null',
    ]);
    expect(resolveAdminConfig('on', null).ok).toBe(false);
  });

  it('refuse a listener other machines can reach unless it has a token file', () => {
    const open = resolveAdminConfig({ host: '0.0.0.0' }, null);
    expect(open.ok ? [] : open.problems).toEqual([expect.stringContaining('admin.host 0.0.0.0 is reachable from other machines: set admin.tokenFile')]);
    expect(resolveAdminConfig({ host: '0.0.0.0', tokenFile: '/etc/keel/token' }, null).ok).toBe(true);
    for (const host of ['127.0.0.1', '127.1.2.3', 'localhost', '::1']) expect(isLoopbackHost(host)).toBe(true);
    for (const host of ['0.0.0.0', '10.0.0.1', '::', 'example.org']) expect(isLoopbackHost(host)).toBe(false);
  });

  it('make startServer fail with every problem, the core settings and the admin ones together', async () => {
    const failure = await startServer({ config: { syncPolicy: 'sometimes', admin: { host: '0.0.0.0' } } }).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(ConfigError);
    expect((failure as ConfigError).problems).toHaveLength(2);
    expect((failure as ConfigError).problems[1]).toContain('admin.host 0.0.0.0');
    const missing = await startServer({ config: { admin: { port: 0, tokenFile: join(directory, 'absent') } } }).catch((error: unknown) => error);
    expect((missing as ConfigError).problems).toEqual([expect.stringContaining('cannot read admin.tokenFile')]);
  });
});

describe('the admin token', () => {
  it('must be one token of at least 16 characters', () => {
    const file = join(directory, 'token');
    for (const [text, problem] of [
      ['short\n', 'at least 16 characters'],
      ['two tokens of enough length\n', 'without white space'],
      ['', 'at least 16 characters'],
    ] as const) {
      writeFileSync(file, text);
      expect(AdminToken.load(file)).toEqual({ problem: expect.stringContaining(problem) });
    }
  });

  it('matches only itself, as a bearer token, and keeps itself when a reload finds a bad file', () => {
    const file = join(directory, 'good-token');
    writeFileSync(file, '  0123456789abcdef-token \n');
    const token = AdminToken.load(file) as AdminToken;
    expect(token.matches('Bearer 0123456789abcdef-token')).toBe(true);
    expect(token.matches('bearer 0123456789abcdef-token')).toBe(true);
    for (const wrong of [undefined, '', '0123456789abcdef-token', 'Basic 0123456789abcdef-token', 'Bearer 0123456789abcdef-toke', 'Bearer 0123456789abcdef-tokenX', 'Bearer ']) {
      expect(token.matches(wrong)).toBe(false);
    }
    writeFileSync(file, 'tiny');
    expect(token.reload()).toMatchObject({ ok: false, detail: expect.stringContaining('kept the token in force') });
    expect(token.matches('Bearer 0123456789abcdef-token')).toBe(true);
    writeFileSync(file, 'the-replacement-token');
    expect(token.reload().ok).toBe(true);
    expect(token.matches('Bearer 0123456789abcdef-token')).toBe(false);
    expect(token.matches('Bearer the-replacement-token')).toBe(true);
  });
});
