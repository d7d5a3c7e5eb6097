# shellcheck shell=sh
# The remote wrapper: every command the service runs on a host goes through it (service/src/ssh/wrapper.ts,
# which documents the protocol). Run by POSIX sh as
#   sh -c "<this file>" reoclo-exec HEADER_MAGIC WATCHDOG_MARGIN_SECONDS
# with the SSH channel as stdin: the request header, then control lines (`cancel`, `ping`) until EOF.
# Three requests (the header's second line):
#   start <op> <timeout> <grace> <keep> <cap> [ids to release…]   runs a command (then three more header lines)
#   attach <op> <stdout offset> <stderr offset>                    follows one started earlier, from those offsets
#   release <ids…>                                                 the service has settled these: their directories go
# A started command does not depend on the channel: it runs in a session of its own, and with keep > 0 its
# output is also copied (up to cap bytes per stream) into its private directory, with its exit status, so a
# service that lost the connection can attach again and resume. A keeper process removes that directory once
# the operation is released, and kills the command if no service has been heard from for keep seconds.
# Exit status: the command's own (128+signal when killed); 2 for a header it does not understand, 127
# without setsid, 1 when the command cannot be set up. An attach ends by SIGUSR2 when this host has no record of
# the operation, and by SIGUSR1 when its end was not recorded (its supervisor was killed): never by an exit code.
header_magic=$1 watchdog_margin=$2
base=${TMPDIR:-/tmp}
boot=
{ read -r boot </proc/sys/kernel/random/boot_id; } 2>/dev/null
login_umask=$(umask)
umask 077  # the operation's directory and its files (env values, command, output) are readable by this user only
fail() { printf 'reoclo: %s\n' "$1" >&2; exit "${2:-1}"; }
# printf is a builtin, so base64 text reaches base64 -d through a pipe and never appears in argv.
decode() { printf '%s\n' "$1" | base64 -d; }
number() { case $1 in '' | *[!0-9]*) return 1 ;; esac; }

# The directory of operation $1 that this account owns (a real directory, not a link): in $dir.
find_dir() {
  for dir in "$base/reoclo-$1".*; do
    [ -d "$dir" ] && [ ! -L "$dir" ] && [ -O "$dir" ] && return 0
  done
  return 1
}
# Marks operations as settled by the service; each one's keeper removes its directory.
release() {
  for id in "$@"; do
    case $id in '' | *[!0-9a-f-]*) continue ;; esac
    find_dir "$id" && : >"$dir/released"
  done
}
# Directories whose keeper is gone (the host rebooted, or the keeper was killed) are nobody's any more.
sweep() {
  set --
  for d in "$base"/reoclo-*.*; do
    { [ -d "$d" ] && [ ! -L "$d" ] && [ -O "$d" ] && [ -f "$d/keeper" ]; } || continue
    # Its keeper is gone, or is a pid of another boot now used by something else.
    { read -r k <"$d/keeper" && number "$k" && kill -0 "$k" && { [ ! -f "$d/boot" ] || [ -z "$boot" ] ||
      { read -r b <"$d/boot" && [ "$b" = "$boot" ]; }; }; } 2>/dev/null || set -- "$@" "$d"
  done
  [ $# -eq 0 ] || rm -rf -- "$@"
}
# Copy $2 from byte offset $1 on, to stdout ($3…: tail's follow options). An offset past the end of the
# file (past the cap, where the service got more than the copy holds) is no start for tail, which would
# take the file for truncated and print it all again: tail starts at the end, and the rest is skipped.
# tail's own messages are not the command's output, so they stay out of the stream.
from_copy() {
  skip=$1 file=$2
  shift 2
  size=$(wc -c 2>/dev/null <"$file") && number "$size" || size=0
  [ "$skip" -gt "$size" ] || size=$skip
  tail -c "+$((size + 1))" "$@" "$file" 2>/dev/null 7>&- 8>&- | { head -c "$((skip - size))" >/dev/null; exec cat; }
}
# TERM the whole group $1, give it the grace period, then KILL whatever is left.
kill_tree() {
  # dash's kill takes no "--"; "-pgid" addresses the group (or the pid alone, before its setsid ran).
  kill -TERM "-$1" 2>/dev/null || kill -TERM "$1" 2>/dev/null || return 0
  n=0
  while [ "$n" -lt "$((grace * 10))" ] && kill -0 "-$1" 2>/dev/null; do
    sleep 0.1
    n=$((n + 1))
  done
  kill -KILL "-$1" 2>/dev/null
}
# Control reader for group $1. Async lists get /dev/null as stdin in a non-interactive shell, so it is handed
# the channel as fd 3; it writes nothing, and must not hold the channel's stdout/stderr open after the command.
control() {
  exec 3<&0
  (
    while IFS= read -r line; do
      case $line in
        # Only a command still running is killed (and marked so): one that ended keeps its own exit status.
        cancel)
          if [ ! -e "$dir/exit" ] && kill -0 "-$1" 2>/dev/null; then
            : >"$dir/killed"
            kill_tree "$1"
          fi
          exit 0
          ;;
        ping) printf x 2>/dev/null >>"$dir/lease" ;;
      esac
    done
  ) <&3 >/dev/null 2>&1 7>&- 8>&- &
  reader=$!
  exec 3<&-
}

