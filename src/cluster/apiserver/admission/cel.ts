// A subset of CEL for CRD `x-kubernetes-validations`: literals, self/oldSelf, field access, has(),
// size(), arithmetic, comparisons, &&, ||, !, ?:, in, list/map literals, the macros all/exists/
// exists_one/map/filter, and string methods (startsWith, endsWith, contains, matches, lowerAscii,
// upperAscii, size). Evaluation errors (e.g. a missing field) fail the rule, as in Kubernetes.
import { deepEqual, isObject } from '../apimachinery/meta.js';

type Node =
  | { k: 'lit'; v: unknown }
  | { k: 'id'; name: string }
  | { k: 'sel'; obj: Node; field: string }
  | { k: 'idx'; obj: Node; index: Node }
  | { k: 'call'; fn: string; target?: Node; args: Node[] }
  | { k: 'un'; op: string; x: Node }
  | { k: 'bin'; op: string; a: Node; b: Node }
  | { k: 'cond'; c: Node; a: Node; b: Node }
  | { k: 'list'; items: Node[] }
  | { k: 'map'; entries: [Node, Node][] };

export class CelError extends Error {}

// --- lexer -------------------------------------------------------------------------------------

type Tok = { t: 'num' | 'str' | 'id' | 'op'; v: string; n?: number };

const OPS = [
  '&&',
  '||',
  '==',
  '!=',
  '<=',
  '>=',
  '<',
  '>',
  '!',
  '+',
  '-',
  '*',
  '/',
  '%',
  '?',
  ':',
  '.',
  ',',
  '(',
  ')',
  '[',
  ']',
  '{',
  '}',
];

function lex(src: string): Tok[] {
  const toks: Tok[] = [];
  let i = 0;
  while (i < src.length) {
    const c = src[i]!;
    if (/\s/.test(c)) {
      i++;
      continue;
    }
    if (/[0-9]/.test(c)) {
      const m = /^(0x[0-9a-fA-F]+|\d+(\.\d+)?([eE][+-]?\d+)?)[uU]?/.exec(src.slice(i))!;
      toks.push({ t: 'num', v: m[0], n: Number(m[0].replace(/[uU]$/, '')) });
      i += m[0].length;
      continue;
    }
    if (/[A-Za-z_]/.test(c)) {
      const m = /^[A-Za-z_][A-Za-z0-9_]*/.exec(src.slice(i))!;
      toks.push({ t: 'id', v: m[0] });
      i += m[0].length;
      continue;
    }
    if (c === '"' || c === "'" || ((c === 'r' || c === 'R') && (src[i + 1] === '"' || src[i + 1] === "'"))) {
      const raw = c === 'r' || c === 'R';
      if (raw) i++;
      const q = src[i]!;
      const triple = src.slice(i, i + 3) === q.repeat(3);
      const end = triple ? q.repeat(3) : q;
      i += end.length;
      let s = '';
      while (i < src.length && src.slice(i, i + end.length) !== end) {
        if (!raw && src[i] === '\\') {
          const e = src[i + 1]!;
          const map: Record<string, string> = {
            n: '\n',
            t: '\t',
            r: '\r',
            '\\': '\\',
            '"': '"',
            "'": "'",
            '/': '/',
          };
          s += map[e] ?? e;
          i += 2;
        } else s += src[i++];
      }
      if (i >= src.length) throw new CelError('unterminated string');
      i += end.length;
      toks.push({ t: 'str', v: s });
      continue;
    }
    const op = OPS.find((o) => src.startsWith(o, i));
    if (!op) throw new CelError(`unexpected character ${c}`);
    toks.push({ t: 'op', v: op });
    i += op.length;
  }
  return toks;
}

// --- parser (precedence climbing) --------------------------------------------------------------

class Parser {
  private i = 0;
  constructor(private readonly toks: Tok[]) {}

  private peek(v?: string): Tok | undefined {
    const t = this.toks[this.i];
    if (v === undefined) return t;
    return t && (t.t === 'op' || t.t === 'id') && t.v === v ? t : undefined;
  }

