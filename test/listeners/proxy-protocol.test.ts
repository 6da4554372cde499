/**
 * Proves the PROXY protocol parser (io/listeners/proxy-protocol.ts) reads version 1 and 2
 * headers for IPv4 and IPv6, reports the header's exact length (so the bytes after it are kept),
 * asks for more bytes at every cut of a valid header, takes UNKNOWN and LOCAL as "no client
 * address", and refuses what is not a header, what is malformed, and what exceeds the bounds
 * (107 bytes for v1; proxyV2BytesMax for v2, refused from the length field before the bytes come).
 */
import { describe, expect, it } from 'vitest';
import { formatIpv6, parseProxyHeader, proxyV1BytesMax, proxyV2BytesMax } from '../../io/listeners/proxy-protocol.js';

const signature = [0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a];

function v2(command: number, family: number, body: number[]): Buffer {
  return Buffer.from([...signature, 0x20 | command, family, body.length >> 8, body.length & 0xff, ...body]);
}

const ipv4Body = [192, 0, 2, 7, 10, 0, 0, 1, 0xc3, 0x50, 0x07, 0x5b]; // 192.0.2.7:50000 -> 10.0.0.1:1883

describe('PROXY protocol v1', () => {
  it('reads a TCP4 header and its length, leaving the MQTT bytes after it', () => {
    const header = 'PROXY TCP4 192.0.2.7 10.0.0.1 50000 1883\r\n';
    const bytes = Buffer.concat([Buffer.from(header), Buffer.from([0x10, 0x0c])]);
    expect(parseProxyHeader(bytes)).toEqual({ state: 'complete', headerBytes: header.length, source: { address: '192.0.2.7', port: 50000 } });
  });

  it('reads a TCP6 header', () => {
    expect(parseProxyHeader(Buffer.from('PROXY TCP6 2001:db8::7 2001:db8::1 4000 8883\r\n'))).toMatchObject({ state: 'complete', source: { address: '2001:db8::7', port: 4000 } });
  });

  it('takes UNKNOWN as a header without a client address', () => {
    expect(parseProxyHeader(Buffer.from('PROXY UNKNOWN\r\n'))).toEqual({ state: 'complete', headerBytes: 15, source: null });
    expect(parseProxyHeader(Buffer.from('PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n'))).toMatchObject({ state: 'complete', source: null });
  });

  it('asks for more at every cut of a valid header', () => {
    const header = Buffer.from('PROXY TCP4 192.0.2.7 10.0.0.1 50000 1883\r\n');
    for (let cut = 1; cut < header.length; cut++) expect(parseProxyHeader(header.subarray(0, cut)).state).toBe('incomplete');
  });

  it('refuses malformed headers', () => {
    for (const line of [
      'PROXY TCP4 192.0.2.7 10.0.0.1 50000\r\n',
      'PROXY TCP4 2001:db8::7 10.0.0.1 1 2\r\n',
      'PROXY TCP4 192.0.2.7 10.0.0.1 70000 1883\r\n',
      'PROXY TCP4 192.0.2.7 10.0.0.1 050 1883\r\n',
      'PROXY UDP4 192.0.2.7 10.0.0.1 1 2\r\n',
      'PROXY  TCP4 192.0.2.7 10.0.0.1 1 2\r\n',
    ]) {
      expect(parseProxyHeader(Buffer.from(line)), line).toMatchObject({ state: 'invalid' });
    }
  });

  it(`refuses a line without CRLF in its first ${proxyV1BytesMax} bytes`, () => {
    const long = Buffer.from(`PROXY TCP4 ${'1'.repeat(200)}`);
    expect(parseProxyHeader(long.subarray(0, proxyV1BytesMax - 1)).state).toBe('incomplete');
    expect(parseProxyHeader(long.subarray(0, proxyV1BytesMax))).toMatchObject({ state: 'invalid', reason: expect.stringContaining('107') });
  });
});

