"""Hugging Face ``Trainer.train`` on real, tiny models built from a config (nothing
is fetched from a hub): params, logged losses and eval metrics, the best
checkpoint, the save_pretrained model with its tokenizer, report_to, and a
fit nested in train logging nothing of its own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

import autolog  # noqa: E402
from tests.integrations.runs import artifact_names, history, only_run  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
VOCAB = ["[PAD]", "[UNK]", *(f"w{i}" for i in range(30))]


class Tokens(torch.utils.data.Dataset):
    """Sequences of 8 token ids; the label says whether the first token is in the upper half."""

    def __init__(self, n: int, seed: int = 0, seq2seq: bool = False):
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randint(2, len(VOCAB), (n, 8), generator=g)
        self.y = self.x.flip(1) if seq2seq else (self.x[:, 0] > len(VOCAB) // 2).long()

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict:
        return {"input_ids": self.x[i], "labels": self.y[i]}


def tiny_bert():
    config = transformers.BertConfig(
        vocab_size=len(VOCAB),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=16,
        num_labels=2,
    )
    torch.manual_seed(0)
    return transformers.BertForSequenceClassification(config)


def tiny_tokenizer():
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import Whitespace

    backend = Tokenizer(WordLevel({w: i for i, w in enumerate(VOCAB)}, unk_token="[UNK]"))
    backend.pre_tokenizer = Whitespace()
    return transformers.PreTrainedTokenizerFast(
        tokenizer_object=backend, unk_token="[UNK]", pad_token="[PAD]"
    )


def arguments(tmp_path, **overrides):
    settings = dict(
        output_dir=str(tmp_path / "out"),
        num_train_epochs=2,
        per_device_train_batch_size=8,
        learning_rate=1e-3,
        logging_steps=2,
        eval_strategy="epoch",
        save_strategy="epoch",
        load_best_model_at_end=True,
        report_to="none",
        use_cpu=True,
        disable_tqdm=True,
    )
    settings.update(overrides)
    return transformers.TrainingArguments(**settings)


def accuracy(prediction) -> dict:
    return {"accuracy": float((prediction.predictions.argmax(-1) == prediction.label_ids).mean())}


def trainer_for(tmp_path, **overrides):
    return transformers.Trainer(
        model=tiny_bert(),
        args=arguments(tmp_path, **overrides),
        train_dataset=Tokens(32),
        eval_dataset=Tokens(16, seed=1),
        processing_class=tiny_tokenizer(),
        compute_metrics=accuracy,
    )


def test_train_logs_params_losses_eval_metrics_best_checkpoint_and_model(tmp_path):
    autolog.autolog("transformers")
    trainer = trainer_for(tmp_path)
    output = trainer.train()

    run = only_run()
    assert run.info.status == "FINISHED"
    assert run.data.tags["mlflow.autologging"] == "transformers"
    params = run.data.params
    # changed from the defaults, and what they derive (load_best_model_at_end: the metric)
    assert params["num_train_epochs"] == "2" and params["eval_strategy"] == "epoch"
    assert params["load_best_model_at_end"] == "True" and params["metric_for_best_model"] == "loss"
    # essentials whatever their value; defaults that are no essential are left out
    assert params["seed"] == "42" and params["gradient_accumulation_steps"] == "1"
    assert params["learning_rate"] == "0.001"
    assert "adam_beta1" not in params and "hub_token" not in params
    assert params["model_class"].endswith("BertForSequenceClassification")
    assert params["model.hidden_size"] == "16" and params["model.num_hidden_layers"] == "1"

    # 32 samples / 8 = 4 steps an epoch, a log every 2 steps: losses at 2, 4, 6, 8
    assert [s for s, _ in history(run, "loss")] == [2, 4, 6, 8]
    assert [s for s, _ in history(run, "learning_rate")] == [2, 4, 6, 8]
    rates = [v for _, v in history(run, "learning_rate")]
    assert rates == sorted(rates, reverse=True)  # the linear schedule decays
    evals = history(run, "eval_loss")
    assert [s for s, _ in evals] == [4, 8]  # once per epoch
    assert [s for s, _ in history(run, "eval_accuracy")] == [4, 8]
    assert run.data.metrics["train_loss"] == pytest.approx(output.training_loss)
    assert run.data.metrics["best_score"] == pytest.approx(min(v for _, v in evals))
    best = run.data.tags["best_checkpoint_path"]
    assert best == trainer.state.best_model_checkpoint and best.endswith(("checkpoint-4", "-8"))

    assert "model" in artifact_names(run)
    files = artifact_names(run, "model")
    assert {"model/config.json", "model/model.safetensors", "model/tokenizer.json"} <= files
    loaded = autolog.load_model(f"runs:/{run.info.run_id}/model")
    assert type(loaded) is type(trainer.model)
    batch = Tokens(4, seed=2).x
    with torch.no_grad():
        expected = trainer.model.eval()(input_ids=batch).logits
        assert torch.allclose(loaded.eval()(input_ids=batch).logits, expected)
    folder = autolog.Client().download_artifacts(run.info.run_id, "model")
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    assert tokenizer("w3 w4 w29")["input_ids"] == tiny_tokenizer()("w3 w4 w29")["input_ids"]


def test_seq2seq_trainer_is_logged_too(tmp_path):
    autolog.autolog("transformers")
    config = transformers.T5Config(
        vocab_size=len(VOCAB),
        d_model=16,
        d_kv=8,
        d_ff=32,
        num_layers=1,
        num_decoder_layers=1,
        num_heads=2,
        decoder_start_token_id=0,
        pad_token_id=0,
    )
    torch.manual_seed(0)
    args = transformers.Seq2SeqTrainingArguments(
        output_dir=str(tmp_path / "out"),
        num_train_epochs=1,
        per_device_train_batch_size=8,
        logging_steps=1,
        report_to="none",
        use_cpu=True,
        disable_tqdm=True,
        save_strategy="no",
        predict_with_generate=True,
    )
    trainer = transformers.Seq2SeqTrainer(
        model=transformers.T5ForConditionalGeneration(config),
        args=args,
        train_dataset=Tokens(16, seq2seq=True),
    )
    trainer.train()

    run = only_run()
    assert run.data.params["predict_with_generate"] == "True"  # a Seq2Seq argument
    assert [s for s, _ in history(run, "loss")] == [1, 2]
    loaded = autolog.load_model(f"runs:/{run.info.run_id}/model")
    assert isinstance(loaded, transformers.T5ForConditionalGeneration)


def test_the_plain_loop_integration_stays_quiet_inside_train(tmp_path):
    autolog.autolog("transformers", "torch")
    trainer = trainer_for(
        tmp_path, eval_strategy="no", save_strategy="no", load_best_model_at_end=False
    )
    trainer.train()
    run = only_run()  # one run: the Trainer's optimizer steps are no plain loop
    assert run.data.tags["mlflow.autologging"] == "transformers"
    assert "train_loss" in run.data.metrics and "steps" not in run.data.metrics


def test_a_failing_train_ends_its_run_failed_with_what_was_logged(tmp_path):
    autolog.autolog("transformers")
    trainer = trainer_for(tmp_path, eval_strategy="no", save_strategy="no")
    trainer.args.load_best_model_at_end = False

    class Boom(transformers.TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 3:
                raise RuntimeError("boom at step 3")

    trainer.add_callback(Boom())
    with pytest.raises(RuntimeError, match="boom at step 3"):
        trainer.train()
    run = only_run()
    assert run.info.status == "FAILED"
    assert [s for s, _ in history(run, "loss")] == [2]
    assert "model" not in artifact_names(run)
    callbacks = trainer.callback_handler.callbacks
    assert not any(type(cb).__name__ == "AutologCallback" for cb in callbacks)


def test_user_run_holds_the_training_and_stays_open(tmp_path):
    autolog.autolog("transformers")
    with autolog.start_run() as run:
        trainer_for(
            tmp_path, eval_strategy="no", save_strategy="no", load_best_model_at_end=False
        ).train()
        assert autolog.active_run().info.run_id == run.info.run_id
    logged = only_run()
    assert logged.info.run_id == run.info.run_id
    assert "loss" in logged.data.metrics


# A training whose Trainer reports to MLflow itself (report_to="mlflow"), with
# the official mlflow (its own venv's packages after ours on sys.path).
REPORT_TO_MLFLOW = """
import json, sys
sys.path.append(sys.argv[1])
import mlflow
import autolog
from tests.integrations import test_transformers as t

