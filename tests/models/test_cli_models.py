import json
import subprocess
import sys


def test_models_command_lists_presets_with_counts():
    out = subprocess.run([sys.executable, "-m", "pmoe_cli", "models", "--json"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    rows = {r["name"]: r for r in json.loads(out.stdout)}
    assert set(rows) == {"ptv3-base", "ptv3-l", "ppt-l", "pmoe-s", "pmoe-l", "ptv3-tiny", "ppt-tiny", "pmoe-tiny"}
    assert rows["ptv3-base"]["total_params"] == rows["ptv3-base"]["active_params"] == 46_170_272
    assert rows["pmoe-l"]["active_params"] < rows["pmoe-l"]["total_params"]
