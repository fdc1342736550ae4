#!/bin/sh
# Regenerates flotillactl's bash and zsh completions from its ArgumentParser definitions; run from the repository root (SCRATCH picks the build directory).
set -eu; s="${SCRATCH:-.build}"; swift build --scratch-path "$s" --product flotillactl >/dev/null; b="$(swift build --scratch-path "$s" --show-bin-path)/flotillactl"; "$b" --generate-completion-script bash > Contrib/completions/flotillactl.bash; "$b" --generate-completion-script zsh > Contrib/completions/_flotillactl
