// The fixed shell scripts the service runs on hosts, kept as .sh files (linted by shellcheck) and
// read once at load. The header comment of each file is for its readers and is not sent.
import { readShellScript, shellQuote } from "../../ssh/wrapper";

const readScript = (name: string): string => readShellScript(new URL(`./${name}`, import.meta.url));

/**
 * The fixed command of registry login and logout: the CLI and the registry arrive base64-encoded as
 * env values, the username and password as env values of their own (masked in output); the
 * password reaches the CLI on standard input, never in an argument.
 */
export const REGISTRY_SCRIPT = readScript("registry-auth.sh");

const DEPLOY_LOCK = readScript("deploy-lock.sh");

/**
 * The deploy script inside a host-side lock per application (util-linux flock): a deploy whose
 * connection was lost keeps running on the host until its watchdog ends it, and the next deploy
 * waits for it there. The script runs in a subshell without the lock's descriptor, so nothing it
 * leaves behind can hold the lock. The application id is data: a single-quoted value on the lock's
 * first line, so the script keeps the line numbers it always had (6 and on).
 */
export function withDeployLock(applicationId: string, script: string): string {
  return `reoclo_lock=${shellQuote(applicationId)}; ${DEPLOY_LOCK}(\n${script}\n) 9>&-\n`;
}
