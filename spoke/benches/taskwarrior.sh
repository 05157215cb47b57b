#!/usr/bin/env bash
# Side-by-side with Taskwarrior 2.6.2 on the same 10,000 tasks: `list` and `add`, whole processes, hyperfine.
# Usage: spoke/benches/taskwarrior.sh   (needs `task` and `hyperfine`: apt-get install -y taskwarrior hyperfine)
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v task >/dev/null || { echo "taskwarrior (task) is not installed: apt-get install -y taskwarrior" >&2; exit 1; }
command -v hyperfine >/dev/null || { echo "hyperfine is not installed: apt-get install -y hyperfine" >&2; exit 1; }
cargo build --release -p heph-spoke --bin heph >/dev/null
HEPH="$PWD/target/release/heph"
W="$(mktemp -d)"
trap 'rm -rf "$W"' EXIT
python3 - "$W/tasks.json" <<'PY'
import json, sys, uuid
words = "garden invoice report kitchen call email review plan fix buy write read clean book pay renew".split()
tasks = []
for i in range(10000):
    t = {"uuid": str(uuid.UUID(int=i + 1)), "description": f"{words[i % 16]} {words[i // 16 % 16]} {words[i // 256 % 16]} {i}",
         "status": "pending", "entry": "20261101T090000Z", "project": f"project{i % 50}", "tags": [words[i % 7]]}
    if i % 3 == 0:
        t["due"] = f"202612{1 + i % 28:02d}T000000Z"
    tasks.append(t)
json.dump(tasks, open(sys.argv[1], "w"))
PY
cat > "$W/taskrc" <<RC
data.location=$W/twdata
confirmation=off
verbose=nothing
hooks=off
gc=off
color=off
RC
mkdir -p "$W/twdata"
export TASKRC="$W/taskrc"
task import "$W/tasks.json" >/dev/null 2>&1
"$HEPH" --data-dir "$W/heph" import taskwarrior "$W/tasks.json"
echo "taskwarrior pending: $(task status:pending count)   heph outstanding: $("$HEPH" --data-dir "$W/heph" list --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')"
hyperfine -N -w 3 -r 20 --export-markdown "$W/list.md" \
  -n "task list" "task rc:$W/taskrc list" \
  -n "heph list" "$HEPH --data-dir $W/heph list" \
  -n "heph list --json" "$HEPH --data-dir $W/heph list --json"
hyperfine -N -w 3 -r 20 --export-markdown "$W/add.md" \
  -n "task add" "task rc:$W/taskrc add benchmark task project:bench" \
  -n "heph task" "$HEPH --data-dir $W/heph task benchmark task --project bench"
cat "$W/list.md" "$W/add.md"
