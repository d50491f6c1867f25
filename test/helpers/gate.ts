/**
 * A gate a stand-in holds its answers behind until the test opens it: overlap
 * made certain instead of hoped for inside a delay.
 */
export interface Gate {
  /** Resolves once the gate is open (at once when it already is). */
  passed(): Promise<void>;
  open(): void;
}

export function createGate(): Gate {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { passed: () => opened, open };
}