# A header cut short means the service gave up before sending it: nothing is run.
IFS= read -r magic || exit 0
[ "$magic" = "$header_magic" ] || fail "this host got a request header it does not understand" 2
IFS= read -r request || exit 0
set -f  # the request line is split into words, never expanded as file names
# shellcheck disable=SC2086 # split on purpose
set -- $request
set +f

case $1 in
  release)
    shift
    release "$@"
    sweep
    exit 0
    ;;
  attach)
    { [ $# -eq 4 ] && number "$3" && number "$4"; } || fail "malformed attach request" 2
    case $2 in '' | *[!0-9a-f-]*) fail "malformed operation id in the attach request" 2 ;; esac
    from_out=$3 from_err=$4 grace=5
    # No record: never started, released, given up, or run without a copy (a host without GNU tee).
    if ! find_dir "$2" || [ -e "$dir/abandoned" ] || [ ! -f "$dir/out" ]; then kill -USR2 $$; exit 125; fi
    printf x 2>/dev/null >>"$dir/lease"
    { read -r sup <"$dir/pid" && read -r pgid <"$dir/pgid"; } 2>/dev/null || { kill -USR1 $$; exit 125; }
    # Another boot: its pids are no longer its processes, and its end was never recorded.
    { [ -n "$boot" ] && [ -f "$dir/boot" ] && read -r was <"$dir/boot"; } 2>/dev/null &&
      [ "$was" != "$boot" ] && { kill -USR1 $$; exit 125; }
    { [ -f "$dir/grace" ] && read -r grace <"$dir/grace"; } 2>/dev/null
    control "$pgid"
    # Follow both copies until the supervisor is gone (it writes the exit status after the last output).
    if [ -e "$dir/exit" ]; then set --; else set -- -f "--pid=$sup" -s 0.2; fi
    from_copy "$from_out" "$dir/out" "$@" &
    out=$!
    from_copy "$from_err" "$dir/err" "$@" >&2 &
    err=$!
    wait "$out" "$err"
    kill "$reader" 2>/dev/null
    wait "$reader" 2>/dev/null
    { read -r code <"$dir/exit" && number "$code"; } 2>/dev/null || { kill -USR1 $$; exit 125; }
    # Killed on the service's request (a cancel, the timeout) rather than ended on its own: said by SIGTERM.
    [ -e "$dir/killed" ] && { kill -TERM $$; exit 125; }
    exit "$code"
    ;;
  start) ;;
  *) fail "this host got a request it does not understand" 2 ;;
esac

