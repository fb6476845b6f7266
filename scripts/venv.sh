# Sourced by scripts/demo and scripts/test: make .venv and install motcua with the given extras, once per
# version of pyproject.toml (a stamp file), so repeated runs start at once and stay quiet.
ensure_venv() {
  local extras=$1 stamp
  if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
  fi
  stamp=".venv/.motcua-installed-${extras:-base}-$(sha256sum pyproject.toml | cut -c1-16)"
  if [ ! -f "$stamp" ]; then
    echo "== installing motcua${extras:+[$extras]} into .venv (first run, or pyproject.toml changed)"
    .venv/bin/python -m pip install --quiet --upgrade pip
    # The build backend's advice about editable installs is for packagers, not for someone running the demo.
    PYTHONWARNINGS=ignore .venv/bin/python -m pip install --quiet -e ".${extras:+[$extras]}"
    touch "$stamp"
  fi
}
