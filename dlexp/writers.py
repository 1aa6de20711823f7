"""Metric writers: TensorBoard event files (tensorboardX), metrics.jsonl, console.

Every writer takes the same calls, so the trainer logs once and never knows where
the numbers go. Only process 0 of a multi-host run is given real writers.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable
from typing import Any


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


class TensorBoardWriter:
    def __init__(self, logdir: str):
        from tensorboardX import SummaryWriter

        self.w = SummaryWriter(logdir=logdir, flush_secs=10)

    def scalars(self, step: int, values: dict[str, float]) -> None:
        for tag, v in values.items():
            if _is_number(v):
                self.w.add_scalar(tag, v, step)

    def text(self, tag: str, text: str, step: int = 0) -> None:
        # Markdown: indent by 4 so configs and tables render as code blocks.
        self.w.add_text(tag, "    " + text.replace("\n", "\n    "), step)

    def image(self, tag: str, image_hwc, step: int) -> None:
        self.w.add_image(tag, image_hwc, step, dataformats="HWC")

    def histogram(self, tag: str, values, step: int) -> None:
        self.w.add_histogram(tag, values, step)

    def embedding(self, tag: str, features, metadata: list, header: list[str], images_nchw, step: int) -> None:
        """Projector files under tb/<step>/<tag>/ plus tb/projector_config.pbtxt."""
        import warnings

        with warnings.catch_warnings():  # its sprite casts uninitialized padding (redrawn below)
            warnings.simplefilter("ignore", RuntimeWarning)
            self.w.add_embedding(
                features, metadata=metadata, metadata_header=header, label_img=images_nchw, global_step=step, tag=tag
            )
        if images_nchw is not None:  # tensorboardX fills the sprite's unused rows with uninitialized memory
            _save_sprite(os.path.join(self.w.logdir, f"{step:05d}", tag, "sprite.png"), images_nchw)

    def hparams(self, hparams: dict[str, Any], metrics: dict[str, float]) -> None:
        """Writes the HParams plugin's session into this run (not a sub-run, as
        SummaryWriter.add_hparams would), so TensorBoard pairs it with this run's scalars."""
        from tensorboardX.summary import hparams as hparams_summary

        clean = {k: (v if isinstance(v, (int, float, str, bool)) else str(v)) for k, v in hparams.items()}
        metrics = {k: v for k, v in metrics.items() if _is_number(v) and math.isfinite(v)}
        exp, ssi, sei = hparams_summary(clean, metrics)
        fw = self.w._get_file_writer()
        for s in (exp, ssi, sei):
            fw.add_summary(s)

    def flush(self) -> None:
        self.w.flush()

    def close(self) -> None:
        self.w.close()


def _save_sprite(path: str, images_nchw) -> None:
    """The projector's sprite: images in [0, 1] row-major on a square black sheet."""
    import numpy as np
    from PIL import Image

    imgs = np.asarray(images_nchw, dtype=np.float32).transpose(0, 2, 3, 1)
    n, h, w, c = imgs.shape
    per_row = math.ceil(math.sqrt(n * h * w) / w)
    sheet = np.zeros((per_row * h, per_row * w, c), np.float32)
    for i, img in enumerate(imgs):
        r, col = divmod(i, per_row)
        sheet[r * h : (r + 1) * h, col * w : (col + 1) * w] = img
    sheet = np.repeat(sheet, 3, axis=2) if c == 1 else sheet
    Image.fromarray((sheet.clip(0, 1) * 255).astype(np.uint8)).save(path)


class JsonlWriter:
    """One JSON line per logged step: {"step": ..., "train/loss": ..., ...}."""

    def __init__(self, path: str):
        self.f = open(path, "a", buffering=1)

    def scalars(self, step: int, values: dict[str, float]) -> None:
        row: dict[str, Any] = {"step": int(step)}
        row.update(
            {k: (v if not (isinstance(v, float) and not math.isfinite(v)) else str(v)) for k, v in values.items()}
        )
        self.f.write(json.dumps(row) + "\n")

    def text(self, tag: str, text: str, step: int = 0) -> None:
        pass

    def image(self, tag: str, image_hwc, step: int) -> None:
        pass

    def histogram(self, tag: str, values, step: int) -> None:
        pass

    def embedding(self, tag: str, features, metadata: list, header: list[str], images_nchw, step: int) -> None:
        pass

    def hparams(self, hparams: dict[str, Any], metrics: dict[str, float]) -> None:
        pass

    def flush(self) -> None:
        self.f.flush()

    def close(self) -> None:
        self.f.close()


class Writers:
    """Fans every call out to the writers it holds (possibly none)."""

    def __init__(self, writers: Iterable[Any] = ()):
        self.writers = list(writers)

    def __getattr__(self, name: str):
        def call(*args, **kwargs):
            for w in self.writers:
                getattr(w, name)(*args, **kwargs)

        return call


def make_writers(cfg: Any, run_dir: str, is_main_process: bool = True) -> Writers:
    if not is_main_process:
        return Writers()
    ws: list[Any] = []
    if cfg.tensorboard:
        ws.append(TensorBoardWriter(os.path.join(run_dir, "tb")))
    if cfg.jsonl:
        ws.append(JsonlWriter(os.path.join(run_dir, "metrics.jsonl")))
    return Writers(ws)


class CopyJsonl(JsonlWriter):
    """metrics.jsonl rows of one copy of a run, tagged with what tells it apart (seed, name)."""

    def __init__(self, path: str, tags: dict[str, Any]):
        super().__init__(path)
        self.tags = tags

    def scalars(self, step: int, values: dict[str, float]) -> None:
        super().scalars(step, {**self.tags, **values})


def copy_writers(cfg: Any, run_dir: str, spec: Any, is_main_process: bool = True) -> Writers:
    """One copy's writers: its own TensorBoard run tb/<label> (trainer.seeds: tb/seed_<s>) and its
    rows of metrics.jsonl, tagged with its seed, and with its label under trainer.copies."""
    if not is_main_process:
        return Writers()
    ws: list[Any] = []
    if cfg.tensorboard:
        ws.append(TensorBoardWriter(os.path.join(run_dir, "tb", spec.label)))
    if cfg.jsonl:
        tags = {"seed": spec.values["seed"]} if set(spec.values) == {"seed"} else {"copy": spec.label}
        ws.append(CopyJsonl(os.path.join(run_dir, "metrics.jsonl"), tags))
    return Writers(ws)


def summary_table(rows: dict[str, dict[str, Any]], first: str = "split") -> str:
    """A small aligned table: one row per split (or fold, copy: `first` names them), one column per metric."""
    cols: list[str] = []
    for metrics in rows.values():
        cols += [c for c in metrics if c not in cols]
    head = [first] + cols
    body = [[split] + [_fmt(m.get(c)) for c in cols] for split, m in rows.items()]
    widths = [max(len(r[i]) for r in [head] + body) for i in range(len(head))]
    line = lambda r: "  ".join(v.rjust(w) if i else v.ljust(w) for i, (v, w) in enumerate(zip(r, widths)))
    text = "\n".join([line(head), line(["-" * w for w in widths])] + [line(r) for r in body])
    return text


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4f}" if abs(v) < 1e4 else f"{v:.4g}"
    return str(v)
