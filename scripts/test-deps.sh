#!/usr/bin/env bash
# Makes sure the real services the tests use are present and running.
# Idempotent and quick when everything is already there.
set -euo pipefail

# PostgreSQL: the machine provides it; start it if it is down.
if command -v pg_isready >/dev/null 2>&1 && ! pg_isready -h 127.0.0.1 -p 5432 -q; then
  if command -v pg_ctlcluster >/dev/null 2>&1; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
  fi
  for _ in $(seq 1 30); do pg_isready -h 127.0.0.1 -p 5432 -q && break; sleep 1; done
fi
if command -v pg_isready >/dev/null 2>&1 && pg_isready -h 127.0.0.1 -p 5432 -q; then
  echo "test-deps: PostgreSQL is up"
else
  echo "test-deps: PostgreSQL is not reachable on 127.0.0.1:5432; PostgreSQL tests will fail" >&2
fi

# curl and make: cmd/bulkgen's README test runs the README's commands
# (make build, curl against bulkgen serve) as a user would.
missing=()
for tool in curl make; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if ((${#missing[@]})); then
  echo "test-deps: installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi
echo "test-deps: curl and make are present"

# versitygw: the S3 server the s3blob tests start (internal/blob/s3blob/s3test).
# Built from the Go module proxy; reinstalled only when the pinned version
# is not the one in $(go env GOPATH)/bin. Tests fail without it when
# BULKGEN_REQUIRE_S3 is set, as .ci/run does.
VERSITYGW_VERSION=v1.8.0
gobin="$(go env GOBIN)"
[ -n "$gobin" ] || gobin="$(go env GOPATH | cut -d: -f1)/bin"
if go version -m "$gobin/versitygw" 2>/dev/null | grep -q "^[[:space:]]*mod[[:space:]]*github.com/versity/versitygw[[:space:]]*$VERSITYGW_VERSION[[:space:]]"; then
  echo "test-deps: versitygw $VERSITYGW_VERSION is installed"
else
  echo "test-deps: installing versitygw $VERSITYGW_VERSION (a few minutes the first time)"
  (cd / && GOFLAGS= go install "github.com/versity/versitygw/cmd/versitygw@$VERSITYGW_VERSION")
  echo "test-deps: versitygw installed in $gobin"
fi

# golangci-lint: make lint runs it with .golangci.yml. Built from the Go
# module proxy like versitygw, and only when the pinned version is missing.
GOLANGCI_LINT_VERSION=v2.15.0
if go version -m "$gobin/golangci-lint" 2>/dev/null | grep -q "^[[:space:]]*mod[[:space:]]*github.com/golangci/golangci-lint/v2[[:space:]]*$GOLANGCI_LINT_VERSION[[:space:]]"; then
  echo "test-deps: golangci-lint $GOLANGCI_LINT_VERSION is installed"
else
  echo "test-deps: installing golangci-lint $GOLANGCI_LINT_VERSION (a few minutes the first time)"
  (cd / && GOFLAGS= go install "github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$GOLANGCI_LINT_VERSION")
  echo "test-deps: golangci-lint installed in $gobin"
fi
