"""The text-state cache: a run whose texts changed sends only the new ones through the frozen LM."""

from __future__ import annotations

import numpy as np

from pmoe_core.planner.text_features import TextFeatures
from pmoe_core.planner.train import cached_text_features, model_config


def test_a_changed_text_set_reuses_the_states_it_shares(tmp_path, monkeypatch):
    sent: list[str] = []
    encode = TextFeatures.encode

    def spy(self, texts, batch_size=64):
        sent.extend(t for t in texts if t not in self._states)
        return encode(self, texts, batch_size)

    monkeypatch.setattr(TextFeatures, "encode", spy)
    cfg = model_config("tiny")
    first = ["stack all the blocks on the red block", "put the blue block in the left side"]
    one = cached_text_features(cfg, first, [], str(tmp_path))
    assert sorted(sent) == sorted(first)
    sent.clear()
    two = cached_text_features(cfg, [*first, "stack all the blocks on the cherry block"], [], str(tmp_path))
    assert sent == ["stack all the blocks on the cherry block"]
    for text in first:
        np.testing.assert_array_equal(one.encode([text])[0], two.encode([text])[0])
    assert len(list(tmp_path.glob("text-run-*.npz"))) == 2
    sent.clear()
    (tmp_path / "text-run-0000000000000000.npz").write_bytes(b"damaged")  # newest now: ignored, all recomputed
    cached_text_features(cfg, ["the green block"], [], str(tmp_path))
    assert sent == ["the green block"]
