# shellcheck shell=sh
# The reoclo/checkout action's script (CHECKOUT_SCRIPT in script.ts, which the action sends as the
# command of one operation; the host runs it with bash or sh). Every parameter arrives as an env value,
# base64-encoded (checkoutEnv in script.ts): REOCLO_CO_URL, REOCLO_CO_SERVER, REOCLO_CO_PATH,
# REOCLO_CO_KIND, REOCLO_CO_REF, REOCLO_CO_DEPTH, REOCLO_CO_CLEAN, REOCLO_CO_TAGS, REOCLO_CO_FILTER,
# REOCLO_CO_CONE, REOCLO_CO_SUBMODULES, REOCLO_CO_LFS, REOCLO_CO_PERSIST and, when set,
# REOCLO_CO_SPARSE; REOCLO_GIT_TOKEN as is (masked in output), when there is one.
# Ends with the line RESULT_LINE reads back. Exit status: 2 for a parameter it refuses, 127 without
# git (or git-lfs when lfs is asked for), otherwise non-zero on any failure (set -e).
set -e
say() { printf 'reoclo-checkout: %s\n' "$*"; }
fail() { printf 'reoclo-checkout: %s\n' "$1" >&2; [ $# -lt 2 ] || exit "$2"; exit 1; }
arg() { printf '%s' "$1" | base64 -d; }

url=$(arg "$REOCLO_CO_URL"); server=$(arg "$REOCLO_CO_SERVER"); dir=$(arg "$REOCLO_CO_PATH")
kind=$(arg "$REOCLO_CO_KIND"); ref=$(arg "$REOCLO_CO_REF"); depth=$(arg "$REOCLO_CO_DEPTH")
clean=$(arg "$REOCLO_CO_CLEAN"); tags=$(arg "$REOCLO_CO_TAGS"); filter=$(arg "$REOCLO_CO_FILTER")
cone=$(arg "$REOCLO_CO_CONE"); submodules=$(arg "$REOCLO_CO_SUBMODULES"); lfs=$(arg "$REOCLO_CO_LFS")
persist=$(arg "$REOCLO_CO_PERSIST"); basic=

# The action checked these already; the server side does not take them on trust.
case "$dir" in /*) ;; *) fail "path must be absolute" 2 ;; esac
case "/$dir/" in */../* | */./*) fail "path must not contain . or .. components" 2 ;; esac
case "$ref" in -*) fail "ref must not start with -" 2 ;; esac
case "$url" in http://* | https://*) ;; *) fail "repository URL must be http(s)" 2 ;; esac
case "$depth" in '' | *[!0-9]*) fail "depth must be a number" 2 ;; esac
# clean: true removes the path: never the account's home or a directory holding it.
home=$(cd ~ 2>/dev/null && pwd -P) || home=
if [ "$clean" = true ] && [ -n "$home" ]; then
  case "$home/" in "$dir"/*) fail "path $dir holds this account's home directory; check out into a directory of its own" 2 ;; esac
fi

command -v git >/dev/null 2>&1 || fail "git is not installed on this server (install git, then re-run)" 127
# git reads the token from its environment, for URLs under the server only (git-config(1),
# GIT_CONFIG_COUNT): never in argv, in the remote URL or, unless asked, in .git/config.
export GIT_TERMINAL_PROMPT=0 GCM_INTERACTIVE=never
unset GIT_ASKPASS SSH_ASKPASS
if [ -n "$REOCLO_GIT_TOKEN" ]; then
  basic=$(printf 'x-access-token:%s' "$REOCLO_GIT_TOKEN" | base64 | tr -d '\n')
  export GIT_CONFIG_COUNT=1 GIT_CONFIG_KEY_0="http.$server/.extraheader" GIT_CONFIG_VALUE_0="AUTHORIZATION: basic $basic"
fi
[ "$lfs" = true ] || export GIT_LFS_SKIP_SMUDGE=1

if [ "$clean" = true ] && [ -e "$dir" ]; then
  say "removing $dir"
  rm -rf -- "$dir" || fail "could not remove $dir"
fi
mkdir -p -- "$dir" || fail "could not create $dir"
cd -- "$dir"
if [ -d .git ]; then
  origin=$(git config --local --get remote.origin.url || true)
  shown=$(printf '%s' "$origin" | sed 's#//[^/@]*@#//#')
  [ "$origin" = "$url" ] || fail "$dir holds another repository ($shown); use clean: true to replace it"
  say "reusing the repository in $dir"
elif [ -n "$(ls -A)" ]; then
  fail "$dir is not empty and not a git repository; use clean: true to replace its contents"
else
  { git init -q . && git remote add origin "$url"; } || fail "could not create a repository in $dir"
fi
# A token kept by an earlier checkout goes, unless it is asked for again below.
git config --local --unset-all "http.$server/.extraheader" 2>/dev/null || true

unreadable() { fail "could not read $url: check that the token can read the repository"; }
fetch() {
  set -- --no-progress --prune --no-recurse-submodules "$@"
  if [ "$depth" != 0 ]; then set -- "--depth=$depth" "$@"
  elif [ -f .git/shallow ]; then set -- --unshallow "$@"; fi
  [ -z "$filter" ] || set -- "--filter=$filter" "$@"
  if [ "$tags" = true ]; then set -- --tags "$@"; else set -- --no-tags "$@"; fi
  git -c protocol.version=2 fetch "$@" || fail "could not fetch $ref from $url: check that the token can read the repository and that the ref exists"
}
if [ "$kind" = default ]; then
  head=$(git ls-remote --symref origin HEAD) || unreadable
  ref=$(printf '%s\n' "$head" | sed -n 's/^ref: refs\/heads\/\(.*\)[[:space:]][[:space:]]*HEAD$/\1/p')
  [ -n "$ref" ] || fail "could not tell the default branch of $url"
  kind=branch
elif [ "$kind" = name ]; then
  # A branch of that name wins over a tag, as in actions/checkout; exit code 2 means "no such ref".
  if git ls-remote --exit-code origin "refs/heads/$ref" >/dev/null; then
    kind=branch
  else
    [ $? = 2 ] || unreadable
    if git ls-remote --exit-code origin "refs/tags/$ref" >/dev/null; then
      kind=tag
    else
      [ $? = 2 ] || unreadable
      fail "$url has no branch or tag named $ref"
    fi
  fi
fi
case "$kind" in
  sha) say "fetching commit $ref"; fetch origin "$ref"; target=$ref; outref=$ref ;;
  branch) say "fetching branch $ref"; fetch origin "+refs/heads/$ref:refs/remotes/origin/$ref"; target=refs/remotes/origin/$ref; outref=refs/heads/$ref ;;
  tag) say "fetching tag $ref"; fetch origin "+refs/tags/$ref:refs/tags/$ref"; target=refs/tags/$ref; outref=refs/tags/$ref ;;
  ref) say "fetching $ref"; fetch origin "+$ref:refs/remotes/reoclo/checkout"; target=refs/remotes/reoclo/checkout; outref=$ref ;;
  *) fail "unknown ref kind $kind" 2 ;;
esac

if [ -n "$REOCLO_CO_SPARSE" ]; then
  if [ "$cone" = true ]; then mode=--cone; else mode=--no-cone; fi
  arg "$REOCLO_CO_SPARSE" | git sparse-checkout set "$mode" --stdin || fail "could not set the sparse checkout patterns"
elif [ -f .git/info/sparse-checkout ]; then
  git sparse-checkout disable || fail "could not turn the sparse checkout off"
fi
if [ "$kind" = branch ]; then
  git checkout -q --force -B "$ref" "$target" -- || fail "could not check out $ref"
else
  git checkout -q --force --detach "$target" -- || fail "could not check out $ref"
fi

if [ "$submodules" != false ]; then
  if [ "$submodules" = recursive ]; then recursive=--recursive; else recursive=; fi
  if [ "$depth" = 0 ]; then shallow=; else shallow="--depth=$depth"; fi
  say "updating submodules"
  git submodule sync $recursive -q || fail "could not read the submodules' configuration"
  git -c protocol.version=2 submodule update --init --force $recursive ${shallow:+"$shallow"} || fail "could not update the submodules: check that the token can read them"
fi
if [ "$lfs" = true ]; then
  command -v git-lfs >/dev/null 2>&1 || fail "lfs is true but git-lfs is not installed on this server" 127
  say "fetching LFS objects"
  { git lfs install --local >/dev/null && git lfs pull; } || fail "could not fetch the LFS objects"
fi
if [ "$persist" = true ] && [ -n "$basic" ]; then
  # printf is a builtin: the credential reaches .git/config without appearing in any argv.
  printf '[http "%s/"]\n\textraheader = AUTHORIZATION: basic %s\n' "$server" "$basic" >> .git/config
  say "the token is kept in $dir/.git/config (persist_credentials)"
fi
sha=$(git rev-parse HEAD) || fail "could not read the checked-out commit"
say "checked out $sha ($outref) at $dir"
