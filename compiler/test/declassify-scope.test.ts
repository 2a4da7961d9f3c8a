// Declassification per port and per channel, and `query` channels whose
// requests carry none of the requiring side's data (spec/policy.md, "How data
// flows"). Every refused flow is one MCL0507 at the connect at fault.

import { describe, expect, it } from 'vitest';
import { codes, compileText } from './helpers';

const PROGRAM = 'program { exec ["/bin/true"] }';

const BASE = `
labels { public < internal < secret }
type Q = { sym: string }
type P = { price: int }
protocol Prices { call price(Q) -> P }
protocol Report { call put(P) }
protocol Feed { send put(P) }
component Market { memory 96MiB label public provide api: Prices ${PROGRAM} }
component Sink { memory 96MiB label internal provide api: Report ${PROGRAM} }
component Pub { memory 96MiB label public provide api: Report ${PROGRAM} }
`;

function run(analyst: string, system: string) {
  const r = compileText(`${BASE}
component Analyst {
  memory 96MiB
  label secret
  require prices: Prices
  require out: Report
  require other: Report
  ${analyst}
  ${PROGRAM}
}
system Main {
  market = Market
  analyst = Analyst
  sink = Sink
  pub = Pub
  ${system}
}
`);
  return { r, lines: r.diagnostics.map((d) => `${d.code} ${d.message.split('\n')[0]}`) };
}

const at = (r: ReturnType<typeof compileText>, i = 0) => {
  const d = r.diagnostics[i];
  return r.program.texts.get(d.file)!.slice(d.span.start, d.span.end);
};

describe('query channels', () => {
  it('let a labelled caller use a lower-labelled read-only service', () => {
    const { r } = run('', 'connect analyst.prices -> market.api { query }\nconnect analyst.out -> pub.api { allow put }\nconnect analyst.other -> sink.api { declassifies secret -> internal }');
    // Only the report to `pub` is refused: the query to the market is not a flow down.
    expect(codes(r)).toEqual(['MCL0507']);
    expect(at(r)).toBe('connect analyst.out -> pub.api { allow put }');
  });

  it('without `query`, the request is a flow of the caller’s data, refused at that connect', () => {
    const { r } = run('', 'connect analyst.prices -> market.api\nconnect analyst.out -> sink.api { declassifies secret -> internal }\nconnect analyst.other -> sink.api { declassifies secret -> internal }');
    expect(codes(r)).toEqual(['MCL0507']);
    expect(at(r)).toBe('connect analyst.prices -> market.api');
  });

  it('still lets the responses flow back', () => {
    const r = compileText(`${BASE}
component Reader { memory 96MiB require prices: Prices ${PROGRAM} }
component Secret { memory 96MiB label secret provide api: Prices ${PROGRAM} }
system Main { reader = Reader  s = Secret  connect reader.prices -> s.api { query } }
`);
    // The secret service's responses reach the unlabelled (public) reader.
    expect(codes(r)).toEqual(['MCL0507']);
  });

  it('is refused on a channel that carries a send', () => {
    const r = compileText(`${BASE}
component Pusher { memory 96MiB label secret require feed: Feed ${PROGRAM} }
component Board { memory 96MiB label secret provide feed: Feed ${PROGRAM} }
system Main { p = Pusher  b = Board  connect p.feed -> b.feed { query } }
`);
    expect(r.diagnostics.map((d) => `${d.code} ${d.message}`)).toEqual([
      'MCL0416 `query` says the requests on this channel carry no data of the requiring side, but it carries `put`, which is a `send`',
    ]);
    expect(at(r)).toBe('query');
  });

  it('is in the plan', () => {
    const { r } = run('declassifies secret -> internal', 'connect analyst.prices -> market.api { query }\nconnect analyst.out -> sink.api\nconnect analyst.other -> sink.api');
    expect(r.diagnostics).toEqual([]);
    expect(r.plan!.channels.find((c) => c.to.instance === 'market')!.query).toBe(true);
    expect(r.plan!.channels.find((c) => c.from.port === 'out')!.query).toBeUndefined();
  });
});

describe('declassification per port', () => {
  it('applies only to what leaves through the ports named', () => {
    const ok = run('declassifies secret -> internal on out, other', 'connect analyst.prices -> market.api { query }\nconnect analyst.out -> sink.api\nconnect analyst.other -> sink.api');
    expect(ok.lines).toEqual([]);
    expect(ok.r.plan!.instances.find((i) => i.id === 'analyst')!.declassifies).toEqual([{ from: 'secret', ports: ['other', 'out'], to: 'internal' }]);
    const { r } = run('declassifies secret -> internal on out', 'connect analyst.prices -> market.api { query }\nconnect analyst.out -> sink.api\nconnect analyst.other -> sink.api');
    expect(codes(r)).toEqual(['MCL0507']);
    expect(at(r)).toBe('connect analyst.other -> sink.api');
  });

  it('reports a port the component does not have', () => {
    const { r } = run('declassifies secret -> internal on oot', 'connect analyst.prices -> market.api { query }\nconnect analyst.out -> sink.api\nconnect analyst.other -> sink.api');
    expect(r.diagnostics[0].code).toBe('MCL0402');
    expect(r.diagnostics[0].message).toBe('`Analyst` has no port `oot`');
    expect(r.diagnostics[0].hint).toBe('did you mean `out`?');
  });

  it('does not declassify a label twice: the instance-wide and the port declarations are one set', () => {
    const { r } = run('declassifies secret -> internal on out\ndeclassifies internal -> public', 'connect analyst.prices -> market.api { query }\nconnect analyst.out -> pub.api\nconnect analyst.other -> sink.api');
    // secret becomes internal through `out`, not public: `pub` would receive internal data.
    expect(codes(r)).toEqual(['MCL0507', 'MCL0507']);
  });
});

describe('declassification per channel', () => {
  it('applies to what that channel delivers', () => {
    const { lines, r } = run('', 'connect analyst.prices -> market.api { query }\nconnect analyst.out -> sink.api { declassifies secret -> internal }\nconnect analyst.other -> sink.api { declassifies secret -> internal }');
    expect(lines).toEqual([]);
    expect(r.plan!.channels.find((c) => c.from.port === 'out')!.declassifies).toEqual([{ from: 'secret', to: 'internal' }]);
    const bad = run('', 'connect analyst.prices -> market.api { query }\nconnect analyst.out -> sink.api { declassifies secret -> internal }\nconnect analyst.other -> sink.api');
    expect(codes(bad.r)).toEqual(['MCL0507']);
    expect(at(bad.r)).toBe('connect analyst.other -> sink.api');
  });

  it('says in the witness that the channel declassified', () => {
    const { r } = run('', 'connect analyst.prices -> market.api { query }\nconnect analyst.out -> pub.api { declassifies secret -> internal }\nconnect analyst.other -> sink.api { declassifies secret -> internal }');
    expect(codes(r)).toEqual(['MCL0507']);
    expect(JSON.stringify(r.plan?.checks ?? r.diagnostics)).toContain('declassified from secret by the channel');
  });

  it('is checked like a component declassification', () => {
    const up = run('', 'connect analyst.prices -> market.api { query }\nconnect analyst.out -> sink.api { declassifies internal -> secret }\nconnect analyst.other -> sink.api { declassifies secert -> internal }');
    expect(codes(up.r)).toContain('MCL0418');
    expect(codes(up.r)).toContain('MCL0210');
  });
});
