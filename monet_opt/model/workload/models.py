"""Built-in forward graphs: ResNet-18 (ImageNet and CIFAR stems) and the GPT-2 family.

Each built-in ends in a softmax cross-entropy loss against an integer label input, so that the
training-graph derivation has a loss to start backpropagation from.
"""

from __future__ import annotations

from dataclasses import dataclass

from monet_opt.errors import InputError
from monet_opt.model.workload.builder import GraphBuilder
from monet_opt.model.workload.ir import DType, Graph, OpKind


@dataclass(frozen=True)
class ResNetConfig:
    """ResNet-18. `stem` "imagenet": 7x7/2 conv + 3x3/2 max-pool (torchvision); "cifar": 3x3/1 conv,
    no max-pool (the usual 32x32 variant)."""

    batch: int = 1
    image_size: int = 224
    num_classes: int = 1000
    stem: str = "imagenet"


@dataclass(frozen=True)
class GPTConfig:
    """A GPT-2 decoder. `context_length` sizes the learned position table (a parameter count fact);
    `seq_len` (<= context_length) is the sequence actually trained on. `head_groups` splits each
    attention layer into that many independent groups of heads, each with its own Q/K/V projection
    slices and its own QK^T, softmax and AV ops (1: one op of each per layer, heads as batch dim)."""

    layers: int
    heads: int
    d_model: int
    d_ff: int
    vocab: int
    context_length: int
    seq_len: int
    batch: int = 1
    tied_embeddings: bool = True
    head_groups: int = 1


GPT2_PRESETS: dict[str, GPTConfig] = {
    # OpenAI GPT-2 small (124,439,808 parameters with tied embeddings).
    "gpt2-small": GPTConfig(layers=12, heads=12, d_model=768, d_ff=3072, vocab=50257, context_length=1024, seq_len=1024),
    # MONET's small GPT-2 (code defaults) and its second, 4-layer variant.
    "gpt2-mini": GPTConfig(layers=2, heads=6, d_model=384, d_ff=1536, vocab=20000, context_length=256, seq_len=256),
    "gpt2-mini4": GPTConfig(layers=4, heads=4, d_model=512, d_ff=1376, vocab=4000, context_length=256, seq_len=256),
}

RESNET_PRESETS: dict[str, ResNetConfig] = {
    "resnet18": ResNetConfig(batch=1, image_size=224, num_classes=1000, stem="imagenet"),
    # MONET's small-image runs: 32x32, batch 4, 10 classes.
    "resnet18-cifar": ResNetConfig(batch=4, image_size=32, num_classes=10, stem="cifar"),
}

BUILTIN_MODELS: tuple[str, ...] = tuple(RESNET_PRESETS) + tuple(GPT2_PRESETS)


def resnet18(config: ResNetConfig) -> Graph:
    """ResNet-18 forward graph with loss (torchvision layout: bias-free convs, batch-norm, fc with bias)."""
    if config.stem not in ("imagenet", "cifar"):
        raise InputError(f"resnet18: unknown stem {config.stem!r} (imagenet or cifar)")
    for key in ("batch", "image_size", "num_classes"):
        if getattr(config, key) <= 0:
            raise InputError(f"resnet18: {key} must be positive, got {getattr(config, key)}")
    g = GraphBuilder(f"resnet18-{config.stem}-{config.image_size}-b{config.batch}")
    x = g.input("image", (config.batch, 3, config.image_size, config.image_size))
    labels = g.input("labels", (config.batch,), DType.INT64)

    def conv_bn(prefix: str, x: str, c_in: int, c_out: int, kernel: int, stride: int, pad: int) -> str:
        w = g.weight(f"{prefix}.weight", (c_out, c_in, kernel, kernel))
        y = g.conv(prefix, x, w, stride=(stride, stride), padding=(pad, pad, pad, pad))
        bn = prefix.replace("conv", "bn").replace("downsample.0", "downsample.1")
        params = [g.weight(f"{bn}.weight", (c_out,)), g.weight(f"{bn}.bias", (c_out,))]
        stats = [g.buffer(f"{bn}.running_mean", (c_out,)), g.buffer(f"{bn}.running_var", (c_out,))]
        return g.batchnorm(bn, y, *params, *stats)

    if config.stem == "imagenet":
        y = g.relu("relu", conv_bn("conv1", x, 3, 64, 7, 2, 3))
        y = g.pool("maxpool", OpKind.MAXPOOL, y, (3, 3), (2, 2), (1, 1, 1, 1))
    else:
        y = g.relu("relu", conv_bn("conv1", x, 3, 64, 3, 1, 1))
    c_in = 64
    for stage, c_out in enumerate((64, 128, 256, 512), start=1):
        for block in range(2):
            p = f"layer{stage}.{block}"
            stride = 2 if (block == 0 and stage > 1) else 1
            h = g.relu(f"{p}.relu1", conv_bn(f"{p}.conv1", y, c_in, c_out, 3, stride, 1))
            h = conv_bn(f"{p}.conv2", h, c_out, c_out, 3, 1, 1)
            skip = conv_bn(f"{p}.downsample.0", y, c_in, c_out, 1, stride, 0) if (stride != 1 or c_in != c_out) else y
            y = g.relu(f"{p}.relu2", g.add(f"{p}.add", h, skip))
            c_in = c_out
    pooled = g.view("flatten", g.global_avgpool("avgpool", y), (config.batch, 512))
    fc_w = g.view("fc.weight.T", g.weight("fc.weight", (config.num_classes, 512)), (512, config.num_classes))
    logits = g.matmul("fc", pooled, fc_w, bias=g.weight("fc.bias", (config.num_classes,)))
    loss = g.softmax_xent("loss", logits, labels)
    return g.build([loss])


