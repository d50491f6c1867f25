import SchemaBuilder from '@pothos/core';
import RelayPlugin from '@pothos/plugin-relay';
import type { GatewayContext } from '../graphql/context.ts';

/** The Pothos builder: configuration only; types live one per file beside it. */
export const builder = new SchemaBuilder<{
  Context: GatewayContext;
  DefaultFieldNullability: false;
  Scalars: {
    DateTime: { Input: Date; Output: Date };
    URL: { Input: string; Output: string };
    JSONObject: { Input: Record<string, unknown>; Output: Record<string, unknown> };
  };
}>({
  defaultFieldNullability: false,
  plugins: [RelayPlugin],
  // Connections only (`recentTasks`): tasks are fetched by their own ids, so no global `node` fields.
  relay: { nodeQueryOptions: false, nodesQueryOptions: false },
});
