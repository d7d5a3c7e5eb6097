# shellcheck shell=sh
# Registry login and logout on a host (REGISTRY_SCRIPT in index.ts; credentials/registry-auth.ts runs
# it), run by the host's bash or sh as the command of a registry_login or registry_logout operation.
# Env, base64-encoded: REOCLO_REGISTRY_CLI (docker or podman), REOCLO_REGISTRY (the registry),
# REOCLO_REGISTRY_ACTION (login or logout). Env as is, for login only: REOCLO_REGISTRY_USERNAME and
# REOCLO_REGISTRY_PASSWORD (masked in output; the password reaches the CLI on stdin, never in argv).
# Exit status: the CLI's; 2 for an unsupported CLI or invalid registry, 127 when the CLI is missing.
arg() { printf '%s' "$1" | base64 -d; }
cli=$(arg "$REOCLO_REGISTRY_CLI"); registry=$(arg "$REOCLO_REGISTRY"); action=$(arg "$REOCLO_REGISTRY_ACTION")
case "$cli" in docker | podman) ;; *) echo "reoclo: unsupported container CLI $cli" >&2; exit 2 ;; esac
case "$registry" in '' | -*) echo "reoclo: invalid registry" >&2; exit 2 ;; esac
command -v "$cli" >/dev/null 2>&1 || { echo "reoclo: $cli is not installed on this server (the server's container CLI setting says $cli)" >&2; exit 127; }
if [ "$action" = login ]; then
  printf '%s' "$REOCLO_REGISTRY_PASSWORD" | "$cli" login --username "$REOCLO_REGISTRY_USERNAME" --password-stdin -- "$registry"
  exit $?
fi
out=$("$cli" logout -- "$registry" 2>&1); code=$?
printf '%s\n' "$out"
# Already logged out is what was asked for.
case "$out" in *"ot logged in"*) exit 0 ;; esac
exit $code
