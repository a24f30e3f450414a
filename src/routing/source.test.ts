import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { matchSource, normalizeSourcePattern } from './source.js';

const output = '/messages/modules/sensor/outputs/temperature';
const noOutput = '/messages/modules/sensor';
const device = '/messages';
const twin = '/twinChangeNotifications';

describe('matchSource', () => {
  it.each([
    ['/*', [output, noOutput, device, twin], []],
    ['/', [output, noOutput, device, twin], []],
    ['/messages', [output, noOutput, device], [twin]],
    ['/messages/*', [output, noOutput, device], [twin]],
    ['/messages/modules', [output, noOutput], [device, twin]],
    ['/messages/modules/*', [output, noOutput], [device]],
    ['/messages/modules/sensor', [output, noOutput], [device, '/messages/modules/sensor2/outputs/x']],
    ['/messages/modules/sensor/*', [output, noOutput], ['/messages/modules/sensors/outputs/x']],
    ['/messages/modules/sensor/outputs/*', [output], [noOutput]],
    [
      '/messages/modules/sensor/outputs/temperature',
      [output],
      ['/messages/modules/sensor/outputs/temperature0', noOutput],
    ],
    ['/MESSAGES/Modules/SENSOR/outputs/Temperature', [output], []],
    ['/messages/modules/sens*', ['/messages/modules/sens/outputs/x'], [output]], // a trailing * is trimmed, not a glob
    ['/messages/modules/*/outputs/temperature', [], [output]], // a * inside the path is literal
    ['/messages/events', [], [device, output]],
    ['/twinChangeNotifications', [twin], [device]],
  ] as const)('%s', (pattern, matching, notMatching) => {
    for (const source of matching) expect(matchSource(pattern, source), source).toBe(true);
    for (const source of notMatching) expect(matchSource(pattern, source), source).toBe(false);
  });

  it('normalises a pattern to end in one slash', () => {
    expect(normalizeSourcePattern(' /messages/modules/m1/** ')).toBe('/messages/modules/m1/');
    expect(normalizeSourcePattern('/*')).toBe('/');
  });

  it('is segment-wise prefix matching, ignoring case', () => {
    const segment = fc.stringMatching(/^[A-Za-z0-9_-]{1,8}$/);
    fc.assert(
      fc.property(fc.array(segment, { minLength: 1, maxLength: 5 }), fc.nat(), fc.boolean(), (segments, cut, star) => {
        const prefix = segments.slice(0, (cut % segments.length) + 1);
        const source = `/${segments.join('/')}`;
        const pattern = `/${prefix.join('/')}${star ? '/*' : ''}`;
        expect(matchSource(pattern, source)).toBe(true);
        expect(matchSource(pattern.toUpperCase(), source.toLowerCase())).toBe(true);
        // The pattern's last segment must match a whole segment: "/a/bx" does not match "/a/b/…".
        expect(matchSource(`/${prefix.join('/')}x`, source)).toBe(false);
      }),
    );
  });

  it('rejects arguments that are not strings', () => {
    expect(() => matchSource(1 as unknown as string, '/messages')).toThrow(TypeError);
  });
});
