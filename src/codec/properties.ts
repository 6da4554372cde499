/**
 * MQTT 5.0 properties (section 2.2.2): one table says, for every property identifier, its name in
 * `Properties`, its wire type, which packets may carry it and which value rule applies. The
 * decoder and the encoder both read the table, so the two directions cannot disagree.
 *
 * Decoding enforces: unknown identifiers are Malformed (0x81); a known property in a packet that
 * may not carry it, a second copy of a property that may appear once (every one but User Property,
 * and Subscription Identifier outside PUBLISH), and values the spec forbids (0 for Receive Maximum,
 * Maximum Packet Size, Topic Alias, Subscription Identifier; anything but 0/1 for the flags) are
 * Protocol Errors (0x82). A property list that claims more bytes than the packet holds is
 * Malformed. Encoding writes properties in identifier order, so equal inputs give equal bytes.
 */
import { assert } from '../assert.js';
import type { ByteReader } from './byte-reader.js';
import { binaryLength, stringLength, variableIntegerLength, writeBinary, writeString, writeUint16, writeUint32, writeVariableInteger } from './byte-writer.js';
import { malformed, protocolError } from './errors.js';
import { PacketType, type Properties } from './packets.js';

/** Property context for the will properties of a CONNECT (packet type 0 is never on the wire). */
export const willContext = 0;

type WireType = 'byte' | 'uint16' | 'uint32' | 'variable' | 'string' | 'binary' | 'pair';
type ValueRule = 'any' | 'boolean' | 'nonzero';

interface PropertyDescriptor {
  id: number;
  name: keyof Properties;
  wireType: WireType;
  /** Bit `1 << packetType` for each packet that may carry it; bit 0 is the will. */
  contexts: number;
  rule: ValueRule;
}

const bit = (...types: number[]): number => types.reduce((mask, type) => mask | (1 << type), 0);
const T = PacketType;
const publishAndWill = bit(T.Publish, willContext);
const reasonStringContexts = bit(T.Connack, T.Puback, T.Pubrec, T.Pubrel, T.Pubcomp, T.Suback, T.Unsuback, T.Disconnect, T.Auth);
const everyContext = reasonStringContexts | bit(T.Connect, T.Publish, willContext, T.Subscribe, T.Unsubscribe);

/** In identifier order; the encoder writes in this order. */
export const propertyDescriptors: readonly PropertyDescriptor[] = [
  { id: 0x01, name: 'payloadFormatIndicator', wireType: 'byte', contexts: publishAndWill, rule: 'boolean' },
  { id: 0x02, name: 'messageExpiryInterval', wireType: 'uint32', contexts: publishAndWill, rule: 'any' },
  { id: 0x03, name: 'contentType', wireType: 'string', contexts: publishAndWill, rule: 'any' },
  { id: 0x08, name: 'responseTopic', wireType: 'string', contexts: publishAndWill, rule: 'any' },
  { id: 0x09, name: 'correlationData', wireType: 'binary', contexts: publishAndWill, rule: 'any' },
  { id: 0x0b, name: 'subscriptionIdentifiers', wireType: 'variable', contexts: bit(T.Publish, T.Subscribe), rule: 'nonzero' },
  { id: 0x11, name: 'sessionExpiryInterval', wireType: 'uint32', contexts: bit(T.Connect, T.Connack, T.Disconnect), rule: 'any' },
  { id: 0x12, name: 'assignedClientIdentifier', wireType: 'string', contexts: bit(T.Connack), rule: 'any' },
  { id: 0x13, name: 'serverKeepAlive', wireType: 'uint16', contexts: bit(T.Connack), rule: 'any' },
  { id: 0x15, name: 'authenticationMethod', wireType: 'string', contexts: bit(T.Connect, T.Connack, T.Auth), rule: 'any' },
  { id: 0x16, name: 'authenticationData', wireType: 'binary', contexts: bit(T.Connect, T.Connack, T.Auth), rule: 'any' },
  { id: 0x17, name: 'requestProblemInformation', wireType: 'byte', contexts: bit(T.Connect), rule: 'boolean' },
  { id: 0x18, name: 'willDelayInterval', wireType: 'uint32', contexts: bit(willContext), rule: 'any' },
  { id: 0x19, name: 'requestResponseInformation', wireType: 'byte', contexts: bit(T.Connect), rule: 'boolean' },
  { id: 0x1a, name: 'responseInformation', wireType: 'string', contexts: bit(T.Connack), rule: 'any' },
  { id: 0x1c, name: 'serverReference', wireType: 'string', contexts: bit(T.Connack, T.Disconnect), rule: 'any' },
  { id: 0x1f, name: 'reasonString', wireType: 'string', contexts: reasonStringContexts, rule: 'any' },
  { id: 0x21, name: 'receiveMaximum', wireType: 'uint16', contexts: bit(T.Connect, T.Connack), rule: 'nonzero' },
  { id: 0x22, name: 'topicAliasMaximum', wireType: 'uint16', contexts: bit(T.Connect, T.Connack), rule: 'any' },
  { id: 0x23, name: 'topicAlias', wireType: 'uint16', contexts: bit(T.Publish), rule: 'nonzero' },
  { id: 0x24, name: 'maximumQos', wireType: 'byte', contexts: bit(T.Connack), rule: 'boolean' },
  { id: 0x25, name: 'retainAvailable', wireType: 'byte', contexts: bit(T.Connack), rule: 'boolean' },
  { id: 0x26, name: 'userProperties', wireType: 'pair', contexts: everyContext, rule: 'any' },
  { id: 0x27, name: 'maximumPacketSize', wireType: 'uint32', contexts: bit(T.Connect, T.Connack), rule: 'nonzero' },
  { id: 0x28, name: 'wildcardSubscriptionAvailable', wireType: 'byte', contexts: bit(T.Connack), rule: 'boolean' },
  { id: 0x29, name: 'subscriptionIdentifiersAvailable', wireType: 'byte', contexts: bit(T.Connack), rule: 'boolean' },
  { id: 0x2a, name: 'sharedSubscriptionAvailable', wireType: 'byte', contexts: bit(T.Connack), rule: 'boolean' },
];

