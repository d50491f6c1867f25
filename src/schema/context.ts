import type DataLoader from 'dataloader';
import { type Credential, credentialFromAuthorization } from '../upstream/credential.ts';
import { createTaskLoader } from '../upstream/task-loader.ts';
import type { TaskSnapshot } from '../upstream/task-snapshot.ts';
import type { TasksClient } from '../upstream/tasks-client.ts';

/** What every resolver receives: per-request state plus the shared services. */
export interface GatewayContext {
  /** The caller's credential; throws `UnauthenticatedError` when it brought none or a malformed one. */
  credential(): Credential;
  /** Per-request loader: task id to snapshot, `null` when the upstream answers 404. */
  taskLoader: DataLoader<string, TaskSnapshot | null>;
  /** The upstream client, shared by all requests. */
  tasksClient: TasksClient;
  /** `callback_url` for a newly submitted task, or null when `PUBLIC_URL` is unset. */
  callbackUrl(credential: Credential): string | null;
  /** Clock in ms, for `MediaFile.expired`. */
  now(): number;
}

export interface ContextServices {
  tasksClient: TasksClient;
  /** Used when a request brings no key (`UPSTREAM_API_KEY`); null refuses such requests. */
  defaultCredential: Credential | null;
  /** Reads one task for the per-request loader. Default: a plain upstream GET. */
  readTask?: (id: string, credential: Credential) => Promise<TaskSnapshot>;
  callbackUrl?: (credential: Credential) => string | null;
  now: () => number;
}

/** Builds one request's context from its `Authorization` value (header or `connectionParams`). */
export function createRequestContext(services: ContextServices, authorization: string | null | undefined): GatewayContext {
  const { tasksClient, defaultCredential, now, callbackUrl = () => null } = services;
  const readTask = services.readTask ?? ((id, credential) => tasksClient.getTask(id, credential));
  let resolved: Credential | undefined;
  const credential = () => (resolved ??= credentialFromAuthorization(authorization, defaultCredential));
  return {
    credential,
    taskLoader: createTaskLoader((id) => readTask(id, credential())),
    tasksClient,
    callbackUrl,
    now,
  };
}