  private eat(v: string): void {
    if (!this.peek(v)) throw new CelError(`expected ${v}`);
    this.i++;
  }

  parse(): Node {
    const n = this.cond();
    if (this.i < this.toks.length) throw new CelError(`unexpected ${this.toks[this.i]!.v}`);
    return n;
  }

  private cond(): Node {
    const c = this.or();
    if (this.peek('?')) {
      this.i++;
      const a = this.cond();
      this.eat(':');
      const b = this.cond();
      return { k: 'cond', c, a, b };
    }
    return c;
  }

  private binary(next: () => Node, ops: string[]): Node {
    let a = next();
    for (;;) {
      const t = this.peek();
      if (!t || !ops.includes(t.v) || (t.t !== 'op' && t.v !== 'in')) return a;
      this.i++;
      a = { k: 'bin', op: t.v, a, b: next() };
    }
  }

  private or = (): Node => this.binary(this.and, ['||']);
  private and = (): Node => this.binary(this.rel, ['&&']);
  private rel = (): Node => this.binary(this.add, ['==', '!=', '<', '<=', '>', '>=', 'in']);
  private add = (): Node => this.binary(this.mul, ['+', '-']);
  private mul = (): Node => this.binary(this.unary, ['*', '/', '%']);

  private unary = (): Node => {
    if (this.peek('!')) {
      this.i++;
      return { k: 'un', op: '!', x: this.unary() };
    }
    if (this.peek('-')) {
      this.i++;
      return { k: 'un', op: '-', x: this.unary() };
    }
    return this.member();
  };

  private args(): Node[] {
    this.eat('(');
    const out: Node[] = [];
    while (!this.peek(')')) {
      out.push(this.cond());
      if (!this.peek(')')) this.eat(',');
    }
    this.eat(')');
    return out;
  }

  private member(): Node {
    let n = this.primary();
    for (;;) {
      if (this.peek('.')) {
        this.i++;
        const name = this.toks[this.i++];
        if (!name || name.t !== 'id') throw new CelError('expected a field name');
        if (this.peek('(')) n = { k: 'call', fn: name.v, target: n, args: this.args() };
        else n = { k: 'sel', obj: n, field: name.v };
      } else if (this.peek('[')) {
        this.i++;
        const index = this.cond();
        this.eat(']');
        n = { k: 'idx', obj: n, index };
      } else return n;
    }
  }

  private primary(): Node {
    const t = this.toks[this.i++];
    if (!t) throw new CelError('unexpected end of expression');
    if (t.t === 'num') return { k: 'lit', v: t.n };
    if (t.t === 'str') return { k: 'lit', v: t.v };
    if (t.t === 'id') {
      if (t.v === 'true' || t.v === 'false') return { k: 'lit', v: t.v === 'true' };
      if (t.v === 'null') return { k: 'lit', v: null };
      if (this.peek('(')) return { k: 'call', fn: t.v, args: this.args() };
      return { k: 'id', name: t.v };
    }
    if (t.v === '(') {
      const n = this.cond();
      this.eat(')');
      return n;
    }
    if (t.v === '[') {
      const items: Node[] = [];
      while (!this.peek(']')) {
        items.push(this.cond());
        if (!this.peek(']')) this.eat(',');
      }
      this.eat(']');
      return { k: 'list', items };
    }
    if (t.v === '{') {
      const entries: [Node, Node][] = [];
      while (!this.peek('}')) {
        const key = this.cond();
        this.eat(':');
        entries.push([key, this.cond()]);
        if (!this.peek('}')) this.eat(',');
      }
      this.eat('}');
      return { k: 'map', entries };
    }
    throw new CelError(`unexpected ${t.v}`);
  }
}

const compiled = new Map<string, Node | CelError>();

/** Parses a rule once; a CelError when the rule is outside the supported subset. */
export function compileRule(rule: string): Node | CelError {
  let n = compiled.get(rule);
  if (!n) {
    try {
      n = new Parser(lex(rule)).parse();
    } catch (err) {
      n = err instanceof CelError ? err : new CelError(String(err));
    }
    compiled.set(rule, n);
  }
  return n;
}

