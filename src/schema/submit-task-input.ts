import { builder } from './builder.ts';

/** Longest `Prefer: wait` the upstream honours, in seconds. */
export const MAX_WAIT_SECONDS = 60;

export const SubmitTaskInputRef = builder.inputType('SubmitTaskInput', {
  fields: (t) => ({
    model: t.string({ required: true, description: 'The model group name, e.g. `gpt-image-2`, `veo3.1-fast`.' }),
    action: t.string({ defaultValue: 'generate', description: '`generate` (default), `edit`, `image2video`, `upscale`, ...' }),
    prompt: t.string(),
    params: t.field({ type: 'JSONObject', description: 'Model-specific parameters (`duration`, `aspect_ratio`, `image_urls`, `n`, ...).' }),
    idempotencyKey: t.string({ description: 'Sent as `Idempotency-Key`: a repeat within 24 h returns the original task.' }),
    waitSeconds: t.int({
      defaultValue: 0,
      description: `Wait up to this many seconds (0 to ${MAX_WAIT_SECONDS}) for the task to end before answering.`,
    }),
  }),
});
