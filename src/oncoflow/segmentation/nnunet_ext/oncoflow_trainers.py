"""nnU-Net v2 trainers of oncoflow, found by ``nnUNetv2_train -tr <name>``.

The rules point ``nnUNet_extTrainer`` at this folder (nnunetv2 >= 2.8 searches it when a trainer
is not part of the package), so nothing is copied into the installed nnunetv2.

``oncoflowMultitaskTrainer`` adds a classification head on the encoder bottleneck
(:class:`oncoflow.segmentation.multitask.MultitaskNetwork`), trained in the same forward pass as
the segmentation. The head comes from the ``oncoflow`` block of the plans (written by
:func:`oncoflow.segmentation.plans.derive_plans`, so inference rebuilds the same network); the
training schedule from the JSON in ``ONCOFLOW_TRAINER_SETTINGS`` (set by the train rule; unset =
the production defaults below); the case classes from the ``oncoflow`` block of ``dataset.json``.
Per-epoch checkpoints go to ``checkpoint_latest.pth`` (``save_every``) so a
killed job continues with ``nnUNetv2_train ... --c``.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from typing import Any

import numpy as np
import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from nnunetv2.utilities.default_n_proc_DA import get_allowed_n_proc_DA
from torch import autocast, nn

from oncoflow.metrics.classification import multiclass_metrics
from oncoflow.segmentation.augment import (
    CT_SCHEME,
    CalibrationShiftTransform,
    ScannerDegradationTransform,
    hu_in_normalised_units,
)
from oncoflow.segmentation.multitask import (
    MultitaskNetwork,
    class_weights,
    classification_weight,
    selection_dice_weight,
)
from oncoflow.segmentation.precision import as_float, cpu_autocast, cpu_bf16

DEFAULT_SCHEDULE: dict[str, Any] = {
    "epochs": 1000,
    "iterations_per_epoch": 250,
    "val_iterations_per_epoch": 50,
    "warmup_epochs": 20,
    "selection_ramp_epochs": 30,
    "cls_weight": 0.1,
    "save_every": 5,
    "mirroring": True,
    "initial_lr": 0.01,
    "final_validation": True,
    "plot_every": 1,
    "teacher_forcing_epochs": 0,
    "intensity_shift_hu": 0.0,
    "scanner_blur_mm": 0.0,
    "scanner_noise_hu": 0.0,
    "cpu_precision": "fp32",
    "channels_last": False,
}
"""Production schedule (nnU-Net defaults + seed 001's phases); ``ONCOFLOW_TRAINER_SETTINGS``
overrides any key. ``final_validation: false`` skips nnU-Net's own prediction of the validation
cases after training (oncoflow's predict rule predicts them anyway, with the head).
``plot_every: n`` redraws ``progress.png`` every n epochs and after the last (nnU-Net: every
epoch, ~0.7 s of matplotlib per epoch on a CPU). ``teacher_forcing_epochs: n``: for the first n
epochs the head (``roi`` pooling) pools over the true lesion of each training patch instead of
the network's own lesion probability, so it can learn the class before the segmentation finds the
lesion (0, the default: never). The log prints the head's validation macro AUC every epoch.
``intensity_shift_hu: a``: every training sample's CT channels are offset by ``U(-a, a)`` HU
(:mod:`oncoflow.segmentation.augment`, a scanner calibration offset; 0, the default: never).
``scanner_blur_mm: b`` / ``scanner_noise_hu: n``: half of the training samples are blurred by
``U(0, b)`` mm, half get white noise of SD ``U(0, n)`` HU (a blurrier, noisier scanner; 0:
never). ``cpu_precision`` (CPU only; CUDA keeps nnU-Net's float16 autocast): ``fp32`` (nnU-Net's
CPU behaviour), ``bf16`` (the training step's forward pass under bfloat16 autocast, the losses in
float32) or ``auto`` (``bf16`` where the CPU has native bfloat16 instructions, else ``fp32``).
``channels_last: true`` stores the network's weights and each training batch as
``channels_last_3d`` on a CPU (oneDNN's fast layout; the same arithmetic). Together they halve a
CPU training step of the demo's network (:mod:`oncoflow.segmentation.precision`)."""


SETTINGS_VARIABLE = "ONCOFLOW_TRAINER_SETTINGS"


class oncoflowMultitaskTrainer(nnUNetTrainer):  # noqa: N801 - nnU-Net trainer naming
    """nnU-Net trainer with a bottleneck classification head (one encoder pass)."""

    def __init__(
        self,
        plans: dict,
        configuration: str,
        fold: int,
        dataset_json: dict,
        device: torch.device = torch.device("cuda"),  # noqa: B008 - nnU-Net's signature
    ):
        super().__init__(plans, configuration, fold, dataset_json, device)
        threads = os.environ.get("OMP_NUM_THREADS", "")
        if self.device.type == "cpu" and threads.isdigit():
            # nnUNetv2_train gives torch every core of the machine; a job keeps to the cores
            # Snakemake gave it (OMP_NUM_THREADS = the rule's threads).
            torch.set_num_threads(max(1, int(threads)))
        settings = {**DEFAULT_SCHEDULE, **json.loads(os.environ.get(SETTINGS_VARIABLE) or "{}")}
        self.schedule = settings
        cpu = self.device.type == "cpu"
        self.bf16 = cpu and cpu_bf16(str(settings["cpu_precision"]))
        self.channels_last = cpu and bool(settings["channels_last"])
        self.num_epochs = int(settings["epochs"])
        self.num_iterations_per_epoch = int(settings["iterations_per_epoch"])
        self.num_val_iterations_per_epoch = int(settings["val_iterations_per_epoch"])
        self.save_every = max(1, int(settings["save_every"]))
        self.initial_lr = float(settings["initial_lr"])
        meta = dataset_json.get("oncoflow", {})
        self.class_names = list(meta.get("classes", []))
        self.case_classes = {
            k: self.class_names.index(str(v)) for k, v in meta.get("case_classes", {}).items()
        }
        if not self.class_names:
            msg = "dataset.json has no oncoflow.classes: the multitask trainer needs class labels"
            raise RuntimeError(msg)
        self.cls_loss: nn.Module | None = None
        self._val_probs: dict[str, list[np.ndarray]] = defaultdict(list)
        for key in ("cls_losses", "val_macro_f1", "selection_score"):
            self.logger.local_logger.my_fantastic_logging.setdefault(key, [])
        self._plot_every_n(max(1, int(settings["plot_every"])))

    def _plot_every_n(self, every: int) -> None:
        """Redraw ``progress.png`` after every ``every``-th epoch and after the last one."""
        plot = self.logger.plot_progress_png

        def plot_sometimes(output_folder: str) -> None:
            done = self.current_epoch + 1  # nnU-Net plots before it advances the counter
            if done % every == 0 or done >= self.num_epochs:
                plot(output_folder)

        self.logger.plot_progress_png = plot_sometimes

    @staticmethod
    def build_network_architecture(
        plans_manager,
        configuration_manager,
        num_input_channels: int,
        num_output_channels: int,
        enable_deep_supervision: bool = True,
    ) -> nn.Module:
        """The planned nnU-Net network wrapped with the head named in the plans."""
        base = nnUNetTrainer.build_network_architecture(
            plans_manager,
            configuration_manager,
            num_input_channels,
            num_output_channels,
            enable_deep_supervision,
        )
        head = plans_manager.plans.get("oncoflow", {}).get("head", {})
        return MultitaskNetwork(
            base,
            n_classes=len(head.get("classes", [0, 1, 2])),
            hidden=int(head.get("hidden", 128)),
            dropout=float(head.get("dropout", 0.3)),
            pooling=str(head.get("pooling", "mean")),
            sigmoid=bool(head.get("sigmoid", True)),
        )

    def _do_i_compile(self) -> bool:
        # forward_both is called on the module directly; torch.compile would only wrap forward
        return False

    def configure_rotation_dummyDA_mirroring_and_inital_patch_size(self):
        """nnU-Net's augmentation setup; without mirroring when the schedule turns it off."""
        values = super().configure_rotation_dummyDA_mirroring_and_inital_patch_size()
        if not self.schedule["mirroring"]:
            rotation, do_dummy_2d, initial_patch_size, _ = values
            self.inference_allowed_mirroring_axes = None
            return rotation, do_dummy_2d, initial_patch_size, None
        return values

    def get_training_transforms(self, *args, **kwargs):
        """nnU-Net's training transforms, then the scanner augmentations the schedule sets."""
        transforms = super().get_training_transforms(*args, **kwargs)
        schemes = self.configuration_manager.normalization_schemes
        blur = float(self.schedule["scanner_blur_mm"])
        asked = ("intensity_shift_hu", "scanner_blur_mm", "scanner_noise_hu")
        if CT_SCHEME not in schemes and any(float(self.schedule[k]) for k in asked):
            self.print_to_log_file(
                f"WARNING: no channel is {CT_SCHEME} ({', '.join(schemes)}): the scanner "
                "augmentations in HU / mm (intensity_shift_hu, scanner_*) are not applied"
            )
        noise = hu_in_normalised_units(
            float(self.schedule["scanner_noise_hu"]),
            "scanner_noise_hu",
            schemes,
            self.plans_manager.foreground_intensity_properties_per_channel,
        )
        if blur > 0 or any(noise):
            self.print_to_log_file(
                f"scanner degradation augmentation: blur U(0, {blur:g}) mm, noise SD "
                f"U(0, {self.schedule['scanner_noise_hu']:g}) HU, each on half of the samples"
            )
            transforms.transforms.append(
                ScannerDegradationTransform(
                    blur,
                    self.configuration_manager.spacing,
                    noise,
                    [scheme == CT_SCHEME for scheme in schemes],
                )
            )
        widths = hu_in_normalised_units(
            float(self.schedule["intensity_shift_hu"]),
            "intensity_shift_hu",
            schemes,
            self.plans_manager.foreground_intensity_properties_per_channel,
        )
        if not any(widths):
            return transforms
        self.print_to_log_file(
            f"calibration offset augmentation: +-{self.schedule['intensity_shift_hu']} HU "
            f"(+-{', '.join(f'{w:.3f}' for w in widths)} normalised units per channel)"
        )
        transforms.transforms.append(CalibrationShiftTransform(widths))
        return transforms

    def perform_actual_validation(self, save_probabilities: bool = False):
        """nnU-Net's final prediction of validation cases unless ``final_validation`` is off."""
        if self.schedule["final_validation"]:
            return super().perform_actual_validation(save_probabilities)
        self.print_to_log_file("final validation skipped (final_validation: false)")
        return None

    def on_train_start(self):
        """nnU-Net's start, then class-weighted cross-entropy from the fold's training cases."""
        super().on_train_start()
        if self.channels_last:
            # the parameters keep their identity (set .data), so the optimizer still holds them
            self.network.to(memory_format=torch.channels_last_3d)
        if self.device.type == "cpu":
            self.print_to_log_file(
                f"CPU training: {torch.get_num_threads()} torch thread(s), "
                f"{get_allowed_n_proc_DA()} augmentation worker process(es), forward pass in "
                f"{'bfloat16' if self.bf16 else 'float32'}, "
                f"{'channels_last_3d' if self.channels_last else 'contiguous'} layout"
            )
        train_keys, _ = self.do_split()
        missing = [k for k in train_keys if k not in self.case_classes]
        if missing:
            msg = f"case(s) without class in dataset.json: {', '.join(missing[:5])}"
            raise RuntimeError(msg)
        counts = np.bincount(
            [self.case_classes[k] for k in train_keys], minlength=len(self.class_names)
        )
        weight = torch.as_tensor(class_weights(counts), dtype=torch.float32, device=self.device)
        self.cls_loss = nn.CrossEntropyLoss(weight=weight)
        self.print_to_log_file(
            f"classification head: classes {self.class_names}, training counts {counts.tolist()}"
        )

    def _targets(self, keys) -> torch.Tensor:
        return torch.as_tensor(
            [self.case_classes[k] for k in keys], dtype=torch.long, device=self.device
        )

    def _network(self) -> MultitaskNetwork:
        return self.network.module if self.is_ddp else self.network

    def train_step(self, batch: dict) -> dict:
        """One step: seg loss + w(epoch) * class-weighted CE from one forward pass."""
        data = batch["data"].to(self.device, non_blocking=True)
        if self.channels_last and data.ndim == 5:
            data = data.contiguous(memory_format=torch.channels_last_3d)
        target = batch["target"]
        target = (
            [t.to(self.device, non_blocking=True) for t in target]
            if isinstance(target, list)
            else target.to(self.device, non_blocking=True)
        )
        labels = self._targets(batch["keys"])
        weight = classification_weight(
            self.current_epoch,
            int(self.schedule["warmup_epochs"]),
            float(self.schedule["cls_weight"]),
        )
        self.optimizer.zero_grad(set_to_none=True)
        if self.device.type == "cuda":
            context = autocast(self.device.type, enabled=True)
        else:
            context = cpu_autocast(self.bf16)
        with context:
            # teacher forcing: the head pools over the true lesion for the first epochs
            forced = self.current_epoch < int(self.schedule["teacher_forcing_epochs"])
            segmentation, logits = self._network().forward_both(data, target if forced else None)
            if self.bf16:  # Dice sums over ~10^5 voxels need more than bfloat16's 8 bits
                segmentation = as_float(segmentation)
            seg_loss = self.loss(segmentation, target)
            cls_loss = self.cls_loss(logits.float(), labels)
            loss = seg_loss + weight * cls_loss if weight > 0 else seg_loss
        if self.grad_scaler is not None:
            self.grad_scaler.scale(loss).backward()
            self.grad_scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.network.parameters(), 12)
            self.grad_scaler.step(self.optimizer)
            self.grad_scaler.update()
        else:
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.network.parameters(), 12)
            self.optimizer.step()
        return {
            "loss": loss.detach().float().cpu().numpy(),
            "cls_loss": cls_loss.detach().float().cpu().numpy(),
        }

    def on_train_epoch_end(self, train_outputs: list[dict]):
        """Log the epoch's mean training loss and classification loss."""
        super().on_train_epoch_end(train_outputs)
        self.logger.log(
            "cls_losses", float(np.mean([o["cls_loss"] for o in train_outputs])), self.current_epoch
        )

    def on_validation_epoch_start(self):
        """Reset the per-case softmax collected over validation patches."""
        super().on_validation_epoch_start()
        self._val_probs = defaultdict(list)

    def validation_step(self, batch: dict) -> dict:
        """nnU-Net's validation step, recording the head's softmax per case."""
        network = self._network()
        with network.collecting() as probabilities:
            result = super().validation_step(batch)
        for key, row in zip(batch["keys"], probabilities[0].numpy(), strict=True):
            self._val_probs[key].append(row)
        return result

    def on_validation_epoch_end(self, val_outputs: list[dict]):
        """Pseudo-Dice (nnU-Net) and case-level macro-F1 (mean softmax per case)."""
        super().on_validation_epoch_end(val_outputs)
        # case-level macro-F1: mean softmax over the validation patches drawn from each case
        keys = sorted(self._val_probs)
        y_true = [self.case_classes[k] for k in keys]
        probs = np.stack([np.mean(self._val_probs[k], axis=0) for k in keys])
        metrics = multiclass_metrics(y_true, probs)
        f1 = metrics["f1_macro"]
        self.logger.log("val_macro_f1", f1, self.current_epoch)
        self.print_to_log_file(
            f"head on {len(keys)} validation case(s): macro AUC {metrics['auc_macro']:.3f}, "
            f"macro-F1 {f1:.3f}"
        )

    def on_epoch_end(self):
        """Checkpoint selection on a(e) * EMA pseudo-Dice + (1 - a(e)) * macro-F1."""
        epoch = self.current_epoch
        dice = float(self.logger.get_value("ema_fg_dice", step=-1))
        f1 = float(self.logger.get_value("val_macro_f1", step=-1))
        a = selection_dice_weight(
            epoch, int(self.schedule["warmup_epochs"]), int(self.schedule["selection_ramp_epochs"])
        )
        score = a * dice + (1.0 - a) * f1
        earlier = list(self.logger.get_value("selection_score", step=None))[:epoch]
        self.logger.log("selection_score", score, epoch)
        self.print_to_log_file(
            f"classification loss {self.logger.get_value('cls_losses', step=-1):.4f}, case "
            f"macro-F1 {f1:.4f}, selection score {score:.4f} (Dice weight {a:.2f})"
        )
        # nnU-Net saves checkpoint_best on the EMA pseudo-Dice alone; we select on the mixed score,
        # whose history lives in the logger (restored with --c), so nnU-Net's own best is disabled.
        self._best_ema = float("inf")
        super().on_epoch_end()
        if not earlier or score > max(earlier):
            self.print_to_log_file(f"new best selection score {score:.4f}: checkpoint_best.pth")
            self.current_epoch -= 1  # super() advanced the counter; store the epoch just done
            self.save_checkpoint(os.path.join(self.output_folder, "checkpoint_best.pth"))
            self.current_epoch += 1

    def on_train_end(self):
        """nnU-Net's end of training, then the peak memory of the run in the log.

        CUDA: ``torch.cuda.max_memory_allocated`` (MiB; what the tensors took, not the caching
        allocator's reserve); CPU: the process's peak resident set (``ru_maxrss``, MiB).
        """
        super().on_train_end()
        if self.device.type == "cuda":
            peak = torch.cuda.max_memory_allocated(self.device) / 2**20
            self.print_to_log_file(f"peak memory: {peak:.0f} MiB (CUDA, max allocated)")
        else:
            import resource

            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            self.print_to_log_file(f"peak memory: {peak:.0f} MiB (CPU, peak resident set)")
