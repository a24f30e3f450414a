import { describe, expect, it } from 'vitest';
import { dotNetPow, foldCase, invariantLower, invariantUpper, parseDotNetNumber } from './text.js';

describe('parseDotNetNumber (double.TryParse with NumberStyles.Any, invariant culture)', () => {
  it.each([
    ['42', 42],
    ['  42  ', 42],
    ['\t-3.5\n', -3.5],
    ['+7', 7],
    ['7-', -7],
    ['7+', 7],
    ['(12)', -12],
    ['( 12 )', Number.NaN], // no white space after an opening parenthesis
    ['(12 )', -12],
    ['1,234,567.25', 1234567.25],
    ['1,,2', 12],
    [',5', Number.NaN],
    ['1.5,0', Number.NaN],
    ['.5', 0.5],
    ['5.', 5],
    ['.', Number.NaN],
    ['1e3', 1000],
    ['1E-2', 0.01],
    ['1e', Number.NaN],
    ['1e+', Number.NaN],
    ['¤5', 5],
    ['5¤', 5],
    ['-¤5', -5],
    ['- 5', Number.NaN],
    ['+-5', Number.NaN],
    ['0x10', Number.NaN],
    ['1_000', Number.NaN],
    ['', Number.NaN],
    ['Infinity', Number.POSITIVE_INFINITY],
    ['-infinity', Number.NEGATIVE_INFINITY],
    ['  +INFINITY ', Number.POSITIVE_INFINITY],
    ['NaN', Number.NaN],
    ['1e400', Number.POSITIVE_INFINITY],
    ['5\0\0', 5],
  ])('%j → %d', (text, expected) => {
    expect(parseDotNetNumber(text)).toBe(expected);
  });

  it('keeps the sign of zero', () => {
    expect(Object.is(parseDotNetNumber('-0'), -0)).toBe(true);
  });
});

describe('invariant case mapping', () => {
  it('maps one character to one character', () => {
    expect(invariantUpper('straße')).toBe('STRAßE');
    expect(invariantUpper('ǰ')).toBe('ǰ');
    expect(invariantLower('İstanbul')).toBe('istanbul');
    expect(invariantLower('ÀÉÎ')).toBe('àéî');
    expect(invariantUpper('abc😀')).toBe('ABC😀');
  });

  it('folds names the way OrdinalIgnoreCase compares them', () => {
    expect(foldCase('contentType')).toBe(foldCase('CONTENTTYPE'));
    expect(foldCase('ß')).not.toBe(foldCase('SS'));
  });
});

describe('dotNetPow', () => {
  it('follows IEEE 754 where JavaScript differs', () => {
    expect(dotNetPow(1, Number.NaN)).toBe(1);
    expect(dotNetPow(1, Number.POSITIVE_INFINITY)).toBe(1);
    expect(dotNetPow(-1, Number.NEGATIVE_INFINITY)).toBe(1);
    expect(dotNetPow(2, 10)).toBe(1024);
  });
});
