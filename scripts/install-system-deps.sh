#!/usr/bin/env bash
# Debian packages dina needs: TTS engines for SpeechWorld, tesseract for reading ShapesWorld signs,
# a TrueType font for rendering them, sox for audio checks. Installs only what is missing.
# On a machine where you are not root, install these with your package manager instead.
set -euo pipefail
need=()
command -v flite >/dev/null || need+=(flite)
command -v festival >/dev/null || need+=(festival)
command -v text2wave >/dev/null || need+=(festival)
command -v espeak-ng >/dev/null || need+=(espeak-ng)
command -v tesseract >/dev/null || need+=(tesseract-ocr)
command -v sox >/dev/null || need+=(sox)
[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf ] || need+=(fonts-dejavu-core)
# festival voices: the default diphone voice and an HTS voice (SpeechWorld holds voices out by speaker)
for pkg in festvox-kallpc16k festvox-us-slt-hts ${DINA_EXTRA_DEBS:-}; do dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg"); done
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "dina: missing Debian packages: ${need[*]} (run as root, or install them yourself)" >&2
  exit 1
fi
echo "dina: installing Debian packages: ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
