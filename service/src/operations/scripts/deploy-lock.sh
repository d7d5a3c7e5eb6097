# shellcheck shell=sh
# The deploy lock (withDeployLock in index.ts): a host-side lock per application (util-linux flock)
# put in front of the application's deploy script, run by the host's bash or sh. A deploy whose
# connection was lost keeps running on the host until its watchdog ends it, and the next deploy
# waits for it here.
# Input: the shell variable reoclo_lock holds the application id when this starts (a single-quoted
# assignment the service puts on the same line, so the deploy script's line numbers stay as they were).
# The deploy script follows this text as `(`, the script, `) 9>&-`: a subshell without the lock's
# descriptor, so nothing it leaves behind can hold the lock.
reoclo_lock="${TMPDIR:-/tmp}/reoclo-deploy-$reoclo_lock.lock"
if command -v flock >/dev/null 2>&1 && exec 9>>"$reoclo_lock"; then
  flock -n 9 || { echo "reoclo: an earlier deploy of this application is still running on this host; waiting for it to end" >&2; flock 9; }
fi
