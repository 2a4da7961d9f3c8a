// fast-check arbitraries for valid `.mcl` programs. Each generated program
// comes with the shape the parser must produce for it, so a property test can
// check more than "no diagnostics".

import fc from 'fast-check';
import { CONTEXTUAL_KEYWORDS, RESERVED_WORDS } from '../src/index';

export interface Gen {
  text: string;
  /** A compact description of the expected tree: one entry per declaration. */
  shape: string[];
}

const reserved = new Set<string>(RESERVED_WORDS);
export const name = fc
  .oneof(
    { weight: 4, arbitrary: fc.stringMatching(/^[a-z_][a-zA-Z0-9_]{0,8}$/) },
    { weight: 1, arbitrary: fc.constantFrom(...CONTEXTUAL_KEYWORDS) },
  )
  .filter((s) => !reserved.has(s) && s !== 'on');
const typeName = fc.stringMatching(/^[A-Z][a-zA-Z0-9]{0,8}$/);

/** Whitespace and comments between tokens. */
const gap = fc.oneof(
  { weight: 6, arbitrary: fc.constant(' ') },
  { weight: 2, arbitrary: fc.constant('\n  ') },
  { weight: 1, arbitrary: fc.constant(' /* c */ ') },
  { weight: 1, arbitrary: fc.constant(' // note\n') },
  { weight: 1, arbitrary: fc.constant('\t\r\n') },
);
/** Member separators: nothing but a newline, `;` or `,`. */
const sep = fc.constantFrom('\n', '; ', ', ', ' ;\n');

const intLit = fc.oneof(fc.integer({ min: -1000, max: 100000 }).map(String), fc.constantFrom('1_000', '0x1f', '0'));
const sizeLit = fc.tuple(fc.integer({ min: 1, max: 4096 }), fc.constantFrom('B', 'KiB', 'MiB', 'GiB')).map(([n, u]) => `${n}${u}`);
const durLit = fc.tuple(fc.integer({ min: 1, max: 999 }), fc.constantFrom('ms', 's', 'min', 'h')).map(([n, u]) => `${n}${u}`);
const rateLit = fc.tuple(fc.integer({ min: 1, max: 9999 }), fc.constantFrom('s', 'min', 'h')).map(([n, u]) => `${n}/${u}`);
// JSON's escapes are mcl's except `\b`, `\f` and `\uXXXX`, which are rewritten as `\u{...}`.
const strLit = fc.string({ maxLength: 12 }).map((s) =>
  JSON.stringify(s)
    .replace(/\\u([0-9a-f]{4})/g, (_, h) => `\\u{${h}}`)
    .replace(/\\b/g, '\\u{8}')
    .replace(/\\f/g, '\\u{c}'),
);

interface TypeGen {
  text: string;
  shape: string;
}

const primitive: fc.Arbitrary<TypeGen> = fc
  .tuple(fc.constantFrom('bool', 'int', 'float', 'string', 'bytes'), fc.option(fc.constantFrom('(0..10)', '(max 64)', '(1.., pattern "^a")', '(..1KiB)', '(min 1, max 2)'), { nil: '' }))
  .map(([p, c]) => ({ text: p + c, shape: p }));

const typeExpr: fc.Memo<TypeGen> = fc.memo((n) => {
  if (n <= 1) return fc.oneof(primitive, typeName.map((t) => ({ text: t, shape: 'N' })));
  return fc.oneof(
    { weight: 3, arbitrary: primitive },
    { weight: 2, arbitrary: typeName.map((t) => ({ text: t, shape: 'N' })) },
    { weight: 1, arbitrary: typeExpr(n - 1).map((t) => ({ text: `list<${t.text}>`, shape: `L(${t.shape})` })) },
    {
      weight: 1,
      arbitrary: fc.tuple(typeExpr(n - 1), typeExpr(n - 1)).map(([k, v]) => ({ text: `map<${k.text}, ${v.text}>(max 4)`, shape: `M(${k.shape},${v.shape})` })),
    },
    {
      weight: 1,
      arbitrary: fc
        .array(fc.tuple(name, fc.boolean(), typeExpr(n - 1), sep), { maxLength: 4 })
        .map((fs) => ({ text: `{ ${fs.map(([f, o, t, s]) => `${f}${o ? '?' : ''}: ${t.text}${s}`).join('')}}`, shape: `R(${fs.map(([, , t]) => t.shape).join(',')})` })),
    },
    { weight: 1, arbitrary: fc.uniqueArray(typeName, { minLength: 1, maxLength: 4 }).map((ms) => ({ text: `enum { ${ms.join(', ')} }`, shape: `E${ms.length}` })) },
    {
      weight: 1,
      arbitrary: fc
        .array(fc.tuple(name, fc.option(typeExpr(n - 1), { nil: undefined })), { minLength: 1, maxLength: 3 })
        .map((vs) => ({ text: `union { ${vs.map(([v, t]) => (t ? `${v}: ${t.text}` : v)).join('\n ')} }`, shape: `U(${vs.map(([, t]) => t?.shape ?? '-').join(',')})` })),
    },
  );
});

