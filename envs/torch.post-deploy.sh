#!/usr/bin/env bash
# Snakemake runs this once in the new env, from the workflow's directory (the repository
# root): lidcseg itself, editable, with no dependencies (the env file pins them all).
set -euo pipefail
python -m pip install --no-deps --no-build-isolation -e .