describe('PROXY protocol v2', () => {
  it('reads an IPv4 header, TLVs included in its length', () => {
    const header = v2(1, 0x11, [...ipv4Body, 0x04, 0x00, 0x02, 0xaa, 0xbb]);
    const bytes = Buffer.concat([header, Buffer.from([0x10])]);
    expect(parseProxyHeader(bytes)).toEqual({ state: 'complete', headerBytes: header.length, source: { address: '192.0.2.7', port: 50000 } });
  });

  it('reads an IPv6 header', () => {
    const source = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x07];
    const destination = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01];
    expect(parseProxyHeader(v2(1, 0x21, [...source, ...destination, 0x0f, 0xa0, 0x22, 0xb3]))).toMatchObject({ state: 'complete', source: { address: '2001:db8::7', port: 4000 } });
  });

  it('takes LOCAL and unspecified or Unix families as no client address', () => {
    expect(parseProxyHeader(v2(0, 0x00, []))).toEqual({ state: 'complete', headerBytes: 16, source: null });
    expect(parseProxyHeader(v2(0, 0x11, ipv4Body))).toMatchObject({ state: 'complete', source: null });
    expect(parseProxyHeader(v2(1, 0x31, new Array(216).fill(0)))).toMatchObject({ state: 'complete', headerBytes: 232, source: null });
  });

  it('asks for more at every cut of a valid header', () => {
    const header = v2(1, 0x11, ipv4Body);
    for (let cut = 1; cut < header.length; cut++) expect(parseProxyHeader(header.subarray(0, cut)).state).toBe('incomplete');
  });

  it('refuses a wrong version, an unknown command and addresses shorter than their family', () => {
    const wrongVersion = v2(1, 0x11, ipv4Body);
    wrongVersion[12] = 0x11;
    expect(parseProxyHeader(wrongVersion)).toMatchObject({ state: 'invalid' });
    expect(parseProxyHeader(v2(2, 0x11, ipv4Body))).toMatchObject({ state: 'invalid' });
    expect(parseProxyHeader(v2(1, 0x11, ipv4Body.slice(0, 8)))).toMatchObject({ state: 'invalid' });
    expect(parseProxyHeader(v2(1, 0x21, ipv4Body))).toMatchObject({ state: 'invalid' });
  });

  it(`refuses a length beyond ${proxyV2BytesMax} bytes from the preamble alone`, () => {
    const preamble = Buffer.from([...signature, 0x21, 0x11, 0xff, 0xff]);
    expect(parseProxyHeader(preamble)).toMatchObject({ state: 'invalid', reason: expect.stringContaining(String(proxyV2BytesMax)) });
    const largest = Buffer.from([...signature, 0x21, 0x11, (proxyV2BytesMax - 16) >> 8, (proxyV2BytesMax - 16) & 0xff]);
    expect(parseProxyHeader(largest).state).toBe('incomplete');
  });
});

describe('what is not a PROXY header', () => {
  it('is refused at the first byte that differs', () => {
    expect(parseProxyHeader(Buffer.from([0x10, 0x0c, 0x00]))).toMatchObject({ state: 'invalid' });
    expect(parseProxyHeader(Buffer.from('PROXX'))).toMatchObject({ state: 'invalid' });
    expect(parseProxyHeader(Buffer.from([0x0d, 0x0a, 0x0d, 0x0b]))).toMatchObject({ state: 'invalid' });
    expect(parseProxyHeader(Buffer.from([0x16, 0x03, 0x01]))).toMatchObject({ state: 'invalid' });
    expect(parseProxyHeader(Buffer.alloc(0)).state).toBe('incomplete');
  });
});

describe('formatIpv6', () => {
  it('writes RFC 5952 text', () => {
    expect(formatIpv6(Buffer.from('20010db8000000000000000000000001', 'hex'))).toBe('2001:db8::1');
    expect(formatIpv6(Buffer.alloc(16))).toBe('::');
    expect(formatIpv6(Buffer.from('00000000000000000000ffffc0000207', 'hex'))).toBe('::ffff:c000:207');
    expect(formatIpv6(Buffer.from('20010db8000100000001000000000001', 'hex'))).toBe('2001:db8:1:0:1::1');
    expect(formatIpv6(Buffer.from('20010db8aaaabbbbccccddddeeeeffff', 'hex'))).toBe('2001:db8:aaaa:bbbb:cccc:dddd:eeee:ffff');
  });
});
