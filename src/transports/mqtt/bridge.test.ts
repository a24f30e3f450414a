import { describe, expect, it } from 'vitest';
import { mosquittoBridge } from './bridge.js';

const lines = (config: string) => config.split('\n').filter((l) => l !== '' && !l.startsWith('#'));

describe('mosquittoBridge', () => {
  it("carries only the device's own topics, each the way it flows, on a persistent MQTT 5 bridge", () => {
    const bridge = mosquittoBridge({ deviceId: 'gw-1', cloudUrl: 'mqtts://cloud.example.com' });
    const config = lines(bridge.config);
    expect(config).toEqual(
      expect.arrayContaining([
        'connection edgekit-gw-1',
        'address cloud.example.com:8883',
        'bridge_protocol_version mqttv50',
        'remote_clientid edgekit-bridge-gw-1',
        'cleansession false',
        'local_cleansession false',
        'notifications true',
        'notification_topic edgekit/v1/link/gw-1',
        'bridge_capath /etc/ssl/certs',
        'bridge_insecure false',
      ]),
    );
    expect(config.filter((l) => l.startsWith('topic '))).toEqual([
      'topic edgekit/v1/upstream/gw-1/# out 1',
      'topic edgekit/v1/deadletter/gw-1/+/# out 1',
      'topic edgekit/v1/twin/gw-1/+/reported out 1',
      'topic edgekit/v1/presence/gw-1/+ out 1',
      'topic edgekit/v1/@client/+/reply out 1',
      'topic edgekit/v1/twin/gw-1/+/desired in 1',
      'topic edgekit/v1/routes/gw-1 in 1',
      'topic edgekit/v1/deployment/gw-1 in 1',
      'topic edgekit/v1/methods/gw-1/+/# in 1',
      'topic edgekit/v1/inputs/gw-1/+/+/# in 1',
    ]);
    expect(config.some((l) => l.startsWith('remote_password'))).toBe(false);
  });

  it('writes credentials, TLS files, the prefix and timing as given', () => {
    const { config, linkTopic } = mosquittoBridge({
      deviceId: 'gw-2',
      cloudUrl: new URL('mqtts://[::1]:9883'),
      username: 'bridge-gw-2',
      password: 's3cr3t!',
      tls: { caFile: '/etc/ca.pem', certFile: '/etc/gw.pem', keyFile: '/etc/gw.key' },
      topicPrefix: 'acme/',
      clientId: 'gw-2-up',
      keepaliveInSeconds: 10,
      reconnectInSeconds: { min: 2, max: 5 },
    });
    expect(linkTopic).toBe('acme/link/gw-2');
    expect(lines(config)).toEqual(
      expect.arrayContaining([
        'address [::1]:9883',
        'remote_clientid gw-2-up',
        'remote_username bridge-gw-2',
        'remote_password s3cr3t!',
        'bridge_cafile /etc/ca.pem',
        'bridge_certfile /etc/gw.pem',
        'bridge_keyfile /etc/gw.key',
        'keepalive_interval 10',
        'restart_timeout 2 5',
        'topic acme/upstream/gw-2/# out 1',
      ]),
    );
  });

  it('gives the cloud role the out topics to publish and the in topics to read, for this device only', () => {
    const { cloudAcls } = mosquittoBridge({ deviceId: 'gw-1', cloudUrl: 'mqtt://cloud' });
    const of = (type: string) => cloudAcls.filter((a) => a.acltype === type).map((a) => a.topic);
    expect(of('publishClientSend')).toEqual([
      'edgekit/v1/link/gw-1',
      'edgekit/v1/upstream/gw-1/#',
      'edgekit/v1/deadletter/gw-1/+/#',
      'edgekit/v1/twin/gw-1/+/reported',
      'edgekit/v1/presence/gw-1/+',
      'edgekit/v1/@client/+/reply',
    ]);
    expect(of('subscribePattern')).toEqual(of('publishClientReceive'));
    expect(of('subscribePattern')).toEqual([
      'edgekit/v1/twin/gw-1/+/desired',
      'edgekit/v1/routes/gw-1',
      'edgekit/v1/deployment/gw-1',
      'edgekit/v1/methods/gw-1/+/#',
      'edgekit/v1/inputs/gw-1/+/+/#',
    ]);
    expect(cloudAcls.every((a) => a.allow)).toBe(true);
  });

  it.each([
    [{}, TypeError, /device id/],
    [{ deviceId: 'gw/1', cloudUrl: 'mqtt://c' }, RangeError, /device id/],
    [{ deviceId: 'gw-1' }, TypeError, /cloudUrl must be a string or URL/],
    [{ deviceId: 'gw-1', cloudUrl: 'nope' }, TypeError, /is not a URL/],
    [{ deviceId: 'gw-1', cloudUrl: 'amqps://rabbit' }, RangeError, /speaks MQTT/],
    [{ deviceId: 'gw-1', cloudUrl: 'mqtt://u:p@cloud' }, TypeError, /has credentials/],
    [{ deviceId: 'gw-1', cloudUrl: 'mqtt://cloud/path' }, RangeError, /path, query or fragment/],
    [{ deviceId: 'gw-1', cloudUrl: 'mqtt://cloud', password: 'p' }, TypeError, /a password needs a username/],
    [{ deviceId: 'gw-1', cloudUrl: 'mqtt://cloud', username: 'a b' }, RangeError, /without whitespace/],
    [{ deviceId: 'gw-1', cloudUrl: 'mqtt://cloud', username: 'u', password: 'a\nb' }, RangeError, /password/],
    [{ deviceId: 'gw-1', cloudUrl: 'mqtt://cloud', keepaliveInSeconds: 1 }, RangeError, /keepaliveInSeconds/],
    [{ deviceId: 'gw-1', cloudUrl: 'mqtt://cloud', reconnectInSeconds: { min: 5, max: 2 } }, RangeError, /max/],
    [{ deviceId: 'gw-1', cloudUrl: 'mqtt://cloud', reconnectInSeconds: 3 }, TypeError, /\{ min, max \}/],
    [{ deviceId: 'gw-1', cloudUrl: 'mqtt://cloud', tls: { caFile: '/ca' } }, TypeError, /need an mqtts/],
    [{ deviceId: 'gw-1', cloudUrl: 'mqtts://cloud', tls: { certFile: '/c' } }, TypeError, /go together/],
    [{ deviceId: 'gw-1', cloudUrl: 'mqtts://cloud', topicPrefix: 'x' }, RangeError, /must end with/],
  ])('refuses %j', (options, type, message) => {
    expect(() => mosquittoBridge(options as never)).toThrow(type);
    expect(() => mosquittoBridge(options as never)).toThrow(message);
  });

  it('refuses a missing options object', () => {
    expect(() => mosquittoBridge(undefined as never)).toThrow(/needs an options object/);
  });
});
