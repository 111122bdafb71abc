"""The deep fold task (oncoflow.deep.task): hook order, stages, history, resume files, recipes."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from test_deep_models import _cohort

from oncoflow.deep.common import FoldInputs, index_batches, prediction_rows
from oncoflow.deep.data import StemCrops
from oncoflow.deep.task import FoldTask, Stage, fold_trainer
from oncoflow.deep.workflow import run_fold
from oncoflow.models.registry import create_model, list_models, register_model
from oncoflow.studies import Recipe
from oncoflow.train.loop import FitResult


def fold_task_probe(n_features: int = 1) -> torch.nn.Module:
    """Logistic model of the probe task: one linear layer, two logits."""
    return torch.nn.Linear(n_features, 2)


if "fold_task_probe" not in list_models():
    register_model(fold_task_probe)


@dataclass
class ProbeSettings:
    target: str = "response"
    stems: list[str] = field(default_factory=lambda: ["MR_T2"])
    epochs: int = 3
    warmup: bool = True


class ProbeTask(FoldTask[ProbeSettings]):
    """The smallest task: log lesion volume -> logistic model, with an optional warm-up stage."""

    def check(self) -> None:
        self.calls = ["check"]

    def pretrain(self) -> None:
        self.calls.append("pretrain")
        if self.settings.warmup:  # a label-free stage: fits the same model to the same data
            self._features()
            torch.manual_seed(self.inputs.seed)
            net = create_model("fold_task_probe")
            self.fit(net, self._stage(net, "warmup", labelled=False))

    def encode(self) -> None:
        self.calls.append("encode")
        self._features()

    def _features(self) -> None:
        labels = self.inputs.outcomes.groupby("patient_id")[self.settings.target].max()
        self.x = {g: self._volumes(p) for g, p in self.groups.items()}
        self.y = {g: torch.tensor(labels.loc[p].to_numpy(int)) for g, p in self.groups.items()}

    def _volumes(self, patients: list[str]) -> torch.Tensor:
        values = []
        for p in patients:
            first = self.inputs.lesions[p][min(self.inputs.lesions[p])]
            values.append(np.log1p(np.mean([first[s].volume_mm3 for s in self.settings.stems])))
        return torch.tensor(values, dtype=torch.float32)[:, None]

    def build(self) -> torch.nn.Module:
        self.calls.append("build")
        torch.manual_seed(self.inputs.label_seed)
        return create_model("fold_task_probe")

    def _stage(self, net: torch.nn.Module, name: str, *, labelled: bool = True) -> Stage:
        x = torch.cat([self.x["train"], self.x["inner"]])
        y = torch.cat([self.y["train"], self.y["inner"]])

        def batches(epoch: int, generator: torch.Generator):
            yield from index_batches(len(y), 4, generator)

        def loss_fn(model: torch.nn.Module, idx: torch.Tensor) -> torch.Tensor:
            return torch.nn.functional.cross_entropy(model(x[idx]), y[idx])

        def validate(model: torch.nn.Module) -> dict[str, float]:
            return {"loss": float(torch.nn.functional.cross_entropy(model(x), y))}

        return Stage(
            name,
            torch.optim.SGD(net.parameters(), lr=0.1),
            batches,
            loss_fn,
            validate,
            settings=self.settings,
            epochs=self.settings.epochs,
            patience=0,
            monitor="loss",
            mode="min",
            labelled=labelled,
            resume=f"{name}.pt",
            history=f"{name}_history.csv",
        )

    def stage(self, model: torch.nn.Module) -> Stage:
        self.calls.append("stage")
        return self._stage(model, "main")

    def refine(self, model: torch.nn.Module) -> None:
        self.calls.append(f"refine(training={model.training})")

    def predict(self, model: torch.nn.Module) -> pd.DataFrame:
        self.calls.append("predict")
        with torch.no_grad():
            prob = torch.softmax(model(self.x["out"]), 1)[:, 1].numpy()
        values = {"y_true": self.y["out"].numpy(), "y_score": prob}
        return prediction_rows(self.inputs, self.groups["out"], self.settings.target, values)

    def payload(self, model: torch.nn.Module, result: FitResult) -> dict[str, Any]:
        self.calls.append("payload")
        return {"model": "probe", "calls": list(self.calls), "best_epoch": result.best_epoch}


class UntaggedProbe(ProbeTask):
    tag_stages = False


def _inputs(permute: bool = False, permutation: int = 0) -> FoldInputs:
    """Twelve in-memory patients: train 0-5, inner 6-7, validation 8-9, test 10-11."""
    patients = [f"P{i:02d}" for i in range(12)]
    labels = [i % 2 for i in range(12)]
    empty = np.zeros((0, 4, 4), np.float32)
    lesions = {}
    for i, p in enumerate(patients):
        area = np.array([50.0 * (1 + 3 * labels[i]) + i])  # responders: larger lesions
        crops = StemCrops(empty, empty.astype(np.uint8), area, 2.0, empty, empty)
        lesions[p] = {0: {"MR_T2": crops}}
    return FoldInputs(
        fold="0",
        train=patients[:6],
        inner=patients[6:8],
        validation=patients[8:10],
        test=patients[10:],
        splits={p: "train" if i < 10 else "internal_test" for i, p in enumerate(patients)},
        clinical=pd.DataFrame(index=pd.Index(patients, name="patient_id")),
        outcomes=pd.DataFrame({"patient_id": patients, "response": labels}),
        lesions=lesions,
        permute=permute,
        permutation=permutation,
        seed=4,
    )


def test_run_calls_the_hooks_in_the_shared_order(tmp_path: Path) -> None:
    task = ProbeTask(_inputs(), ProbeSettings(), device=torch.device("cpu"), resume_dir=tmp_path)
    payload, rows, history = task.run()
    assert payload["calls"] == [
        "check",
        "pretrain",
        "encode",
        "build",
        "stage",
        "refine(training=False)",  # the trained network is in eval mode from here on
        "predict",
        "payload",
    ]
    assert rows["patient_id"].tolist() == ["P08", "P09", "P10", "P11"]
    assert rows["split"].tolist() == ["validation", "validation", "internal_test", "internal_test"]
    assert rows["y_score"].between(0, 1).all()
    # every stage fit trained, in order, each tagged with its name
    assert history["stage"].tolist() == ["warmup"] * 3 + ["main"] * 3
    assert history["epoch"].tolist() == [1, 2, 3, 1, 2, 3]
    assert [name for name, _ in task.histories] == ["warmup", "main"]
    assert payload["best_epoch"] in (1, 2, 3)
    for name in ("warmup.pt", "warmup_history.csv", "main.pt", "main_history.csv"):
        assert (tmp_path / name).is_file()


def test_a_single_stage_task_may_leave_out_the_stage_column(tmp_path: Path) -> None:
    settings = ProbeSettings(warmup=False)
    task = UntaggedProbe(_inputs(), settings, device=torch.device("cpu"), resume_dir=tmp_path)
    _, _, history = task.run()
    assert "stage" not in history.columns
    assert history["epoch"].tolist() == [1, 2, 3]


def test_label_free_stages_are_shared_by_negative_control_runs(tmp_path: Path) -> None:
    for k in (0, 1):
        inputs = _inputs(permute=True, permutation=k)
        ProbeTask(inputs, ProbeSettings(), device=torch.device("cpu"), resume_dir=tmp_path).run()
    assert (tmp_path / "warmup.pt").is_file()  # trained once, at the fold's level
    assert not (tmp_path / "main.pt").exists()
    for k in (0, 1):
        assert (tmp_path / f"permutation_{k}" / "main.pt").is_file()
        assert not (tmp_path / f"permutation_{k}" / "warmup.pt").exists()


def test_fold_trainer_runs_a_task_class_and_keeps_a_function() -> None:
    def function(inputs, settings, *, device, resume_dir):
        return {}, pd.DataFrame(), pd.DataFrame()

    assert fold_trainer(function) is function
    train = fold_trainer(ProbeTask)
    assert train is not ProbeTask
    assert train.__name__ == "ProbeTask.run"


def test_abstract_hooks_must_be_implemented() -> None:
    class Incomplete(FoldTask[ProbeSettings]):
        def encode(self) -> None:
            pass

    with pytest.raises(TypeError, match="abstract"):
        Incomplete(_inputs(), ProbeSettings(), device=torch.device("cpu"), resume_dir=Path("."))


def test_a_recipe_file_may_supply_its_own_task(tmp_path: Path) -> None:
    paths = _cohort(tmp_path, "liver")
    recipe = Recipe(
        name="probe_study",
        summary="logistic model of the lesion volume (a test of the fold task)",
        family="deep",
        models=("fold_task_probe",),
        trainer=ProbeTask,
        settings=ProbeSettings,
        inherits=(),
    )
    options = {"model": "fold_task_probe", "recipe": recipe, "fold": "0", "seed": 2, **paths}
    settings = {"epochs": 2}
    rows, summary = run_fold(
        settings=settings, out_dir=tmp_path / "a", resume_dir=tmp_path / "ra", **options
    )
    again, _ = run_fold(
        settings=settings, out_dir=tmp_path / "b", resume_dir=tmp_path / "rb", **options
    )
    pd.testing.assert_frame_equal(rows, again)  # the same draws in the same order
    assert summary["settings"] == {**ProbeSettings().__dict__, "epochs": 2}
    payload = torch.load(tmp_path / "a" / "model.pt", weights_only=False)
    assert payload["calls"][0] == "check"
    assert payload["calls"][-1] == "payload"
    history = pd.read_csv(tmp_path / "a" / "history.csv")
    assert history["stage"].tolist() == ["warmup", "warmup", "main", "main"]
    validation = set(rows.loc[rows["split"] == "validation", "patient_id"])
    assert validation
    assert not validation & set(summary["train_patients"])