autolog.autolog("transformers")
trainer = t.trainer_for(
    t.Path(sys.argv[2]), report_to="mlflow", eval_strategy="no", save_strategy="no",
    load_best_model_at_end=False,
)
trainer.train()
autolog.flush()
ours = autolog.Client().search_runs(["0"])
theirs = mlflow.search_runs(search_all_experiments=True, output_format="list")
print(json.dumps({
    "ours": len(ours),
    "theirs": len(theirs),
    "their_losses": [m.step for m in mlflow.MlflowClient().get_metric_history(
        theirs[0].info.run_id, "loss")],
}))
"""


def test_report_to_mlflow_is_logged_by_mlflow_alone(tmp_path):
    from tests.rest.servers import mlflow_python

    site = subprocess.run(
        [
            mlflow_python(),
            "-c",
            "import mlflow, os; print(os.path.dirname(os.path.dirname(mlflow.__file__)))",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": (tmp_path / "mlflow-store").as_uri(),
        "MLFLOW_ALLOW_FILE_STORE": "true",
        "PYTHONPATH": str(ROOT),
    }
    out = subprocess.run(
        [sys.executable, "-c", REPORT_TO_MLFLOW, site, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    # MLflow's callback logged the training once; autolog opened no second run
    assert result == {"ours": 0, "theirs": 1, "their_losses": [2, 4, 6, 8]}


def test_no_model_with_log_models_false(tmp_path):
    autolog.autolog("transformers", log_models=False)
    trainer_for(
        tmp_path, eval_strategy="no", save_strategy="no", load_best_model_at_end=False
    ).train()
    assert "model" not in artifact_names(only_run())


def test_autolog_status_lists_it_with_what_it_patches():
    autolog.autolog("transformers")
    transformers.Trainer  # noqa: B018  (the lazy module imports transformers.trainer)
    row = next(r for r in autolog.status() if r.name == "transformers")
    assert row.installed_version == transformers.__version__
    assert row.state == "active"
    assert row.targets == ("transformers.trainer.Trainer.train",)


def test_logging_a_torch_model_does_not_import_transformers_models(tmp_path):
    """transformers is a lazy module: asking it for PreTrainedModel imports its
    modeling code (0.4 s); Lightning imports transformers, so every torch
    model's log_model paid that while choosing a flavor."""
    code = (
        "import sys, torch, transformers, autolog\n"
        "autolog.set_tracking_uri(sys.argv[1])\n"
        "with autolog.start_run():\n"
        "    autolog.log_model(torch.nn.Linear(2, 1), 'model')\n"
        "autolog.flush()\n"
        "assert 'transformers.modeling_utils' not in sys.modules\n"
        "print(autolog.last_active_run().info.run_id)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, (tmp_path / "mlruns").as_uri()],
        capture_output=True,
        text=True,
        check=True,
    )
    run_id = out.stdout.split()[-1]
    autolog.set_tracking_uri((tmp_path / "mlruns").as_uri())
    model = autolog.load_model(f"runs:/{run_id}/model")
    assert isinstance(model, torch.nn.Linear)  # the torch flavor took it
