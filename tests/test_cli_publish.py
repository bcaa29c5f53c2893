"""A leaderboard published from the CLI names models, data and zoo by names and hashes, never by local paths."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pandas as pd
import pytest
from hub_server import LoopbackHub, point_client_at
from test_ranking import image_folder, models  # noqa: F401 - pytest fixtures

from lead_hub.cli import main
from lead_hub.public_names import public_leaderboard, public_model_id, redact_paths

TOKEN = "hf_publish_test_loopback_token_7e2a91c4"
REPOSITORY_ROOT = Path(__file__).resolve().parents[1]


def test_pushed_files_hold_no_absolute_path(models, image_folder, tmp_path, monkeypatch, capsys):  # noqa: F811
    first = models["first"].removeprefix("local-dir:")
    zoo = tmp_path / "my zoo.yaml"
    zoo.write_text(f"name: mine\nmodels:\n  - id: local-dir:{first}\n  - id: local-dir:{tmp_path}/gone\n")
    with LoopbackHub() as server:
        server.store.add_user("alice", TOKEN)
        point_client_at(monkeypatch, server.endpoint, str(tmp_path / "hf_home"), token=TOKEN)
        code = main(["rank", "--zoo", str(zoo), "--dataset", str(image_folder), "--image-size", "32",
                     "--metric-option", "lead.folds=2", "--metric-option", "lead.head_widths=[16]", "--no-cache",
                     "--quiet", "--push-to-hub", "alice/board"])
        assert code == 0, capsys.readouterr()
        files = server.store.files("dataset", "alice/board")
    assert {"README.md", "provenance.json", "data/leaderboard.parquet"} <= set(files)
    local = {str(tmp_path), str(image_folder), str(Path(first).parent), str(Path.home()), str(REPOSITORY_ROOT),
             str(Path.cwd()), "/tmp/"}
    for name, content in files.items():
        text = content.decode("utf-8", errors="replace")
        for path in local:
            assert path not in text, f"{name} holds the local path {path}"
    provenance, = json.loads(files["provenance.json"]).values()
    assert provenance["dataset"] == image_folder.name and provenance["dataset_source"] == image_folder.name
    assert provenance["dataset_revision"].startswith("sha256:")
    assert provenance["candidates"]["zoo_file"] == "my zoo.yaml" and len(provenance["candidates"]["zoo_sha256"]) == 64
    table = pd.read_parquet(io.BytesIO(files["data/leaderboard.parquet"])).set_index("model_id")
    assert list(table.index) == ["local-dir:first", "local-dir:gone"]
    assert table.loc["local-dir:gone", "notes"].startswith("feature extraction failed: FileNotFoundError: "
                                                           "'local-dir:gone'")


@pytest.mark.parametrize(("text", "public"), [
    ("extraction failed: FileNotFoundError: /home/ann/x/model.safetensors",
     "extraction failed: FileNotFoundError: model.safetensors"),
    ("OSError('/tmp/lead_hub_zip_1/a b.png')", "OSError('a b.png')"),
    ("see https://huggingface.co/timm/resnet18 or timm/resnet18", "see https://huggingface.co/timm/resnet18 or "
                                                                  "timm/resnet18"),
    (r"C:\Users\ann\data\cats", "cats"),
    ("a ratio of 1/2 and demo/models/x", "a ratio of 1/2 and demo/models/x"),
])
def test_paths_in_free_text_keep_only_their_last_part(text, public):
    assert redact_paths(text) == public


def test_public_ids_and_tables():
    assert public_model_id("local-dir:/home/ann/models/vit") == "local-dir:vit"
    assert public_model_id("local-dir:demo/models/x") == "local-dir:demo/models/x"
    assert public_model_id("hf-hub:timm/x") == "hf-hub:timm/x"
    table, provenance = public_leaderboard(pd.DataFrame({"model_id": ["local-dir:/srv/a/m"], "notes": ["/srv/a/m: bad"],
                                                         "lead": [1.0]}),
                                           {"dataset": "/srv/data/cats", "candidates": {"models": ["/srv/a/m"]}})
    assert table.to_dict("records") == [{"model_id": "local-dir:m", "notes": "m: bad", "lead": 1.0}]
    assert provenance == {"dataset": "cats", "candidates": {"models": ["m"]}}
