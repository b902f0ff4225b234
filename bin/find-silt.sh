# Sourced by the bin/ wrappers: sets $silt to the silt binary — $SILT_BIN when set (an
# explicit choice wins), else $REPO/.build/release/silt, else silt on PATH — or exits with
# advice. Expects $repo and $tool.
if [ -n "${SILT_BIN:-}" ] && [ -x "$SILT_BIN" ]; then
    silt="$SILT_BIN"
elif [ -x "$repo/.build/release/silt" ]; then
    silt="$repo/.build/release/silt"
elif command -v silt >/dev/null 2>&1; then
    silt="$(command -v silt)"
else
    echo "$tool: cannot find the silt binary; run 'swift build -c release --product silt' in $repo, set SILT_BIN, or put silt on PATH" >&2
    exit 1
fi