const descriptorById: (PropertyDescriptor | undefined)[] = [];
for (const descriptor of propertyDescriptors) descriptorById[descriptor.id] = descriptor;

/** True when a property of this name may appear in the context (packet type, or 0 for will). */
export function propertyAllowed(name: keyof Properties, context: number): boolean {
  const descriptor = propertyDescriptors.find((candidate) => candidate.name === name);
  assert(descriptor !== undefined, `unknown property name ${name}`);
  return (descriptor.contexts & (1 << context)) !== 0;
}

type PropertyRecord = Record<string, unknown>;

/**
 * Reads a property length and the list after it. Returns undefined for an empty list, so decoded
 * packets carry `properties` only when there is at least one property (the canonical form).
 */
export function readProperties(reader: ByteReader, context: number): Properties | undefined {
  const length = reader.readVariableInteger();
  if (length === 0) return undefined;
  if (length > reader.remaining) throw malformed('properties-length', 'property length runs past the packet');
  const outerEnd = reader.end;
  const end = reader.offset + length;
  reader.end = end;
  const properties: PropertyRecord = {};
  while (reader.offset < end) readProperty(reader, context, properties);
  assert(reader.offset === end, 'property reads stay within the property length');
  reader.end = outerEnd;
  return properties as Properties;
}

function readProperty(reader: ByteReader, context: number, properties: PropertyRecord): void {
  const id = reader.readVariableInteger();
  const descriptor = descriptorById[id];
  if (descriptor === undefined) throw malformed('property-unknown', `unknown property identifier 0x${id.toString(16)}`);
  if ((descriptor.contexts & (1 << context)) === 0) {
    throw protocolError('property-not-allowed', `property ${descriptor.name} is not allowed in packet type ${context}`);
  }
  const value = readPropertyValue(reader, descriptor.wireType);
  checkPropertyValue(descriptor, value);
  const name = descriptor.name;
  if (descriptor.wireType === 'pair') {
    const pairs = properties[name] as unknown[] | undefined;
    if (pairs === undefined) properties[name] = [value];
    else pairs.push(value);
    return;
  }
  if (name === 'subscriptionIdentifiers') {
    const identifiers = properties[name] as number[] | undefined;
    if (identifiers === undefined) properties[name] = [value];
    // Several identifiers are allowed only in a PUBLISH (section 3.3.2.3.8); SUBSCRIBE carries one.
    else if (context === PacketType.Publish) identifiers.push(value as number);
    else throw protocolError('property-duplicate', 'subscription identifier appears twice');
    return;
  }
  // Section 2.2.2.2: every property except User Property may appear at most once.
  if (properties[name] !== undefined) throw protocolError('property-duplicate', `property ${name} appears twice`);
  properties[name] = value;
}

