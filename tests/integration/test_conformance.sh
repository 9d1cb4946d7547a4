#!/usr/bin/env bash
# The Redis conformance corpus (tests/conformance/, docs/conformance.md):
# every command against redis-server 7.0.15 and inferkv-server, in RESP2 and
# RESP3, replies compared exactly after the documented normalisations.  The
# bar is 100% identical; the report is tests/conformance/out/report.json.
exec bash "$(dirname "$0")/../conformance/test_conformance.sh"
