// A small workspace shared by the feature tests: two modules, the standard
// library, a system with wiring, parameters, replicas and a policy.

import { parseFixture, type Fixture } from './harness';

export const TYPES = `/// An order placed by a customer.
type Order = {
  item: string(1..64)
  quantity: int(1..100)
}

type Receipt = {
  id: string(1..32)
}

/// Placing and cancelling orders.
protocol Orders {
  /// Places one order.
  call place(Order) -> Receipt
  send cancel(Receipt)
}
`;

export const MAIN = `import std.http.{Http}
import std.kv.{Kv}
import shop.types.{Orders, Order}

/// The front end.
component Web {
  memory 128MiB
  expose http: Http on tcp 8080
  require orders: Orders
  replicas 3
}

component App {
  memory 256MiB
  provide orders: Orders
  require db: Kv
  /// Largest quantity accepted.
  param max_quantity: int(1..100) = 10
  param greeting: string(max 16) = "hi"
}

component Db {
  provide kv: Kv
}

system Shop {
  web = Web
  app = App { max_quantity = 5 }
  db = Db
  connect web.orders -> app.orders { allow place }
  connect app.db -> db.kv
  policy {
    db only from app
  }
}

deploy Shop
`;

export const SHOP_FILES: Record<string, string> = { 'main.mcl': MAIN, 'shop/types.mcl': TYPES };

/** Offset of the n-th occurrence (0-based) of `needle` in `text`, plus `delta`. */
export function at(text: string, needle: string, delta = 0, nth = 0): number {
  let idx = -1;
  for (let i = 0; i <= nth; i++) {
    idx = text.indexOf(needle, idx + 1);
    if (idx < 0) throw new Error(`fixture has no ${nth + 1}. occurrence of ${JSON.stringify(needle)}`);
  }
  return idx + delta;
}

export function fixture(marked: string): Fixture {
  return parseFixture(marked);
}
