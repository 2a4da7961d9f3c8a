// Egress: a required port whose traffic leaves the system through the
// broker, declared with its destination, typed by its port's protocol and
// checked by the policies (`egress only`, `no path`, `only to`, information
// flow), compiled end to end from text; and the plan's egresses checked again
// from the plan alone.

import { describe, expect, it } from 'vitest';
import { parseDestination } from '../src/compose/egress';
import { recheckPlan } from '../src/index';
import { codes, compileText } from './helpers';

const PROGRAM = 'program { exec ["/bin/true"] }';

const source = (members: string, extra = '') => `
import std.tcp.{Stream}
import std.http.{Headers, Response}
import std.kv.{Kv}
labels { public < internal < secret }
type ChargeRequest = { method: enum { POST }, path: string(1..8KiB, pattern "/.*"), headers: Headers, body?: string(max 4KiB) }
protocol Charges { call request(ChargeRequest) -> Response }
component Relay { memory 96MiB; require smtp: Stream; provide kv: Kv; ${PROGRAM} }
component Shop { memory 96MiB; require pay: Charges; require orders: Kv; ${PROGRAM} }
${extra}
system S {
  relay = Relay
  shop = Shop
  connect shop.orders -> relay.kv
  ${members}
}
`;

const MAIL = 'egress mail: relay.smtp -> "tcp://smtp.example.com:25" { max_connections 4; connection_rate 10/s; idle_timeout 2min }';
const PAY = 'egress pay: shop.pay -> "https://api.stripe.com/v1" { rate 20/s; label internal }';

