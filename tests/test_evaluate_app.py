"""Evaluation reports and the gfrnet-evaluate command on a tiny shard."""

import csv
import json

from gfrnet_tf.evaluation import report


def test_report_files_round_trip(tmp_path):
    rows = [
        {"model": "full", "psnr_4x": 27.123456, "landmark_error_warped": 0.0412345},
        {"model": "-WG", "psnr_4x": 25.5, "landmark_error_warped": float("nan")},
    ]
    columns = ["model", "psnr_4x", "landmark_error_warped"]
    assert report.markdown_table(rows, columns).splitlines() == [
        "| model | psnr_4x | landmark_error_warped |",
        "|---|---|---|",
        "| full | 27.12 | 0.0412 |",
        "| -WG | 25.50 | n/a |",
    ]
    report.write_csv(tmp_path / "t.csv", rows, columns)
    with open(tmp_path / "t.csv") as stream:
        read = list(csv.DictReader(stream))
    assert float(read[0]["psnr_4x"]) == 27.123456 and read[1]["landmark_error_warped"] == ""
    report.write_json(tmp_path / "t.json", {"rows": rows})
    loaded = json.loads((tmp_path / "t.json").read_text())  # strict: no bare NaN
    assert loaded["rows"][0]["psnr_4x"] == 27.123456
    assert loaded["rows"][1]["landmark_error_warped"] is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.csv", "t.json"]  # no temp left

