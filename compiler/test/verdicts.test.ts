// Regression tests for wrong verdicts: sources the checker once accepted (or
// rejected) wrongly, compiled end to end from text.

import { describe, expect, it } from 'vitest';
import { codes, compileText } from './helpers';

const PROGRAM = 'program { exec ["/bin/true"] }';

describe('exposed only on nested systems', () => {
  const source = (list: string) => `
import std.http.{Http}
component Web { memory 64MiB expose http: Http on tcp 8080 ${PROGRAM} }
component Admin { memory 64MiB provide http: Http ${PROGRAM} }
system Site {
  web = Web
  admin = Admin
  export api = web.http
  export console = admin.http
}
system Root {
  site = Site
  expose site.console on tcp 9090
  policy { exposed only [${list}] }
}
`;

  it('does not let an inner port name allow a second export whose inner port has the same name', () => {
    const r = compileText(source('site.http'));
    expect(codes(r)).toEqual(['MCL0517']);
    expect(r.diagnostics[0].message).toBe('System `site` has no port `http`.');
    expect(r.plan).toBeUndefined();
  });

  it('names the subsystem ports by export', () => {
    const r = compileText(source('site.api'));
    expect(r.diagnostics.map((d) => `${d.code} ${d.message}`)).toEqual([
      'MCL0504 `site.admin.http` is exposed on tcp 9090, but `exposed only [site.api]` does not list it.',
    ]);
    expect(compileText(source('site.api, site.console')).diagnostics).toEqual([]);
  });
});
