import { describe, expect, it } from 'vitest';
import { NodeRotation } from './node-rotation.js';

describe('NodeRotation', () => {
  it('tries the nodes as given until one worked', () => {
    const rotation = new NodeRotation(3);
    expect(rotation.order()).toEqual([0, 1, 2]);
    expect(rotation.order()).toEqual([0, 1, 2]);
  });

  it('starts after the node that worked last, so a lost node is tried last', () => {
    const rotation = new NodeRotation(3);
    rotation.worked(0);
    expect(rotation.order()).toEqual([1, 2, 0]);
    rotation.worked(2);
    expect(rotation.order()).toEqual([0, 1, 2]);
    rotation.worked(1);
    expect(rotation.order()).toEqual([2, 0, 1]);
  });

  it('keeps trying the only node', () => {
    const rotation = new NodeRotation(1);
    rotation.worked(0);
    expect(rotation.order()).toEqual([0]);
  });

  it('needs a node', () => {
    expect(() => new NodeRotation(0)).toThrow(RangeError);
  });
});
