"""TensorBoard event files (written with tensorboardX, no TensorFlow needed).

Besides scalars, text, images, histograms and the projector, a run writes:
- a custom-scalars layout: train and val loss and the objective on one chart;
- its HParams session. Every job of a sweep writes the same experiment definition: the swept
  keys, typed, as the only hyperparameter columns (constant keys stay in the session, not on
  an axis), and the metric columns with the objective first.
"""

from __future__ import annotations

import math
import os
import time
from typing import Any

from dlexp.loggers.base import Comparison, Writer, is_number


class TensorBoardWriter(Writer):
    def __init__(self, logdir: str):
        from tensorboardX import SummaryWriter

        self.w = SummaryWriter(logdir=logdir, flush_secs=10)
        self.started = time.time()

    def scalars(self, step: int, values: dict[str, float]) -> None:
        for tag, v in values.items():
            if is_number(v):
                self.w.add_scalar(tag, v, step)

    def text(self, tag: str, text: str, step: int = 0) -> None:
        # Markdown: indent by 4 so configs and tables render as code blocks.
        self.w.add_text(tag, "    " + text.replace("\n", "\n    "), step)

    def image(self, tag: str, image_hwc: Any, step: int) -> None:
        self.w.add_image(tag, image_hwc, step, dataformats="HWC")

    def histogram(self, tag: str, values: Any, step: int) -> None:
        self.w.add_histogram(tag, values, step)

    def embedding(
        self, tag: str, features: Any, metadata: list, header: list[str], images_nchw: Any, step: int
    ) -> None:
        """Projector files under tb/<step>/<tag>/ plus tb/projector_config.pbtxt."""
        import warnings

        with warnings.catch_warnings():  # its sprite casts uninitialized padding (redrawn below)
            warnings.simplefilter("ignore", RuntimeWarning)
            self.w.add_embedding(
                features, metadata=metadata, metadata_header=header, label_img=images_nchw, global_step=step, tag=tag
            )
        if images_nchw is not None:  # tensorboardX fills the sprite's unused rows with uninitialized memory
            save_sprite(os.path.join(self.w.logdir, f"{step:05d}", tag, "sprite.png"), images_nchw)

    def loss_chart(self, objective_metric: str) -> None:
        """The Custom Scalars dashboard's first chart: train and val loss, and the objective."""
        tags = ["train/loss", "val/loss"]
        if objective_metric not in tags:
            tags.append(objective_metric)
        self.w.add_custom_scalars({"loss": {"train and val loss, objective": ["Multiline", [f"^{t}$" for t in tags]]}})

    def hparams(self, hparams: dict[str, Any], metrics: dict[str, float], comparison: Comparison) -> None:
        """Writes the HParams experiment and session into this run (not a sub-run, as
        SummaryWriter.add_hparams would), so TensorBoard pairs them with this run's scalars."""
        fw = self.w._get_file_writer()
        for summary in hparams_summaries(hparams, metrics, comparison, self.started):
            fw.add_summary(summary)

    def flush(self) -> None:
        self.w.flush()

    def close(self, status: str = "completed") -> None:
        self.w.close()


def hparams_summaries(
    hparams: dict[str, Any], metrics: dict[str, float], comparison: Comparison, started: float
) -> list[Any]:
    """The experiment, session start and session end summaries of the HParams plugin."""
    from tensorboard.plugins.hparams import metadata

    api_pb2, plugin_data_pb2 = protos(
        "tensorboard.plugins.hparams.api_pb2", "tensorboard.plugins.hparams.plugin_data_pb2"
    )
    typed = {k: v for k, v in hparams.items() if v is not None}
    axes = [k for k in comparison.swept if k in typed] if comparison.swept else list(typed)
    start = plugin_data_pb2.SessionStartInfo(group_name=comparison.group or "", start_time_secs=started)
    for k, v in typed.items():
        if isinstance(v, bool):
            start.hparams[k].bool_value = v
        elif is_number(v):
            start.hparams[k].number_value = float(v)
        else:
            start.hparams[k].string_value = str(v)
    kinds = {"bool_value": api_pb2.DATA_TYPE_BOOL, "number_value": api_pb2.DATA_TYPE_FLOAT64}
    infos = [
        api_pb2.HParamInfo(
            name=k,
            type=kinds.get(start.hparams[k].WhichOneof("kind") or "", api_pb2.DATA_TYPE_STRING),
            differs=bool(comparison.swept),
        )
        for k in axes
    ]
    shown = [m for m in comparison.metrics if is_number(metrics.get(m)) and math.isfinite(metrics[m])]
    experiment = api_pb2.Experiment(
        hparam_infos=infos, metric_infos=[api_pb2.MetricInfo(name=api_pb2.MetricName(tag=m)) for m in shown]
    )
    end = plugin_data_pb2.SessionEndInfo(status=api_pb2.STATUS_SUCCESS, end_time_secs=time.time())
    return [
        plugin_summary(metadata.EXPERIMENT_TAG, plugin_data_pb2.HParamsPluginData(experiment=experiment)),
        plugin_summary(metadata.SESSION_START_INFO_TAG, plugin_data_pb2.HParamsPluginData(session_start_info=start)),
        plugin_summary(metadata.SESSION_END_INFO_TAG, plugin_data_pb2.HParamsPluginData(session_end_info=end)),
    ]


def plugin_summary(tag: str, data: Any) -> Any:
    """A tensorboardX Summary holding one HParams plugin record (TensorBoard's protos, tensorboardX's writer)."""
    from tensorboard.plugins.hparams import metadata

    (summary_pb2,) = protos("tensorboardX.proto.summary_pb2")
    Summary, SummaryMetadata = summary_pb2.Summary, summary_pb2.SummaryMetadata
    data.version = metadata.PLUGIN_DATA_VERSION
    meta = SummaryMetadata(
        plugin_data=SummaryMetadata.PluginData(plugin_name=metadata.PLUGIN_NAME, content=data.SerializeToString())
    )
    return Summary(value=[Summary.Value(tag=tag, metadata=meta)])


def protos(*modules: str) -> list[Any]:
    """Generated protobuf modules, which carry no type information."""
    import importlib

    return [importlib.import_module(m) for m in modules]


def save_sprite(path: str, images_nchw: Any) -> None:
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
