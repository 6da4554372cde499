/**
 * The in-memory shape of every MQTT control packet, shared by the decoder, the encoder, the
 * broker and the simulator's model clients.
 *
 * One shape serves both protocol versions. Fields that exist only in MQTT 5.0 (properties, most
 * reason codes) are simply absent or zero when the connection speaks 3.1 or 3.1.1; the encoder
 * writes what the target version can carry. Binary data is `Uint8Array` so the core stays free
 * of Node's `Buffer`. A decoded PUBLISH payload is a view into the bytes it was decoded from, not
 * a copy.
 */

export const PacketType = {
  Connect: 1,
  Connack: 2,
  Publish: 3,
  Puback: 4,
  Pubrec: 5,
  Pubrel: 6,
  Pubcomp: 7,
  Subscribe: 8,
  Suback: 9,
  Unsubscribe: 10,
  Unsuback: 11,
  Pingreq: 12,
  Pingresp: 13,
  Disconnect: 14,
  Auth: 15,
} as const;
export type PacketType = (typeof PacketType)[keyof typeof PacketType];

/** Protocol level byte of CONNECT: 3 is MQTT 3.1 (name "MQIsdp"), 4 is 3.1.1, 5 is 5.0. */
export type ProtocolVersion = 3 | 4 | 5;
export type Qos = 0 | 1 | 2;

/** A user property: a name/value pair that may repeat and whose order is kept. */
export type UserProperty = [name: string, value: string];

/**
 * MQTT 5.0 properties (section 2.2.2.2). Every property is optional; which packet may carry which
 * is enforced by the codec. `subscriptionIdentifiers` may hold several values only in a PUBLISH
 * sent by the server; in SUBSCRIBE it holds at most one.
 */
export interface Properties {
  payloadFormatIndicator?: number; // 0x01 byte
  messageExpiryInterval?: number; // 0x02 four-byte integer, seconds
  contentType?: string; // 0x03
  responseTopic?: string; // 0x08
  correlationData?: Uint8Array; // 0x09
  subscriptionIdentifiers?: number[]; // 0x0B variable byte integer, 1..268435455
  sessionExpiryInterval?: number; // 0x11 four-byte integer, seconds
  assignedClientIdentifier?: string; // 0x12
  serverKeepAlive?: number; // 0x13 two-byte integer, seconds
  authenticationMethod?: string; // 0x15
  authenticationData?: Uint8Array; // 0x16
  requestProblemInformation?: number; // 0x17 byte
  willDelayInterval?: number; // 0x18 four-byte integer, seconds
  requestResponseInformation?: number; // 0x19 byte
  responseInformation?: string; // 0x1A
  serverReference?: string; // 0x1C
  reasonString?: string; // 0x1F
  receiveMaximum?: number; // 0x21 two-byte integer, non-zero
  topicAliasMaximum?: number; // 0x22 two-byte integer
  topicAlias?: number; // 0x23 two-byte integer, non-zero
  maximumQos?: number; // 0x24 byte, 0 or 1
  retainAvailable?: number; // 0x25 byte, 0 or 1
  userProperties?: UserProperty[]; // 0x26, may repeat
  maximumPacketSize?: number; // 0x27 four-byte integer, non-zero
  wildcardSubscriptionAvailable?: number; // 0x28 byte, 0 or 1
  subscriptionIdentifiersAvailable?: number; // 0x29 byte, 0 or 1
  sharedSubscriptionAvailable?: number; // 0x2A byte, 0 or 1
}

export interface Will {
  topic: string;
  payload: Uint8Array;
  qos: Qos;
  retain: boolean;
  /** MQTT 5.0 will properties (will delay interval, message expiry, content type, ...). */
  properties?: Properties;
}

export interface ConnectPacket {
  type: typeof PacketType.Connect;
  /** "MQTT" for 3.1.1 and 5.0, "MQIsdp" for 3.1. */
  protocolName: string;
  protocolVersion: ProtocolVersion;
  /** Clean Session (3.1.1) or Clean Start (5.0). */
  cleanStart: boolean;
  keepAliveSeconds: number;
  clientId: string;
  will?: Will;
  username?: string;
  password?: Uint8Array;
  properties?: Properties;
}

export interface ConnackPacket {
  type: typeof PacketType.Connack;
  sessionPresent: boolean;
  /** MQTT 5.0 reason code, or the 3.1.1 return code (0..5) on a 3.1/3.1.1 connection. */
  reasonCode: number;
  properties?: Properties;
}

export interface PublishPacket {
  type: typeof PacketType.Publish;
  dup: boolean;
  qos: Qos;
  retain: boolean;
  /** May be empty in MQTT 5.0 when a topic alias stands in for it. */
  topic: string;
  /** Present (1..65535) exactly when qos > 0. */
  packetId?: number;
  payload: Uint8Array;
  properties?: Properties;
}

/** PUBACK, PUBREC, PUBREL and PUBCOMP share one shape. */
export interface AckPacket<T extends PacketType> {
  type: T;
  packetId: number;
  /** 0 (success) unless MQTT 5.0 says otherwise; always 0 on 3.1.1. */
  reasonCode: number;
  properties?: Properties;
}
export type PubackPacket = AckPacket<typeof PacketType.Puback>;
export type PubrecPacket = AckPacket<typeof PacketType.Pubrec>;
export type PubrelPacket = AckPacket<typeof PacketType.Pubrel>;
export type PubcompPacket = AckPacket<typeof PacketType.Pubcomp>;

export interface Subscription {
  topicFilter: string;
  /** Maximum QoS requested. */
  qos: Qos;
  /** MQTT 5.0 subscription options; false/0 on 3.1.1. */
  noLocal: boolean;
  retainAsPublished: boolean;
  /** 0: send retained on subscribe; 1: only if the subscription is new; 2: never. */
  retainHandling: 0 | 1 | 2;
}

export interface SubscribePacket {
  type: typeof PacketType.Subscribe;
  packetId: number;
  subscriptions: Subscription[];
  properties?: Properties;
}

export interface SubackPacket {
  type: typeof PacketType.Suback;
  packetId: number;
  /** One per requested subscription: granted QoS (0..2) or a failure code (>= 0x80). */
  reasonCodes: number[];
  properties?: Properties;
}

export interface UnsubscribePacket {
  type: typeof PacketType.Unsubscribe;
  packetId: number;
  topicFilters: string[];
  properties?: Properties;
}

export interface UnsubackPacket {
  type: typeof PacketType.Unsuback;
  packetId: number;
  /** MQTT 5.0: one per topic filter. MQTT 3.1.1 UNSUBACK has no payload: empty. */
  reasonCodes: number[];
  properties?: Properties;
}

export interface PingreqPacket {
  type: typeof PacketType.Pingreq;
}

export interface PingrespPacket {
  type: typeof PacketType.Pingresp;
}

export interface DisconnectPacket {
  type: typeof PacketType.Disconnect;
  /** MQTT 5.0 reason code; 0 on 3.1.1. */
  reasonCode: number;
  properties?: Properties;
}

export interface AuthPacket {
  type: typeof PacketType.Auth;
  reasonCode: number;
  properties?: Properties;
}

export type Packet =
  | ConnectPacket
  | ConnackPacket
  | PublishPacket
  | PubackPacket
  | PubrecPacket
  | PubrelPacket
  | PubcompPacket
  | SubscribePacket
  | SubackPacket
  | UnsubscribePacket
  | UnsubackPacket
  | PingreqPacket
  | PingrespPacket
  | DisconnectPacket
  | AuthPacket;
