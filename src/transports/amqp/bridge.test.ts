import { describe, expect, it } from 'vitest';
import { rabbitmqBridge } from './bridge.js';

const base = { deviceId: 'gw-1', modules: ['sensor', 'filter'], cloudUrl: 'amqps://cloud.example.com' } as const;

describe('rabbitmqBridge', () => {
  it('renders one shovel per flow, each acknowledging only what the other side confirmed', () => {
    const { device, flows } = rabbitmqBridge(base);
    expect(flows.map((f) => [f.shovel, f.direction, f.from, f.to])).toEqual([
      ['edgekit-bridge-gw-1-upstream', 'up', 'queue edgekit.msg.upstream.gw-1', 'edgekit.bridge.gw-1.up'],
      [
        'edgekit-bridge-gw-1-deadletter-filter',
        'up',
        'queue edgekit.msg.deadletter.gw-1.filter',
        'edgekit.bridge.gw-1.up',
      ],
      [
        'edgekit-bridge-gw-1-deadletter-sensor',
        'up',
        'queue edgekit.msg.deadletter.gw-1.sensor',
        'edgekit.bridge.gw-1.up',
      ],
      ['edgekit-bridge-gw-1-reported', 'up', 'queue edgekit.bridge.gw-1.up', 'edgekit.bridge.gw-1.up'],
      ['edgekit-bridge-gw-1-replies', 'up', 'exchange edgekit.bridge.gw-1.replies', 'edgekit.replies'],
      ['edgekit-bridge-gw-1-desired', 'down', 'queue edgekit.bridge.gw-1.down', 'edgekit.bridge.gw-1.down'],
      ['edgekit-bridge-gw-1-calls', 'down', 'exchange edgekit.bridge.gw-1.calls', 'edgekit.bridge.gw-1.down'],
    ]);
    expect(device.parameters.map((p) => p.name)).toEqual(flows.map((f) => f.shovel));
    const cloudUri =
      'amqps://cloud.example.com/%2F?heartbeat=30&connection_timeout=30000' +
      '&cacertfile=%2Fetc%2Fssl%2Fcerts%2Fca-certificates.crt&verify=verify_peer&server_name_indication=cloud.example.com';
    expect(device.parameters[0]).toEqual({
      vhost: '/',
      component: 'shovel',
      name: 'edgekit-bridge-gw-1-upstream',
      value: {
        'src-protocol': 'amqp091',
        'src-uri': 'amqp://',
        'src-queue': 'edgekit.msg.upstream.gw-1',
        'src-queue-args': {},
        'src-prefetch-count': 500,
        'src-delete-after': 'never',
        'dest-protocol': 'amqp091',
        'dest-uri': cloudUri,
        'dest-exchange': 'edgekit.bridge.gw-1.up',
        'ack-mode': 'on-confirm',
        'reconnect-delay': 5,
      },
    });
    const calls = device.parameters.find((p) => p.name.endsWith('-calls'))?.value;
    expect(calls).toMatchObject({
      'src-uri': cloudUri,
      'src-exchange': 'edgekit.bridge.gw-1.calls',
      'dest-uri': 'amqp://',
      'dest-exchange': 'edgekit.bridge.gw-1.down',
    });
    expect(calls).not.toHaveProperty('src-queue');
  });

  it("declares every queue with edgekit's own arguments, so neither side refuses the other's declaration", () => {
    const { device, cloud } = rabbitmqBridge({ ...base, priorities: true });
    for (const side of [device, cloud]) {
      const args = new Map(side.queues.map((q) => [q.name, q.arguments]));
      expect(args.get('edgekit.msg.upstream.gw-1')).toEqual({ 'x-max-priority': 9 });
      expect(args.get('edgekit.msg.deadletter.gw-1.filter')).toEqual({ 'x-max-priority': 9 });
      expect(args.get('edgekit.retained.twin.gw-1.filter.desired')).toEqual({
        'x-max-length': 1,
        'x-overflow': 'drop-head',
      });
      expect(args.get('edgekit.retained.presence.gw-1.sensor')).toEqual({
        'x-max-length': 1,
        'x-overflow': 'drop-head',
      });
      expect(side.queues.every((q) => q.durable && !q.auto_delete && q.vhost === '/')).toBe(true);
    }
    const upstream = device.parameters.find((p) => p.name.endsWith('-upstream'))?.value;
    expect(upstream?.['src-queue-args']).toEqual({ 'x-max-priority': 9 });
  });

  it("reads retained values with a queue of its own, never the device's last-value queues or views", () => {
    const { device, cloud } = rabbitmqBridge(base);
    const sources = device.parameters.map((p) => p.value['src-queue'] ?? p.value['src-exchange']);
    expect(sources.some((s) => s?.includes('.retained.') || s?.includes('.view.'))).toBe(false);
    const into = (defs: typeof device, queue: string) =>
      defs.bindings.filter((b) => b.destination === queue).map((b) => b.source);
    expect(into(device, 'edgekit.bridge.gw-1.up').sort()).toEqual([
      'edgekit.updates.presence.gw-1.filter',
      'edgekit.updates.presence.gw-1.sensor',
      'edgekit.updates.twin.gw-1.filter.reported',
      'edgekit.updates.twin.gw-1.sensor.reported',
    ]);
    expect(into(cloud, 'edgekit.bridge.gw-1.down').sort()).toEqual([
      'edgekit.updates.deployment.gw-1',
      'edgekit.updates.routes.gw-1',
      'edgekit.updates.twin.gw-1.filter.desired',
      'edgekit.updates.twin.gw-1.sensor.desired',
    ]);
    // Coming down, a value is published with its key's queue name into the key's updates exchange: the device's
    // last-value queue, views and watches get it as from a local writer.
    expect(device.bindings).toContainEqual({
      source: 'edgekit.bridge.gw-1.down',
      destination: 'edgekit.updates.twin.gw-1.filter.desired',
      destination_type: 'exchange',
      routing_key: 'edgekit.retained.twin.gw-1.filter.desired',
      vhost: '/',
      arguments: {},
    });
    expect(device.bindings).toContainEqual(
      expect.objectContaining({
        source: 'edgekit.bridge.gw-1.down',
        destination: 'edgekit.calls.methods.gw-1.filter',
        routing_key: 'edgekit.rpc.methods.gw-1.filter',
      }),
    );
  });

  it("routes on the cloud only to this device's queues and keys, copies messages to observers, and carries only operators' replies", () => {
    const { device, cloud } = rabbitmqBridge(base);
    const fromUp = cloud.bindings.filter((b) => b.source === 'edgekit.bridge.gw-1.up');
    expect(fromUp.every((b) => b.routing_key.includes('.gw-1'))).toBe(true);
    expect(fromUp).toContainEqual(
      expect.objectContaining({ destination: 'edgekit.msg.upstream.gw-1', routing_key: 'edgekit.msg.upstream.gw-1' }),
    );
    expect(fromUp).toContainEqual(
      expect.objectContaining({ destination: 'edgekit.observe', routing_key: 'edgekit.msg.upstream.gw-1' }),
    );
    expect(cloud.bindings.filter((b) => b.destination === 'edgekit.bridge.gw-1.calls').map((b) => b.source)).toEqual([
      'edgekit.calls.methods.gw-1.filter',
      'edgekit.calls.methods.gw-1.sensor',
    ]);
    expect(
      device.bindings.filter((b) => b.destination === 'edgekit.bridge.gw-1.replies').map((b) => b.routing_key),
    ).toEqual(['$operator.#', 'anonymous.#']);
    expect(cloud.parameters).toEqual([]);
  });

  it("gives the bridge's cloud user only what its shovels use", () => {
    const { cloudPermissions: p } = rabbitmqBridge(base);
    const matches = (regex: string, name: string) => new RegExp(regex).test(name);
    expect(matches(p.configure, 'edgekit.bridge.gw-1.down')).toBe(true);
    expect(matches(p.configure, 'amq.gen-abc')).toBe(true);
    expect(matches(p.configure, 'edgekit.bridge.gw-2.down')).toBe(false);
    expect(matches(p.write, 'edgekit.bridge.gw-1.up')).toBe(true);
    expect(matches(p.write, 'edgekit.replies')).toBe(true);
    expect(matches(p.write, 'edgekit.msg.upstream.gw-1')).toBe(false);
    expect(matches(p.write, 'edgekit.from.gw-1.filter')).toBe(false);
    expect(matches(p.read, 'edgekit.bridge.gw-1.calls')).toBe(true);
    expect(matches(p.read, 'edgekit.retained.twin.gw-1.filter.desired')).toBe(false);
    expect(p.topic.exchange).toBe('edgekit.replies');
    expect(matches(p.topic.write, '$operator.operator.0b6e5b3c-2d1d-4f4e-9a47-1c2b3d4e5f60')).toBe(true);
    expect(matches(p.topic.write, 'anonymous.0b6e5b3c')).toBe(true);
    expect(matches(p.topic.write, 'gw-2.filter.0b6e5b3c')).toBe(false);
  });

  it('writes credentials, TLS files, vhosts, the prefix and timing as given', () => {
    const { device, cloud } = rabbitmqBridge({
      ...base,
      cloudUrl: new URL('amqps://rabbit.example.com:5999/edge%2Fprod'),
      username: 'bridge gw/1',
      password: 'p@ss:w/rd',
      tls: { caFile: '/etc/ca.pem', certFile: '/etc/gw.pem', keyFile: '/etc/gw.key' },
      prefix: 'acme',
      vhost: 'devices',
      heartbeatInSeconds: 10,
      reconnectDelayInSeconds: 2,
      prefetch: 50,
    });
    const upstream = device.parameters[0];
    expect(upstream?.vhost).toBe('devices');
    expect(upstream?.value['src-uri']).toBe('amqp:///devices');
    expect(upstream?.value['src-queue']).toBe('acme.msg.upstream.gw-1');
    expect(upstream?.value['dest-uri']).toBe(
      'amqps://bridge%20gw%2F1:p%40ss%3Aw%2Frd@rabbit.example.com:5999/edge%2Fprod?heartbeat=10&connection_timeout=30000' +
        '&cacertfile=%2Fetc%2Fca.pem&certfile=%2Fetc%2Fgw.pem&keyfile=%2Fetc%2Fgw.key&verify=verify_peer' +
        '&server_name_indication=rabbit.example.com',
    );
    expect(upstream?.value).toMatchObject({ 'reconnect-delay': 2, 'src-prefetch-count': 50 });
    expect(device.queues.every((q) => q.vhost === 'devices')).toBe(true);
    expect(cloud.queues.every((q) => q.vhost === 'edge/prod')).toBe(true);
    expect(cloud.exchanges.map((e) => e.name)).toContain('acme.bridge.gw-1.up');
  });

  it('needs no TLS settings and no credentials on a plain amqp:// link', () => {
    const { device } = rabbitmqBridge({ ...base, cloudUrl: 'amqp://127.0.0.1:5673' });
    expect(device.parameters[0]?.value['dest-uri']).toBe(
      'amqp://127.0.0.1:5673/%2F?heartbeat=30&connection_timeout=30000',
    );
  });

  it.each([
    [{ ...base, deviceId: undefined }, TypeError, /device id/],
    [{ ...base, deviceId: 'gw.1' }, RangeError, /device id/],
    [{ ...base, modules: undefined }, TypeError, /modules must be an array/],
    [{ ...base, modules: [] }, RangeError, /at least one module/],
    [{ ...base, modules: ['a b'] }, RangeError, /module id/],
    [{ ...base, cloudUrl: undefined }, TypeError, /cloudUrl must be a string or URL/],
    [{ ...base, cloudUrl: 'nope' }, TypeError, /is not a URL/],
    [{ ...base, cloudUrl: 'mqtts://cloud' }, RangeError, /speaks AMQP/],
    [{ ...base, cloudUrl: 'amqp://u:p@cloud' }, TypeError, /has credentials/],
    [{ ...base, cloudUrl: 'amqp://cloud?heartbeat=1' }, RangeError, /query or fragment/],
    [{ ...base, password: 'p' }, TypeError, /a password needs a username/],
    [{ ...base, username: '' }, RangeError, /username must be non-empty/],
    [{ ...base, username: 'u', password: 'a\nb' }, RangeError, /password/],
    [{ ...base, prefix: 'amq.x' }, RangeError, /prefix/],
    [{ ...base, priorities: 'yes' }, TypeError, /priorities must be a boolean/],
    [{ ...base, vhost: '' }, RangeError, /vhost/],
    [{ ...base, heartbeatInSeconds: 0 }, RangeError, /heartbeatInSeconds/],
    [{ ...base, reconnectDelayInSeconds: 1.5 }, RangeError, /reconnectDelayInSeconds/],
    [{ ...base, prefetch: 0 }, RangeError, /prefetch/],
    [{ ...base, tls: 'x' }, TypeError, /tls must be an object/],
    [{ ...base, tls: { ca: '/ca' } }, TypeError, /unknown tls option ca/],
    [{ ...base, cloudUrl: 'amqp://cloud', tls: { caFile: '/ca' } }, TypeError, /need an amqps/],
    [{ ...base, tls: { certFile: '/c' } }, TypeError, /go together/],
  ])('refuses %j', (options, type, message) => {
    expect(() => rabbitmqBridge(options as never)).toThrow(type);
    expect(() => rabbitmqBridge(options as never)).toThrow(message);
  });

  it('refuses a missing options object', () => {
    expect(() => rabbitmqBridge(undefined as never)).toThrow(/needs an options object/);
  });
});
