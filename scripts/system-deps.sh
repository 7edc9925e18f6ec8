#!/usr/bin/env bash
# Installs the Debian packages some tests use (real Fashion-MNIST, headless Chromium).
# Best effort: without root or apt the tests that need them skip with a reason.
set -u
want=()
[ -d /usr/share/datasets/fashion-mnist ] || want+=(dataset-fashion-mnist)
command -v chromium >/dev/null 2>&1 || want+=(chromium)
command -v chromedriver >/dev/null 2>&1 || want+=(chromium-driver)
[ ${#want[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "system-deps: not root or no apt-get; tests needing ${want[*]} will skip" >&2
  exit 0
fi
echo "system-deps: installing ${want[*]}" >&2
(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${want[@]}") \
  >/tmp/convlens-system-deps.log 2>&1 \
  || echo "system-deps: apt-get failed (see /tmp/convlens-system-deps.log); dependent tests will skip" >&2
exit 0
