import { describe, expect, it } from 'vitest';
import { explainRoutes } from './explain.js';
import { compileRouteTable } from './table.js';

describe('explainRoutes', () => {
  const table = compileRouteTable({
    hot: {
      route:
        "FROM /messages/modules/sensor/outputs/temperature WHERE as_number(temperature) > 25 INTO BrokeredEndpoint('/modules/alerts/inputs/hot')",
      priority: 0,
      timeToLiveSecs: 60,
    },
    raw: 'FROM /messages/modules/sensor/* INTO BrokeredEndpoint("/modules/archive/inputs/raw")',
    alerts: 'FROM /messages/modules/alerts/outputs/* INTO $upstream',
    leaf: 'FROM /messages INTO BrokeredEndpoint("/modules/archive/inputs/leaf")',
    typo: 'FROM /messages/events INTO $upstream',
  });
  const explanation = explainRoutes(table, ['sensor', 'idle']);
  const bySource = Object.fromEntries(explanation.sources.map((s) => [s.source, s]));

  it('lists each named output with the sinks it reaches and when', () => {
    expect(bySource['/messages/modules/sensor/outputs/temperature']).toEqual({
      kind: 'output',
      module: 'sensor',
      output: 'temperature',
      source: '/messages/modules/sensor/outputs/temperature',
      reaches: [
        {
          routeName: 'hot',
          sink: { kind: 'module', module: 'alerts', input: 'hot' },
          condition: 'as_number(temperature) > 25',
          priority: 0,
          timeToLiveSecs: 60,
        },
        {
          routeName: 'raw',
          sink: { kind: 'module', module: 'archive', input: 'raw' },
          condition: null,
          priority: 2000000000,
          timeToLiveSecs: 0,
        },
        {
          routeName: 'leaf',
          sink: { kind: 'module', module: 'archive', input: 'leaf' },
          condition: null,
          priority: 2000000000,
          timeToLiveSecs: 0,
        },
      ],
    });
  });

  it('covers the other outputs of each module, modules known only from the manifest or a sink, and devices', () => {
    expect(bySource['/messages/modules/sensor/outputs/*']?.reaches.map((r) => r.routeName)).toEqual(['raw', 'leaf']);
    expect(bySource['/messages/modules/alerts/outputs/*']?.reaches.map((r) => r.routeName)).toEqual(['alerts', 'leaf']);
    expect(bySource['/messages/modules/idle/outputs/*']?.reaches.map((r) => r.routeName)).toEqual(['leaf']);
    expect(bySource['/messages/modules/archive/outputs/*']?.kind).toBe('otherOutputs');
    expect(bySource['/messages']?.reaches.map((r) => r.routeName)).toEqual(['leaf']);
  });

  it('names routes whose FROM path matches nothing IoT Edge produces', () => {
    expect(explanation.unmatchedRoutes).toEqual(['typo']);
  });

  it('shows twin change notification routes', () => {
    const twin = explainRoutes(compileRouteTable({ t: 'FROM /twinChangeNotifications INTO $upstream' }));
    expect(twin.sources).toEqual([
      {
        kind: 'twinChangeNotifications',
        source: '/twinChangeNotifications',
        reaches: [expect.objectContaining({ routeName: 't' })],
      },
    ]);
    expect(twin.unmatchedRoutes).toEqual([]);
  });
});
