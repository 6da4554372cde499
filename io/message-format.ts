/**
 * How `keel sub` prints a received message: a mosquitto-style `-F` template or a JSON line.
 *
 * JSON output carries the payload as UTF-8 text when it is valid UTF-8, otherwise as base64 with
 * `"payloadEncoding": "base64"`, so a script never receives a silently mangled payload. Binary
 * properties (correlation data) are base64 for the same reason.
 */
import type { IPublishPacket } from 'mqtt';

const utf8Strict = new TextDecoder('utf-8', { fatal: true });

export function formatJson(packet: IPublishPacket): string {
  const payload = Buffer.from(packet.payload);
  const record: Record<string, unknown> = { topic: packet.topic };
  const text = decodeUtf8(payload);
  if (text === null) {
    record.payload = payload.toString('base64');
    record.payloadEncoding = 'base64';
  } else {
    record.payload = text;
  }
  record.qos = packet.qos;
  record.retain = packet.retain;
  if (packet.properties !== undefined && Object.keys(packet.properties).length > 0) {
    record.properties = jsonProperties(packet.properties as Record<string, unknown>);
  }
  return JSON.stringify(record);
}

export function formatTemplate(template: string, packet: IPublishPacket): string {
  let output = '';
  for (let index = 0; index < template.length; index++) {
    const character = template[index]!;
    const next = template[index + 1];
    if (character === '%' && next !== undefined) {
      output += field(next, packet);
      index++;
    } else if (character === '\\' && next !== undefined) {
      output += escapedCharacter(next);
      index++;
    } else {
      output += character;
    }
  }
  return output;
}

function field(code: string, packet: IPublishPacket): string {
  const payload = Buffer.from(packet.payload);
  switch (code) {
    case 't':
      return packet.topic;
    case 'p':
      return payload.toString('utf8');
    case 'q':
      return String(packet.qos);
    case 'r':
      return packet.retain ? '1' : '0';
    case 'm':
      return String(packet.messageId ?? 0);
    case 'l':
      return String(payload.length);
    case 'x':
      return payload.toString('hex');
    case 'j':
      return formatJson(packet);
    case '%':
      return '%';
    default:
      // Unknown codes print as written, so a typo is visible rather than silently empty.
      return `%${code}`;
  }
}

function escapedCharacter(code: string): string {
  switch (code) {
    case 'n':
      return '\n';
    case 't':
      return '\t';
    case '\\':
      return '\\';
    default:
      return `\\${code}`;
  }
}

function decodeUtf8(bytes: Uint8Array): string | null {
  try {
    return utf8Strict.decode(bytes);
  } catch {
    return null;
  }
}

function jsonProperties(properties: Record<string, unknown>): Record<string, unknown> {
  const result: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(properties)) {
    result[key] = value instanceof Uint8Array ? Buffer.from(value).toString('base64') : value;
  }
  return result;
}
