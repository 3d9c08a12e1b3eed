/**
 * Query parameter validation. Every failure is a 400 whose message names the parameter;
 * numbers must be finite decimals, enumerations exact, nothing is ever silently coerced.
 */
import { badParameter } from '../core/errors.js';
import { isValidUid } from '../core/uid.js';

export type Query = Record<string, string | string[] | undefined>;

const DECIMAL = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

/** The single value of a parameter; undefined when absent and not required. */
export function single(query: Query, name: string, required: true): string;
export function single(query: Query, name: string, required?: boolean): string | undefined;
export function single(query: Query, name: string, required = false): string | undefined {
  const v = query[name];
  if (Array.isArray(v)) throw badParameter(`parameter '${name}' is given more than once`);
  if (v === undefined) {
    if (required) throw badParameter(`parameter '${name}' is required`);
    return undefined;
  }
  if (v === '') throw badParameter(`parameter '${name}' is empty`);
  return v;
}

export function seriesParam(query: Query): string {
  const uid = single(query, 'series', true);
  if (!isValidUid(uid)) {
    throw badParameter(`parameter 'series' must be a DICOM UID (digits and dots, at most 64 characters)`);
  }
  return uid;
}

/** The series UID of a `/series/:sid/...` path: a DICOM UID with at least one dot. */
export function sidParam(sid: string): string {
  if (!isValidUid(sid) || !sid.includes('.')) {
    throw badParameter(`path parameter 'sid' must be a DICOM UID (digits and dots, at least one dot, at most 64 characters)`);
  }
  return sid;
}

/** `count` comma-separated finite numbers (`origin=x,y,z`). */
export function vectorParam(query: Query, name: string, count: number, required: true): number[];
export function vectorParam(query: Query, name: string, count: number, required?: boolean): number[] | undefined;
export function vectorParam(query: Query, name: string, count: number, required = false): number[] | undefined {
  const text = single(query, name, required);
  if (text === undefined) return undefined;
  const parts = text.split(',');
  if (parts.length !== count) throw badParameter(`parameter '${name}' must be ${count} comma-separated numbers, got '${text.slice(0, 60)}'`);
  return parts.map((p, i) => parseDecimal(p, `parameter '${name}' (value ${i + 1})`));
}

/**
 * A flag the way the current CIRCUS API reads it: false when absent, empty or one of 0, false,
 * f, no (any case); true for anything else.
 */
export function flagParam(query: Query, name: string): boolean {
  const v = query[name];
  if (Array.isArray(v)) throw badParameter(`parameter '${name}' is given more than once`);
  if (v === undefined) return false;
  return !/^(0|false|f|no|)$/i.test(v.trim());
}

/** Parses one finite decimal number; `what` names it in the message. */
export function parseDecimal(text: string, what: string): number {
  const t = text.trim();
  if (!DECIMAL.test(t)) throw badParameter(`${what} must be a finite decimal number, got '${text.slice(0, 40)}'`);
  const n = Number(t);
  if (!Number.isFinite(n)) throw badParameter(`${what} must be a finite decimal number, got '${text.slice(0, 40)}'`);
  return n;
}

export interface NumberRule {
  required?: boolean;
  integer?: boolean;
  min?: number;
  max?: number;
  /** The minimum is exclusive. */
  above?: number;
}

export function numberParam(query: Query, name: string, rule: NumberRule & { required: true }): number;
export function numberParam(query: Query, name: string, rule?: NumberRule): number | undefined;
export function numberParam(query: Query, name: string, rule: NumberRule = {}): number | undefined {
  const text = single(query, name, rule.required);
  if (text === undefined) return undefined;
  const n = parseDecimal(text, `parameter '${name}'`);
  if (rule.integer && !Number.isInteger(n)) throw badParameter(`parameter '${name}' must be an integer, got '${text}'`);
  if (rule.above !== undefined && !(n > rule.above)) throw badParameter(`parameter '${name}' must be greater than ${rule.above}, got ${text}`);
  if ((rule.min !== undefined && n < rule.min) || (rule.max !== undefined && n > rule.max)) {
    throw badParameter(`parameter '${name}' must be between ${rule.min} and ${rule.max}, got ${text}`);
  }
  return n;
}

export function enumParam<T extends string>(query: Query, name: string, values: readonly T[], required: true): T;
export function enumParam<T extends string>(query: Query, name: string, values: readonly T[], required?: boolean): T | undefined;
export function enumParam<T extends string>(query: Query, name: string, values: readonly T[], required = false): T | undefined {
  const v = single(query, name, required);
  if (v === undefined) return undefined;
  if (!(values as readonly string[]).includes(v)) {
    throw badParameter(`parameter '${name}' must be one of ${values.join(', ')}, got '${v.slice(0, 40)}'`);
  }
  return v as T;
}
