// The broker's side of moving a clone (spec/hosts.md, "Live migration"): what
// vm/migrate.ts's migrateClone asks of the broker that serves the clone's
// ports, over Broker.holdClone / moveClone / releaseClone.

import type { Broker } from '@mcl/broker';
import { unreadBytes, type MigrationBroker } from '../vm/migrate';

/**
 * The MigrationBroker of clone `clone` of `instance`: its ports are the unix
 * sockets `source` (port name -> the source QEMU's socket) and move to
 * `destination` (port name -> the destination QEMU's socket).
 */
export function cloneMigrationBroker(
  broker: Pick<Broker, 'holdClone' | 'cloneQueued' | 'moveClone' | 'releaseClone'>,
  instance: string,
  clone: number,
  source: Record<string, string>,
  destination: Record<string, string>,
): MigrationBroker {
  return {
    hold: () => broker.holdClone(instance, clone),
    // Drained when the broker's own write queues to the clone are empty and QEMU read everything in its sockets.
    drained: async () => broker.cloneQueued(instance, clone) === 0 && (await unreadBytes(Object.values(source))) === 0,
    move: () => broker.moveClone(instance, clone, destination),
    release: () => broker.releaseClone(instance, clone),
  };
}
