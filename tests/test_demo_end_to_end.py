"""The embedded demo end to end: six real models ranked by LEAD on real EuroSAT images, offline, from the clone.

Needs nothing outside the repository. The demo zoo holds a person-detection MobileNet (Visual Wake Words, two
classes: person / no person) next to ImageNet and iNaturalist models; on land-use tiles its features carry
little of what separates the classes, so LEAD must rank it last, whatever the sample.
"""

from __future__ import annotations

import numpy as np
import pytest

from lead_hub.ranking import rank

CONTROL = "local-dir:demo/models/mobilenetv1_025.mlperf_vww"


@pytest.mark.slow
def test_demo_ranking_puts_the_person_detector_last_on_every_sample(tmp_path):
    # 5 images per class at 64 px (the tiles' own size) keeps the test short; the control stays last there too.
    settings = dict(samples_per_class=5, image_size=64, cache_dir=tmp_path, progress=False)
    first = rank("demo", "demo", seed=0, **settings)
    again = rank("demo", "demo", seed=0, **settings)
    other_sample = rank("demo", "demo", seed=1, **settings)

    table = first.table
    # LEAD's default, the whole network's NTK, is computed for every model, and nothing failed
    assert len(table) == 6 and table["notes"].str.fullmatch(r"lead: whole-network NTK over [^;]*").all()
    assert first.provenance["metric_options"]["lead"]["ntk"] == "full"
    assert np.isfinite(table["lead"]).all() and table["rank"].tolist() == [1, 2, 3, 4, 5, 6]
    assert first.provenance["samples"] == 50 and first.provenance["num_classes"] == 10
    for board in (first, other_sample):
        assert board.table["model_id"].iloc[-1] == CONTROL
    # The zero-padded narrow MobileNets report their true size, so the smallest model is the control.
    sizes = table.set_index("model_id")["num_params"]
    assert sizes[CONTROL] == 213_586 and sizes["local-dir:demo/models/mobilenetv1_025.coral_in1k"] == 470_329
    assert table.set_index("model_id").loc[CONTROL, "pareto"]
    # Same seed: the same sample, features from the cache, the same scores.
    assert again.table["notes"].str.contains("features read from the cache").all()
    assert again.table["lead"].tolist() == table["lead"].tolist()
    assert other_sample.table["lead"].tolist() != table["lead"].tolist()
