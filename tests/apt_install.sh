# Sourced by tests/targets.sh and tests/platforms.sh (from the top of the clone): installs the
# Debian packages that are missing, with one `apt-get update` per run of the script. Uses the
# calling script's `say` and `die`; `add_architecture` clears APT_UPDATED so the next
# install updates again.
APT_UPDATED=""
apt_install() {
  local missing=() pkg
  for pkg in "$@"; do
    [[ $(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null) == *"ok installed" ]] || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  [ "$(id -u)" -eq 0 ] || die "need root to apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  if [ -z "$APT_UPDATED" ]; then
    say "apt-get update"
    apt-get update -qq
    APT_UPDATED=1
  fi
  say "apt-get install ${missing[*]}"
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}
