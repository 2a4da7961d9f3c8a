// The published JSON Schema (spec/plan.schema.json) is the object in
// plan/src/schema.ts written out; these tests keep the file, the object and
// the TypeScript types in step, and check the schema with an independent
// validator (ajv).

import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Ajv2020 } from 'ajv/dist/2020.js';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import { prettyJson } from '../src/canonical';
import { planSchema } from '../src/schema';
import { webstackPlan } from './fixtures';

const schemaPath = fileURLToPath(new URL('../../spec/plan.schema.json', import.meta.url));
const typesPath = fileURLToPath(new URL('../src/types.ts', import.meta.url));

describe('spec/plan.schema.json', () => {
  it('is the schema object of plan/src/schema.ts (UPDATE_GOLDEN=1 rewrites it)', () => {
    const text = prettyJson(planSchema);
    if (process.env.UPDATE_GOLDEN) writeFileSync(schemaPath, text);
    expect(readFileSync(schemaPath, 'utf8')).toBe(text);
  });

  it('accepts the example plans and rejects broken ones under ajv', () => {
    const ajv = new Ajv2020({ strict: true, allowUnionTypes: true, allErrors: true });
    const validate = ajv.compile(JSON.parse(readFileSync(schemaPath, 'utf8')));
    const plan = webstackPlan();
    expect(validate(plan), JSON.stringify(validate.errors)).toBe(true);
    expect(validate({ ...plan, format_version: '1.3' })).toBe(true);
    expect(validate({ ...plan, format_version: '2.0' })).toBe(false);
    const broken: any = webstackPlan();
    broken.channels[0].invariants.rate = { per_second: 'fast', burst: 1 };
    expect(validate(broken)).toBe(false);
    expect(validate.errors?.[0].instancePath).toBe('/channels/0/invariants/rate/per_second');
  });

  it('has every field of every plan type in types.ts', () => {
    const source = ts.createSourceFile(typesPath, readFileSync(typesPath, 'utf8'), ts.ScriptTarget.ES2022, true);
    const defs = planSchema.$defs as Record<string, any>;
    // Every property name the schema declares anywhere, for fields of inline object types.
    const allProps = new Set<string>();
    const walk = (s: any) => {
      if (s && typeof s === 'object') {
        if (s.properties) for (const k of Object.keys(s.properties)) allProps.add(k);
        for (const v of Object.values(s)) walk(v);
      }
    };
    walk(planSchema);
    const propsOf = (members: ts.NodeArray<ts.TypeElement>) =>
      members.filter(ts.isPropertySignature).map((m) => (m.name as ts.Identifier).text);
    const missing: string[] = [];
    let checked = 0;
    const visitInline = (node: ts.Node, where: string) => {
      if (ts.isTypeLiteralNode(node)) {
        for (const p of propsOf(node.members)) {
          checked++;
          if (!allProps.has(p)) missing.push(`${where}.${p}`);
        }
      }
      ts.forEachChild(node, (c) => visitInline(c, where));
    };
    for (const stmt of source.statements) {
      if (ts.isInterfaceDeclaration(stmt)) {
        const name = stmt.name.text;
        if (name === 'DeploymentState') continue;
        const def = name === 'Plan' ? planSchema : defs[name];
        if (!def) {
          missing.push(`${name} (no $defs entry)`);
          continue;
        }
        for (const p of propsOf(stmt.members)) {
          checked++;
          if (!(p in (def.properties ?? {}))) missing.push(`${name}.${p}`);
        }
        stmt.members.forEach((m) => visitInline(m, name));
      } else if (ts.isTypeAliasDeclaration(stmt) && stmt.name.text === 'MessageSchema') {
        const variants = (defs.MessageSchema.oneOf as any[]).map((v) => v.properties);
        for (const member of (stmt.type as ts.UnionTypeNode).types) {
          const lit = member as ts.TypeLiteralNode;
          const kindProp = lit.members.find((m) => ts.isPropertySignature(m) && (m.name as ts.Identifier).text === 'kind') as ts.PropertySignature;
          const kind = ((kindProp.type as ts.LiteralTypeNode).literal as ts.StringLiteral).text;
          const variant = variants.find((v) => v.kind.const === kind);
          if (!variant) missing.push(`MessageSchema kind ${kind}`);
          else
            for (const p of propsOf(lit.members)) {
              checked++;
              if (!(p in variant)) missing.push(`MessageSchema(${kind}).${p}`);
            }
          lit.members.forEach((m) => visitInline(m, `MessageSchema(${kind})`));
        }
      }
    }
    expect(missing).toEqual([]);
    expect(checked).toBeGreaterThan(100);
  });
});
