/** The baseline of memory per socket: a bare `ws` server holding connections, in a process of its own. */
import { WebSocketServer } from 'ws';

const server = new WebSocketServer({ port: 0, host: '127.0.0.1' });
server.on('listening', () => process.send!({ type: 'started', url: `ws://127.0.0.1:${(server.address() as { port: number }).port}` }));
// The bench that drives this process is gone (killed, or stopped with Ctrl-C): so is this process.
process.on('disconnect', () => process.exit(0));
process.on('message', () => server.close(() => process.exit(0)));