function readPropertyValue(reader: ByteReader, wireType: WireType): unknown {
  switch (wireType) {
    case 'byte':
      return reader.readByte();
    case 'uint16':
      return reader.readUint16();
    case 'uint32':
      return reader.readUint32();
    case 'variable':
      return reader.readVariableInteger();
    case 'string':
      return reader.readString();
    case 'binary':
      return reader.readBinaryCopy();
    case 'pair': {
      const name = reader.readString();
      return [name, reader.readString()];
    }
  }
}

function checkPropertyValue(descriptor: PropertyDescriptor, value: unknown): void {
  // Receive Maximum 0 (sections 3.1.2.11.3, 3.2.2.3.3), Maximum Packet Size 0 (3.1.2.11.4,
  // 3.2.2.3.6), Topic Alias 0 (3.3.2.3.4) and Subscription Identifier 0 (3.3.2.3.8, 3.8.2.1.2)
  // are each a Protocol Error.
  if (descriptor.rule === 'nonzero' && value === 0) {
    throw protocolError('property-zero', `property ${descriptor.name} must not be 0`);
  }
  // The one-byte flags (payload format, request problem/response information, maximum QoS and
  // the availability flags) take only 0 or 1; anything else is a Protocol Error.
  if (descriptor.rule === 'boolean' && value !== 0 && value !== 1) {
    throw protocolError('property-value', `property ${descriptor.name} must be 0 or 1`);
  }
}

/** Bytes of the property list contents (without its length prefix). */
export function propertiesContentLength(properties: Properties | undefined, context: number): number {
  if (properties === undefined) return 0;
  const record = properties as PropertyRecord;
  let length = 0;
  // Indexed (here and in writeProperties): a for-of makes an iterator, and in code not yet
  // optimized a result object per descriptor, for every packet with properties.
  for (let index = 0; index < propertyDescriptors.length; index++) {
    const descriptor = propertyDescriptors[index]!;
    const value = record[descriptor.name];
    if (value === undefined) continue;
    assert((descriptor.contexts & (1 << context)) !== 0, `property ${descriptor.name} not allowed in context ${context}`);
    length += propertyLength(descriptor, value);
  }
  return length;
}

function propertyLength(descriptor: PropertyDescriptor, value: unknown): number {
  switch (descriptor.wireType) {
    case 'byte':
      return 2;
    case 'uint16':
      return 3;
    case 'uint32':
      return 5;
    case 'variable': {
      let length = 0;
      for (const identifier of value as number[]) length += 1 + variableIntegerLength(identifier);
      return length;
    }
    case 'string':
      return 1 + stringLength(value as string);
    case 'binary':
      return 1 + binaryLength(value as Uint8Array);
    case 'pair': {
      let length = 0;
      for (const [name, text] of value as [string, string][]) length += 1 + stringLength(name) + stringLength(text);
      return length;
    }
  }
}

/** Writes the property list contents (the caller has written the length prefix). */
export function writeProperties(bytes: Uint8Array, offset: number, properties: Properties | undefined): number {
  if (properties === undefined) return offset;
  const record = properties as PropertyRecord;
  for (let index = 0; index < propertyDescriptors.length; index++) {
    const descriptor = propertyDescriptors[index]!;
    const value = record[descriptor.name];
    if (value === undefined) continue;
    offset = writeProperty(bytes, offset, descriptor, value);
  }
  return offset;
}

function writeProperty(bytes: Uint8Array, offset: number, descriptor: PropertyDescriptor, value: unknown): number {
  const id = descriptor.id;
  switch (descriptor.wireType) {
    case 'byte':
      bytes[offset] = id;
      bytes[offset + 1] = value as number;
      return offset + 2;
    case 'uint16':
      bytes[offset] = id;
      return writeUint16(bytes, offset + 1, value as number);
    case 'uint32':
      bytes[offset] = id;
      return writeUint32(bytes, offset + 1, value as number);
    case 'variable':
      for (const identifier of value as number[]) {
        bytes[offset] = id;
        offset = writeVariableInteger(bytes, offset + 1, identifier);
      }
      return offset;
    case 'string':
      bytes[offset] = id;
      return writeString(bytes, offset + 1, value as string);
    case 'binary':
      bytes[offset] = id;
      return writeBinary(bytes, offset + 1, value as Uint8Array);
    case 'pair':
      for (const [name, text] of value as [string, string][]) {
        bytes[offset] = id;
        offset = writeString(bytes, offset + 1, name);
        offset = writeString(bytes, offset, text);
      }
      return offset;
  }
}
