# Sourced by tests/targets.sh and tests/platforms.sh (from the top of the clone): what the two
# share: messages, the command line (target names, --list, --help), the results table, the
# sum of the `test result:` lines of a log, and the loop over the selected targets.
#
# The caller sets, before `parse_targets`:
#   OUT              where the table (results.txt) and each target's NAME.log go
#   ALL_TARGETS      every target name, for --list
#   DEFAULT_TARGETS  the targets run when none is named
#   MODE             the suffix of a name that asks for less (":build", ":check")
#   TABLE_FORMAT     the printf format of one table line
#   JOBS             1 where targets may run at once: `--jobs=N` then sets it (run_selected)
# and defines `target_info NAME` (dies on an unknown name) and `run_target NAME LESS`, which
# prints the target's table line with `table_row` and fails when the target failed (LESS is
# 1 when the name had the MODE suffix).

say() { printf '==> %s\n' "$*" >&2; }
die() { printf '%s: %s\n' "${0##*/}" "$*" >&2; exit 2; }

# Reads the script's arguments into SELECTED (names, each maybe with MODE), or prints the
# target list or the script's opening comment (its help) and exits. Unknown names and
# options fail before anything runs.
parse_targets() {
  local arg
  SELECTED=()
  for arg in "$@"; do
    case $arg in
      --list) printf '%s\n' "${ALL_TARGETS[@]}"; exit 0 ;;
      -h | --help) awk 'NR > 1 && !/^#/ { exit } NR > 1' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
      --jobs=*)
        [ -n "${JOBS:-}" ] || die "unknown option '$arg': these targets share one build directory"
        JOBS=${arg#--jobs=}
        [[ $JOBS =~ ^[1-9][0-9]*$ ]] || die "--jobs takes a number of targets, 1 or more, not '$JOBS'" ;;
      -*) die "unknown option '$arg'" ;;
      *) SELECTED+=("$arg") ;;
    esac
  done
  [ ${#SELECTED[@]} -gt 0 ] || SELECTED=("${DEFAULT_TARGETS[@]}")
  for arg in "${SELECTED[@]}"; do target_info "${arg%"$MODE"}"; done
}

# One line of the table, also appended to $OUT/results.txt.
table_row() {
  local line
  # shellcheck disable=SC2059 # the caller's format
  line=$(printf "$TABLE_FORMAT" "$@")
  printf '%s\n' "$line" | tee -a "$OUT/results.txt"
}

# Starts the table: which command, when and where (and $1 after that), then the header line
# of the columns named in the rest of "$@".
table_start() {
  local where=$1
  shift
  mkdir -p "$OUT"
  {
    echo "# ${0#./} ${SELECTED[*]}"
    echo "# $(date -u '+%Y-%m-%d %H:%M UTC'); $(uname -srm); $(nproc) cores;" \
      "$(. /etc/os-release && echo "$PRETTY_NAME")$where"
  } | tee -a "$OUT/results.txt"
  table_row "$@"
}

# Prints "PASSED FAILED IGNORED": the sums of every `test result:` line in the files "$@"
# (unit tests, each integration test, doctests).
count_tests() {
  awk '/^test result:/ {
      for (i = 1; i <= NF; i++) {
        if ($(i) ~ /^passed/) p += $(i-1); if ($(i) ~ /^failed/) f += $(i-1);
        if ($(i) ~ /^ignored/) g += $(i-1) }
    } END { print p + 0, f + 0, g + 0 }' "$@"
}

# Runs `run_target` for every selected target, JOBS at a time (1 if unset), and sets
# FAILURES to the number that failed (each named with its log). Each target runs in a
# subshell of its own, so what `run_target` sets is not seen here: it writes what it
# found to its log and its table line. Several at once only where each target builds in
# a directory of its own (cargo locks a build directory for the whole `cargo test`).
run_selected() {
  local arg name less finished status
  local -A running=() # pid -> target name
  FAILURES=0
  for arg in "${SELECTED[@]}" ""; do
    # Wait for a free slot, or at the end (the "" above) for every target still running.
    while [ ${#running[@]} -gt 0 ] && { [ -z "$arg" ] || [ ${#running[@]} -ge "${JOBS:-1}" ]; }; do
      status=0
      wait -n -p finished "${!running[@]}" || status=$?
      if [ "$status" != 0 ]; then
        FAILURES=$((FAILURES + 1))
        echo "    see $OUT/${running[$finished]}.log" >&2
      fi
      unset "running[$finished]"
    done
    [ -n "$arg" ] || break
    name=${arg%"$MODE"} less=""
    [ "$name" != "$arg" ] && less=1
    { run_target "$name" "$less" || exit 1; } &
    running[$!]=$name
  done
}
