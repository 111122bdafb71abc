#!/bin/sh
# Publish one item of a batch (see oncoflow.batch): copy its log, fail with its own error, or
# hard-link its staged outputs to their final paths (a plain copy across file systems).
#
# Usage: publish.sh STAGING KEY LOG STAGED FINAL [STAGED FINAL ...]
#   STAGING  the batch's staging folder        KEY    the item's key (NS001, NS001/0_CT_label1)
#   LOG      the item's per-patient log        STAGED path relative to STAGING; FINAL its target
set -eu
staging=$1 key=$2 log=$3
shift 3
mkdir -p "$(dirname "$log")"
if [ -f "$staging/$key.log" ]; then cat "$staging/$key.log" > "$log"; else : > "$log"; fi
if [ -f "$staging/$key.error" ]; then
    # the job's stderr goes to LOG too: print only what the item's log does not already hold
    grep -qxF -f "$staging/$key.error" "$log" || cat "$staging/$key.error" >&2
    exit 1
fi
while [ $# -ge 2 ]; do
    src=$staging/$1 dst=$2
    shift 2
    if [ ! -e "$src" ]; then
        echo "error: $src: the batch left no output for $key" >&2
        exit 1
    fi
    rm -rf "$dst"
    mkdir -p "$(dirname "$dst")"
    cp -al "$src" "$dst" 2>/dev/null || cp -a "$src" "$dst"
done