/** Whether a rule refers to oldSelf (a transition rule, evaluated only on updates). */
export function usesOldSelf(node: Node): boolean {
  switch (node.k) {
    case 'id':
      return node.name === 'oldSelf';
    case 'lit':
      return false;
    case 'sel':
      return usesOldSelf(node.obj);
    case 'idx':
      return usesOldSelf(node.obj) || usesOldSelf(node.index);
    case 'call':
      return (node.target ? usesOldSelf(node.target) : false) || node.args.some(usesOldSelf);
    case 'un':
      return usesOldSelf(node.x);
    case 'bin':
      return usesOldSelf(node.a) || usesOldSelf(node.b);
    case 'cond':
      return usesOldSelf(node.c) || usesOldSelf(node.a) || usesOldSelf(node.b);
    case 'list':
      return node.items.some(usesOldSelf);
    case 'map':
      return node.entries.some(([a, b]) => usesOldSelf(a) || usesOldSelf(b));
  }
}

// --- evaluation --------------------------------------------------------------------------------

type Env = Record<string, unknown>;

function truthy(v: unknown): boolean {
  if (typeof v !== 'boolean') throw new CelError('no such overload');
  return v;
}

function size(v: unknown): number {
  if (typeof v === 'string') return [...v].length;
  if (Array.isArray(v)) return v.length;
  if (isObject(v)) return Object.keys(v).length;
  throw new CelError('no such overload: size');
}

function field(obj: unknown, name: string): unknown {
  if (isObject(obj) && obj[name] !== undefined) return obj[name];
  throw new CelError(`no such key: ${name}`);
}

const regexCache = new Map<string, RegExp>();

function macro(fn: string, target: unknown, args: Node[], env: Env): unknown {
  const [varNode, body] = args;
  if (!varNode || varNode.k !== 'id' || !body) throw new CelError(`bad ${fn} macro`);
  const items = Array.isArray(target) ? target : isObject(target) ? Object.keys(target) : undefined;
  if (!items) throw new CelError(`no such overload: ${fn}`);
  const run = (x: unknown): unknown => evaluate(body, { ...env, [varNode.name]: x });
  switch (fn) {
    case 'all':
      return items.every((x) => truthy(run(x)));
    case 'exists':
      return items.some((x) => truthy(run(x)));
    case 'exists_one':
      return items.filter((x) => truthy(run(x))).length === 1;
    case 'map':
      return items.map(run);
    default:
      return items.filter((x) => truthy(run(x)));
  }
}

function call(node: Extract<Node, { k: 'call' }>, env: Env): unknown {
  const { fn, args } = node;
  if (!node.target) {
    if (fn === 'has') {
      const arg = args[0];
      if (!arg || arg.k !== 'sel') throw new CelError('invalid argument to has() macro');
      const obj = evaluate(arg.obj, env);
      return isObject(obj) && obj[arg.field] !== undefined && obj[arg.field] !== null;
    }
    const vals = args.map((a) => evaluate(a, env));
    switch (fn) {
      case 'size':
        return size(vals[0]);
      case 'int':
        return Math.trunc(Number(vals[0]));
      case 'double':
        return Number(vals[0]);
      case 'string':
        return typeof vals[0] === 'string' ? vals[0] : JSON.stringify(vals[0]);
      case 'bool':
        return vals[0] === true || vals[0] === 'true';
      default:
        throw new CelError(`undeclared reference to '${fn}'`);
    }
  }
  if (['all', 'exists', 'exists_one', 'map', 'filter'].includes(fn))
    return macro(fn, evaluate(node.target, env), args, env);
  const target = evaluate(node.target, env);
  const vals = args.map((a) => evaluate(a, env));
  if (fn === 'size') return size(target);
  if (typeof target === 'string') {
    const arg = vals[0];
    switch (fn) {
      case 'startsWith':
        return target.startsWith(String(arg));
      case 'endsWith':
        return target.endsWith(String(arg));
      case 'contains':
        return target.includes(String(arg));
      case 'matches': {
        let re = regexCache.get(String(arg));
        if (!re) regexCache.set(String(arg), (re = new RegExp(String(arg), 'u')));
        return re.test(target);
      }
      case 'lowerAscii':
        return target.toLowerCase();
      case 'upperAscii':
        return target.toUpperCase();
      case 'trim':
        return target.trim();
    }
  }
  if (Array.isArray(target) && fn === 'indexOf') return target.findIndex((x) => deepEqual(x, vals[0]));
  throw new CelError(`no such overload: ${fn}`);
}

