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
