#!/usr/bin/env bash
# Vendor MathJax 3 into build/mathjax/ so the book typesets maths with no network.
#
# The HTML build points Sphinx at build/mathjax/node_modules/mathjax/es5/
# (`html_static_path` and `mathjax_path` in _config.yml). Without this folder the
# pages would fall back to nothing: run this script before `jupyter-book build`.
# Idempotent: it does nothing when the pinned version is already in place.
set -euo pipefail

MATHJAX_VERSION="3.2.2"

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
prefix="${repo_root}/build/mathjax"
package_json="${prefix}/node_modules/mathjax/package.json"
entry_point="${prefix}/node_modules/mathjax/es5/tex-mml-chtml.js"

installed_version() {
    [[ -f "${package_json}" ]] || return 0
    node -p "require(process.argv[1]).version" "${package_json}" 2>/dev/null || true
}

if [[ "$(installed_version)" == "${MATHJAX_VERSION}" && -f "${entry_point}" ]]; then
    echo "MathJax ${MATHJAX_VERSION} already vendored in ${prefix}"
    exit 0
fi

if ! command -v npm >/dev/null 2>&1; then
    echo "error: npm not found; install Node.js (>= 18) to vendor MathJax" >&2
    exit 1
fi

mkdir -p "${prefix}"
npm install --prefix "${prefix}" --no-save --no-audit --no-fund --no-package-lock \
    "mathjax@${MATHJAX_VERSION}"

if [[ ! -f "${entry_point}" ]]; then
    echo "error: ${entry_point} missing after npm install" >&2
    exit 1
fi
echo "MathJax $(installed_version) vendored in ${prefix}"
