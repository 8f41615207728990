from pathlib import Path

from pmoe_core.engine.runlog import RunLog, read_log


def test_jsonl_and_tensorboard(tmp_path: Path):
    with RunLog(tmp_path) as log:
        log.log(1, loss=2.5, lr=0.001, experts={"enc0": [0.25, 0.75]})
        log.log(2, event="eval", miou=0.4)
    records = read_log(tmp_path)
    assert [r["step"] for r in records] == [1, 2]
    assert records[0]["experts"]["enc0"] == [0.25, 0.75]
    assert records[1]["event"] == "eval"
    events = list((tmp_path / "tb").glob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 0

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(tmp_path / "tb"))
    acc.Reload()
    assert "train/experts/enc0/1" in acc.Tags()["scalars"]
    assert acc.Scalars("train/loss")[0].value == 2.5
