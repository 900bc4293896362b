"""``sstl supervise`` on the tiny synthetic store: a backbone trained with labels, written as a
pretrained weights file that fine-tuning, retrieval and analysis read like an SSTL one."""

from __future__ import annotations

import torch

from sstl.models.weights import SCRATCH, build_finetuner, load_finetuned, read_pretrained


def test_supervised_training_writes_its_backbone_as_pretrained_weights(
    tiny_data, helpers, tmp_path
):
    cfg = helpers.finetune_cfg()
    argv = helpers.finetune_argv(tiny_data, tmp_path, cfg, SCRATCH)
    argv = argv[: argv.index("--init")] + argv[argv.index("--init") + 2 :]  # no --init
    proc = helpers.run_sstl("supervise", *argv)
    assert proc.returncode == 0, proc.stderr[-3000:]

    encoder, _, meta = read_pretrained(tmp_path / "weights.pt")
    classifier, classes, _ = load_finetuned(tmp_path / "state" / "classifier.pt")
    assert classes == tiny_data.classes == meta["supervised"]["classes"]
    assert meta["epochs"] == 2 and len(meta["supervised"]["finetuned_sha256"]) == 64
    # the backbone is the one trained with labels, tensor for tensor
    trained = classifier.backbone.state_dict()
    assert trained.keys() == encoder.backbone.state_dict().keys()
    assert all(torch.equal(v, encoder.backbone.state_dict()[k]) for k, v in trained.items())
    # and it moved away from the seeded random init it started from
    torch.manual_seed(cfg["run"].get("seed", 0))
    random, _ = build_finetuner(classifier.cfg, SCRATCH, len(classes), 0.2)
    assert not torch.equal(random.backbone.state_dict()["stem.0.weight"], trained["stem.0.weight"])
    # downstream fine-tuning starts from it as from an SSTL pretraining
    downstream, sha = build_finetuner(classifier.cfg, str(tmp_path / "weights.pt"), 4, 0.5)
    assert len(sha) == 64
    assert torch.equal(downstream.backbone.state_dict()["stem.0.weight"], trained["stem.0.weight"])