describe('egress declarations', () => {
  it('compiles into the plan with its destination, protocol, operations and limits', () => {
    const r = compileText(source(`${MAIL}\n  ${PAY}`));
    expect(r.diagnostics).toEqual([]);
    const eg = r.plan!.egresses!;
    expect(eg.map((e) => e.name)).toEqual(['mail', 'pay']);
    expect(eg[0]).toMatchObject({
      instance: 'relay',
      port: 'smtp',
      protocol: 'std.tcp.Stream',
      kind: 'tcp',
      destination: { scheme: 'tcp', host: 'smtp.example.com', port: 25 },
      connections: { max: 4, rate: { per_second: 10, burst: 10 }, idle_timeout_ms: 120_000 },
    });
    expect(eg[1]).toMatchObject({ kind: 'http', protocol: 'main.Charges', label: 'internal', destination: { scheme: 'https', host: 'api.stripe.com', port: 443, path: '/v1' } });
    expect(eg[1].ops).toEqual([{ name: 'request', kind: 'call', input: 'main.ChargeRequest', output: 'std.http.Response' }]);
    expect(r.plan!.schemas['main.ChargeRequest']).toBeDefined();
    // The port is not unwired (no MCL0406) and gets no channel.
    expect(r.plan!.instances.find((i) => i.id === 'relay')!.ports.find((p) => p.name === 'smtp')!.channels).toEqual([]);
    expect(recheckPlan(r.plan!)).toEqual([]);
  });

  it('leaves plans without egresses as they were: no field, no new check', () => {
    const r = compileText(source('').replace('require pay: Charges', 'require pay: Charges optional').replace('require smtp: Stream', 'require smtp: Stream optional'));
    expect(r.diagnostics).toEqual([]);
    expect(r.plan!.egresses).toBeUndefined();
    expect(Object.keys(r.plan!)).not.toContain('egresses');
    expect(r.plan!.checks.some((c) => c.id.startsWith('flow:egress'))).toBe(false);
  });

  it('refuses a destination that is not an absolute address, at the string (MCL0540)', () => {
    const r = compileText(source('egress mail: relay.smtp -> "smtp.example.com:25"\n  ' + PAY));
    expect(codes(r)).toEqual(['MCL0540']);
    expect(r.diagnostics[0].message).toBe('invalid egress destination: `smtp.example.com:25` is not an absolute address');
    const text = source('egress mail: relay.smtp -> "smtp.example.com:25"\n  ' + PAY);
    expect(text.slice(r.diagnostics[0].span.start, r.diagnostics[0].span.end)).toBe('"smtp.example.com:25"');
  });

  it('parses and refuses destination forms', () => {
    expect(parseDestination('tcp://[2001:db8::1]:25')).toEqual({ ok: true, destination: { scheme: 'tcp', host: '2001:db8::1', port: 25 } });
    expect(parseDestination('http://127.0.0.1:8080')).toEqual({ ok: true, destination: { scheme: 'http', host: '127.0.0.1', port: 8080, path: '/' } });
    expect(parseDestination('HTTPS://Api.Example.com/v1/')).toEqual({ ok: true, destination: { scheme: 'https', host: 'api.example.com', port: 443, path: '/v1/' } });
    const bad = (t: string) => {
      const r = parseDestination(t);
      return r.ok ? 'accepted' : r.problem;
    };
    expect(bad('tcp://smtp.example.com')).toMatch(/needs a port/);
    expect(bad('tcp://smtp.example.com:0')).toMatch(/not a port number/);
    expect(bad('tcp://smtp.example.com:70000')).toMatch(/not a port number/);
    expect(bad('tcp://h:25/x')).toMatch(/no path/);
    expect(bad('ftp://h:21')).toMatch(/not a scheme/);
    expect(bad('https://user:pw@h/')).toMatch(/user name or password/);
    expect(bad('https://h/v1?key=1')).toMatch(/no query or fragment/);
    expect(bad('https://h/v1/../admin')).toMatch(/`\.` or `\.\.`/);
    expect(bad('https://-h-/')).toMatch(/not a host name/);
    expect(bad('https://999.1.1.1/')).toMatch(/not a host name/);
    expect(bad('https:///v1')).toMatch(/no host/);
    expect(bad('/v1/charges')).toMatch(/not an absolute address/);
    expect(bad('x'.repeat(3000))).toMatch(/longer than/);
  });

  it('refuses a port of another protocol (MCL0541) and a scheme that does not fit (MCL0542)', () => {
    const kv = compileText(source('egress cache: shop.orders -> "tcp://cache.example.com:6379"'.replace('shop.orders', 'relay.smtp').replace('relay.smtp', 'shop.orders')));
    // `shop.orders` is connected already; a Kv port of its own shows MCL0541.
    expect(codes(kv)).toContain('MCL0405');
    const other = compileText(source(`${MAIL}\n  ${PAY}\n  c = Caller\n  egress cache: c.kv -> "tcp://cache.example.com:6379"`, `component Caller { memory 96MiB; require kv: Kv; ${PROGRAM} }`));
    expect(codes(other)).toEqual(['MCL0541']);
    const scheme = compileText(source(`egress mail: relay.smtp -> "https://smtp.example.com"\n  ${PAY}`));
    expect(codes(scheme)).toEqual(['MCL0542']);
    expect(scheme.diagnostics[0].hint).toBe('write a `tcp://host:port` address, or give the port `std.http.Http`');
  });

  it('refuses a name taken by an instance (MCL0543) and a provided port (MCL0544)', () => {
    expect(codes(compileText(source(`egress shop: relay.smtp -> "tcp://smtp.example.com:25"\n  ${PAY}`)))).toEqual(['MCL0543']);
    expect(codes(compileText(source(`${MAIL}\n  ${PAY}\n  egress kv: relay.kv -> "tcp://x.example.com:1"`)))).toEqual(['MCL0544']);
  });

  it('refuses a second egress on the same port', () => {
    const r = compileText(source(`${MAIL}\n  ${PAY}\n  egress mail2: relay.smtp -> "tcp://smtp2.example.com:25"`));
    expect(codes(r)).toEqual(['MCL0405']);
  });

  it('keeps an instance named `egress` an instance', () => {
    const r = compileText(source(`${MAIL}\n  ${PAY}\n  egress = Relay\n  connect shop.orders -> egress.kv`.replace('connect shop.orders -> egress.kv', 'egress mail3: egress.smtp -> "tcp://smtp.example.com:25"')));
    expect(r.diagnostics).toEqual([]);
    expect(r.plan!.instances.map((i) => i.id)).toContain('egress');
  });
});

