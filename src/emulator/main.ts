import { createEmulator } from './emulator.ts';

/** `npm run emulator -- [port] [older|newer]`: the upstream emulator alone (default port 4010, newer format). */
const port = Number(process.argv[2] ?? 4010);
const format = process.argv[3] === 'older' ? 'older' : 'newer';
const emulator = createEmulator({ wireFormat: format });
const url = await emulator.start(port, '127.0.0.1');
console.log(`task-gateway emulator (${format} wire format) at ${url}; keys starting with "sk-" are valid`);
const stop = () => void emulator.stop().then(() => process.exit(0));
process.once('SIGINT', stop);
process.once('SIGTERM', stop);