const valueExpr: fc.Memo<{ text: string; shape: string }> = fc.memo((n) => {
  const leaf = fc.oneof(
    intLit.map((t) => ({ text: t, shape: 'Int' })),
    sizeLit.map((t) => ({ text: t, shape: 'Size' })),
    durLit.map((t) => ({ text: t, shape: 'Duration' })),
    rateLit.map((t) => ({ text: t, shape: 'Rate' })),
    strLit.map((t) => ({ text: t, shape: 'String' })),
    fc.constantFrom('true', 'false').map((t) => ({ text: t, shape: 'Bool' })),
    fc.constant({ text: '1.5e3', shape: 'Float' }),
    name.map((t) => ({ text: `${t}.X`, shape: 'Ref' })),
  );
  if (n <= 1) return leaf;
  return fc.oneof(
    { weight: 4, arbitrary: leaf },
    { weight: 1, arbitrary: fc.array(valueExpr(n - 1), { maxLength: 3 }).map((items) => ({ text: `[${items.map((i) => i.text).join(', ')}]`, shape: 'List' })) },
    {
      weight: 1,
      arbitrary: fc
        .array(fc.tuple(name, valueExpr(n - 1)), { maxLength: 3 })
        .map((es) => ({ text: `{ ${es.map(([k, v]) => `${k} = ${v.text}`).join(', ')} }`, shape: 'Map' })),
    },
  );
});

const member = fc.oneof(
  fc.constant(['image busybox', 'ImageMember']),
  sizeLit.map((s) => [`memory ${s}`, 'MemoryMember']),
  fc.nat(64).map((n) => [`vcpus ${n}`, 'VcpusMember']),
  name.map((l) => [`label ${l}`, 'LabelMember']),
  fc.tuple(name, name).map(([a, b]) => [`declassifies ${a} -> ${b}`, 'DeclassifyMember']),
  fc.tuple(name, typeExpr(2), fc.option(valueExpr(2), { nil: undefined }), fc.boolean()).map(([p, t, d, s]) => [
    `param ${p}: ${t.text}${d ? ` = ${d.text}` : ''}${s ? ' sensitive' : ''}`,
    'ParamDecl',
  ]),
  fc.tuple(fc.constantFrom('provide', 'require'), name, typeName, fc.boolean()).map(([d, p, t, o]) => [`${d} ${p}: ${t}${o ? ' optional' : ''}`, 'PortDecl']),
  fc.tuple(name, typeName, fc.integer({ min: 1, max: 65535 })).map(([p, t, n]) => [`expose ${p}: ${t} on tcp ${n}`, 'PortDecl']),
  fc.constantFrom('single', 'replicas 3', 'per session', 'per session pool 2 max 9').map((m) => [m, 'InstancesMember']),
  fc.constantFrom('restart always', 'restart never', 'restart on-failure', 'restart on-failure max 2').map((m) => [m, 'RestartMember']),
  fc.constant(['program { script "x.sh"; exec ["/bin/a", "b"]\n file "/a" = """t""", file "/b" from "c" env { A = "1" } }', 'ProgramMember']),
);

const component = fc
  .tuple(typeName, fc.array(fc.tuple(member, sep), { maxLength: 8 }), fc.boolean())
  .map(([n, ms, doc]) => ({
    text: `${doc ? '/// Doc.\n' : ''}component ${n} {\n${ms.map(([[t], s]) => '  ' + t + s).join('')}}`,
    shape: `component ${n}: ${ms.map(([[, k]]) => k).join(',')}`,
  }));

const typeDecl = fc.tuple(typeName, typeExpr(3)).map(([n, t]) => ({ text: `type ${n} = ${t.text}`, shape: `type ${n}: ${t.shape}` }));

const op = fc.oneof(
  fc.tuple(name, typeExpr(2), typeExpr(2)).map(([n, a, b]) => `call ${n}(${a.text}) -> ${b.text}`),
  fc.tuple(fc.constantFrom('send', 'notify'), name, typeExpr(2)).map(([k, n, a]) => `${k} ${n}(${a.text})`),
  name.map((n) => `call ${n}`),
);
const protocol = fc
  .tuple(typeName, fc.array(op, { maxLength: 4 }), fc.option(fc.constantFrom('order (a | b)* c', 'order a+ b? (c d)*'), { nil: undefined }))
  .map(([n, ops, order]) => ({
    text: `protocol ${n} {\n${ops.map((o) => '  ' + o + '\n').join('')}${order ? '  ' + order + '\n' : ''}}`,
    shape: `protocol ${n}: ${ops.length}${order ? '+order' : ''}`,
  }));

