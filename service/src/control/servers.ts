import { createExecRequestSchema, execRequestSchema, type ExecRequest } from "@reoclo/protocol";
import { z } from "zod";
import { actorOf, need } from "../access/principal";
import { recordChange } from "../audit/changes";
import { ServiceError } from "../errors";
import { execCommand, type PrincipalCaller } from "../operations/start";
import {
  addServer,
  addServerInput,
  listServers,
  pinHostKey,
  pinHostKeyInput,
  removeServer,
  scanHostKey,
  scanHostKeyInput,
  showServer,
  testServer,
  updateServer,
  updateServerInput,
} from "../servers/servers";
import { parseOrThrow } from "../validation";
import { defineVerb } from "./verb";

// Servers on the control plane (spec §10, §11): list, add, change in place, re-pin, test, remove,
// and run a command as a person or an integration key. `id` is the server's id or its unique name.

const serverRef = z.object({ id: z.string().trim().min(1, "give the server's id or name") });

export const serversList = defineVerb({
  name: "servers.list",
  need: need("servers:read"),
  what: "list servers",
  input: z.object({}),
  run: async (call) => ({ items: await listServers(call.ctx, call.org), next_cursor: null }),
});

export const serversShow = defineVerb({
  name: "servers.show",
  need: need("servers:read"),
  what: "see servers",
  input: serverRef,
  run: (call, input) => showServer(call.ctx, input.id, call.org),
});

export const serversAdd = defineVerb({
  name: "servers.add",
  need: need("servers:write"),
  what: "add servers",
  input: addServerInput,
  run: (call, input) => addServer(call.ctx, { ...input, org: call.org }),
});

export const serversUpdate = defineVerb({
  name: "servers.update",
  need: need("servers:write"),
  what: "change servers",
  input: updateServerInput,
  run: (call, input) => updateServer(call.ctx, { ...input, org: call.org }),
});

export const serversPin = defineVerb({
  name: "servers.pin",
  need: need("servers:write"),
  what: "pin servers' host keys",
  input: pinHostKeyInput,
  run: (call, input) => pinHostKey(call.ctx, { ...input, org: call.org }),
});

export const serversRemove = defineVerb({
  name: "servers.remove",
  need: need("servers:write"),
  what: "remove servers",
  input: serverRef,
  run: (call, input) => removeServer(call.ctx, input.id, call.org),
});

/** Reads the key a host presents, before a person pins it (the dashboard's first step of adding). */
export const serversScan = defineVerb({
  name: "servers.scan",
  need: need("servers:write"),
  what: "read servers' host keys",
  input: scanHostKeyInput,
  run: (_call, input) => scanHostKey(input),
});

// Opening an SSH session and running `id -un` is running something on the host: developers and up.
export const serversTest = defineVerb({
  name: "servers.test",
  need: need("servers:execute"),
  what: "test servers over SSH",
  input: serverRef,
  run: (call, input) => testServer(call.ctx, input.id, call.org),
});

/**
 * The body of the automation API's /exec, with the server named by the path (`id`). A `server_id`
 * in the body is accepted if it names the same server. The timeout's upper bound is the service's
 * configured maximum, checked when the verb runs.
 */
const execInput = execRequestSchema.omit({ server_id: true }).extend({
  id: serverRef.shape.id,
  server_id: z.string().optional(),
  timeout_seconds: z.number().nullish(),
});

const timeoutFields = new Map<number, z.ZodType<number>>();
/** `timeout_seconds` as the automation API checks it, with the same sentence. */
function checkedTimeout(maxTimeoutSeconds: number, value: number | null | undefined): number {
  let field = timeoutFields.get(maxTimeoutSeconds);
  if (!field) {
    field = createExecRequestSchema({ maxTimeoutSeconds }).shape.timeout_seconds;
    timeoutFields.set(maxTimeoutSeconds, field);
  }
  return parseOrThrow(z.object({ timeout_seconds: field }), { timeout_seconds: value }).timeout_seconds;
}

/** POST /api/servers/{id}/exec: the automation API's /exec for people and integration keys. */
export const serversExec = defineVerb({
  name: "servers.exec",
  need: need("servers:execute"),
  what: "run commands on servers",
  input: execInput,
  async run(call, input) {
    const server = await showServer(call.ctx, input.id, call.org);
    if (input.server_id !== undefined && input.server_id.toLowerCase() !== server.id)
      throw new ServiceError("validation", "Invalid server_id: it names another server than the path.", {
        server_id: [`is not ${server.id}, the server of the path`],
      });
    const { id: _ref, server_id: _sameServer, ...body } = input;
    const exec: ExecRequest = {
      ...body,
      server_id: server.id,
      timeout_seconds: checkedTimeout(call.svc.ctx.config.maxTimeoutSeconds, input.timeout_seconds),
    };
    // The audit row that allowed it, linked to the operation as the access pipeline's rows are.
    const auditId = await recordChange(call.ctx, call.ctx.db, {
      action: "operation.start",
      orgId: server.org_id,
      serverId: server.id,
      details: {
        type: "exec",
        server: server.name,
        command_length: exec.command.length,
        env_count: Object.keys(exec.env ?? {}).length,
        timeout_seconds: exec.timeout_seconds,
        run_id: exec.run_id ?? null,
      },
    });
    const caller: PrincipalCaller = { orgId: server.org_id, actor: actorOf(call.principal), auditId };
    return execCommand(call.svc, caller, exec, {
      route: call.client.route ?? "servers.exec",
      input: exec,
      idempotencyKey: call.client.idempotencyKey,
      userAgent: call.client.userAgent,
    });
  },
});

export const SERVER_VERBS = [
  serversList,
  serversShow,
  serversAdd,
  serversUpdate,
  serversPin,
  serversRemove,
  serversTest,
  serversScan,
  serversExec,
] as const;
