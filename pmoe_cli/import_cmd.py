"""`pmoe import SRC OUT`: a Pointcept PT-v3m1 or PTMoE-v0m0 checkpoint as a pmoe checkpoint. Options in,
`pmoe_core.engine.pointcept_import` does the work, a summary out."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

HELP = """Import a Pointcept checkpoint (PT-v3m1 = PTv3, PTMoE-v0m0 = the Point-MoE release) as a pmoe checkpoint
that eval, predict, route-inspect and train --init accept.

The file is loaded with torch.load(weights_only=True): nothing in it is executed. Stages, blocks, channels, input
width, MLP ratio, experts are read from the tensor shapes; curve orders, patch sizes, heads per stage and top-k
come from the options (defaults: the reference configs). Any key pmoe does not understand, any missing key or
shape mismatch refuses the import with one line; nothing is written then.

\b
Heads:
  seg_head (DefaultSegmentorV2): a fixed-class Linear head; --label-set names whose class order it follows.
  proj_head + class_embedding + logit_scale (PPTMoE-v0m0): pmoe's language head (CLIP text embeddings).
Inputs: an imported 6-channel model is fed Pointcept's features (indoor color/255 + normal, outdoor xyz +
strength), recorded as in_features="pointcept6" in its config, which eval, predict, route-inspect and train build;
--color signed feeds color/127.5-1 instead (Pointcept before 1.6.0, the Point-MoE fork).

\b
Example:
  pmoe import ptv3_scannet.pth ptv3_scannet.pt --label-set scannet
"""


def _ints(text: Optional[str], name: str) -> Optional[tuple[int, ...]]:
    from pmoe_core.errors import BadInput

    if text is None:
        return None
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise BadInput(f"{name} takes comma-separated integers, got {text!r}") from None
    if any(v < 1 for v in values):
        raise BadInput(f"{name} values must be positive, got {text!r}")
    return values


def import_cmd(
    source: Path = typer.Argument(..., metavar="SRC", help="Pointcept checkpoint (.pth, {'state_dict': ...})."),
    out: Path = typer.Argument(..., metavar="OUT", help="pmoe checkpoint to write (.pt)."),
    label_set: Optional[str] = typer.Option(None, "--label-set", help="seg_head checkpoints: the dataset whose "
                                            "benchmark class order the head's outputs follow (e.g. scannet)."),
    datasets: Optional[str] = typer.Option(None, "--datasets", help="PPTMoE checkpoints: comma-separated datasets "
                                           "it was trained on (eval's default list)."),
    text_encoder: str = typer.Option("clip", "--text-encoder", help="PPTMoE checkpoints: the encoder of its class "
                                     "embeddings (Point-MoE: clip ViT-B/16)."),
    order: str = typer.Option("z,z-trans,hilbert,hilbert-trans", "--order", help="Serialization curves, in order."),
    patch_size: Optional[str] = typer.Option(None, "--patch-size", help="Attention patch size: one value or one per "
                                             "stage, encoder then decoder (default 1024 everywhere)."),
    enc_num_head: Optional[str] = typer.Option(None, "--enc-num-head", help="Heads per encoder stage "
                                               "(default channels/16)."),
    dec_num_head: Optional[str] = typer.Option(None, "--dec-num-head", help="Heads per decoder stage "
                                               "(default channels/16)."),
    top_k: int = typer.Option(2, "--top-k", help="MoE experts per token (Point-MoE release: 2)."),
    pool_shuffle: str = typer.Option("train", "--pool-shuffle", help="'train': curve orders shuffled at pooling in "
                                     "training only (deterministic eval); 'always': Pointcept's default, in eval too."),
    color: str = typer.Option("unit", "--color", help="Input colour the checkpoint was trained with: 'unit' = "
                              "color/255 (Pointcept >= 1.6.0), 'signed' = color/127.5-1 (older Pointcept, the "
                              "Point-MoE fork)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace OUT if it exists."),
) -> None:
    """Import a Pointcept PT-v3m1 / PTMoE-v0m0 checkpoint."""
    from pmoe_core.engine.pointcept_import import import_pointcept
    from pmoe_core.errors import BadInput
    from pmoe_core.models.pointcept import ImportOptions

    if pool_shuffle not in ("train", "always"):
        raise BadInput(f"--pool-shuffle must be 'train' or 'always', got {pool_shuffle!r}")
    patches = _ints(patch_size, "--patch-size")
    enc_patch = dec_patch = patches
    if patches is not None and len(patches) > 1:  # split at the encoder/decoder boundary: n_enc + n_enc - 1 values
        n_enc = (len(patches) + 1) // 2
        if len(patches) != 2 * n_enc - 1:
            raise BadInput(f"--patch-size takes 1 value or one per stage (encoder then decoder), got {len(patches)}")
        enc_patch, dec_patch = patches[:n_enc], patches[n_enc:]
    options = ImportOptions(order=tuple(c.strip() for c in order.split(",")), enc_patch_size=enc_patch,
                            dec_patch_size=dec_patch, enc_num_head=_ints(enc_num_head, "--enc-num-head"),
                            dec_num_head=_ints(dec_num_head, "--dec-num-head"), top_k=top_k,
                            pool_shuffle=pool_shuffle, color=color)
    names = [d.strip() for d in datasets.split(",") if d.strip()] if datasets else []
    result = import_pointcept(source, out, label_set=label_set, datasets=names, text_encoder=text_encoder,
                              options=options, overwrite=overwrite)
    cfg, imp = result.imported.config, result.imported
    moe = f", MoE {cfg.moe.num_experts} experts top-{cfg.moe.top_k} ratio {cfg.moe.ratio:g}" if cfg.moe else ""
    typer.echo(f"imported {imp.arch} in {imp.wrapper}: {imp.source_keys} keys, {result.parameters:,} parameters{moe}")
    typer.echo(f"  channels enc {cfg.enc_channels} dec {cfg.dec_channels}, depths enc {cfg.enc_depths} "
               f"dec {cfg.dec_depths}, heads enc {cfg.enc_num_head} dec {cfg.dec_num_head}")
    typer.echo(f"  patch enc {cfg.enc_patch_size} dec {cfg.dec_patch_size}, orders {', '.join(cfg.order)}, "
               f"pool shuffle {cfg.pool_shuffle}")
    colour = {"pointcept6": "color/255", "pointcept6-signed": "color/127.5-1"}.get(cfg.in_features)
    typer.echo(f"  inputs: {cfg.in_channels} channels, layout {cfg.in_features}"
               + (f" (indoor {colour} + normal; outdoor xyz + strength + 0, 0)" if colour else ""))
    if cfg.head == "linear":
        typer.echo(f"  head: fixed {cfg.head_classes}-class Linear, outputs in {result.meta['datasets'][0]} order")
    else:
        typer.echo(f"  head: language head (text dim {imp.class_embeddings.shape[1]}, logit scale "
                   f"{cfg.head_logit_scale:.4g}); text encoder {result.meta['text_encoder']}")
    if imp.ignored:
        typer.echo(f"  not imported: {len(imp.ignored)} unused MoE statistics buffers (score_accumulator, "
                   f"expert_token_counter)")
    if imp.arch == "PTMoE-v0m0" and color == "unit":
        typer.echo("  note: the Point-MoE release was trained with its fork's NormalizeColor, color/127.5-1: import "
                   "its checkpoints with --color signed")
    typer.echo(f"wrote {result.out}")
import_cmd.__doc__ = HELP
