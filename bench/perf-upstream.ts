/**
 * The emulator in a process of its own for `bench/performance.ts`, so that the
 * gateway's CPU and memory are measured alone. Tasks stay `processing` (their
 * progress moves 1 % every 36 s) until told to complete. Driven over IPC.
 */
import { createEmulator } from '../src/emulator/emulator.ts';

type Command = { type: 'gets' } | { type: 'complete'; ids: string[] } | { type: 'stop' };

const emulator = createEmulator({ queuedMs: 0, processingMs: 3_600_000, sweepIntervalMs: 3_600_000 });
const url = await emulator.start();
process.send!({ type: 'started', url });
// The bench that drives this process is gone (killed, or stopped with Ctrl-C): so is this process.
process.on('disconnect', () => process.exit(0));
process.on('message', (command: Command) => {
  if (command.type === 'gets') {
    let gets = 0;
    for (const count of emulator.stats.gets.values()) gets += count;
    process.send!({ type: 'gets', gets });
  } else if (command.type === 'complete') {
    for (const id of command.ids) emulator.pin(id, 'completed', 100);
    process.send!({ type: 'completed' });
  } else {
    void emulator.stop().then(() => process.exit(0));
  }
});
