/**
 * A restricted reader of Python pickles: the data opcodes torch.save's state dicts use (protocols 2 to 5),
 * and nothing that makes Python objects by name unless the caller allows that name. A pickle is a program;
 * this reads it as data. GLOBAL and STACK_GLOBAL resolve only names the caller lists, REDUCE and BUILD only
 * act on those, and every other opcode (INST, OBJ, NEWOBJ, the extension registry, protocol 0's text forms)
 * is refused. Nothing is ever executed: a listed name maps to a TypeScript function of the caller's.
 */

/** A name the pickle imports, as the caller allowed it. */
export interface PickleGlobal {
  readonly module: string;
  readonly name: string;
  /** What REDUCE does with it; absent: the name may be referred to (a storage type) but not called. */
  readonly call?: (args: readonly unknown[]) => unknown;
}

/** A Python dict or OrderedDict: keys in insertion order. */
export class PickleDict {
  readonly entries = new Map<unknown, unknown>();
}

export interface UnpickleOptions {
  /** The allowed global, or undefined to refuse the pickle. */
  global(module: string, name: string): PickleGlobal | undefined;
  /** BINPERSID: the value a persistent id stands for (torch: a storage). */
  persistentLoad(pid: unknown): unknown;
  /** Turns a problem into the caller's error: `what` says what is wrong and at which byte. */
  fail(what: string): never;
}

const OPNAMES: Record<number, string> = {
  0x69: 'INST',
  0x6f: 'OBJ',
  0x81: 'NEWOBJ',
  0x92: 'NEWOBJ_EX',
  0x82: 'EXT1',
  0x83: 'EXT2',
  0x84: 'EXT4',
  0x50: 'PERSID',
  0x49: 'INT',
  0x4c: 'LONG',
  0x53: 'STRING',
  0x56: 'UNICODE',
  0x46: 'FLOAT',
  0x67: 'GET',
  0x70: 'PUT',
};

const describeGlobal = (g: PickleGlobal) => `${g.module}.${g.name}`;

