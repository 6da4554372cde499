/**
 * Aedes as a benchmark peer: one child process running the `aedes` broker (in-memory persistence,
 * its defaults) on a plain TCP server bound to 127.0.0.1.
 *
 * Usage: `node dist/bench/load/aedes-server.js <port>`. It prints one line `listening <port>`
 * once the socket is bound, and stops on SIGTERM/SIGINT. It runs in its own process so the
 * harness can read its RSS apart from the load generator's and so the two never share an event
 * loop.
 */
import net from 'node:net';
import { Aedes } from 'aedes';

const requestedPort = Number(process.argv[2] ?? '0');
if (!Number.isInteger(requestedPort) || requestedPort < 0 || requestedPort > 65_535) {
  process.stderr.write(`aedes-server: bad port ${process.argv[2]}\n`);
  process.exit(2);
}

const broker = await Aedes.createBroker();
const server = net.createServer(broker.handle);
server.on('error', (error) => {
  process.stderr.write(`aedes-server: ${error.message}\n`);
  process.exit(1);
});
server.listen({ host: '127.0.0.1', port: requestedPort }, () => {
  const address = server.address() as net.AddressInfo;
  process.stdout.write(`listening ${address.port}\n`);
});

function stop(): void {
  // Open client sockets would keep server.close() waiting; the harness wants a prompt exit.
  server.close();
  broker.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 1_000).unref();
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
