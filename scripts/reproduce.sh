#!/usr/bin/env bash
# Set up (scripts/setup.sh) and run the quick paper reproduction into results/quick/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/gaussnewton reproduce all --quick --out results/quick "$@"
echo "Figures, histories and report.md are in results/quick/"