def gpt2(config: GPTConfig, name: str = "gpt2") -> Graph:
    """GPT-2 forward graph with loss: token + position embeddings, pre-norm blocks (layer-norm,
    Q/K/V projections, QK^T, softmax with fused scaling and causal mask, AV, output projection,
    residual; layer-norm, FFN with GELU, residual), final layer-norm, LM head, cross-entropy."""
    c = config
    for key in ("layers", "heads", "d_model", "d_ff", "vocab", "context_length", "seq_len", "batch", "head_groups"):
        if getattr(c, key) <= 0:
            raise InputError(f"{name}: {key} must be positive, got {getattr(c, key)}")
    if c.d_model % c.heads:
        raise InputError(f"{name}: d_model {c.d_model} is not divisible by heads {c.heads}")
    if c.heads % c.head_groups:
        raise InputError(f"{name}: heads {c.heads} are not divisible by head_groups {c.head_groups}")
    if c.seq_len > c.context_length:
        raise InputError(f"{name}: seq_len {c.seq_len} exceeds the context length {c.context_length}")
    b, s, d = c.batch, c.seq_len, c.d_model
    d_head = d // c.heads
    group_heads = c.heads // c.head_groups
    d_group = d // c.head_groups

    g = GraphBuilder(f"{name}-s{s}-b{b}")
    tokens = g.input("tokens", (b, s), DType.INT64)
    labels = g.input("labels", (b, s), DType.INT64)
    positions = g.constant("positions", (s,), DType.INT64)
    wte = g.weight("wte", (c.vocab, d))
    x = g.add(
        "embed",
        g.embedding("wte.lookup", wte, tokens),
        g.embedding("wpe.lookup", g.weight("wpe", (c.context_length, d)), positions),
    )

    def linear(prefix: str, x: str, d_in: int, d_out: int) -> str:
        w = g.weight(f"{prefix}.weight", (d_in, d_out))
        return g.matmul(prefix, x, w, bias=g.weight(f"{prefix}.bias", (d_out,)))

    def layernorm(prefix: str, x: str) -> str:
        return g.layernorm(prefix, x, g.weight(f"{prefix}.weight", (d,)), g.weight(f"{prefix}.bias", (d,)))

    for layer in range(c.layers):
        p = f"h{layer}"
        h = layernorm(f"{p}.ln_1", x)
        group_outputs = []
        for grp in range(c.head_groups):
            q_name = f"{p}.attn" if c.head_groups == 1 else f"{p}.attn.g{grp}"
            q = g.view(f"{q_name}.q.heads", linear(f"{q_name}.q", h, d, d_group), (b, group_heads, s, d_head))
            k = g.view(f"{q_name}.k.heads_T", linear(f"{q_name}.k", h, d, d_group), (b, group_heads, d_head, s))
            v = g.view(f"{q_name}.v.heads", linear(f"{q_name}.v", h, d, d_group), (b, group_heads, s, d_head))
            probs = g.softmax(f"{q_name}.softmax", g.matmul(f"{q_name}.qk", q, k))
            av = g.matmul(f"{q_name}.av", probs, v)
            group_outputs.append(g.view(f"{q_name}.merge", av, (b, s, d_group)))
        attn = group_outputs[0] if c.head_groups == 1 else g.concat(f"{p}.attn.concat", group_outputs, axis=-1)
        x = g.add(f"{p}.attn.residual", x, linear(f"{p}.attn.proj", attn, d, d))
        h = layernorm(f"{p}.ln_2", x)
        h = g.gelu(f"{p}.mlp.gelu", linear(f"{p}.mlp.fc", h, d, c.d_ff))
        x = g.add(f"{p}.mlp.residual", x, linear(f"{p}.mlp.proj", h, c.d_ff, d))
    h = layernorm("ln_f", x)
    if c.tied_embeddings:
        head = g.view("wte.T", wte, (d, c.vocab))
    else:
        head = g.weight("lm_head.weight", (d, c.vocab))
    logits = g.matmul("lm_head", h, head)
    loss = g.softmax_xent("loss", logits, labels)
    return g.build([loss])


def builtin_forward_graph(
    name: str,
    *,
    batch: int | None = None,
    seq_len: int | None = None,
    image_size: int | None = None,
    num_classes: int | None = None,
) -> Graph:
    """The forward graph of a built-in model, with the preset's defaults for options left None.

    Options that do not apply to the model (e.g. seq_len for ResNet-18) are an InputError rather
    than silently ignored.
    """
    if name in RESNET_PRESETS:
        if seq_len is not None:
            raise InputError(f"{name}: --seq-len does not apply to a CNN")
        preset = RESNET_PRESETS[name]
        return resnet18(
            ResNetConfig(
                batch=preset.batch if batch is None else batch,
                image_size=preset.image_size if image_size is None else image_size,
                num_classes=preset.num_classes if num_classes is None else num_classes,
                stem=preset.stem,
            )
        )
    if name in GPT2_PRESETS:
        if image_size is not None or num_classes is not None:
            raise InputError(f"{name}: --image-size and --classes do not apply to a language model")
        preset = GPT2_PRESETS[name]
        config = GPTConfig(
            **{
                **preset.__dict__,
                "batch": preset.batch if batch is None else batch,
                "seq_len": preset.seq_len if seq_len is None else seq_len,
            }
        )
        return gpt2(config, name)
    raise InputError(f"unknown model {name!r}; built-in models: {', '.join(BUILTIN_MODELS)}; or give an .onnx file")