[ $# -ge 6 ] || fail "malformed start request" 2
op=$2 timeout=$3 grace=$4 keep=$5 cap=$6
shift 6
release "$@"
case "$op" in '' | *[!0-9a-f-]*) fail "malformed operation id in the request header" 2 ;; esac
{ number "$timeout" && number "$grace" && number "$keep" && number "$cap"; } || fail "malformed limits in the request header" 2
IFS= read -r wd64 && IFS= read -r env64 && IFS= read -r cmd64 || exit 0

command -v setsid >/dev/null 2>&1 || fail "setsid is not installed on this host (it is part of util-linux)" 127
# The copy needs GNU coreutils (tee -p; an attach needs tail --pid): without them the command runs as it always
# did, tied to its channel, and a dropped connection loses it.
[ "$keep" -eq 0 ] || tee -p /dev/null </dev/null >/dev/null 2>&1 || keep=0
runner=$(command -v bash || command -v sh)
sweep
tmp=$(mktemp -d "$base/reoclo-$op.XXXXXX") || fail "could not create a temporary directory"
dir=$tmp
if ! { decode "$env64" >"$tmp/env" && decode "$cmd64" >"$tmp/command"; }; then
  rm -rf -- "$tmp"
  fail "could not write the command to $tmp"
fi
if [ -n "$wd64" ]; then
  wd=$(decode "$wd64"; echo .) && wd=${wd%.}  # the sentinel keeps trailing newlines that $(...) strips
  # The directory is data in a quoted variable; CDPATH could send a relative path elsewhere and print it,
  # and cd takes a bare "-" as $OLDPWD even after "--", so a relative path gets an explicit "./".
  case "$wd" in /*) cwd=$wd ;; *) cwd=./$wd ;; esac
  if ! CDPATH='' cd -- "$cwd" 2>/dev/null; then
    rm -rf -- "$tmp"
    [ -e "$wd" ] && fail "working directory $wd is not an accessible directory"
    fail "working directory $wd does not exist"
  fi
fi
echo "$$" >"$tmp/pid"
[ -z "$boot" ] || echo "$boot" >"$tmp/boot"
echo "$grace" >"$tmp/grace"
# The channel's stdout and stderr, for the output copiers; every other process gets them closed.
exec 7>&1 8>&2
if [ "$keep" -gt 0 ]; then
  # The command writes into two FIFOs; a tee per stream passes it on live and into a pipe to `head`, which
  # keeps the first cap bytes. tee -p outlives a closed channel, and /dev/null keeps it writing (and the
  # command running) once both the channel and the copy are gone. head writes through stdio, which holds
  # up to a buffer's worth back from a file until it exits; stdbuf -o0 makes the copy as current as the
  # channel, so an attach resumes at once rather than when the buffer fills or the command ends.
  { : >"$tmp/out" && : >"$tmp/err" && mkfifo "$tmp/o" "$tmp/e"; } || { rm -rf -- "$tmp"; fail "could not set up the output copy"; }
  unbuffered=
  command -v stdbuf >/dev/null 2>&1 && unbuffered="stdbuf -o0"  # coreutils; without it the copy lags, nothing is lost
  # shellcheck disable=SC2086 # empty, or two words on purpose
  tee -p /dev/fd/4 /dev/null <"$tmp/o" 4>&1 1>&7 2>/dev/null 7>&- 8>&- | $unbuffered head -c "$cap" >"$tmp/out" 7>&- 8>&- &
  copy_out=$!
  # shellcheck disable=SC2086
  tee -p /dev/fd/4 /dev/null <"$tmp/e" 4>&1 1>&8 2>/dev/null 7>&- 8>&- | $unbuffered head -c "$cap" >"$tmp/err" 7>&- 8>&- &
  copy_err=$!
fi

# Not a group leader (no job control here), so setsid does not fork: $! is the new session's pgid.
# The runner sources the env script itself, so names like PATH or tmp never touch this wrapper, and
# deletes it at once (rm by the path resolved here, as PATH may have changed) so no secret outlives a crash.
# shellcheck disable=SC2016 # the runner's own shell expands these, not this one
launch='. "$1"; "$3" -f -- "$1"; exec "$0" "$2"'
rm=$(command -v rm)
umask "$login_umask"  # files the command creates get the account's usual modes
if [ "$keep" -gt 0 ]; then
  setsid "$runner" -c "$launch" "$runner" "$tmp/env" "$tmp/command" "$rm" </dev/null >"$tmp/o" 2>"$tmp/e" 7>&- 8>&- &
else
  setsid "$runner" -c "$launch" "$runner" "$tmp/env" "$tmp/command" "$rm" </dev/null 7>&- 8>&- &
fi
pid=$!
umask 077
echo "$pid" >"$tmp/pgid"
control "$pid"
# The keeper, in a session of its own (setsid does not fork here, so $! is its pgid): the backstop for a
# service that is gone. It TERMs then KILLs the command at timeout + grace + a margin; with keep > 0 it also
# does so when no service was heard from (a ping, an attach) for keep seconds, and removes the directory once
# the operation is released or given up. Ending it is one kill of its group, sleep included.
# shellcheck disable=SC2016 # expanded by the keeper's shell, from its own arguments
keeper='d=$1 pg=$2 keep=$3 deadline=$4 grace=$5
echo $$ >"$d/keeper" || exit 0
kill_tree() {
  kill -TERM "-$pg" 2>/dev/null || return 0
  n=0
  while [ "$n" -lt "$((grace * 10))" ] && kill -0 "-$pg" 2>/dev/null; do sleep 0.1; n=$((n + 1)); done
  kill -KILL "-$pg" 2>/dev/null
}
running() { [ ! -e "$d/exit" ] && kill -0 "-$pg" 2>/dev/null; }
age=0 idle=0
while sleep 1; do
  [ -d "$d" ] || exit 0
  # Released: the service has settled it. One it gave up on (lost) may still run: it goes too.
  if [ -e "$d/released" ]; then running && kill_tree; rm -rf -- "$d"; exit 0; fi
  age=$((age + 1))
  if [ -s "$d/lease" ]; then : >"$d/lease"; idle=0; else idle=$((idle + 1)); fi
  [ "$age" -eq "$deadline" ] && running && { : >"$d/killed"; kill_tree; }
  if [ "$keep" -gt 0 ] && [ "$idle" -ge "$keep" ]; then
    : >"$d/abandoned"
    running && kill_tree
    rm -rf -- "$d"
    exit 0
  fi
done'
setsid sh -c "$keeper" reoclo-keeper "$tmp" "$pid" "$keep" "$((timeout + grace + watchdog_margin))" "$grace" \
  </dev/null >/dev/null 2>&1 7>&- 8>&- &
keeper_pid=$!

wait "$pid" 2>/dev/null  # the command keeps its own stderr; this only silences dash's "Terminated" notice
code=$?
# The command is done: TERM what it left in its group now and KILL it after the grace from a detached helper,
# so a leftover background job neither delays the result nor outlives the operation.
if kill -TERM "-$pid" 2>/dev/null; then
  (sleep "$grace"; kill -KILL "-$pid" 2>/dev/null) </dev/null >/dev/null 2>&1 7>&- 8>&- &
fi
kill "$reader" 2>/dev/null
wait "$reader" 2>/dev/null  # reap it here rather than leave it to init
if [ "$keep" -gt 0 ]; then
  # The copies are complete once their readers are done; the exit status is written after them. A process that
  # left the command's group (setsid) may hold the FIFOs open for ever: the copies stop after the grace then.
  (sleep "$((grace + 2))"; kill "$copy_out" "$copy_err" 2>/dev/null) </dev/null >/dev/null 2>&1 7>&- 8>&- &
  guard=$!
  wait "$copy_out" "$copy_err"
  kill "$guard" 2>/dev/null
  echo "$code" >"$tmp/exit"
  exit "$code"
fi
# Both the pid and the group: a keeper that has not reached its setsid yet has no group to signal.
kill -TERM "$keeper_pid" "-$keeper_pid" 2>/dev/null
wait "$keeper_pid" 2>/dev/null
rm -rf -- "$tmp"
exit "$code"
