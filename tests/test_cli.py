"""The command line: exit codes, one-line errors, the zoo table."""

import json
import subprocess
import sys

from rftrt.cli.export import export_main


def test_list_models_prints_every_model_with_published_figures(capsys, tmp_path):
    out_json = tmp_path / "zoo.json"
    assert export_main(["--list-models", "--json", str(out_json)]) == 0
    table = capsys.readouterr().out
    assert "| rf_b1 | 224 | 9,034,440 | 9.0 |" in table
    assert "| evit_b3 | 224 | 48,646,056 | 49.0 |" in table
    rows = json.loads(out_json.read_text())
    assert len(rows) == 8 * 3
    rf_b1 = next(r for r in rows if r["name"] == "rf_b1" and r["resolution"] == 224)
    assert rf_b1["paper_orin_fp16_ms"] == 0.68 and rf_b1["params"] == 9_034_440


def test_user_error_is_one_line_with_exit_code_2():
    proc = subprocess.run(
        [sys.executable, "-c", "import sys; from rftrt.cli.export import export_main; sys.exit(export_main())", "--model", "x"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("rf-export: error:")
    assert "Traceback" not in proc.stderr
