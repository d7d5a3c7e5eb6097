# shellcheck shell=sh
# The remote wrapper: every command the service runs on a host goes through it (service/src/ssh/wrapper.ts,
# which documents the protocol). Run by POSIX sh as
#   sh -c "<this file>" reoclo-exec HEADER_MAGIC WATCHDOG_MARGIN_SECONDS
# with the SSH channel as stdin: the request header (operation id, timeout, grace, base64 working directory,
# env script and command), then control lines (`cancel`) until EOF.
# Args: $1 the header's first line to expect, $2 the watchdog's extra seconds (constants of wrapper.ts).
# Exit status: the command's own (128+signal when killed); 2 for a header it does not understand, 127
# without setsid, 1 when the command cannot be set up.
header_magic=$1 watchdog_margin=$2
login_umask=$(umask)
umask 077  # the temp dir and its files (env values, command) are readable by this user only
fail() { printf 'reoclo: %s\n' "$1" >&2; exit "${2:-1}"; }
# printf is a builtin, so base64 text reaches base64 -d through a pipe and never appears in argv.
decode() { printf '%s\n' "$1" | base64 -d; }

# A header cut short means the service gave up before sending it: nothing is run.
IFS= read -r magic || exit 0
[ "$magic" = "$header_magic" ] || fail "this host got a request header it does not understand" 2
read -r op timeout grace && IFS= read -r wd64 && IFS= read -r env64 && IFS= read -r cmd64 || exit 0
case "$op" in '' | *[!0-9a-f-]*) fail "malformed operation id in the request header" 2 ;; esac
case "$timeout$grace" in '' | *[!0-9]*) fail "malformed timeout in the request header" 2 ;; esac

command -v setsid >/dev/null 2>&1 || fail "setsid is not installed on this host (it is part of util-linux)" 127
runner=$(command -v bash || command -v sh)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/reoclo-$op.XXXXXX") || fail "could not create a temporary directory"
if ! { decode "$env64" >"$tmp/env" && decode "$cmd64" >"$tmp/command"; }; then
  rm -rf -- "$tmp"
  fail "could not write the command to $tmp"
fi
if [ -n "$wd64" ]; then
  wd=$(decode "$wd64"; echo .) && wd=${wd%.}  # the sentinel keeps trailing newlines that $(...) strips
  # The directory is data in a quoted variable; CDPATH could send a relative path elsewhere and print it,
  # and cd takes a bare "-" as $OLDPWD even after "--", so a relative path gets an explicit "./".
  case "$wd" in /*) dir=$wd ;; *) dir=./$wd ;; esac
  if ! CDPATH='' cd -- "$dir" 2>/dev/null; then
    rm -rf -- "$tmp"
    [ -e "$wd" ] && fail "working directory $wd is not an accessible directory"
    fail "working directory $wd does not exist"
  fi
fi

# Not a group leader (no job control here), so setsid does not fork: $! is the new session's pgid.
# The runner sources the env script itself, so names like PATH or tmp never touch this wrapper, and
# deletes it at once (rm by the path resolved here, as PATH may have changed) so no secret outlives a crash.
# shellcheck disable=SC2016 # the runner's own shell expands these, not this one
launch='. "$1"; "$3" -f -- "$1"; exec "$0" "$2"'
umask "$login_umask"  # files the command creates get the account's usual modes
setsid "$runner" -c "$launch" "$runner" "$tmp/env" "$tmp/command" "$(command -v rm)" </dev/null &
pid=$!

# TERM the whole group, give it the grace period, then KILL whatever is left.
kill_tree() {
  # dash's kill takes no "--"; "-pgid" addresses the group (or the pid alone, before its setsid ran).
  kill -TERM "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || return 0
  n=0
  while [ "$n" -lt "$((grace * 10))" ] && kill -0 "-$pid" 2>/dev/null; do
    sleep 0.1
    n=$((n + 1))
  done
  kill -KILL "-$pid" 2>/dev/null
}

# Control reader. Async lists get /dev/null as stdin in a non-interactive shell, so hand it the channel as fd 3;
# it and the watchdog write nothing, and must not hold the channel's stdout/stderr open after the command ends.
exec 3<&0
(while IFS= read -r line; do [ "$line" = cancel ] && { kill_tree; exit 0; }; done) <&3 >/dev/null 2>&1 &
reader=$!
# Watchdog: the backstop for when the service is gone, firing after timeout + grace + a margin. It runs in a
# session of its own (setsid does not fork here, so $! is its pgid): ending it is one kill of that group, sleep
# included, with no trap to race against (a trap-based version could miss its sleep and hang the wrapper).
# shellcheck disable=SC2016 # expanded by the watchdog's shell, from its own arguments
setsid sh -c 'sleep "$1" && kill -TERM "-$2" 2>/dev/null && sleep "$3" && kill -KILL "-$2" 2>/dev/null' \
  reoclo-watchdog "$((timeout + grace + watchdog_margin))" "$pid" "$grace" </dev/null >/dev/null 2>&1 3<&- &
watchdog=$!
exec 3<&-

wait "$pid" 2>/dev/null  # the command keeps its own stderr; this only silences dash's "Terminated" notice
code=$?
# The command is done: TERM what it left in its group now and KILL it after the grace from a detached helper,
# so a leftover background job neither delays the result nor outlives the operation.
if kill -TERM "-$pid" 2>/dev/null; then
  (sleep "$grace"; kill -KILL "-$pid" 2>/dev/null) </dev/null >/dev/null 2>&1 &
fi
kill "$reader" 2>/dev/null
# Both the pid and the group: a watchdog that has not reached its setsid yet has no group to signal.
kill -TERM "$watchdog" "-$watchdog" 2>/dev/null
wait "$reader" "$watchdog" 2>/dev/null  # reap them here rather than leave it to init
rm -rf -- "$tmp"
exit "$code"