const portRef = fc.tuple(name, name).map(([a, b]) => `${a}.${b}`);
const sysMember = fc.oneof(
  fc.tuple(name, typeName, fc.option(fc.constantFrom('{ replicas 2; limit = 5 }', '{ label secret\n memory 1MiB }', '{}'), { nil: '' })).map(([i, c, s]) => [`${i} = ${c} ${s}`, 'InstanceDecl']),
  fc.tuple(portRef, portRef, fc.option(fc.constantFrom('{ rate 5/s burst 2; max_message 1KiB; timeout 2s; allow a, b; max_inflight 3 }', '{}'), { nil: '' })).map(([a, b, at]) => [`connect ${a} -> ${b} ${at}`, 'ConnectDecl']),
  fc.tuple(portRef, fc.integer({ min: 1, max: 65535 })).map(([p, n]) => [`expose ${p} on tcp ${n}`, 'ExposeDecl']),
  fc.tuple(name, portRef).map(([n, p]) => [`export ${n} = ${p}`, 'ExportDecl']),
  fc
    .array(
      fc.oneof(
        fc.tuple(name, fc.constantFrom('from', 'through'), fc.array(name, { minLength: 1, maxLength: 3 })).map(([t, m, s]) => `${t} only ${m} ${s.join(', ')}`),
        fc.tuple(fc.constantFrom('path', 'flow'), name, name).map(([k, a, b]) => `no ${k} ${a} -> ${b}`),
        fc.array(portRef, { maxLength: 3 }).map((ps) => `exposed only [${ps.join(', ')}]`),
        fc.constantFrom('budget memory 1GiB', 'budget vcpus 4'),
        // After `apart` and `label`, a first name `only` would read as an `only` rule about an instance named so.
        fc.tuple(name.filter((n) => n !== 'only'), fc.array(name, { maxLength: 2 })).map(([a, bs]) => `apart ${[a, ...bs].join(', ')}`),
        fc.tuple(name.filter((n) => n !== 'only'), fc.array(name, { maxLength: 3 })).map(([l, ts]) => `label ${l} only on [${ts.join(', ')}]`),
      ),
      { maxLength: 5 },
    )
    .map((rules) => [`policy {\n${rules.map((r) => '    ' + r + '\n').join('')}  }`, 'PolicyBlock']),
);
const system = fc
  .tuple(typeName, fc.array(fc.tuple(sysMember, sep), { maxLength: 6 }))
  .map(([n, ms]) => ({ text: `system ${n} {\n${ms.map(([[t], s]) => '  ' + t + s).join('')}}`, shape: `system ${n}: ${ms.map(([[, k]]) => k).join(',')}` }));

const misc = fc.oneof(
  fc.tuple(name, fc.array(fc.tuple(name, valueExpr(3)), { maxLength: 4 })).map(([n, ps]) => ({
    text: `target ${n} { ${ps.map(([k, v]) => `${k} ${v.text}`).join('\n ')} }`,
    shape: `target ${n}: ${ps.map(([, v]) => v.shape).join(',')}`,
  })),
  fc.tuple(name, fc.array(fc.tuple(name, valueExpr(2)), { maxLength: 3 })).map(([n, ps]) => ({
    text: `image ${n} { ${ps.map(([k, v]) => `${k} ${v.text}`).join('; ')} }`,
    shape: `image ${n}: ${ps.length}`,
  })),
  fc.array(fc.array(name, { minLength: 1, maxLength: 4 }), { maxLength: 3 }).map((chains) => ({
    text: `labels { ${chains.map((c) => c.join(' < ')).join('\n')} }`,
    shape: `labels ${chains.map((c) => c.length).join(',')}`,
  })),
  fc.tuple(typeName, fc.option(name, { nil: undefined })).map(([s, t]) => ({ text: `deploy a.${s}${t ? ` to ${t}` : ''}`, shape: `deploy ${s}${t ? ' ' + t : ''}` })),
  fc
    .tuple(typeName, fc.array(name, { maxLength: 3 }), fc.option(fc.array(fc.tuple(name, name), { maxLength: 3 }), { nil: undefined }))
    .map(([s, ts, ps]) => ({
      text: `deploy a.${s} to [${ts.join(', ')}]${ps ? ` {\n${ps.map(([i, t]) => `  place ${i} on ${t}\n`).join('')}}` : ''}`,
      shape: `deploy ${s} [${ts.join(',')}]${ps ? ` {${ps.map(([i, t]) => `${i}@${t}`).join(',')}}` : ''}`,
    })),
);

const importDecl = fc
  .tuple(fc.array(name, { minLength: 1, maxLength: 3 }), fc.option(fc.array(fc.tuple(typeName, fc.option(typeName, { nil: undefined })), { minLength: 1, maxLength: 3 }), { nil: undefined }))
  .map(([mod, items]) => `import ${mod.join('.')}.${items ? `{${items.map(([i, a]) => (a ? `${i} as ${a}` : i)).join(', ')}}` : '*'}`);

/** A valid program: imports, then declarations of every kind, separated by gaps and comments. */
export const program: fc.Arbitrary<Gen> = fc
  .tuple(fc.array(importDecl, { maxLength: 3 }), fc.array(fc.tuple(fc.oneof(typeDecl, protocol, component, system, misc), gap), { maxLength: 6 }))
  .map(([imports, decls]) => ({
    text: imports.join('\n') + '\n' + decls.map(([d, g]) => d.text + g).join('\n'),
    shape: [`imports ${imports.length}`, ...decls.map(([d]) => d.shape)],
  }));
