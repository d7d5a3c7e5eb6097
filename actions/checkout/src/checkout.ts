// The checkout action: settings → masks → one operation running the checkout script →
// outputs, summary and the step's outcome.
import * as core from "@actions/core";
import {
  ACTION_RETRY,
  authenticatedClient,
  AuthenticationError,
  InputError,
  runOperationStep,
  tail,
} from "@reoclo/action-kit";
import type { ExecFinishedResponse, ReocloClient } from "@reoclo/client";
import { USER_AGENT } from "./constants.js";
import { readSettings, type CheckoutSettings } from "./inputs.js";
import { CHECKOUT_SCRIPT, checkoutEnv, RESULT_LINE } from "./script.js";

export async function checkout(): Promise<void> {
  try {
    await checkoutStep();
  } catch (err) {
    core.setFailed(
      `Unexpected error in the checkout action: ${err instanceof Error ? err.message : String(err)}`,
    );
  }
}

function describeTarget(s: CheckoutSettings): string {
  const t = s.target;
  switch (t.kind) {
    case "sha":
      return t.sha;
    case "branch":
    case "tag":
    case "name":
      return t.name;
    case "ref":
      return t.ref;
    case "default":
      return "the default branch";
  }
}

async function checkoutStep(): Promise<void> {
  let settings: CheckoutSettings;
  try {
    settings = readSettings((name) => core.getInput(name), process.env);
  } catch (err) {
    if (err instanceof InputError) return core.setFailed(err.message);
    throw err;
  }
  if (settings.token) {
    core.setSecret(settings.token);
    core.setSecret(Buffer.from(`x-access-token:${settings.token}`).toString("base64"));
  }
  const what = `${settings.repository}@${describeTarget(settings)}`;
  core.info(`[reoclo] checking out ${what} into ${settings.path} on server ${settings.serverId}`);

  let client: ReocloClient;
  try {
    client = await authenticatedClient(settings, USER_AGENT);
  } catch (err) {
    if (err instanceof AuthenticationError) return core.setFailed(err.message);
    throw err;
  }
  const result = await runOperationStep({
    client,
    apiUrl: settings.apiUrl,
    attempts: ACTION_RETRY.attempts,
    idempotencyKey: settings.idempotencyKey,
    request: {
      server_id: settings.serverId,
      command: CHECKOUT_SCRIPT,
      env: checkoutEnv(settings),
      timeout_seconds: settings.timeoutSeconds,
      ...(settings.runId !== undefined ? { run_id: settings.runId } : {}),
      run_context: settings.runContext,
    },
  });
  if (!result) return;
  const line = RESULT_LINE.exec(result.stdout);
  if (result.outcome !== "completed" || result.exit_code !== 0 || !line?.[1]) {
    core.error(failureMessage(result, settings), {
      title: `Checkout of ${what} failed (${result.outcome === "completed" ? "" : `${result.outcome}, `}exit code ${result.exit_code})`,
    });
    process.exitCode = result.exit_code >= 1 && result.exit_code <= 255 ? result.exit_code : 1;
    return;
  }
  const sha = line[1];
  const ref = settings.target.kind === "sha" && settings.triggerRef ? settings.triggerRef : (line[2] ?? "");
  core.setOutput("commit_sha", sha);
  core.setOutput("commit", sha);
  core.setOutput("short_sha", sha.slice(0, 7));
  core.setOutput("ref", ref);
  core.setOutput("path", settings.path);
  if (settings.stepSummary) await writeSummary(settings, result, sha, ref);
}

function failureMessage(r: ExecFinishedResponse, s: CheckoutSettings): string {
  const output = tail(r.stderr) || tail(r.stdout);
  if (r.outcome === "timeout")
    return `${output ? output + "\n\n" : ""}The checkout took longer than ${s.timeoutSeconds} s; raise the \`timeout\` input or fetch less (depth, filter, sparse_checkout).`;
  return output || "The checkout printed nothing; see the operation on the service for details.";
}

async function writeSummary(s: CheckoutSettings, r: ExecFinishedResponse, sha: string, ref: string) {
  try {
    await core.summary
      .addHeading("Reoclo checkout", 3)
      .addTable([
        [
          { data: "Repository", header: true },
          { data: "Ref", header: true },
          { data: "Commit", header: true },
          { data: "Path", header: true },
          { data: "Server", header: true },
          { data: "Duration", header: true },
        ],
        [
          { data: s.repository },
          { data: ref },
          { data: sha.slice(0, 12) },
          { data: s.path },
          { data: s.serverId },
          { data: `${(r.duration_ms / 1000).toFixed(1)} s` },
        ],
      ])
      .write();
  } catch (err) {
    core.warning(`Could not write the step summary: ${err instanceof Error ? err.message : String(err)}`);
  }
}