export function unpickle(data: Buffer, o: UnpickleOptions): unknown {
  let pos = 0;
  let opAt = 0;
  const stack: unknown[] = [];
  const marks: number[] = [];
  const memo = new Map<number, unknown>();
  const fail = (what: string): never => o.fail(`${what} (byte ${opAt} of the pickle)`);
  const need = (n: number): number => {
    if (n < 0 || pos + n > data.length) fail(`the pickle ends in the middle of an opcode (${n} bytes needed, ${data.length - pos} left)`);
    const at = pos;
    pos += n;
    return at;
  };
  const pop = (): unknown => {
    if (stack.length === 0 || (marks.length > 0 && stack.length <= marks[marks.length - 1]!)) fail('an opcode needs a value the pickle never pushed');
    return stack.pop();
  };
  const top = (): unknown => {
    if (stack.length === 0) fail('an opcode needs a value the pickle never pushed');
    return stack[stack.length - 1];
  };
  const popMark = (): unknown[] => {
    const m = marks.pop();
    if (m === undefined) fail('an opcode needs a MARK the pickle never set');
    return stack.splice(m!);
  };
  const str = (n: number): string => {
    const at = need(n);
    return data.toString('utf8', at, at + n);
  };
  const global = (module: string, name: string): PickleGlobal => {
    const g = o.global(module, name);
    if (!g) fail(`it imports ${module}.${name}, which a state dict of tensors never needs`);
    return g!;
  };
  const setItems = (dict: unknown, items: unknown[]) => {
    if (!(dict instanceof PickleDict)) fail('SETITEM(S) on something that is not a dict');
    if (items.length % 2 !== 0) fail('SETITEMS with a key but no value');
    for (let i = 0; i < items.length; i += 2) {
      const key = items[i];
      if (typeof key !== 'string' && typeof key !== 'number') fail('a dict key that is not a string or a number');
      (dict as PickleDict).entries.set(key, items[i + 1]);
    }
  };
  const append = (list: unknown, items: unknown[]) => {
    if (!Array.isArray(list)) fail('APPEND(S) on something that is not a list');
    (list as unknown[]).push(...items);
  };
  const memoIndex = (n: number): number => {
    const at = need(n);
    return n === 1 ? data[at]! : data.readUInt32LE(at);
  };

  for (;;) {
    opAt = pos;
    const op = data[need(1)]!;
    switch (op) {
      case 0x80: // PROTO
        if (data[need(1)]! > 5) fail('pickle protocol above 5');
        break;
      case 0x95: // FRAME: a length prefix only
        need(8);
        break;
      case 0x2e: {
        // STOP
        if (marks.length > 0 || stack.length !== 1) fail('the pickle stops with a malformed stack');
        if (pos !== data.length) fail("data after the pickle's STOP");
        return stack[0];
      }
      case 0x28: // MARK
        marks.push(stack.length);
        break;
      case 0x30: // POP
        pop();
        break;
      case 0x31: // POP_MARK
        popMark();
        break;
      case 0x32: // DUP
        stack.push(top());
        break;
      case 0x7d: // EMPTY_DICT
        stack.push(new PickleDict());
        break;
      case 0x64: {
        // DICT
        const d = new PickleDict();
        setItems(d, popMark());
        stack.push(d);
        break;
      }
      case 0x5d: // EMPTY_LIST
        stack.push([]);
        break;
      case 0x6c: // LIST
      case 0x74: // TUPLE
        stack.push(popMark());
        break;
      case 0x29: // EMPTY_TUPLE
        stack.push([]);
        break;
      case 0x85: // TUPLE1
      case 0x86: // TUPLE2
      case 0x87: {
        // TUPLE3
        const n = op - 0x84;
        const items: unknown[] = [];
        for (let i = 0; i < n; i++) items.unshift(pop());
        stack.push(items);
        break;
      }
      case 0x73: {
        // SETITEM
        const v = pop();
        const k = pop();
        setItems(top(), [k, v]);
        break;
      }
      case 0x75: {
        // SETITEMS
        const items = popMark();
        setItems(top(), items);
        break;
      }
      case 0x61: {
        // APPEND
        const v = pop();
        append(top(), [v]);
        break;
      }
      case 0x65: {
        // APPENDS
        const items = popMark();
        append(top(), items);
        break;
      }
      case 0x71: // BINPUT
      case 0x72: // LONG_BINPUT
        memo.set(memoIndex(op === 0x71 ? 1 : 4), top());
        break;
      case 0x94: // MEMOIZE
        memo.set(memo.size, top());
        break;
      case 0x68: // BINGET
      case 0x6a: {
        // LONG_BINGET
        const i = memoIndex(op === 0x68 ? 1 : 4);
        if (!memo.has(i)) fail(`it refers to memo entry ${i}, which was never stored`);
        stack.push(memo.get(i));
        break;
      }
      case 0x4a: // BININT
        stack.push(data.readInt32LE(need(4)));
        break;
      case 0x4b: // BININT1
        stack.push(data[need(1)]!);
        break;
      case 0x4d: // BININT2
        stack.push(data.readUInt16LE(need(2)));
        break;
      case 0x8a: {
        // LONG1: little-endian two's complement
        const n = data[need(1)]!;
        const at = need(n);
        let v = 0n;
        for (let i = n - 1; i >= 0; i--) v = (v << 8n) | BigInt(data[at + i]!);
        if (n > 0 && data[at + n - 1]! & 0x80) v -= 1n << BigInt(8 * n);
        if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < -BigInt(Number.MAX_SAFE_INTEGER)) fail(`an integer (${v}) too large for any tensor size`);
        stack.push(Number(v));
        break;
      }
      case 0x47: // BINFLOAT (big-endian)
        stack.push(data.readDoubleBE(need(8)));
        break;
      case 0x4e: // NONE
        stack.push(null);
        break;
      case 0x88: // NEWTRUE
        stack.push(true);
        break;
      case 0x89: // NEWFALSE
        stack.push(false);
        break;
      case 0x58: // BINUNICODE
        stack.push(str(data.readUInt32LE(need(4))));
        break;
      case 0x8c: // SHORT_BINUNICODE
        stack.push(str(data[need(1)]!));
        break;
      case 0x8d: {
        // BINUNICODE8
        const n = data.readBigUInt64LE(need(8));
        if (n > BigInt(data.length - pos)) fail(`a string of ${n} bytes in a pickle of ${data.length}`);
        stack.push(str(Number(n)));
        break;
      }
      case 0x55: {
        // SHORT_BINSTRING (a Python 2 str)
        const n = data[need(1)]!;
        const at = need(n);
        stack.push(data.toString('latin1', at, at + n));
        break;
      }
      case 0x43: {
        // SHORT_BINBYTES
        const n = data[need(1)]!;
        const at = need(n);
        stack.push(Buffer.from(data.subarray(at, at + n)));
        break;
      }
      case 0x42: {
        // BINBYTES
        const n = data.readUInt32LE(need(4));
        const at = need(n);
        stack.push(Buffer.from(data.subarray(at, at + n)));
        break;
      }
      case 0x63: {
        // GLOBAL: "module\nname\n"
        const line = () => {
          const end = data.indexOf(0x0a, pos);
          if (end < 0 || end - pos > 256) fail('a GLOBAL whose name never ends');
          const s = data.toString('utf8', pos, end);
          pos = end + 1;
          return s;
        };
        const module = line();
        stack.push(global(module, line()));
        break;
      }
      case 0x93: {
        // STACK_GLOBAL
        const name = pop();
        const module = pop();
        if (typeof module !== 'string' || typeof name !== 'string') fail('a STACK_GLOBAL whose module and name are not strings');
        stack.push(global(module as string, name as string));
        break;
      }
      case 0x51: // BINPERSID
        stack.push(o.persistentLoad(pop()));
        break;
      case 0x52: {
        // REDUCE: callable(*args), only for the callables the caller allows
        const args = pop();
        const fn = pop();
        if (!isGlobal(fn) || !fn.call)
          fail(`it calls ${isGlobal(fn) ? describeGlobal(fn) : 'something that is not an allowed function'}, which a state dict of tensors never needs`);
        if (!Array.isArray(args)) fail(`${describeGlobal(fn as PickleGlobal)} is called without an argument tuple`);
        stack.push((fn as PickleGlobal).call!(args as unknown[]));
        break;
      }
      case 0x62: {
        // BUILD: only a dict's instance state (an OrderedDict's _metadata), which is ignored
        pop();
        if (!(top() instanceof PickleDict)) fail('it sets the state of an object that is not a dict');
        break;
      }
      default:
        fail(`opcode ${OPNAMES[op] ?? `0x${op.toString(16).padStart(2, '0')}`}, which torch.save's state dicts never use`);
    }
  }
}

export function isGlobal(v: unknown): v is PickleGlobal {
  return typeof v === 'object' && v !== null && 'module' in v && 'name' in v && typeof (v as PickleGlobal).module === 'string';
}
