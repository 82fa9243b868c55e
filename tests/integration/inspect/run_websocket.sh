#!/usr/bin/env bash
# The inspect suite's WebSocket cases alone (seconds, same namespace setup
# as run.sh): the fast killer of the WebSocket mutants.
set -euo pipefail
exec "$(dirname "$0")/run.sh" -k websocket