describe('egress in the policies', () => {
  it('`egress only` lists the egresses (MCL0545 for another, MCL0546 for an unknown name)', () => {
    const ok = compileText(source(`${MAIL}\n  ${PAY}\n  policy { egress only [mail, pay] }`));
    expect(ok.diagnostics).toEqual([]);
    expect(ok.plan!.checks.find((c) => c.id === 'exposure:egress-only')).toMatchObject({ status: 'pass' });
    expect(ok.plan!.policies!.rules).toContainEqual({ kind: 'egress_only', scope: '', names: ['mail', 'pay'] });
    expect(recheckPlan(ok.plan!)).toEqual([]);
    const extra = compileText(source(`${MAIL}\n  ${PAY}\n  policy { egress only [mail] }`));
    expect(codes(extra)).toEqual(['MCL0545']);
    expect(extra.diagnostics[0].related?.[0].message).toBe('egress `pay` is declared here');
    const unknown = compileText(source(`${MAIL}\n  ${PAY}\n  policy { egress only [mail, pey] }`));
    expect(codes(unknown)).toEqual(['MCL0545', 'MCL0546']);
    expect(unknown.diagnostics.find((d) => d.code === 'MCL0546')!.hint).toBe('Did you mean `pay`?');
  });

  it('`no path x -> egress` follows the channels to the sending instance', () => {
    const r = compileText(source(`${MAIL}\n  ${PAY}\n  policy { no path shop -> mail }`));
    expect(codes(r)).toEqual(['MCL0503']);
    expect(r.diagnostics[0].message).toBe('`no path shop -> mail` is violated: shop -> relay -> outside, which sends through egress `mail`.');
    const ok = compileText(source(`${MAIL}\n  ${PAY}\n  policy { no path relay -> pay }`));
    expect(ok.diagnostics).toEqual([]);
    expect(ok.plan!.checks.find((c) => c.id === 'reach:no-path:relay->egress:pay')).toMatchObject({ status: 'pass' });
  });

  it('`only to` counts an egress as a destination', () => {
    const ok = compileText(source(`${MAIL}\n  ${PAY}\n  policy { shop only to relay, pay }`));
    expect(ok.diagnostics).toEqual([]);
    const bad = compileText(source(`${MAIL}\n  ${PAY}\n  policy { shop only to relay }`));
    expect(codes(bad)).toEqual(['MCL0530']);
    expect(bad.diagnostics[0].message).toBe('`shop only to relay` is violated: `shop` sends to the outside through egress `pay`, which is not in the list.');
  });

  it('needs a declassification for labelled data to leave (MCL0547), as an exposure does', () => {
    const labelled = (decl: string) => source(`${MAIL}\n  ${PAY}`, '').replace('component Relay { memory 96MiB;', `component Relay { memory 96MiB; label secret; ${decl}`).replace('component Shop { memory 96MiB;', 'component Shop { memory 96MiB; label secret;');
    const bad = compileText(labelled(''));
    expect(codes(bad)).toEqual(['MCL0547', 'MCL0547']);
    expect(bad.diagnostics[0].message).toBe('Data labelled `secret` leaves through egress `mail`, whose destination is at `public`: relay -> outside.');
    expect(bad.diagnostics[1].message).toMatch(/leaves through egress `pay`, whose destination is at `internal`/);
    // What relay holds (its own secret data, and what shop sends it) leaves as public; what goes back to shop as internal.
    const declassified = compileText(
      labelled('declassifies secret -> public on smtp; declassifies internal -> public on smtp; declassifies secret -> internal on kv;').replace(
        'component Shop { memory 96MiB; label secret;',
        'component Shop { memory 96MiB; label internal;',
      ),
    );
    expect(declassified.diagnostics).toEqual([]);
    expect(declassified.plan!.checks.find((c) => c.id === 'flow:egress:mail')).toMatchObject({ status: 'pass' });
    expect(recheckPlan(declassified.plan!)).toEqual([]);
  });

  it('`no flow L -> outside` covers what leaves through an egress', () => {
    const r = compileText(source(`${MAIL}\n  ${PAY}\n  policy { no flow internal -> outside }`).replace('component Relay { memory 96MiB;', 'component Relay { memory 96MiB; label internal; declassifies internal -> public on kv;').replace('{ rate 20/s; label internal }', '{ rate 20/s }'));
    expect(codes(r)).toEqual(['MCL0547', 'MCL0508']);
    expect(r.diagnostics.find((d) => d.code === 'MCL0508')!.message).toBe('`no flow internal -> outside` is violated: relay -> outside.');
  });

  it('names an egress of a nested system by a dotted path from an outer rule', () => {
    const inner = `system Mailing {\n  relay = Relay\n  ${MAIL}\n  export kv = relay.kv\n}\n`;
    const text = `
import std.tcp.{Stream}
import std.kv.{Kv}
component Relay { memory 96MiB; require smtp: Stream; provide kv: Kv; ${PROGRAM} }
component App { memory 96MiB; require mail: Kv; ${PROGRAM} }
${inner}
system S {
  m = Mailing
  app = App
  connect app.mail -> m.kv
  policy { egress only [m.mail]; no path app -> m.mail }
}
`;
    const r = compileText(text);
    expect(codes(r)).toEqual(['MCL0503']);
    expect(r.diagnostics[0].message).toBe('`no path app -> m.mail` is violated: app -> m.relay -> outside, which sends through egress `m.mail`.');
  });
});
