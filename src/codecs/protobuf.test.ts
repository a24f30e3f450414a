import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import protobufjs from 'protobufjs';
import { expect, test } from 'vitest';
import { defineModule } from '../core/contract.js';
import { createTestHub } from '../testing/hub.js';
import { protobuf, protobufFromFile } from './protobuf.js';

const proto = 'syntax = "proto3"; package edge; message Raw { double value = 1; string unit = 2; int64 seq = 3; }';
const Raw = protobufjs.parse(proto).root.lookupType('edge.Raw');

test('encodes and decodes a protobufjs type', () => {
  const codec = protobuf<{ value: number; unit: string; seq: string }>(Raw);
  expect(codec.contentType).toBe('application/x-protobuf');
  const bytes = codec.encode({ value: 21.5, unit: 'C', seq: '9007199254740993' });
  expect(codec.decode(bytes)).toEqual({ value: 21.5, unit: 'C', seq: '9007199254740993' });
});

test('a value that does not fit is encode-failed; malformed bytes are decode-failed', () => {
  const codec = protobuf<{ value: number }>(Raw);
  expect(() => codec.encode({ value: 'hot' as never })).toThrow(expect.objectContaining({ code: 'encode-failed' }));
  expect(() => codec.decode(new Uint8Array([0x0a, 0xff, 0xff]))).toThrow(
    expect.objectContaining({ code: 'decode-failed' }),
  );
  expect(() => protobuf({} as never)).toThrow(TypeError);
});

test('loads a .proto file; a missing type is a clear error', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'edgekit-proto-'));
  writeFileSync(join(dir, 'raw.proto'), proto);
  const codec = await protobufFromFile<{ value: number; unit: string }>(join(dir, 'raw.proto'), 'edge.Raw');
  expect(codec.decode(codec.encode({ value: 1, unit: 'F' }))).toMatchObject({ value: 1, unit: 'F' });
  await expect(protobufFromFile(join(dir, 'raw.proto'), 'edge.Nope')).rejects.toMatchObject({
    code: 'invalid-configuration',
  });
  await expect(protobufFromFile(join(dir, 'missing.proto'), 'edge.Raw')).rejects.toMatchObject({
    code: 'invalid-configuration',
  });
});

test('protobuf bodies travel through a module like any other', async () => {
  const M = defineModule({ inputs: { raw: protobuf<{ value: number; unit: string }>(Raw) } });
  await using hub = await createTestHub();
  const client = await hub.connect(M, { moduleId: 'm' });
  const got: unknown[] = [];
  await client.onInput('raw', (msg) => {
    got.push(msg.body);
  });
  await hub.send('m', 'raw', Raw.encode(Raw.fromObject({ value: 3, unit: 'C' })).finish(), {
    contentType: 'application/x-protobuf',
  });
  await expect.poll(() => got).toEqual([{ value: 3, unit: 'C', seq: '0' }]);
});

const nestedProto = `syntax = "proto3"; package edge;
  message Reading { double value = 1; string unit = 2; }
  message Batch {
    string device_id = 1;
    repeated Reading readings = 2;
    map<string, Reading> latest = 3;
    Reading first = 4;
    oneof origin { string sensor = 5; string gateway = 6; }
    int64 seq = 7;
    enum Kind { RAW = 0; FILTERED = 1; }
    Kind kind = 8;
  }`;
const Batch = protobufjs.parse(nestedProto).root.lookupType('edge.Batch');

test('a member the message has no field for is encode-failed, at any depth, with its path', () => {
  const codec = protobuf<Record<string, unknown>>(Batch);
  const refused = (value: Record<string, unknown>, path: string) =>
    expect(() => codec.encode(value)).toThrow(
      expect.objectContaining({ code: 'encode-failed', message: expect.stringContaining(`has no field ${path}`) }),
    );
  refused({ device_id: 'gw-1' }, 'device_id'); // protobufjs names fields in camelCase: deviceId
  refused({ deviceId: 'gw-1', readings: [{ value: 1 }, { value: 2, unti: 'C' }] }, 'readings[1].unti');
  refused({ latest: { t1: { vlaue: 3 } } }, 'latest["t1"].vlaue');
  refused({ first: { value: 1, extra: true } }, 'first.extra');
  expect(() => codec.encode({ kind: 'FILTERD' })).toThrow(
    /kind: "FILTERD" is not a value of edge.Batch.Kind \(RAW, FILTERED\)/,
  );
  // Numbers are proto3's open enums: one the enum does not name still travels (and decodes as that number).
  expect(codec.decode(codec.encode({ kind: 7 }))).toMatchObject({ kind: 7 });
  const value = {
    deviceId: 'gw-1',
    readings: [{ value: 1, unit: 'C' }],
    latest: { t1: { value: 2, unit: 'F' } },
    sensor: 's1',
  };
  expect(codec.decode(codec.encode(value))).toMatchObject(value);
});

test('a decoded message encodes again as it came, oneof names included', async () => {
  const codec = protobuf<Record<string, unknown>>(Batch, { conversion: { oneofs: true } });
  const decoded = codec.decode(
    codec.encode({ deviceId: 'gw', gateway: 'g1', seq: '12345678901234567', kind: 'FILTERED' }),
  );
  expect(decoded).toMatchObject({ origin: 'gateway', gateway: 'g1', seq: '12345678901234567', kind: 'FILTERED' });
  expect(codec.decode(codec.encode(await decoded))).toEqual(decoded);
});

test('conversion options are merged over the defaults, not instead of them', () => {
  const bytes = protobuf<Record<string, unknown>>(Batch).encode({ seq: '42', kind: 'FILTERED' });
  // Only longs change: enums stay names, and fields not sent are still filled with their defaults.
  expect(protobuf<Record<string, unknown>>(Batch, { conversion: { longs: Number } }).decode(bytes)).toEqual({
    deviceId: '',
    readings: [],
    latest: {},
    first: null,
    seq: 42,
    kind: 'FILTERED',
  });
  // An empty message decodes to every field's default, not to {}.
  expect(protobuf<Record<string, unknown>>(Batch, { conversion: {} }).decode(new Uint8Array())).toMatchObject({
    deviceId: '',
    seq: '0',
    kind: 'RAW',
  });
  expect(() => protobuf(Batch, { conversion: 'yes' as never })).toThrow(TypeError);
  expect(() => protobuf(Batch, null as never)).toThrow(TypeError);
});
