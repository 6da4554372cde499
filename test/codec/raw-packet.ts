/**
 * A raw MQTT packet builder for hostile-input tests. It writes exactly the fields it is given and
 * checks nothing, so a test can send what the codec's encoder refuses to produce: a will topic
 * with a wildcard, a duplicated or misplaced property, QoS 3, a packet identifier of 0, strings
 * that are not UTF-8, a remaining length that does not match the body.
 *
 * Strings are passed as bytes (the caller decides whether they are well-formed UTF-8); every
 * length prefix is computed from what is written, except the remaining length, which a caller
 * may override to make it lie.
 */

/** Appends MQTT's primitive types to a growing byte array. */
export class RawWriter {
  private readonly bytes: number[] = [];

  byte(value: number): this {
    this.bytes.push(value & 0xff);
    return this;
  }

  uint16(value: number): this {
    return this.byte(value >> 8).byte(value);
  }

  uint32(value: number): this {
    return this.uint16(Math.floor(value / 0x10000)).uint16(value % 0x10000);
  }

  /** A Variable Byte Integer, minimally encoded (values past four bytes' worth are the caller's business). */
  variable(value: number): this {
    let rest = value;
    do {
      const digit = rest % 128;
      rest = Math.floor(rest / 128);
      this.byte(rest > 0 ? digit | 0x80 : digit);
    } while (rest > 0);
    return this;
  }

  raw(bytes: Uint8Array | readonly number[]): this {
    for (const byte of bytes) this.bytes.push(byte);
    return this;
  }

  /** A two-byte length, then the bytes: how MQTT writes strings and binary data alike. */
  prefixed(bytes: Uint8Array): this {
    return this.uint16(bytes.length).raw(bytes);
  }

  get length(): number {
    return this.bytes.length;
  }

  toBytes(): Uint8Array {
    return Uint8Array.from(this.bytes);
  }
}

export const utf8 = (text: string): Uint8Array => new TextEncoder().encode(text);

/** How a property's value is written (section 2.2.2.2 of MQTT 5.0). */
export type PropertyWireType = 'byte' | 'uint16' | 'uint32' | 'variable' | 'string' | 'binary' | 'pair';

/** One property as it goes on the wire: its identifier and a value of its wire type. */
export interface RawProperty {
  id: number;
  wireType: PropertyWireType;
  /** A number for the integer types, bytes for string and binary, two byte strings for a pair. */
  value: number | Uint8Array | readonly [Uint8Array, Uint8Array];
}

function writePropertyValue(writer: RawWriter, property: RawProperty): void {
  const value = property.value;
  switch (property.wireType) {
    case 'byte':
      writer.byte(value as number);
      return;
    case 'uint16':
      writer.uint16(value as number);
      return;
    case 'uint32':
      writer.uint32(value as number);
      return;
    case 'variable':
      writer.variable(value as number);
      return;
    case 'string':
    case 'binary':
      writer.prefixed(value as Uint8Array);
      return;
    case 'pair': {
      const [name, text] = value as readonly [Uint8Array, Uint8Array];
      writer.prefixed(name).prefixed(text);
      return;
    }
  }
}

/** The property length followed by the properties, in the order given (duplicates included). */
export function propertyBlock(properties: readonly RawProperty[]): Uint8Array {
  const list = new RawWriter();
  for (const property of properties) {
    list.variable(property.id);
    writePropertyValue(list, property);
  }
  return new RawWriter().variable(list.length).raw(list.toBytes()).toBytes();
}

/** A whole packet: first byte, remaining length (the body's unless overridden), body. */
export function rawPacket(firstByte: number, body: Uint8Array, remainingLength = body.length): Uint8Array {
  return new RawWriter().byte(firstByte).variable(remainingLength).raw(body).toBytes();
}

export interface RawConnectFields {
  /** Low four bits of the first byte; 0 in a valid CONNECT [MQTT-2.1.3-1]. */
  headerFlags: number;
  protocolName: Uint8Array;
  protocolLevel: number;
  /** The connect flags byte exactly as sent (will, QoS, retain, user name, password, reserved). */
  connectFlags: number;
  keepAliveSeconds: number;
  /** Null: no property block (3.1 and 3.1.1). */
  properties: readonly RawProperty[] | null;
  clientId: Uint8Array;
  /** Written when not null, whatever the will flag says. */
  will: { properties: readonly RawProperty[] | null; topic: Uint8Array; payload: Uint8Array } | null;
  username: Uint8Array | null;
  password: Uint8Array | null;
}

export function rawConnect(fields: RawConnectFields): Uint8Array {
  const body = new RawWriter().prefixed(fields.protocolName).byte(fields.protocolLevel).byte(fields.connectFlags).uint16(fields.keepAliveSeconds);
  if (fields.properties !== null) body.raw(propertyBlock(fields.properties));
  body.prefixed(fields.clientId);
  if (fields.will !== null) {
    if (fields.will.properties !== null) body.raw(propertyBlock(fields.will.properties));
    body.prefixed(fields.will.topic).prefixed(fields.will.payload);
  }
  if (fields.username !== null) body.prefixed(fields.username);
  if (fields.password !== null) body.prefixed(fields.password);
  return rawPacket(0x10 | (fields.headerFlags & 0x0f), body.toBytes());
}

export interface RawPublishFields {
  /** 0..3: 3 is malformed but writable. */
  qos: number;
  dup: boolean;
  retain: boolean;
  topic: Uint8Array;
  /** Written when not null, whatever the QoS says. */
  packetId: number | null;
  /** Null: no property block (3.1 and 3.1.1). */
  properties: readonly RawProperty[] | null;
  payload: Uint8Array;
}

export function rawPublish(fields: RawPublishFields): Uint8Array {
  const firstByte = 0x30 | (fields.dup ? 0x08 : 0) | ((fields.qos & 3) << 1) | (fields.retain ? 1 : 0);
  const body = new RawWriter().prefixed(fields.topic);
  if (fields.packetId !== null) body.uint16(fields.packetId);
  if (fields.properties !== null) body.raw(propertyBlock(fields.properties));
  body.raw(fields.payload);
  return rawPacket(firstByte, body.toBytes());
}

/** PUBREL: `flags` is 2 in a valid one [MQTT-3.6.1-1]. */
export function rawPubrel(packetId: number, flags = 2): Uint8Array {
  return rawPacket(0x60 | (flags & 0x0f), new RawWriter().uint16(packetId).toBytes());
}

export function rawPingreq(): Uint8Array {
  return rawPacket(0xc0, new Uint8Array(0));
}

/** DISCONNECT: 3.1.1 has no body; 5.0 a reason code and, when given, properties. */
export function rawDisconnect(version5: boolean, reasonCode = 0, properties: readonly RawProperty[] = []): Uint8Array {
  if (!version5) return rawPacket(0xe0, new Uint8Array(0));
  const body = new RawWriter().byte(reasonCode);
  if (properties.length > 0) body.raw(propertyBlock(properties));
  return rawPacket(0xe0, body.toBytes());
}
