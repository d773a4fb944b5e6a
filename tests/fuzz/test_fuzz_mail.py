"""A bounded run of the coverage-guided fuzzer (tests/fuzz/fuzz_mail.py, atheris) over parse_message and
scan_message, from the small synthetic seeds in tests/fuzz/seeds. It fails on any input that makes either raise or
an analyzer fail, and shows that coverage grew (the run is guided, not random). MAILSEC_FUZZ_SECONDS sets the time
(60 by default, the whole suite must stay short); findings are kept as files for reproduction."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent
SRC = HERE.parent.parent / "src"
_COV = re.compile(r"#\d+\s+(INITED|DONE)\s+cov: (\d+)")


@pytest.mark.slow
def test_coverage_guided_fuzzing_finds_no_crash(tmp_path: Path) -> None:
    pytest.importorskip("atheris", reason="atheris (libFuzzer for Python) is not installed: pip install atheris")
    seconds = int(os.environ.get("MAILSEC_FUZZ_SECONDS", "60"))
    corpus = tmp_path / "corpus"
    shutil.copytree(HERE / "seeds", corpus)
    run = subprocess.run(
        [sys.executable, str(HERE / "fuzz_mail.py"), f"-max_total_time={seconds}", "-timeout=20",
         "-rss_limit_mb=3072", f"-artifact_prefix={tmp_path}/", str(corpus)],
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])},
        capture_output=True, text=True, timeout=seconds + 240,
    )  # fmt: skip
    log = run.stderr + run.stdout
    crashes = [p for p in tmp_path.iterdir() if p.name.startswith(("crash-", "timeout-", "oom-"))]
    assert run.returncode == 0 and not crashes, f"fuzzer found {[str(p) for p in crashes]}:\n{log[-6000:]}"
    cov = dict(_COV.findall(log))
    assert int(cov["DONE"]) > int(cov["INITED"]), log[-3000:]
    print(f"fuzz: {seconds}s, coverage {cov['INITED']} -> {cov['DONE']} edges, {len(list(corpus.iterdir()))} inputs")
