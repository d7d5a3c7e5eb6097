import {
  serversAdd,
  serversExec,
  serversList,
  serversPin,
  serversRemove,
  serversScan,
  serversShow,
  serversTest,
  serversUpdate,
} from "../../control/servers";
import type { Started } from "../../operations/start";
import { answerStarted } from "../answer";
import { callerStream, type ManagementRoute } from "./router";

// Servers (spec §11): `GET /api/servers` is the list seed 000's curl example reads. `{id}` is the
// server's id or its unique name.

export const SERVER_ROUTES: readonly ManagementRoute[] = [
  { method: "get", path: "/servers", verb: serversList, summary: "List the organisation's servers" },
  {
    method: "post",
    path: "/servers",
    verb: serversAdd,
    status: 201,
    summary: "Add a server, pinning its host key (given, or trusted on first use)",
  },
  {
    method: "post",
    path: "/servers/scan",
    verb: serversScan,
    summary: "Read the host key a host presents now, storing nothing (to compare before pinning it)",
  },
  { method: "get", path: "/servers/{id}", verb: serversShow, summary: "Show a server" },
  {
    method: "patch",
    path: "/servers/{id}",
    verb: serversUpdate,
    summary: "Change a server in place (name, address, user, key, container CLI, reboot command)",
  },
  {
    method: "delete",
    path: "/servers/{id}",
    verb: serversRemove,
    summary: "Remove a server no application uses",
  },
  {
    method: "post",
    path: "/servers/{id}/test",
    verb: serversTest,
    summary: "Connect over SSH with the pinned host key and run `id -un`",
  },
  {
    method: "post",
    path: "/servers/{id}/host-key",
    verb: serversPin,
    summary: "Pin the server's host key again, keeping its id (audited with both fingerprints)",
  },
  {
    method: "post",
    path: "/servers/{id}/exec",
    verb: serversExec,
    summary:
      "Run a command on the server: the automation API's /exec body and answers (the result within the synchronous window, else running; events with Accept: text/event-stream)",
    // The stream ends when the caller's integration key is revoked or its session ends.
    answer: (c, result, deps) => answerStarted(c, deps, callerStream(c, deps), result as Started),
  },
];
