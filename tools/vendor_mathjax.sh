#!/usr/bin/env bash
# Vendor MathJax 3 into build/mathjax/ so the book typesets maths with no network.
#
# npm installs the pinned package into build/mathjax/node_modules/ (24 MB, mostly
# components the book never loads); only what a reader's browser fetches is then copied
# into build/mathjax/static/, the folder the HTML build ships (`html_static_path` and
# `mathjax_path` in _config.yml):
#   tex-mml-chtml.js             the combined component: TeX and MathML input, CHTML
#                                output, the menu and assistive MathML all in one file
#   output/chtml/fonts/woff-v2/  the CHTML fonts it loads
#   input/tex/extensions/        what \require and the autoload extension fetch on demand
#                                (\color, \cancel, \boldsymbol, mhchem, ...)
# Left out: the other combined bundles, the SVG output, a11y/ and sre/ (speech and the
# explorer load only when a reader switches them on in MathJax's menu).
# Without static/ the pages would fall back to raw TeX: run this before `jupyter-book build`.
# Idempotent: npm runs only when the pinned version is missing; static/ is rebuilt each run.
set -euo pipefail

MATHJAX_VERSION="3.2.2"
SUBSET=(tex-mml-chtml.js output/chtml/fonts/woff-v2 input/tex/extensions)

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
prefix="${repo_root}/build/mathjax"
package_json="${prefix}/node_modules/mathjax/package.json"
es5="${prefix}/node_modules/mathjax/es5"
static="${prefix}/static"

installed_version() {
    [[ -f "${package_json}" ]] || return 0
    node -p "require(process.argv[1]).version" "${package_json}" 2>/dev/null || true
}

if [[ "$(installed_version)" != "${MATHJAX_VERSION}" || ! -f "${es5}/tex-mml-chtml.js" ]]; then
    if ! command -v npm >/dev/null 2>&1; then
        echo "error: npm not found; install Node.js (>= 18) to vendor MathJax" >&2
        exit 1
    fi
    mkdir -p "${prefix}"
    npm install --prefix "${prefix}" --no-save --no-audit --no-fund --no-package-lock \
        "mathjax@${MATHJAX_VERSION}"
fi

# Copy the subset into a fresh folder, then swap it in, so static/ never holds a stale
# or half-copied tree.
rm -rf "${static}.tmp"
for path in "${SUBSET[@]}"; do
    if [[ ! -e "${es5}/${path}" ]]; then
        echo "error: ${es5}/${path} missing from mathjax ${MATHJAX_VERSION}" >&2
        exit 1
    fi
    mkdir -p "${static}.tmp/$(dirname "${path}")"
    cp -R "${es5}/${path}" "${static}.tmp/${path}"
done
rm -rf "${static}"
mv "${static}.tmp" "${static}"
echo "MathJax $(installed_version) vendored in ${static} ($(du -sh "${static}" | cut -f1))"
