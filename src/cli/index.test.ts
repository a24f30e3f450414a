import { describe, expect, it } from 'vitest';
import { type CliIo, main } from './index.js';

function io(files: Record<string, string> = {}) {
  const out: string[] = [];
  const err: string[] = [];
  const streams: CliIo = {
    stdout: { write: (s: string) => out.push(s) },
    stderr: { write: (s: string) => err.push(s) },
    readFile: (path) => {
      const text = files[path];
      if (text === undefined) throw new Error(`ENOENT: no such file or directory, open '${path}'`);
      return text;
    },
  };
  return { streams, out: () => out.join(''), err: () => err.join('') };
}

describe('edgekit main', () => {
  it('prints help with --help and exits 0', async () => {
    const t = io();
    expect(await main(['--help'], t.streams)).toBe(0);
    expect(t.out()).toContain('Usage: edgekit <command>');
    expect(t.out()).toContain('routes check');
  });

  it('prints help and exits 2 without a command', async () => {
    const t = io();
    expect(await main([], t.streams)).toBe(2);
    expect(t.out()).toContain('Usage: edgekit');
  });

  it('exits 2 with a one-line reason on an unknown command', async () => {
    const t = io();
    expect(await main(['deplooy'], t.streams)).toBe(2);
    expect(t.err()).toMatch(/^edgekit: unknown command "deplooy"\n/);
    expect(await main(['routes', 'lint'], t.streams)).toBe(2);
    expect(t.err()).toContain('unknown command "routes lint"');
  });

  it('every command answers --help with its usage and exit 0', async () => {
    for (const argv of [
      ['deploy'],
      ['twin', 'get'],
      ['twin', 'set'],
      ['invoke'],
      ['monitor'],
      ['status'],
      ['routes', 'check'],
      ['demo'],
    ]) {
      const t = io();
      expect(await main([...argv, '--help'], t.streams)).toBe(0);
      expect(t.out()).toMatch(new RegExp(`^Usage: edgekit ${argv.join(' ')}`));
      expect(t.out()).toMatch(/Exit status/);
    }
  });

  it('a command missing its arguments or given an unknown option exits 2, naming the command', async () => {
    const t = io();
    expect(await main(['deploy', '--broker', 'memory:'], t.streams)).toBe(2);
    expect(t.err()).toMatch(/^edgekit deploy: missing the manifest file\nRun "edgekit deploy --help"/);
    expect(await main(['status', '--frobnicate'], t.streams)).toBe(2);
    expect(t.err()).toContain("edgekit status: Unknown option '--frobnicate'");
    expect(await main(['twin', 'get', 'gw/filter'], t.streams)).toBe(2);
    expect(t.err()).toContain('no broker: pass --broker <url> or set EDGEKIT_BROKER_URL');
  });

  it('says where a JSON manifest or argument breaks (line and column), and names the schemes edgekit speaks', async () => {
    const t = io({ 'cut.json': '{\n  "modulesContent": {\n    "$edgeAgent": ', 'bad.json': '{\n  "a": 1,,\n}' });
    expect(await main(['deploy', 'cut.json', '--device', 'gw', '--broker', 'memory:'], t.streams)).toBe(1);
    expect(t.err()).toContain('cut.json is not valid JSON: line 3, column 19: the text ends too early');
    expect(await main(['identities', 'bad.json', '--device', 'gw', '--out', '/nonexistent/x'], t.streams)).toBe(1);
    expect(t.err()).toContain('bad.json is not valid JSON: line 2, column 10: Expected double-quoted property name');
    expect(await main(['invoke', 'gw/m', 'reset', '{"a":', '--broker', 'memory:'], t.streams)).toBe(2);
    expect(t.err()).toContain('the argument is not valid JSON: line 1, column 6: the text ends too early');
    expect(await main(['status', '--broker', 'http://127.0.0.1:8080'], t.streams)).toBeGreaterThan(0);
    expect(t.err()).toContain(
      'uses http:, which edgekit does not speak: use mqtt://, mqtts://, amqp://, amqps:// or memory:',
    );
    expect(t.err()).not.toContain('edgekit/http');
  });

  it('never prints a broker password, and still says what is wrong with the broker URL', async () => {
    for (const [argv, says] of [
      [['status', '--broker', 'mqtt://u:Zq7Wv4@127.0.0.1:1/x?y'], /must not have a path, query or fragment/],
      [['status', 'gw', '--broker', 'mqtt://u:Zq7Wv4@ho st'], /--broker "mqtt:\/\/u:\*\*\*@ho st" is not a URL/],
      [['twin', 'get', 'gw/m', '--broker', 'amqp://u:Zq7@Wv4@h#x'], /must not have a query or fragment/],
      [['invoke', 'gw/m', 'reset', '--broker', 'amqp://u:Zq7/Wv4@h'], /is not a URL \(the password is masked/],
      [['monitor', '--broker', 'mqtt://u:Zq7%Wv4@'], /is not a URL/],
      [['status', '--broker', 'mqtt://u@127.0.0.1:1/x', '--password', 'Zq7Wv4'], /must not have a path/],
    ] as const) {
      const t = io();
      expect(await main(argv, t.streams), argv.join(' ')).toBeGreaterThan(0);
      expect(t.err(), argv.join(' ')).toMatch(says);
      expect(t.out() + t.err(), argv.join(' ')).not.toMatch(/Zq7|Wv4/);
    }
  });

  it('prints its version', async () => {
    const t = io();
    expect(await main(['--version'], t.streams)).toBe(0);
    expect(t.out()).toMatch(/^\d+\.\d+\.\d+/);
  });

  it('lists the commands of a group', async () => {
    const t = io();
    expect(await main(['routes', '--help'], t.streams)).toBe(0);
    expect(t.out()).toContain('check');
    expect(await main(['routes'], t.streams)).toBe(2);
  });

  it('dispatches to a command', async () => {
    const t = io({ 'r.json': JSON.stringify({ a: 'FROM /* INTO $upstream' }) });
    expect(await main(['routes', 'check', 'r.json'], t.streams)).toBe(0);
    expect(t.out()).toContain('r.json: 1 route, all valid');
  });
});
