import { HEADERS } from "@reoclo/protocol";
import {
  cancelOperationVerb,
  listOperationsVerb,
  operationEventsVerb,
  showOperationVerb,
} from "../../control/operations";
import type { OperationDetail } from "../../operations/view";
import { answerEvents, parseLastEventId } from "../answer";
import { callerStream, type ManagementRoute } from "./router";

// Operations (spec §11): what ran in the organisation, its live output, and cancelling it.

export const OPERATION_ROUTES: readonly ManagementRoute[] = [
  {
    method: "get",
    path: "/operations",
    verb: listOperationsVerb,
    summary: "List operations, newest first (filters: server, application, key, user, status, run_id, since)",
  },
  {
    method: "get",
    path: "/operations/{id}",
    verb: showOperationVerb,
    summary: "Show one operation",
  },
  {
    method: "get",
    path: "/operations/{id}/events",
    verb: operationEventsVerb,
    stream: true,
    summary: "Follow an operation's output as Server-Sent Events (resume with Last-Event-ID)",
    answer: (c, result, deps) => {
      const after = parseLastEventId(c.req.header(HEADERS.lastEventId) ?? c.req.query("last_event_id"));
      const op = { id: (result as OperationDetail).operation_id };
      return answerEvents(c, deps.svc, op, after, callerStream(c, deps));
    },
  },
  {
    method: "post",
    path: "/operations/{id}/cancel",
    verb: cancelOperationVerb,
    summary: "Cancel a running operation (idempotent)",
  },
];
