/** The baseline of the HTTP path: bare graphql-yoga on node:http answering `{ __typename }`, in a process of its own. */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createSchema, createYoga } from 'graphql-yoga';

const yoga = createYoga({ schema: createSchema({ typeDefs: 'type Query { ok: Boolean }' }), logging: false });
const server = createServer(yoga);
server.listen(0, '127.0.0.1', () => process.send!({ type: 'started', url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` }));
// The bench that drives this process is gone (killed, or stopped with Ctrl-C): so is this process.
process.on('disconnect', () => process.exit(0));
process.on('message', () => server.close(() => process.exit(0)));
