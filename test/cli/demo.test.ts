// `edgekit demo` in memory, as the README's first command runs it: the pipeline, the operator's changes, and the
// unmodified Azure sample module joining through edgekit/hub (installed here as dev dependencies).
import { expect, test } from 'vitest';
import { cli } from './scenarios.js';

test('the demo runs the pipeline with the Azure sample module and ends cleanly', async () => {
  const run = await cli(['demo', '--duration', '6']);
  expect(run.stderr).toBe('');
  expect(run.code).toBe(0);
  expect(run.stdout).toContain('running on the in-process memory broker');
  expect(run.stdout).toContain("azure-alert-counter (examples/azure-module, on Microsoft's Azure IoT SDK) joins");
  expect(run.stdout).toMatch(/filter\/output1 → azure-alert-counter\/alerts/);
  expect(run.stdout).toMatch(/azure-alert-counter\/summary → \$upstream .*kind=summary/);
  expect(run.stdout).toMatch(/invoked azure-alert-counter getSummary → 200 \{"alertsSeen":\d+/);
  expect(run.stdout).toMatch(/azure +stopped/);
  expect(run.stdout).toMatch(/dead letters 0/);
}, 60_000);
