#!/usr/bin/env bash
# The README's first command: installs what AgentSafe needs (apt-get), builds
# a Release tree, installs it (cmake --install, /usr/local), and starts a
# session for the user who ran it.
#
# Today a session is the egress proxy alone: agentsafe-proxy on
# 127.0.0.1:3128 enforcing ~/.config/agentsafe/policy.yaml (created from the
# example on first run) and writing the session's egress.log. Point a client
# at it with HTTPS_PROXY/HTTP_PROXY (printed below). When agentsafe-launch
# is installed, the script hands over to it instead (container + fence).
#
#   sudo scripts/quickstart.sh [--listen ADDR:PORT] [--no-build]
set -euo pipefail

LISTEN=127.0.0.1:3128
BUILD=1
while [ $# -gt 0 ]; do
  case "$1" in
    --listen) LISTEN=${2:?--listen needs ADDR:PORT}; shift 2 ;;
    --no-build) BUILD=0; shift ;;
    -h|--help) sed -n 2,14p "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    --) shift; break ;;
    *) break ;;
  esac
done

if [ "$(id -u)" -ne 0 ]; then exec sudo -E "$0" "$@"; fi
SRC=$(cd "$(dirname "$0")/.." && pwd)

# The session belongs to whoever ran sudo, not to root.
USER_NAME=${SUDO_USER:-root}
USER_HOME=$(getent passwd "$USER_NAME" | cut -d: -f6)
USER_GROUP=$(id -gn "$USER_NAME")
as_user() { if [ "$USER_NAME" = root ]; then "$@"; else setpriv --reuid="$USER_NAME" --regid="$USER_GROUP" --init-groups -- "$@"; fi; }

if [ "$BUILD" -eq 1 ]; then
  echo "agentsafe: installing dependencies (apt-get)"
  "$SRC/scripts/deps.sh"
  echo "agentsafe: building (Release)"
  cmake -S "$SRC" -B "$SRC/build/release" -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$SRC/build/release" -j"$(nproc)" >/dev/null
  echo "agentsafe: installing into /usr/local"
  cmake --install "$SRC/build/release" >/dev/null
fi
PREFIX_BIN=/usr/local/bin
[ -x "$PREFIX_BIN/agentsafe-proxy" ] || PREFIX_BIN=$SRC/build/release/bin

# A launcher, when installed, starts the whole sandbox itself.
if [ -x "$PREFIX_BIN/agentsafe-launch" ]; then
  exec "$PREFIX_BIN/agentsafe-launch" "$@"
fi

CONF=${XDG_CONFIG_HOME:-$USER_HOME/.config}/agentsafe
STATE=${XDG_STATE_HOME:-$USER_HOME/.local/state}/agentsafe/sessions
POLICY=$CONF/policy.yaml
if [ ! -f "$POLICY" ]; then
  as_user mkdir -p "$CONF"
  EXAMPLE=/usr/local/share/agentsafe/policy.yaml
  [ -f "$EXAMPLE" ] || EXAMPLE=$SRC/examples/policy.yaml
  as_user cp "$EXAMPLE" "$POLICY"
  echo "agentsafe: created $POLICY from the example; edit it to allow more hosts"
fi
"$PREFIX_BIN/agentsafe" policy check "$POLICY"

ID=$(date -u +%Y%m%d-%H%M%S)-$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')
as_user mkdir -p "$STATE/$ID"
LOG=$STATE/$ID/egress.log
as_user touch "$LOG"

cat <<EOF

agentsafe: session $ID
  policy:  $POLICY   (reload after editing: kill -HUP <proxy pid>)
  log:     $LOG
  review:  agentsafe log --session $ID      (or: agentsafe log --denied)

Point a client at the proxy, for example in another terminal:
  export HTTPS_PROXY=http://$LISTEN HTTP_PROXY=http://$LISTEN
  curl -sI https://api.anthropic.com/      # allowed by the example policy
  curl -sI https://example.org/            # refused: 403, and a deny record
Press Ctrl-C to end the session.

EOF
# --user: the proxy drops root (and every capability) after binding.
exec "$PREFIX_BIN/agentsafe-proxy" --policy "$POLICY" --listen "$LISTEN" \
  --log "$LOG" --session "$ID" --user "$USER_NAME"