function arith(op: string, a: unknown, b: unknown): unknown {
  if (op === '+') {
    if (typeof a === 'string' && typeof b === 'string') return a + b;
    if (Array.isArray(a) && Array.isArray(b)) return [...a, ...b];
  }
  if (typeof a !== 'number' || typeof b !== 'number') throw new CelError(`no such overload: ${op}`);
  const ints = Number.isInteger(a) && Number.isInteger(b);
  switch (op) {
    case '+':
      return a + b;
    case '-':
      return a - b;
    case '*':
      return a * b;
    case '/':
      if (b === 0 && ints) throw new CelError('division by zero');
      return ints ? Math.trunc(a / b) : a / b;
    default:
      if (b === 0) throw new CelError('modulus by zero');
      return a % b;
  }
}

function compare(op: string, a: unknown, b: unknown): boolean {
  if (!((typeof a === 'number' && typeof b === 'number') || (typeof a === 'string' && typeof b === 'string')))
    throw new CelError(`no such overload: ${op}`);
  switch (op) {
    case '<':
      return a < b;
    case '<=':
      return a <= b;
    case '>':
      return a > b;
    default:
      return a >= b;
  }
}

export function evaluate(node: Node, env: Env): unknown {
  switch (node.k) {
    case 'lit':
      return node.v;
    case 'id':
      if (!(node.name in env)) throw new CelError(`undeclared reference to '${node.name}'`);
      return env[node.name];
    case 'sel':
      return field(evaluate(node.obj, env), node.field);
    case 'idx': {
      const obj = evaluate(node.obj, env);
      const i = evaluate(node.index, env);
      if (Array.isArray(obj) && typeof i === 'number') {
        if (i < 0 || i >= obj.length) throw new CelError(`index out of bounds: ${i}`);
        return obj[i];
      }
      return field(obj, String(i));
    }
    case 'call':
      return call(node, env);
    case 'un': {
      const x = evaluate(node.x, env);
      if (node.op === '!') return !truthy(x);
      if (typeof x !== 'number') throw new CelError('no such overload: -');
      return -x;
    }
    case 'cond':
      return truthy(evaluate(node.c, env)) ? evaluate(node.a, env) : evaluate(node.b, env);
    case 'list':
      return node.items.map((n) => evaluate(n, env));
    case 'map':
      return Object.fromEntries(node.entries.map(([k, v]) => [String(evaluate(k, env)), evaluate(v, env)]));
    case 'bin': {
      if (node.op === '&&' || node.op === '||') {
        // CEL's commutative logic: an error on one side is absorbed if the other side decides.
        let left: boolean | CelError;
        try {
          left = truthy(evaluate(node.a, env));
        } catch (err) {
          left = err as CelError;
        }
        if (left === (node.op === '||')) return left;
        const right = truthy(evaluate(node.b, env));
        if (left instanceof Error) {
          if (right === (node.op === '||')) return right;
          throw left;
        }
        return right;
      }
      const a = evaluate(node.a, env);
      const b = evaluate(node.b, env);
      switch (node.op) {
        case '==':
          return deepEqual(a, b);
        case '!=':
          return !deepEqual(a, b);
        case 'in':
          if (Array.isArray(b)) return b.some((x) => deepEqual(x, a));
          if (isObject(b)) return typeof a === 'string' && b[a] !== undefined;
          throw new CelError('no such overload: in');
        case '<':
        case '<=':
        case '>':
        case '>=':
          return compare(node.op, a, b);
        default:
          return arith(node.op, a, b);
      }
    }
  }
}
