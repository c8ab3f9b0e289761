#!/usr/bin/env bash
# Screenshot of the TensorBoard dashboard (CUSTOM SCALARS tab) of a quickstart or bench folder, taken
# with headless Chromium (Debian: apt-get install chromium). Writes docs/dashboard.png by default.
#   bash docs/screenshot.sh runs/quickstart-XXXX [docs/dashboard.png] [tab] [run regex, URL-encoded; default: seed 0 and the training run]
set -euo pipefail
logdir=${1:?usage: docs/screenshot.sh LOGDIR [OUT.png] [TAB]}
out=${2:-docs/dashboard.png}
tab=${3:-custom_scalars}
port=6123
tensorboard --logdir "$logdir" --port "$port" --bind_all >/tmp/rltemp-tb.log 2>&1 &
tb=$!
trap 'kill $tb' EXIT
for _ in $(seq 60); do curl -s "http://localhost:$port" >/dev/null && break; sleep 1; done
sleep 5  # let TensorBoard read the event files
chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --disable-background-networking \
  --disable-component-update --disable-sync --no-first-run --user-data-dir="$(mktemp -d)" \
  --window-size=1600,1300 --virtual-time-budget=30000 --screenshot="$out" \
  "http://localhost:$port/?darkMode=false#$tab&_smoothingWeight=0&regexInput=${4:-s0%24%7Ctraining}" 2>/dev/null
echo "wrote $out"
