"""Built-in models against published facts and closed-form counts."""

import pytest

from monet_opt.errors import InputError
from monet_opt.model.workload import GPT2_PRESETS, GPTConfig, OpKind, builtin_forward_graph
from monet_opt.model.workload.models import gpt2


def test_resnet18_imagenet_params_and_macs():
    g = builtin_forward_graph("resnet18", batch=1, image_size=224, num_classes=1000)
    assert g.params == 11_689_512  # torchvision resnet18
    assert abs(g.macs() - 1.814e9) / 1.814e9 < 0.01


def test_resnet18_macs_closed_form():
    # conv1 7x7x3->64 on 112x112: 118,013,952; the 1000-way fc: 512,000; four stages of 3x3 convs
    # (each stage 3.5 convs-equivalent of c^2*9*HW after the first) plus 1x1 downsamples.
    conv1 = 64 * 3 * 7 * 7 * 112 * 112
    stage1 = 4 * (64 * 64 * 9 * 56 * 56)
    stage2 = (128 * 64 * 9 + 3 * 128 * 128 * 9 + 128 * 64) * 28 * 28
    stage3 = (256 * 128 * 9 + 3 * 256 * 256 * 9 + 256 * 128) * 14 * 14
    stage4 = (512 * 256 * 9 + 3 * 512 * 512 * 9 + 512 * 256) * 7 * 7
    fc = 512 * 1000
    assert builtin_forward_graph("resnet18").macs() == conv1 + stage1 + stage2 + stage3 + stage4 + fc


def test_resnet18_cifar_variant():
    g = builtin_forward_graph("resnet18-cifar")  # 32x32, batch 4, 10 classes, 3x3 stem, no max-pool
    assert g.params == 11_689_512 - 64 * 3 * 7 * 7 + 64 * 3 * 3 * 3 - 512 * 990 - 990
    assert not [op for op in g.ops if op.kind is OpKind.MAXPOOL]
    assert g.tensors["image"].shape == (4, 3, 32, 32)


def gpt2_forward_macs(layers, d, d_ff, vocab, seq, batch=1):
    """Q, K, V and output projections (4 S d^2), QK^T and AV (2 S^2 d over all heads), FFN (2 S d d_ff),
    per layer; plus the LM head S d V."""
    per_layer = 4 * seq * d * d + 2 * seq * seq * d + 2 * seq * d * d_ff
    return batch * (layers * per_layer + seq * d * vocab)


def test_gpt2_small_params_and_macs():
    g = builtin_forward_graph("gpt2-small")
    assert g.params == 124_439_808
    assert g.macs() == gpt2_forward_macs(12, 768, 3072, 50257, 1024)


def test_gpt2_mini_presets():
    mini = builtin_forward_graph("gpt2-mini")
    d, ff, v, s = 384, 1536, 20000, 256
    per_layer = 4 * d + 4 * (d * d + d) + d * ff + ff + ff * d + d
    assert mini.params == v * d + s * d + 2 * per_layer + 2 * d
    assert mini.macs() == gpt2_forward_macs(2, d, ff, v, s)
    mini4 = builtin_forward_graph("gpt2-mini4", batch=2)
    assert mini4.macs() == gpt2_forward_macs(4, 512, 1376, 4000, 256, batch=2)


def test_gpt2_attention_is_explicit_per_head_group():
    base = GPT2_PRESETS["gpt2-mini"]
    one = gpt2(base)
    three = gpt2(GPTConfig(**{**base.__dict__, "head_groups": 3}))
    assert one.params == three.params and one.macs() == three.macs()
    qk = [op for op in three.ops if op.name.endswith(".qk")]
    assert len(qk) == 2 * 3
    assert dict(qk[0].dims) == {"B": 2, "M": 256, "N": 256, "K": 64}  # 2 heads per group, d_head 64
    assert len([op for op in three.ops if op.kind is OpKind.SOFTMAX]) == 6


def test_untied_gpt2_adds_the_head():
    base = GPT2_PRESETS["gpt2-mini"]
    untied = gpt2(GPTConfig(**{**base.__dict__, "tied_embeddings": False}))
    assert untied.params == gpt2(base).params + 384 * 20000


@pytest.mark.parametrize(
    "name, options, message",
    [
        ("resnet9", {}, "unknown model 'resnet9'"),
        ("resnet18", {"seq_len": 4}, "does not apply"),
        ("gpt2-mini", {"image_size": 32}, "do not apply"),
        ("gpt2-mini", {"seq_len": 300}, "exceeds the context length 256"),
        ("resnet18", {"num_classes": 0}, "num_classes must be positive"),
    ],
)
def test_bad_model_options(name, options, message):
    with pytest.raises(InputError, match=message):
        builtin_forward_graph(name, **options)
